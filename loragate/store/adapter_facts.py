"""What an adapter directory says about itself (adapter_config.json and its weights), checked against the base it is
gated on before any prediction: an adapter trained elsewhere carries no loragate manifest, so its config's
`base_model_name_or_path` and its tensors' shapes are all that tell whether it belongs to this base.

Names are compared as honestly as they can be: equal names (case aside) match; a local directory matches a hub id or
another directory by its last path component; a directory whose name says nothing of the other side (a renamed local
copy) cannot be compared, which is a note in the report, never a pass in silence; two names that can be compared and
differ are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from loragate.card.settings import LoraSettings
from loragate.store.adapters import AdapterStoreError, file_sha256


@dataclass(frozen=True)
class AdapterFacts:
    """An adapter's LoRA shape, the base its config names, and its weights' checksum, as report.json records them."""

    r: int
    alpha: float
    target_modules: list[str] | str  # peft also takes one regular expression
    base_model_name_or_path: str | None
    sha256: str  # of adapter_model.safetensors

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        """"r 8, alpha 16, 7 modules, sha256 1a2b3c4d5e6f": the table's header line."""
        modules = (f"{len(self.target_modules)} modules" if isinstance(self.target_modules, list)
                   else f"modules /{self.target_modules}/")
        return f"r {self.r}, alpha {self.alpha:g}, {modules}, sha256 {self.sha256[:12]}"


def read_facts(adapter_dir: Path, sha256: str | None = None) -> AdapterFacts:
    """The facts of the adapter in `adapter_dir` (its weights hashed unless their `sha256` is known, from a manifest
    that was checked against them)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    targets = config.get("target_modules")
    return AdapterFacts(
        r=int(config.get("r", 0)), alpha=float(config.get("lora_alpha", 0)),
        target_modules=sorted(targets) if isinstance(targets, list) else targets,
        base_model_name_or_path=config.get("base_model_name_or_path") or None,
        sha256=sha256 or file_sha256(adapter_dir / "adapter_model.safetensors"),
    )


def is_path(name: str) -> bool:
    """Whether a base's name is a local directory rather than a hub id or a tiny base's name."""
    return name.startswith((".", "/", "~")) or Path(name).expanduser().is_dir()


HUB_CACHE = re.compile(r"models--(?P<owner>[^/]+?)--(?P<name>[^/]+)/snapshots/[^/]+/?$")  # huggingface_hub's layout


def hub_id_in_cache(name: str) -> str | None:
    """The hub id of a Hugging Face cache snapshot directory (.../models--org--name/snapshots/<commit>), which some
    stacks record as the base; None for any other name."""
    match = HUB_CACHE.search(name)
    return f"{match['owner']}/{match['name']}" if match else None


def last_part(name: str) -> str:
    return Path(name.rstrip("/")).name.lower()


def base_name_problem(recorded: str | None, base_name: str) -> tuple[str | None, str | None]:
    """(refusal, note) from the base an adapter's config names (`recorded`) and this run's base: a refusal where two
    comparable names differ, a note where they cannot be compared, or match by name alone; (None, None) where the
    names are the same."""
    if not recorded:
        return None, ("its adapter_config.json names no base_model_name_or_path, so the base it was trained on is not "
                      "known; this run gates it on " + repr(base_name))
    if recorded.lower() == base_name.lower():
        return None, None
    if (hub_id_in_cache(recorded) or recorded).lower() == (hub_id_in_cache(base_name) or base_name).lower():
        return None, f"trained on {recorded!r}, gated on {base_name!r}: one model, one name read from the hub's cache"
    paths = [name for name in (recorded, base_name) if is_path(name) and not hub_id_in_cache(name)]
    if paths and last_part(recorded) == last_part(base_name):
        return None, f"trained on {recorded!r}, gated on {base_name!r}: the same name, compared by name only"
    if paths:
        return None, (f"trained on {recorded!r}, gated on {base_name!r}: a local directory's name cannot be compared "
                      f"with it (a renamed copy?); make sure it is the same model")
    return (f"trained on base {recorded!r} (its adapter_config.json's base_model_name_or_path), not on this run's base "
            f"{base_name!r}"), None


def check_base_name(adapter_dir: Path, base_name: str, flag: str, allow_foreign: bool) -> str | None:
    """An adapter trained elsewhere, against the base this run loaded: refused (an AdapterStoreError naming both bases
    and the fix) where its config names another, unless `allow_foreign`; returns the note the report shows, if any."""
    recorded = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    refusal, note = base_name_problem(recorded or None, base_name)
    if refusal is None:
        return f"{flag} {adapter_dir}: {note}" if note else None
    if allow_foreign:
        return f"{flag} {adapter_dir}: {refusal}; gated anyway (--allow-foreign-adapter)"
    raise AdapterStoreError(f"{flag} {adapter_dir}: {refusal}. Pass that base with --base-model=ID|PATH, or "
                            f"--allow-foreign-adapter to gate it on this one anyway")


def check_shapes(model: torch.nn.Module, weights_file: Path, saved: dict[str, torch.Tensor],
                 hidden_size: int | None) -> None:
    """Each LoRA tensor against the module of `model` it adapts (lora_A is r x in, lora_B is out x r): an adapter
    trained on a base of another width made peft fail with torch's size mismatch, printed for every tensor and naming
    no file. Refused here, in the base's terms where they tell it ("hidden size 64, this base has 128")."""
    modules = dict(model.named_modules())
    wrong = []
    for name, tensor in sorted(saved.items()):
        for suffix, dim, feature in ((".lora_A.weight", 1, "in_features"), (".lora_B.weight", 0, "out_features")):
            module = modules.get(name.removeprefix("base_model.model.").removesuffix(suffix))
            if name.endswith(suffix) and tensor.dim() == 2 and hasattr(module, feature) and \
                    tensor.shape[dim] != getattr(module, feature):
                wrong.append((name, feature, int(tensor.shape[dim]), int(getattr(module, feature))))
    if not wrong:
        return
    name, feature, adapter, base = wrong[0]
    widths = next(((a, b) for _, _, a, b in wrong if b == hidden_size), None)
    told = (f"hidden size {widths[0]}, this base has {widths[1]}" if widths is not None else
            f"{name} taking {adapter} {feature.replace('_', ' ')}, this base's module has {base}")
    raise AdapterStoreError(f"{weights_file}: trained on a base with {told} ({len(wrong)} LoRA tensors do not fit this "
                            f"base's modules, e.g. {name}): it belongs to another base; gate it on the base it was "
                            f"trained on (--base-model=ID|PATH)")


def card_differences(facts: AdapterFacts, lora: LoraSettings | None, where: str) -> str | None:
    """How an adapter trained elsewhere differs from the card's LoRA block `where` (tiers.tiny.lora): a card saying r
    16 on seven modules does not describe an adapter of r 8 on q and v, and the report says so."""
    if lora is None:
        return None
    differs = []
    if facts.r != lora.r:
        differs.append(f"r {facts.r} (the card's {lora.r})")
    if facts.alpha != lora.alpha:
        differs.append(f"alpha {facts.alpha:g} (the card's {lora.alpha:g})")
    if facts.target_modules != sorted(lora.target_modules):
        differs.append(f"target modules {facts.target_modules} (the card's {sorted(lora.target_modules)})")
    if not differs:
        return None
    return (f"the adapter differs from the card's {where}: {', '.join(differs)}; the parameter checks use the "
            f"adapter's own shape")
