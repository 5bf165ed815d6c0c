"""The adapter a run gates: --adapter as given, the store's entry for its key, or one trained (after a tiny-tier
canary, for the full tier) and stored under the store's lock; and the last release's adapter as a baseline, loaded
and unloaded before the adapter under test."""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import replace
from pathlib import Path

import peft
import torch
import transformers
from filelock import FileLock, Timeout
from peft import LoraConfig, PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.other import AuxiliaryTrainingWrapper, ModulesToSaveWrapper, get_pattern_key

import loragate
from loragate.card.options import RunOptions
from loragate.card.settings import Tier
from loragate.data.examples import Splits
from loragate.data.task import Task
from loragate.data.truncation import InputFit
from loragate.inference.grammar import Constraint
from loragate.inference.predictions import Predictions
from loragate.kinds import KINDS
from loragate.models.bases import LoadedBase, fingerprint
from loragate.models.parameters import expected_lora_parameters, targeted_linears
from loragate.progress import reporter
from loragate.run.baseline import check_report_base
from loragate.run.decoding_modes import (
    CONSTRAINED,
    declared_mode,
    task_constraint,
)
from loragate.run.steps import fit_inputs, for_base, kind, predict, prepare_base, score
from loragate.store.adapter_facts import AdapterFacts, card_differences, check_base_name, check_shapes, read_facts
from loragate.store.adapters import (
    AdapterStore,
    AdapterStoreError,
    BaseRecord,
    Manifest,
    Whole,
    adapter_key,
    check_adapter_config,
    check_origin,
    check_ranks,
    entry_identity,
    load_adapter,
    manifest_of,
    read_manifest,
    read_weights,
)
from loragate.store.locks import holder_of, record_holder, release_lock, wait_for
from loragate.training.distributed import current
from loragate.training.lora import TrainingDiverged, TrainResult, attach_lora, training_machine


def versions() -> dict[str, str]:
    """The library versions an adapter was trained with, for its manifest."""
    return {"loragate": loragate.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def train_and_store(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                    key: str, inputs: InputFit | None) -> tuple[PeftModel, Path, Manifest, TrainResult]:
    settings = task.card.trainable(tier)
    model = attach_lora(base.model, settings.lora, settings.train.seed, KINDS.get(task.card.kind).peft_task_type,
                        settings.lora.modules_to_save or None)
    model.peft_config["default"].base_model_name_or_path = base.name  # not a local cache path
    result = kind(task).train(task, tier, model, base, splits, options)
    eval_metrics = score(task, predict(task, model, base, splits.eval, tier, False, "eval split"))
    at_train = {f"eval_{name}": value for name, value in eval_metrics.headline().items()}
    manifest = Manifest(
        task=task.card.name, tier=tier,
        base=BaseRecord(name=base.name, fingerprint=base.fingerprint, parameters=base.parameters,
                        quantization=base.quantization),
        data_hash=splits.data_hash(), lora=settings.lora.model_dump(), train=settings.train.model_dump(),
        seed=settings.train.seed, versions=versions(), machine=training_machine(options.device),
        loss_curve=[round(loss, 6) for loss in result.loss_curve], train_seconds=round(result.seconds, 2),
        data_parallel_processes=current().world,
        eval_curve=[(step, round(loss, 6)) for step, loss in result.eval_curve],
        metrics_at_train={"eval_loss": round(result.eval_loss, 6), **at_train,
                          "eval_validity": eval_metrics.validity_rate},
        overrides=list(options.overrides), inputs=inputs.to_json() if inputs else None,
        **kind(task).manifest_facts(base),
    )
    store = AdapterStore(options.store_root)
    entry = current().from_main(lambda: store.save(model, manifest, task.card.name, tier, key))
    return model, entry, read_manifest(entry, key), result


class CanaryFailed(RuntimeError):
    """The tiny-tier canary of a task failed, so its full-tier training was not started."""


def run_canary(task: Task, splits: Splits, options: RunOptions) -> None:
    """Tiny-then-full: before GPU hours go into the full adapter, the tiny adapter of the same task and data
    must train with a falling, finite loss and produce outputs that parse (in the tiny tier's declared decoding)."""
    tiny = replace(options, base_model=None, adapter=None, baseline_adapter=None, baseline_report=None)
    where = f"canary {task.card.name}/tiny"
    try:
        base = prepare_base(task, "tiny", splits, tiny)
        task.card, splits, inputs = fit_inputs(task, "tiny", for_base(task, splits, base), base)
        model, entry, manifest, _ = prepare_adapter(task, "tiny", base, splits, tiny, inputs)
    except TrainingDiverged as exc:
        raise CanaryFailed(f"{where}: {exc}; the full run was not started") from exc
    curve = manifest.loss_curve if manifest else []
    problems = []
    if len(curve) < 2 or not curve[-1] < curve[0]:
        problems.append(f"loss did not fall ({curve[:1]} -> {curve[-1:]}, {len(curve)} steps)")
    declared = task_constraint(task.card) if declared_mode(task.card, "tiny") == CONSTRAINED else None
    predictions = predict(task, model, base, splits.eval, "tiny", False, where, constraint=declared)
    invalid = predictions.invalid()
    validity = 1 - len(invalid) / len(predictions.ids)
    if validity < task.card.gates.min_validity:
        problems.append(f"{len(invalid)} of {len(predictions.ids)} eval outputs do not parse, e.g. "
                        + "; ".join(f"{i}: {out!r} ({reason})" for i, out, reason in invalid[:3]))
    if problems:
        raise CanaryFailed(f"{where} ({entry}): {'; '.join(problems)}. The full run was not started: fix the "
                           f"data, the card's prompt or its training settings first.")


def prepare_adapter(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                    inputs: InputFit | None = None,
                    checked: bool = False) -> tuple[PeftModel, Path, Manifest | None, TrainResult | None]:
    """--adapter if given, checked against `base` first unless `checked` (run_task's given_adapters did, before any
    prediction: checking reads its weights, which may be large); else the store's entry for this key, read without
    the lock when it is stored whole; else, under the lock, train one and store it (its manifest records how the
    examples were fitted, `inputs`)."""
    if options.adapter is not None:
        if not checked:
            check_given(task, base, options, "--adapter", options.adapter)
        with reporter().phase("load adapter", "loaded adapter"):
            return load_adapter(base.model, options.adapter), options.adapter, None, None
    settings = task.card.trainable(tier)  # a card without lora/train gates only --adapter: refused here, naming them
    key = adapter_key(base.fingerprint, splits.data_hash(), settings.lora, settings.train)
    store = AdapterStore(options.store_root)
    ranks = current()
    if not options.retrain:  # a whole entry is only read: a run holding the key's lock (--retrain) is not awaited
        whole = ranks.from_main(lambda: store.complete(task.card.name, tier, key))
        loaded = load_unlocked(task, base, whole) if whole is not None else None
        if loaded is not None:
            return loaded
    lock: FileLock | None = None

    def take_lock() -> None:  # data-parallel: only the main rank locks, stores and decides for all ranks
        nonlocal lock
        lock = acquire(store, task.card.name, tier, key)

    ranks.from_main(take_lock)
    try:
        entry = ranks.from_main(lambda: store.find(task.card.name, tier, key))
        if entry is not None and not options.retrain:
            return load_stored(task, base, entry, key)
        if tier == "full":
            with reporter().case(f"{task.card.name}/tiny canary"):
                run_canary(task, splits, options)
        with reporter().phase("train", "trained"):
            return train_and_store(task, tier, base, splits, options, key, inputs)
    finally:
        if lock is not None:
            release_lock(lock)


def load_unlocked(task: Task, base: LoadedBase, whole: Whole) -> tuple[PeftModel, Path, Manifest, None] | None:
    """The whole entry `whole`, loaded without the lock; None where a --retrain replaced it meanwhile (the directory
    changed, or a file of it vanished, or it no longer checks out), the base left unwrapped: the caller then loads
    it under the lock, which reads it again and names any problem. Data-parallel ranks decide this as one."""
    problem: Exception | None = None
    model: PeftModel | None = None
    try:
        model = load_checked(task, base, whole.entry, whole.manifest)
    except (FileNotFoundError, AdapterStoreError) as exc:
        problem = exc
    replaced = current().from_main(lambda: problem is not None or entry_identity(whole.entry) != whole.identity)
    if not replaced:
        if problem is not None:  # only on a rank whose load failed where the main rank's did not
            raise problem
        assert model is not None  # loaded, as nothing failed
        return model, whole.entry, whole.manifest, None
    if model is not None:
        base.model = bare_base(model, base, str(whole.entry))
    elif any(isinstance(module, BaseTunerLayer) for module in base.model.modules()):
        raise AdapterStoreError(f"{whole.entry}: replaced while this run loaded it (by a --retrain?), which left the "
                                f"base half wrapped; run again") from problem
    return None


def load_stored(task: Task, base: LoadedBase, entry: Path,
                key: str) -> tuple[PeftModel, Path, Manifest, None]:
    """The store's entry for `key` on `base`, after checking its files, its manifest and the base it was trained on."""
    manifest = read_manifest(entry, key)
    return load_checked(task, base, entry, manifest), entry, manifest, None


def load_checked(task: Task, base: LoadedBase, entry: Path, manifest: Manifest) -> PeftModel:
    """The entry `entry`, whose `manifest` was read and its checksum checked, on `base` after checking the base it
    was trained on and what the task's kind needs of it."""
    if manifest.base.fingerprint != base.fingerprint:
        raise AdapterStoreError(f"{entry}: trained on base {manifest.base.fingerprint[:12]}, "
                                f"loaded base is {base.fingerprint[:12]}; retrain with --retrain")
    kind(task).check_adapter(task, base, entry)
    with reporter().phase("load adapter", "loaded adapter"):
        return load_adapter(base.model, entry)


def acquire(store: AdapterStore, task: str, tier: Tier, key: str) -> FileLock:
    """The store's lock for one key: of several runs that need the same adapter, one trains while the
    others wait, then load it; a waiting run says who holds it and for how long, and the holder records itself
    for them. Temp dirs of killed saves are removed first."""
    lock = store.lock(task, tier, key)
    store.remove_stale_temps(task, tier)  # what saves killed earlier left behind
    try:
        wait_for(lock, say_waiting)
    except Timeout as exc:
        raise AdapterStoreError(f"waited {lock.timeout:.0f} s for another run training {task}/{tier} key {key} "
                                f"(lock {lock.lock_file}, held by {holder_of(lock)}); let it finish or stop "
                                f"it") from exc
    try:
        record_holder(lock)
    except BaseException:  # the lock is not left held by a run that stops here
        lock.release()
        raise
    return lock


def say_waiting(text: str) -> None:
    """A run waiting on another's store lock says so as it waits: on the progress terminal (live and lines mode),
    else, outside pytest (a library call), on stderr; under pytest -qq it keeps quiet, and its timeout error names the
    holder. Never a warning, which a project's `filterwarnings = error` would turn into its run's error."""
    progress = reporter()
    if progress.terminal is not None and progress.mode != "silent":
        progress.terminal.line(progress.prefixed(text, ": "))
    elif "PYTEST_CURRENT_TEST" not in os.environ:
        print(f"loragate: {text}", file=sys.stderr, flush=True)


def check_given(task: Task, base: LoadedBase, options: RunOptions, flag: str, adapter_dir: Path) -> str | None:
    """An adapter given on the command line (`flag`: --adapter or --baseline-adapter), checked against `base` before
    it wraps it: the task and base its loragate manifest records (else the base its adapter_config.json names), its
    config, its tensors' ranks and shapes, and what the task's kind needs of it. Returns the note the report shows
    where the base it was trained on could not be compared, or was allowed to differ."""
    note = None
    if manifest_of(adapter_dir) is not None:  # its base's fingerprint decides, better than any name
        if not options.allow_foreign_adapter:
            check_origin(adapter_dir, task.card.name, base.name, base.fingerprint)
    else:
        note = check_base_name(adapter_dir, base.name, flag, options.allow_foreign_adapter)
    config_file, weights_file = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    check_adapter_config(config_file)
    saved = read_weights(weights_file)
    check_ranks(config_file, weights_file, saved)
    check_shapes(base.model, weights_file, saved, getattr(base.model.config, "hidden_size", None))
    kind(task).check_adapter(task, base, adapter_dir)
    return note


def given_adapters(task: Task, tier: Tier, base: LoadedBase, options: RunOptions) -> list[str]:
    """--adapter and --baseline-adapter checked against the loaded base before any prediction (check_given), and the
    base a --baseline-report was made on; the notes the report shows, with how --adapter differs from the card's LoRA
    block."""
    notes = [check_given(task, base, options, flag, path) for flag, path in
             (("--baseline-adapter", options.baseline_adapter), ("--adapter", options.adapter)) if path is not None]
    if options.baseline_report is not None and not options.allow_foreign_adapter:
        check_report_base(options.baseline_report, task.card.name, tier, base.name, base.fingerprint)
    if options.adapter is not None:
        notes.append(card_differences(read_facts(options.adapter), task.card.tier(tier).lora, f"tiers.{tier}.lora"))
    return [note for note in notes if note is not None]


def adapter_facts(directory: Path, manifest: Manifest | None) -> AdapterFacts:
    """The gated adapter's LoRA shape, named base and checksum (a stored entry's from its checked manifest)."""
    return read_facts(directory, manifest.adapter_sha256 if manifest is not None else None)


def predict_with_baseline(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                          constraint: Constraint | None) -> Predictions:
    """Test predictions of the last release's adapter (under `constraint`, the gated mode's grammar, where given),
    which is then unloaded: the base is left bit-identical (checked) for the adapter under test. The run checked the
    adapter first (given_adapters)."""
    baseline = load_adapter(base.model, options.baseline_adapter)
    with reporter().phase("predict baseline", "predicted baseline"):
        predictions = predict(task, baseline, base, splits.test, tier, options.progress, "baseline", splits.eval,
                              constraint)
    base.model = bare_base(baseline, base, f"the baseline adapter {options.baseline_adapter}")
    return predictions


def expected_lora_count(task: Task, tier: Tier, options: RunOptions, model: torch.nn.Module) -> int:
    """The LoRA parameters the gated adapter must hold, counted on the base `model` before it wraps it: r x (in + out)
    over each targeted linear, with --adapter's own r, rank_pattern and target modules (which its config may give as
    one regular expression, matched against each module's full name), else the card's."""
    if options.adapter is None:
        lora = task.card.trainable(tier).lora
        return expected_lora_parameters(model, lora.r, lora.target_modules)
    config = LoraConfig.from_pretrained(str(options.adapter))
    targets = config.target_modules
    linears = ({name: module for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) and re.fullmatch(targets, name)} if isinstance(targets, str)
               else targeted_linears(model, sorted(targets)))
    ranks = config.rank_pattern or {}
    return sum(ranks.get(get_pattern_key(ranks.keys(), name), config.r) * (module.in_features + module.out_features)
               for name, module in linears.items())


def bare_base(model: PeftModel, base: LoadedBase, name: str) -> torch.nn.Module:
    """`base`'s model with the adapter `model` taken off, checked bit-identical to the base as loaded and free of
    peft's wrappers. peft's unload() puts the trained copy of a modules_to_save head (an encoder's classifier) where
    the base's own was, so the base's own is put back."""
    inner = model.get_base_model()
    originals = {path: module.original_module for path, module in inner.named_modules()
                 if isinstance(module, ModulesToSaveWrapper)}
    bare = model.unload()
    for path, original in originals.items():
        bare.set_submodule(path, original)
    wrapped = [path for path, module in bare.named_modules()
               if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper))]
    if wrapped:
        raise RuntimeError(f"{name}: taking its adapter off left peft's wrappers on the base at "
                           f"{', '.join(wrapped[:3])}")
    if fingerprint(bare) != base.fingerprint:
        raise RuntimeError(f"{name}: taking its adapter off left the base's weights changed")
    return bare
