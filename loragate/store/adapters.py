"""The adapter store: adapters/<task>/<tier>/<key>/ with the peft files and a manifest.

The key hashes everything that decides the adapter's weights (base fingerprint, data hash, LoRA and
training settings, seed), so a stored adapter is reused exactly when retraining would reproduce it.
Writes go to a temp directory renamed into place: a killed run leaves the old entry or none.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import peft
import torch
from filelock import FileLock, Timeout
from peft import PeftModel
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from peft.utils.other import get_pattern_key
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import PreTrainedModel

from loragate.atomic import atomic_dir
from loragate.card.settings import LoraSettings, TrainSettings
from loragate.models.parameters import saved_key
from loragate.redact import redact
from loragate.training.distributed import LOCK_TIMEOUT_S

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "manifest.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# how `batching: packed` composes its micro-batches; a change here gives packed adapters new keys. Before 2 Dec 2026
# (no marker): one row of the whole token budget
PACKING = "rows of max_length, first fit"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TEMP = re.compile(r"^\.tmp-(?:old-)?(?P<key>[a-z0-9][a-z0-9_-]{0,63})-[a-z0-9_]+$")  # save's mkdtemp names
# record_holder's mkstemp names (loragate.store.locks, loragate.atomic.atomic_file on .lock-<key>.holder)
_HOLDER_TEMP = re.compile(r"^\.tmp-\.lock-(?P<key>[a-z0-9][a-z0-9_-]{0,63})\.holder-[a-z0-9_]+\.holder$")


class BaseRecord(BaseModel):
    name: str
    fingerprint: str  # sha256 over every tensor of the base
    parameters: int | None = None
    quantization: str | None = None


class Manifest(BaseModel):
    """What the store records beside each adapter: what it was trained for and how, how training went, and the
    adapter file's checksum. One writer (AdapterStore.save) and one reader (read_manifest, manifest_of)."""

    model_config = ConfigDict(extra="forbid")

    task: str
    tier: str
    base: BaseRecord
    data_hash: str
    lora: dict[str, Any]
    train: dict[str, Any]
    seed: int
    versions: dict[str, str]
    machine: dict[str, Any] | None = None  # CPU instruction set, threads, GPU: what changes the bytes
    loss_curve: list[float]
    train_seconds: float
    data_parallel_processes: int = 1  # the same recipe and key; float summation order differs
    eval_curve: list[tuple[int, float]] | None = None  # (optimizer step, validation loss)
    chat_template_sha256: str | None = None  # instruct: the template the prompts were rendered with
    metrics_at_train: dict[str, float]
    overrides: list[str] | None = None  # the run's --set path=value on the card
    inputs: dict[str, Any] | None = None  # train.max_length as resolved and the prompts cut (loragate.data.truncation)
    key: str = ""  # set by the store when it writes the entry
    adapter_sha256: str = ""

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
                                 for err in exc.errors())
            raise AdapterStoreError(f"{path}: not a loragate manifest ({problems}); repair it, or delete it to gate "
                                    f"the adapter without the checks its manifest allows (task, base, chat "
                                    f"template)") from exc

    def write(self, path: Path) -> None:
        """The manifest as JSON with Hugging Face tokens masked, as in reports: projects commit their adapters, and
        a token may ride in on a --set value or a base's name."""
        path.write_text(redact(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"))


class AdapterStoreError(RuntimeError):
    """A stored adapter that cannot be trusted or written; the message names the path and the fix."""


def adapter_key(base_fingerprint: str, data_hash: str, lora: LoraSettings, train: TrainSettings) -> str:
    """Everything that decides the adapter's weights. modules_to_save, train.truncation and train.tokens_per_batch
    enter only when not their defaults, so adapters stored before the fields existed keep their key; max_length
    enters as resolved; a packed adapter's key names how its rows were packed (PACKING)."""
    lora_inputs = lora.model_dump(exclude=set() if lora.modules_to_save else {"modules_to_save"})
    defaults = {"truncation": "refuse", "tokens_per_batch": None}
    train_inputs = train.model_dump(exclude={name for name, value in defaults.items() if getattr(train, name) == value})
    if train.batching == "packed":
        train_inputs["packing"] = PACKING
    inputs = {"base": base_fingerprint, "data": data_hash, "lora": lora_inputs, "train": train_inputs}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_name(kind: str, name: str) -> str:
    """Task, tier and key become path parts: allow only plain lower-case names."""
    if not _NAME.fullmatch(name):
        raise AdapterStoreError(f"{kind} {name!r} is not a plain name (a-z, 0-9, _ and -): refusing to use it in a "
                                f"path")
    return name


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the directories `a` and `b` (Linux renameat2 RENAME_EXCHANGE); False where the OS or
    filesystem cannot, and nothing was changed."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


class Whole(NamedTuple):
    """A store entry found whole without the lock: what a lock-free load checks it against."""

    entry: Path
    manifest: Manifest  # read and its checksum checked once: the load does not hash the weights again
    identity: tuple[int, int]  # entry_identity before it was read


def entry_identity(entry: Path) -> tuple[int, int] | None:
    """The directory at `entry` as the filesystem knows it (device, inode), or None where there is none: a save
    that replaces the entry puts another directory there, so a reader without the lock sees that it changed."""
    try:
        info = entry.stat()
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class AdapterStore:
    def __init__(self, root: Path, locks: Path | None = None) -> None:
        """`locks`: where the keys' lock files and holder records go. Not in the store: a project commits
        adapters/, and each lock left a zero-byte `.lock-<key>` there. By default the project's cache beside the
        store, `<root>/../.loragate/locks` (RunOptions.cache, as the plugin and train_fixtures.py place it): derived
        from the store, so every process that uses one store takes the same locks."""
        self.root = root
        self.locks = locks if locks is not None else root.parent / ".loragate" / "locks"

    def lock_dir(self, task: str, tier: str) -> Path:
        """The directory of one task and tier's locks, outside the store."""
        return self.locks / safe_name("task", task) / safe_name("tier", tier)

    def entry_dir(self, task: str, tier: str, key: str) -> Path:
        """adapters/<task>/<tier>/<key>, refused when a symlink inside the store leads it elsewhere (the store's
        root may itself be a link, to a bigger disk say): nothing is read or written outside the store."""
        entry = self.root / safe_name("task", task) / safe_name("tier", tier) / safe_name("key", key)
        if not entry.resolve().is_relative_to(self.root.resolve()):
            raise AdapterStoreError(f"{entry}: resolves to {entry.resolve()}, outside the store {self.root.resolve()}: "
                                    f"a symlink inside the store points elsewhere; remove it")
        return entry

    def lock(self, task: str, tier: str, key: str, timeout: float = LOCK_TIMEOUT_S) -> FileLock:
        """An OS file lock per key: of several processes (pytest-xdist workers) that need the same adapter,
        one trains while the others wait, then load. The OS drops the lock of a killed process. The lock file stays
        (removing it while another process waits on it would let a third take a new one): it lives in lock_dir."""
        self.entry_dir(task, tier, key)  # the names checked as the entry's are
        directory = self.lock_dir(task, tier)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AdapterStoreError(f"cannot create {directory}: {exc}. Check space and permissions of "
                                    f"{self.locks}.") from exc
        return FileLock(directory / f".lock-{key}", timeout=timeout)

    def remove_stale_temps(self, task: str, tier: str) -> list[Path]:
        """Remove the temps a killed write left in adapters/<task>/<tier>/ (a save's `.tmp-<key>-*` directory) and
        in its lock_dir (a holder record's `.tmp-.lock-<key>.holder-*` file), with a warning naming them. A run
        writes both under its key's lock, so a temp whose key no process has locked is stale; one whose key is
        locked may be a write in progress and is kept."""
        tier_dir = self.root / safe_name("task", task) / safe_name("tier", tier)
        in_store = tier_dir.is_dir() and tier_dir.resolve().is_relative_to(self.root.resolve())  # else nothing
        # stored yet, or a link out of the store, which entry_dir refuses on any use
        lock_dir = self.lock_dir(task, tier)
        temps = [*(tier_dir.iterdir() if in_store else ()), *(lock_dir.iterdir() if lock_dir.is_dir() else ())]
        removed = []
        for tmp in sorted(temps):
            key = temp_key(tmp)
            if key is None:
                continue
            lock = FileLock(lock_dir / f".lock-{key}", timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            try:
                if tmp.is_dir():  # not renamed into place by a save that finished meanwhile
                    shutil.rmtree(tmp)
                    removed.append(tmp)
                elif tmp.is_file():
                    tmp.unlink()
                    removed.append(tmp)
            finally:
                lock.release()
        if removed:
            warnings.warn(f"{tier_dir}: removed {len(removed)} temp dirs left by interrupted saves: "
                          f"{[path.name for path in removed]}", stacklevel=2)
        return removed

    def find(self, task: str, tier: str, key: str) -> Path | None:
        entry = self.entry_dir(task, tier, key)
        return entry if entry.is_dir() else None

    def complete(self, task: str, tier: str, key: str) -> Whole | None:
        """The entry of `key` when it is stored whole (its files there, its manifest's key and checksum matching),
        which a run that only loads reads without the lock: its path, its manifest and the directory's identity
        taken before reading it (a --retrain that swaps the entry meanwhile changes it); else None. A damaged entry
        is None here too: the run then takes the lock and reading it again there names the problem."""
        entry = self.find(task, tier, key)
        identity = entry_identity(entry) if entry is not None else None
        if entry is None or identity is None:
            return None
        try:
            manifest = read_manifest(entry, key)
        except (AdapterStoreError, OSError):  # reported by the locked path, which reads it again
            return None
        return Whole(entry, manifest, identity)

    def save(self, model: PeftModel, manifest: Manifest, task: str, tier: str, key: str) -> Path:
        """Write the adapter and its manifest to a temp dir, then put it in place (loragate.atomic): a killed run
        leaves the old entry or none, and a reader sees the old entry or the new one."""
        entry = self.entry_dir(task, tier, key)
        try:
            with atomic_dir(entry, place=replace_entry) as staged:
                model.save_pretrained(staged.path, safe_serialization=True, save_embedding_layers=False)
                sort_set_fields(staged.path / "adapter_config.json", model.peft_config[model.active_adapter])
                manifest = manifest.model_copy(update={
                    "key": key, "adapter_sha256": file_sha256(staged.path / "adapter_model.safetensors")})
                manifest.write(staged.path / "manifest.json")
                warn_if_retrain_differs(entry, manifest)
        except OSError as exc:
            raise AdapterStoreError(f"cannot write adapter {entry}: {exc}. Check space and permissions of "
                                    f"{self.root}.") from exc
        return entry


def temp_key(path: Path) -> str | None:
    """The key whose lock guards the temp `path` a write may have left: a save's directory or a holder record's
    file; None for anything else (an entry, a lock, a link)."""
    if path.is_symlink():
        return None
    pattern = _TEMP if path.is_dir() else _HOLDER_TEMP if path.is_file() else None
    match = pattern.fullmatch(path.name) if pattern is not None else None
    return match["key"] if match is not None else None


def replace_entry(new: Path, entry: Path) -> None:
    """Rename `new` onto `entry`; where the entry exists (--retrain, or another run stored this key meanwhile) swap
    them atomically, so a reader never finds the key missing, and remove the old one."""
    try:
        os.replace(new, entry)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if exchange(new, entry):  # `new` now holds the old entry
        shutil.rmtree(new, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".tmp-old-{entry.name}-", dir=entry.parent))  # no atomic exchange here
    os.replace(entry, old / entry.name)
    os.replace(new, entry)
    shutil.rmtree(old)


def sort_set_fields(config_file: Path, config: object) -> None:
    """peft writes the fields it holds as sets (target_modules) in set order, which changes with each process's hash
    seed, so a retrain rewrote adapter_config.json in another order. Written again with those lists sorted, in
    peft's own layout."""
    sets = {name for name, value in vars(config).items() if isinstance(value, set)}
    saved = json.loads(config_file.read_text())
    for name in sets & saved.keys():
        saved[name] = sorted(saved[name])
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True))


def warn_if_retrain_differs(entry: Path, manifest: Manifest) -> None:
    """A retrain that writes other bytes than the stored entry dirties a checkout that commits its adapters: warned,
    naming what the two manifests record differently (library versions, CPU instruction set, threads, GPU)."""
    try:
        stored = Manifest.read(entry / "manifest.json")
    except (OSError, AdapterStoreError):
        return  # no entry yet, or a damaged one: nothing to compare with
    if stored.adapter_sha256 == manifest.adapter_sha256:
        return
    changes = []
    for part in ("versions", "machine"):
        before, after = getattr(stored, part) or {}, getattr(manifest, part) or {}
        changes += [f"{part}.{name} {before.get(name, 'not recorded')} -> {after.get(name, 'not recorded')}"
                    for name in sorted(before.keys() | after.keys()) if before.get(name) != after.get(name)]
    warnings.warn(f"{entry}: the retrained adapter's bytes differ from the stored one's (sha256 "
                  f"{stored.adapter_sha256[:12]} -> {manifest.adapter_sha256[:12]}); the manifests "
                  f"differ in: {'; '.join(changes) or 'nothing they record, so training is not deterministic here'}",
                  stacklevel=3)


def read_manifest(entry: Path, key: str | None = None) -> Manifest:
    """The manifest of a stored adapter, after checking that its files are whole and match the key."""
    pickles = sorted(p.name for p in entry.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise AdapterStoreError(f"{entry}: holds {pickles}: pickle formats are not loaded. Convert to safetensors.")
    missing = [name for name in ADAPTER_FILES if not (entry / name).is_file()]
    if missing:
        raise AdapterStoreError(f"{entry}: missing {missing}. Delete the directory and train again (--retrain).")
    manifest = Manifest.read(entry / "manifest.json")
    if key is not None and manifest.key != key:
        raise AdapterStoreError(f"{entry / 'manifest.json'}: key {manifest.key!r} does not match directory key {key!r}")
    actual = file_sha256(entry / "adapter_model.safetensors")
    if manifest.adapter_sha256 != actual:
        raise AdapterStoreError(
            f"{entry / 'adapter_model.safetensors'}: sha256 {actual[:12]} does not match the manifest's "
            f"{manifest.adapter_sha256[:12]}: the file changed after it was stored. Retrain (--retrain)."
        )
    return manifest


def manifest_of(adapter_dir: Path | None) -> Manifest | None:
    """The loragate manifest of any adapter directory (a store entry or an --adapter), or None when it has none
    (trained elsewhere)."""
    manifest_file = adapter_dir / "manifest.json" if adapter_dir is not None else None
    if manifest_file is None or not manifest_file.is_file():
        return None
    return Manifest.read(manifest_file)


def check_origin(adapter_dir: Path, task: str, base_name: str, base_fingerprint: str) -> None:
    """An adapter's loragate manifest, when it has one, records the task and the base it was trained for: gated on
    another task or base it fails on quality and says nothing of why. Refused naming both sides; an adapter without
    a manifest (trained elsewhere) is not checked."""
    manifest = manifest_of(adapter_dir)
    if manifest is None:
        return
    problems = []
    if manifest.task != task:
        problems.append(f"task {manifest.task!r}, not {task!r}")
    if manifest.base.fingerprint != base_fingerprint:
        problems.append(f"base {manifest.base.name!r} (fingerprint {manifest.base.fingerprint[:12]}), not "
                        f"{base_name!r} (fingerprint {base_fingerprint[:12]})")
    if problems:
        raise AdapterStoreError(f"{adapter_dir}: its manifest.json says it was trained for {' and '.join(problems)}. "
                                f"Pass the adapter trained for this task and base, or --allow-foreign-adapter to gate "
                                f"it anyway")


def check_adapter_config(config_file: Path) -> None:
    """peft ignores keys it does not know, with a warning: an adapter saved by a newer peft would load with
    options silently dropped. Refused here, naming the keys and the installed peft."""
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError as exc:
        raise AdapterStoreError(f"{config_file}: missing; an adapter directory needs the adapter_config.json that "
                                f"save_pretrained writes") from exc
    except json.JSONDecodeError as exc:
        raise AdapterStoreError(f"{config_file}: not valid JSON ({exc})") from exc
    config_class = PEFT_TYPE_TO_CONFIG_MAPPING.get(str(config.get("peft_type")))
    if config_class is None:
        raise AdapterStoreError(f"{config_file}: peft_type {config.get('peft_type')!r} is not one peft "
                                f"{peft.__version__} knows; loragate gates LoRA adapters (peft_type 'LORA')")
    unknown = sorted(set(config) - {field.name for field in dataclasses.fields(config_class)})
    if unknown:
        raise AdapterStoreError(f"{config_file}: keys {unknown} are unknown to the installed peft {peft.__version__}, "
                                f"which would drop them: the adapter was saved by a newer peft. Upgrade peft "
                                f"(pip install -U peft) or save the adapter again with this one")


def read_weights(weights_file: Path) -> dict[str, torch.Tensor]:
    """The tensors of an adapter file, which must be whole safetensors (never a pickle) with finite values:
    safetensors' own errors do not name the file, and it stores NaN and inf without complaint."""
    try:
        saved = load_file(weights_file)
    except SafetensorError as exc:
        raise AdapterStoreError(f"{weights_file}: not a readable safetensors file ({exc})") from exc
    counts = {name: int((~torch.isfinite(tensor)).sum()) for name, tensor in saved.items()
              if tensor.is_floating_point()}
    broken = {name: count for name, count in counts.items() if count}
    if broken:
        name, count = next(iter(broken.items()))
        raise AdapterStoreError(f"{weights_file}: {len(broken)} tensors hold NaN or inf, e.g. {name} ({count} values): "
                                f"the adapter is broken; retrain it (--retrain) or restore it from its release")
    return saved


RANK_DIMENSION = {"lora_A.weight": 0, "lora_B.weight": 1, "lora_embedding_A": 0, "lora_embedding_B": 1}


def check_ranks(config_file: Path, weights_file: Path, saved: dict[str, torch.Tensor]) -> None:
    """Each LoRA tensor's rank must be the one adapter_config.json gives its module (`r`, or its `rank_pattern`
    entry): a config saved beside another adapter's weights makes peft build layers of the config's shape and
    torch fail with a size mismatch listing every tensor. Refused here naming both shapes."""
    config = json.loads(config_file.read_text())
    rank_pattern = config.get("rank_pattern") or {}
    wrong = []
    for name, tensor in sorted(saved.items()):
        suffix = next((s for s in RANK_DIMENSION if name.endswith(s)), None)
        if suffix is None:
            continue
        module = name.removesuffix("." + suffix)
        expected = rank_pattern.get(get_pattern_key(rank_pattern.keys(), module), config.get("r"))
        dim = RANK_DIMENSION[suffix]
        if tensor.dim() > dim and tensor.shape[dim] != expected:
            shape = list(tensor.shape)
            wrong.append(f"{name} has shape {shape} (rank {shape[dim]}), but {config_file} gives r={expected} "
                         f"(shape {shape[:dim] + [expected] + shape[dim + 1:]})")
    if wrong:
        raise AdapterStoreError(f"{weights_file}: {wrong[0]}; {len(wrong)} tensors disagree with the config: the "
                                f"config and the weights are from different adapters; save them together again "
                                f"(save_pretrained)")


def load_adapter(model: PreTrainedModel, adapter_dir: Path) -> PeftModel:
    """Wrap `model` with the adapter in `adapter_dir`; every tensor in the file must land in the model."""
    return load_adapters(model, {"default": adapter_dir})


def load_adapters(model: PreTrainedModel, adapters: dict[str, Path]) -> PeftModel:
    """Wrap `model` with every adapter of `adapters` (name -> directory), each under its own name, on the one base:
    candidates share its weights, whatever their number. Every tensor in each file must land in the model; the
    first adapter is left active."""
    peft_model: PeftModel | None = None
    for name, adapter_dir in adapters.items():
        weights_file = adapter_dir / "adapter_model.safetensors"
        if not weights_file.is_file():
            pickles = sorted(p.name for p in adapter_dir.glob("*") if p.suffix in PICKLE_SUFFIXES)
            hint = f" It holds {pickles}: pickle formats are not loaded; convert to safetensors." if pickles else ""
            raise AdapterStoreError(f"{adapter_dir}: no adapter_model.safetensors.{hint}")
        check_adapter_config(adapter_dir / "adapter_config.json")
        saved = read_weights(weights_file)
        check_ranks(adapter_dir / "adapter_config.json", weights_file, saved)
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=name, is_trainable=False)
        else:
            peft_model.load_adapter(adapter_dir, adapter_name=name, is_trainable=False)
        check_placed(peft_model, name, weights_file, saved)
    if peft_model is None:
        raise ValueError("load_adapters: no adapter to load")
    peft_model.set_adapter(next(iter(adapters)))
    peft_model.eval()
    return peft_model


def check_placed(peft_model: PeftModel, name: str, weights_file: Path, saved: dict) -> None:
    """Every tensor of the adapter `name`'s file landed in the model, and every LoRA weight of it came from the file.
    File names drop peft's adapter name, and a saved head (modules_to_save) its wrapper."""
    in_model = {file_key for key, _ in peft_model.named_parameters()
                if (file_key := saved_key(key, name)) is not None}
    unplaced, unfilled = sorted(set(saved) - in_model), sorted(in_model - set(saved))
    if unplaced or unfilled:
        raise AdapterStoreError(
            f"{weights_file}: tensors not placed in the model {unplaced[:3]} ({len(unplaced)}), LoRA weights the "
            f"file lacks {unfilled[:3]} ({len(unfilled)}). Was this adapter trained for another base model?"
        )
