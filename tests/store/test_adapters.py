"""The adapter key and the adapter store's checks: atomic saves, damaged entries, refused adapters."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

from loragate.card.options import RunOptions
from loragate.card.settings import LoraSettings, TrainSettings
from loragate.models.bases import (
    load_causal,
)
from loragate.run.adapter import prepare_adapter
from loragate.store.adapters import (
    ADAPTER_FILES,
    AdapterStore,
    AdapterStoreError,
    adapter_key,
    load_adapter,
    read_manifest,
    read_weights,
    safe_name,
)
from tests.manifests import stub_manifest


def load(path: Path):
    return load_causal(str(path), "cpu", torch.float32)


LORA = LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"])


TRAIN = TrainSettings(epochs=2, batch_size=8, lr=1e-3, max_length=64, seed=0)


CHANGES = [("base", "f" * 64), ("data", "d" * 64)] + \
    [("lora", {k: v}) for k, v in {"r": 4, "alpha": 8.0, "dropout": 0.1, "target_modules": ["q_proj"],
                                    "modules_to_save": ["classifier"]}.items()] + \
    [("train", {k: v}) for k, v in {"epochs": 3, "batch_size": 4, "grad_accum": 2, "lr": 2e-3, "weight_decay": 0.1,
                                     "warmup_steps": 5, "max_length": 128, "truncation": "left", "seed": 1}.items()]


@pytest.mark.parametrize("part, change", CHANGES, ids=[f"{p}-{next(iter(c)) if isinstance(c, dict) else p}"
                                                        for p, c in CHANGES])
def test_adapter_key_changes_with_every_input(part: str, change) -> None:
    args = {"base": "e" * 64, "data": "a" * 64, "lora": LORA, "train": TRAIN}
    key = adapter_key(args["base"], args["data"], args["lora"], args["train"])
    rebuilt = LoraSettings(**LORA.model_dump()), TrainSettings(**TRAIN.model_dump())
    assert key == adapter_key("e" * 64, "a" * 64, *rebuilt), "equal settings gave another key"
    args[part] = args[part].model_copy(update=change) if isinstance(change, dict) else change
    assert adapter_key(args["base"], args["data"], args["lora"], args["train"]) != key, f"{part} {change} ignored"


def test_modules_to_save_truncation_and_token_budget_unset_keep_the_keys_of_adapters_stored_before_they_existed(
) -> None:
    """The fields came after adapters were committed; unset, they must not change their key (a changed key
    silently retrains the committed adapter on every warm run)."""
    before = {"base": "e" * 64, "data": "a" * 64, "train": TRAIN.model_dump(exclude={"truncation", "tokens_per_batch"}),
              "lora": {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert adapter_key("e" * 64, "a" * 64, LORA, TRAIN) == expected


@pytest.fixture
def stored(tmp_path: Path, tuned) -> Path:
    _, model = tuned
    return AdapterStore(tmp_path / "adapters").save(model, stub_manifest(), "iris", "tiny", "k1")


def test_save_writes_the_files_atomically(stored: Path, tuned) -> None:
    files = {p.name for p in stored.iterdir()}
    assert set(ADAPTER_FILES) <= files, f"missing {set(ADAPTER_FILES) - files}"
    leftovers = [p.name for p in stored.parents[2].rglob(".tmp-*")]
    assert not leftovers, f"temp dirs left behind: {leftovers}"
    manifest = read_manifest(stored, "k1")
    assert manifest.task == "iris" and manifest.key == "k1", manifest
    AdapterStore(stored.parents[2]).save(tuned[1], stub_manifest("retrained"), "iris", "tiny", "k1")
    assert read_manifest(stored, "k1").data_hash == "retrained", "--retrain did not replace the entry"
    assert not list(stored.parents[2].rglob(".tmp-*")), "temp dirs left behind by the replacing save"


class UnsortedSet(set):
    """A set that iterates in reverse name order, as a process's hash seed may make it."""

    def __iter__(self):
        return iter(sorted(set.__iter__(self), reverse=True))


def test_adapter_config_lists_set_fields_in_sorted_order(tmp_path: Path, tuned,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """peft wrote target_modules in set order, so a retrain rewrote adapter_config.json in another order."""
    config = tuned[1].peft_config["default"]
    monkeypatch.setattr(config, "target_modules", UnsortedSet(config.target_modules))
    entry = AdapterStore(tmp_path).save(tuned[1], stub_manifest(), "iris", "tiny", "k1")
    text = (entry / "adapter_config.json").read_text()
    assert json.loads(text)["target_modules"] == sorted(config.target_modules)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True), "not in peft's own layout"


def test_a_retrain_that_writes_other_bytes_names_what_the_manifests_record_differently(tmp_path: Path, tuned) -> None:
    _, model = tuned
    store = AdapterStore(tmp_path)
    store.save(model, stub_manifest(versions={"torch": "2.13.0"}), "iris", "tiny", "k1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same bytes again: no warning
        store.save(model, stub_manifest(versions={"torch": "2.13.0"}, machine={"cpu_capability": "AVX2"}),
                   "iris", "tiny", "k1")
    weight = next(p for n, p in model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        weight[0, 0] += 1.0
    try:
        with pytest.warns(UserWarning, match=r"k1: the retrained adapter's bytes differ from the stored one's .* the "
                                             r"manifests differ in: versions.torch 2.13.0 -> 2.14.0; "
                                             r"machine.cpu_capability AVX2 -> AVX512"):
            store.save(model, stub_manifest(versions={"torch": "2.14.0"}, machine={"cpu_capability": "AVX512"}),
                       "iris", "tiny", "k1")
    finally:
        with torch.no_grad():
            weight[0, 0] -= 1.0


@pytest.mark.slow
def test_retraining_on_this_machine_writes_the_same_bytes_and_records_the_machine(tmp_path: Path, iris, iris_splits,
                                                                                   tiny_dir: Path) -> None:
    """`--retrain` of a stored adapter on the machine that trained it reproduces every file but the timing; the
    manifest records the CPU instruction set and threads, which change the bytes elsewhere."""
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False)
    _, entry, first, _ = prepare_adapter(iris, "tiny", load(tiny_dir), iris_splits, options)
    files = {name: (entry / name).read_bytes() for name in ("adapter_model.safetensors", "adapter_config.json")}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a retrain with other bytes would warn
        _, _, again, _ = prepare_adapter(iris, "tiny", load(tiny_dir), iris_splits, replace(options, retrain=True))
    assert files == {name: (entry / name).read_bytes() for name in files}
    assert first.loss_curve == again.loss_curve and first.adapter_sha256 == again.adapter_sha256
    assert again.machine == {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": 1}


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda e: flip_byte(e / "adapter_model.safetensors"), "does not match the manifest's"),
    (lambda e: (e / "adapter_config.json").unlink(), "missing ['adapter_config.json']"),
    (lambda e: (e / "adapter_model.bin").write_bytes(b"pickle"), "holds ['adapter_model.bin']: pickle formats"),
    (lambda e: (e / "manifest.json").write_text("{not json"), "not a loragate manifest (file: Invalid JSON"),
])
def test_read_manifest_refuses_a_damaged_entry(stored: Path, damage, message: str) -> None:
    damage(stored)
    with pytest.raises(AdapterStoreError) as caught:
        read_manifest(stored, "k1")
    assert str(stored) in str(caught.value) and message in str(caught.value), str(caught.value)


def test_read_manifest_refuses_a_key_mismatch(stored: Path) -> None:
    with pytest.raises(AdapterStoreError, match="key 'k1' does not match directory key 'k2'"):
        read_manifest(stored, "k2")


def test_load_adapter_round_trip_and_truncated_file(stored: Path, tuned, tiny_dir: Path) -> None:
    _, model = tuned
    loaded = load_adapter(load(tiny_dir).model, stored)
    want = {n: p for n, p in model.named_parameters() if "lora_" in n}
    got = dict(loaded.named_parameters())
    assert want and all(torch.equal(got[n], p) for n, p in want.items()), "loaded LoRA weights differ from saved"
    weights = stored / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(AdapterStoreError, match=f"{weights}: not a readable safetensors file"):
        load_adapter(load(tiny_dir).model, stored)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), junk=st.binary(max_size=64))
def test_any_prefix_or_random_bytes_is_a_named_error_never_a_load(stored: Path, cut: float, junk: bytes) -> None:
    """A file cut anywhere, random bytes, or a pickle under the safetensors name: AdapterStoreError naming the
    file, never another exception, never a partial load, never unpickling."""
    whole = (stored / "adapter_model.safetensors").read_bytes()
    broken = stored.parent / "broken.safetensors"
    for content in (whole[: int(cut * len(whole))], junk, pickle.dumps({"lora_A": [1.0, 2.0]})):
        broken.write_bytes(content)
        with pytest.raises(AdapterStoreError, match=re.escape(f"{broken}: not a readable safetensors file")):
            read_weights(broken)


def test_load_adapter_refuses_an_adapter_for_other_modules(tmp_path: Path, stored: Path, tiny_dir: Path) -> None:
    config = json.loads((stored / "adapter_config.json").read_text())
    config["target_modules"] = ["q_proj"]  # the file also holds k, v, o, gate, up and down weights
    (stored / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterStoreError, match="tensors not placed in the model"):
        load_adapter(load(tiny_dir).model, stored)


def test_load_adapter_refuses_a_config_whose_rank_differs_from_the_tensors(stored: Path, tiny_dir: Path) -> None:
    """r=4 in adapter_config.json beside r=8 tensors: torch's size mismatch listed every tensor, naming no file."""
    config = json.loads((stored / "adapter_config.json").read_text())
    config["r"] = 4
    (stored / "adapter_config.json").write_text(json.dumps(config))
    weights = stored / "adapter_model.safetensors"
    name, tensor = next((n, t) for n, t in sorted(load_file(weights).items()) if n.endswith("lora_A.weight"))
    columns = tensor.shape[1]
    with pytest.raises(AdapterStoreError, match=rf"{weights}: {re.escape(name)} has shape \[8, {columns}\] \(rank 8\), "
                                                rf"but {stored / 'adapter_config.json'} gives r=4 "
                                                rf"\(shape \[4, {columns}\]\); "
                                                rf"28 tensors disagree"):
        load_adapter(load(tiny_dir).model, stored)


def test_load_adapter_reads_each_modules_rank_from_rank_pattern(tmp_path: Path, tiny_dir: Path) -> None:
    """An adapter whose modules have different ranks (rank_pattern) loads; a pattern edited afterwards is refused."""
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], rank_pattern={"q_proj": 4})
    get_peft_model(load(tiny_dir).model, config).save_pretrained(tmp_path / "mixed")
    assert load_adapter(load(tiny_dir).model, tmp_path / "mixed")
    saved = json.loads((tmp_path / "mixed" / "adapter_config.json").read_text())
    saved["rank_pattern"] = {"v_proj": 4}
    (tmp_path / "mixed" / "adapter_config.json").write_text(json.dumps(saved))
    with pytest.raises(AdapterStoreError,
                       match=r"q_proj.lora_A.weight has shape \[4, 128\] \(rank 4\), but .* gives r=8"):
        load_adapter(load(tiny_dir).model, tmp_path / "mixed")


REPO = Path(__file__).parents[2]


def test_an_adapter_for_another_task_and_base_is_refused_naming_both(iris, iris_splits, fresh_base) -> None:
    """`--adapter adapters/sst2/tiny/<key> --task iris` loaded the SST-2 adapter and failed on quality."""
    (sst2_adapter,) = [entry for entry in (REPO / "adapters" / "sst2" / "tiny").iterdir() if entry.is_dir()]
    recorded = json.loads((sst2_adapter / "manifest.json").read_text())["base"]["fingerprint"]
    with pytest.raises(AdapterStoreError, match=rf"{sst2_adapter}: its manifest.json says it was trained for task "
                                                rf"'sst2', not 'iris' and base 'tiny:sst2' "
                                                rf"\(fingerprint {recorded[:12]}\), "
                                                rf"not '{re.escape(fresh_base.name)}' \(fingerprint "
                                                rf"{fresh_base.fingerprint[:12]}\).*--allow-foreign-adapter"):
        prepare_adapter(iris, "tiny", fresh_base, iris_splits, RunOptions(adapter=sst2_adapter))
    assert not any("lora_" in name for name, _ in fresh_base.model.named_parameters()), "the base was modified"


def test_an_adapter_manifest_that_is_not_json_is_named(stored: Path, iris, iris_splits, fresh_base) -> None:
    (stored / "manifest.json").write_text("{not json")
    with pytest.raises(AdapterStoreError, match=rf"{stored / 'manifest.json'}: not a loragate manifest"):
        prepare_adapter(iris, "tiny", fresh_base, iris_splits, RunOptions(adapter=stored))


def test_allow_foreign_adapter_gates_an_adapter_whose_manifest_names_another_base(stored: Path, iris, iris_splits,
                                                                                 fresh_base) -> None:
    manifest = json.loads((stored / "manifest.json").read_text())
    manifest["base"] = {"name": "tiny:iris", "fingerprint": "f" * 64}
    (stored / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AdapterStoreError, match=r"trained for base 'tiny:iris' \(fingerprint ffffffffffff\)"):
        prepare_adapter(iris, "tiny", fresh_base, iris_splits, RunOptions(adapter=stored))
    model, entry, _, _ = prepare_adapter(iris, "tiny", fresh_base, iris_splits,
                                         RunOptions(adapter=stored, allow_foreign_adapter=True))
    assert entry == stored and any("lora_" in name for name, _ in model.named_parameters())
    manifest["base"]["fingerprint"] = fresh_base.fingerprint  # the base it names: loads without the flag
    (stored / "manifest.json").write_text(json.dumps(manifest))
    prepare_adapter(iris, "tiny", load(Path(fresh_base.name)), iris_splits, RunOptions(adapter=stored))  # no error


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_load_adapter_refuses_non_finite_weights(stored: Path, tiny_dir: Path, bad: float) -> None:
    """safetensors stores NaN and inf without complaint; an adapter holding them is refused by name."""
    weights = load_file(stored / "adapter_model.safetensors")
    name = sorted(weights)[3]
    weights[name].view(-1)[5] = bad
    save_file(weights, stored / "adapter_model.safetensors")
    with pytest.raises(AdapterStoreError,
                       match=rf"adapter_model.safetensors: 1 tensors hold NaN or inf, e.g. {re.escape(name)} "
                             rf"\(1 values\)"):
        load_adapter(load(tiny_dir).model, stored)


def test_load_adapter_refuses_config_keys_this_peft_does_not_know(stored: Path, tiny_dir: Path) -> None:
    """peft would drop the key with a warning and load an adapter that differs from the one trained."""
    import peft

    config = json.loads((stored / "adapter_config.json").read_text())
    config["lora_from_the_future"] = True
    (stored / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterStoreError, match=rf"keys \['lora_from_the_future'\] are unknown to the installed peft "
                                                rf"{re.escape(peft.__version__)}.*Upgrade peft"):
        load_adapter(load(tiny_dir).model, stored)
    config.pop("lora_from_the_future")
    config["peft_type"] = "NOT_A_TUNER"
    (stored / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterStoreError, match="peft_type 'NOT_A_TUNER' is not one peft"):
        load_adapter(load(tiny_dir).model, stored)


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", "a\0b", "..", "Iris", "abc\n", "x" * 65])
def test_safe_name_refuses_path_tricks(name: str) -> None:
    with pytest.raises(AdapterStoreError, match="is not a plain name"):
        safe_name("task", name)
    with pytest.raises(AdapterStoreError):
        AdapterStore(Path("/tmp/never-written")).entry_dir("iris", "tiny", name)


def test_a_symlink_inside_the_store_cannot_lead_a_write_outside_it(tmp_path: Path, tuned) -> None:
    outside, root = tmp_path / "outside", tmp_path / "adapters"
    outside.mkdir()
    root.mkdir()
    (root / "iris").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AdapterStoreError, match=r"outside the store .*a symlink inside the store points elsewhere"):
        AdapterStore(root).save(tuned[1], stub_manifest(), "iris", "tiny", "0123456789abcdef")
    assert not any(outside.iterdir()), "something was written through the link"
    linked_root = tmp_path / "big-disk-link"
    linked_root.symlink_to(root, target_is_directory=True)  # the whole store on another disk is fine
    assert AdapterStore(linked_root).entry_dir("sst2", "tiny", "k1") == linked_root / "sst2" / "tiny" / "k1"


def test_safe_name_accepts_plain_names() -> None:
    assert [safe_name("key", n) for n in ("iris", "tiny", "0a1b-c_d")] == ["iris", "tiny", "0a1b-c_d"]


def test_an_unwritable_store_is_a_named_error(tmp_path: Path, tuned) -> None:
    blocked = tmp_path / "adapters"
    blocked.write_text("a file where the store's directory should be")
    with pytest.raises(AdapterStoreError, match=r"cannot write adapter .*adapters/iris/tiny/0123456789abcdef"):
        AdapterStore(blocked).save(tuned, stub_manifest(), "iris", "tiny", "0123456789abcdef")
    assert blocked.read_text().startswith("a file"), "the blocking file was changed"
