"""One task at one tier, end to end: data -> base -> adapter (load or train) -> predictions -> gates.

The plugin's session and train_fixtures.py both call in here, so the CLI and the gate cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from peft import LoraConfig, PeftModel
from transformers import PreTrainedTokenizerBase

import loragate
from loragate.baseline import baseline_from_report
from loragate.answers import instruct_metrics, qa_metrics
from loragate.card import CLASSIFICATION_KINDS, ENCODER_KINDS, CardError, Tier
from loragate.chat import TINY_CHAT_TEMPLATE, format_splits, render_tiny_splits
from loragate.curves import CurveCheck
from loragate.data import Example, Splits
from loragate.distributed import current
from loragate.encoder import classification_features, classify_logits, features_loss
from loragate.engine import Generations, answer_budget, generate, next_token_logits
from loragate.gates import GateResult, checks_from, leakage_gate, regression_checks, run_gates
from loragate.hub_data import is_dataset, materialize
from loragate.metrics import Metrics, TextMetrics, classification_metrics
from loragate.models import LoadedBase, fingerprint, load_causal, load_encoder, tiny_base_dir
from loragate.parameters import expected_lora_parameters
from loragate.parsing import ParsedOutput
from loragate.qa import SpanPrediction, answers, choose_null_threshold, predict_spans, qa_features, qa_logits
from loragate.scoring import label_log_likelihoods, likeliest
from loragate.store import (AdapterStore, AdapterStoreError, adapter_key, check_origin, load_adapter,
                            read_manifest)
from loragate.tasks import Task, get_task
from loragate.training import (TrainingDiverged, TrainResult, attach_lora, example_losses, train_features,
                               train_lora, training_machine)

PEFT_TASK_TYPE = {"generative_classification": "CAUSAL_LM", "instruct": "CAUSAL_LM",
                  "sequence_classification": "SEQ_CLS", "extractive_qa": "QUESTION_ANS"}


@dataclass(frozen=True)
class RunOptions:
    device: str = "cpu"
    base_model: str | None = None  # overrides the card's base for the tier
    adapter: Path | None = None  # gate this adapter instead of the store's
    baseline_adapter: Path | None = None  # the last release's adapter: tuned must not regress against it
    baseline_report: Path | None = None  # or the last release's report.json, with its per-example predictions
    data: Path | str | None = None  # a file in the task's real format, or a Hugging Face dataset (hub id or directory)
    retrain: bool = False
    allow_foreign_adapter: bool = False  # gate --adapter/--baseline-adapter whose manifest names another task or base
    quantize: str | None = None  # "4bit" (QLoRA: NF4, double quantization) or "8bit" through bitsandbytes
    store_root: Path = Path("adapters")
    cache: Path = Path(".loragate")
    progress: bool = True

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.device.startswith("cuda") else torch.float32  # bf16 is slow on CPU


@dataclass(frozen=True)
class Predictions:
    ids: list[str]
    gold: list[str]
    outputs: list[str]
    parsed: list[ParsedOutput]
    seconds: float
    generations: Generations | None = None  # causal kinds: the free greedy outputs with token counts
    scored: list[str] | None = None  # decode: score: the likeliest label of each example
    references: list[list[str]] | None = None  # text kinds: every acceptable answer of each example
    nll: list[float] | None = None  # instruct: summed NLL of each reference response given its prompt
    tokens: list[int] | None = None  # instruct: tokens of each reference response (+ EOS)
    threshold: float | None = None  # extractive QA: the no-answer threshold chosen on the eval split
    batch_size: int | None = None  # the eval batch size that ran: below the card's after an out-of-memory retry
    card_batch_size: int | None = None

    def invalid(self) -> list[tuple[str, str, str]]:
        """(example id, raw output, reason) of every output that did not parse."""
        return [(i, out, p.reason or "") for i, out, p in zip(self.ids, self.outputs, self.parsed) if not p.valid]


@dataclass
class TaskRun:
    task: Task
    tier: Tier
    splits: Splits
    base: LoadedBase
    model: PeftModel
    adapter_dir: Path | None
    manifest: dict | None
    expected_lora_parameters: int
    base_logits: torch.Tensor  # next-token logits on test prompts, taken before the adapter was attached
    tuned_logits: torch.Tensor  # the same with the adapter applied
    base_predictions: Predictions
    tuned_predictions: Predictions
    base_metrics: Metrics
    tuned_metrics: Metrics
    gates: list[GateResult]
    ceiling: float | None
    baseline_metrics: Metrics | None = None  # the last release's adapter, with --baseline-adapter
    trained: TrainResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.task.card.name}/{self.tier}"

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.gates)

    def test_logits(self, model: torch.nn.Module) -> torch.Tensor:
        """The logits of `model` on the test split, batched exactly as base_logits was."""
        return probe_logits(self.task, self.tier, model, self.base, self.splits.test)

    def predict(self, model: torch.nn.Module) -> Predictions:
        """Test predictions of `model`, as the gate made them (the throughput benchmark repeats this)."""
        return predict(self.task, model, self.base, self.splits.test, self.tier, False, f"predict {self.name}",
                       calibration=self.splits.eval)


def label_of(parsed: ParsedOutput) -> str | None:
    """The label a valid output names: the schema's one field."""
    if parsed.value is None:
        return None
    (value,) = parsed.value.model_dump().values()
    return str(value)


def generations_of(task: Task, tier: Tier, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                   prompts: list[str], progress: bool = False, desc: str = "generate",
                   batch_size: int | None = None) -> Generations:
    """Greedy outputs under the card's eval settings; the budget defaults to what the longest label needs."""
    settings = task.card.tier(tier).eval
    batch_size = batch_size or settings.batch_size
    if task.card.kind == "instruct":
        if settings.max_new_tokens is None:
            raise CardError(f"task {task.card.name}: an instruct card needs tiers.{tier}.eval.max_new_tokens, the "
                            f"response budget; set it to the longest response you accept, in tokens")
        return generate(model, tokenizer, prompts, settings.max_new_tokens, batch_size, labels=None,
                        progress=progress, desc=desc)
    budget = settings.max_new_tokens or answer_budget(tokenizer, targets(task))
    return generate(model, tokenizer, prompts, budget, batch_size, labels=task.card.labels,
                    progress=progress, desc=desc)


def targets(task: Task) -> list[str]:
    """What the model should write for each label, in label order."""
    return [task.card.target_template.format(label=label) for label in task.card.labels]


def probe_logits(task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                 examples: list[Example]) -> torch.Tensor:
    """What the parameter invariants compare: next-token logits of a causal model on the prompts, or the
    head's logits of an encoder."""
    batch_size = task.card.tier(tier).eval.batch_size
    if task.card.kind == "sequence_classification":
        return classify_logits(model, base.tokenizer, examples, batch_size)
    if task.card.kind == "extractive_qa":
        qa = task.card.qa
        return qa_logits(model, base.tokenizer, examples, qa.max_length, qa.stride, batch_size)
    return next_token_logits(model, base.tokenizer, [ex.prompt for ex in examples], batch_size)


def predict(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
            progress: bool, desc: str, calibration: list[Example] | None = None) -> Predictions:
    """The model's answer to each example, as the task's kind makes it, at the card's eval batch size; when the
    GPU runs out of memory the batch is halved and the whole prediction redone (the report says so). Batching
    changes no greedy output, so a smaller batch gives the same predictions, only slower."""
    card_batch = batch_size = task.card.tier(tier).eval.batch_size
    while True:
        try:
            predictions = predict_at(task, model, base, examples, tier, progress, desc, calibration, batch_size)
            return replace(predictions, batch_size=batch_size, card_batch_size=card_batch)
        except torch.OutOfMemoryError as exc:
            if batch_size == 1:
                raise RuntimeError(f"{desc}: out of memory even at eval batch size 1 (card: {card_batch}); use a "
                                   f"smaller base or a GPU with more memory") from exc
            batch_size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            warnings.warn(f"{desc}: out of memory at eval batch size {batch_size * 2}; retrying at {batch_size}")


def predict_at(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
               progress: bool, desc: str, calibration: list[Example] | None, batch_size: int) -> Predictions:
    """`predict` at one batch size. Extractive QA chooses its no-answer threshold on `calibration` (the eval
    split), never on the examples it is scored on."""
    if task.card.kind == "sequence_classification":
        return predict_classes(task, model, base, examples, batch_size)
    if task.card.kind == "extractive_qa":
        return predict_answers(task, model, base, examples, calibration or examples, batch_size)
    predictions = predict_generative(task, model, base, examples, tier, progress, desc, batch_size)
    if task.card.kind == "instruct":
        nll, tokens = example_losses(model, base.tokenizer, examples, task.card.tier(tier).train.max_length,
                                     batch_size)
        return replace(predictions, references=[list(ex.references) for ex in examples], nll=nll, tokens=tokens)
    return predictions


def predict_answers(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example],
                    calibration: list[Example], batch_size: int) -> Predictions:
    """Extractive QA: the best span of each question, or no answer where the null score beats it by more than
    the threshold that maximises exact match on `calibration`."""
    started = time.perf_counter()
    qa = task.card.qa

    def spans(part: list[Example]) -> list[SpanPrediction]:
        return predict_spans(model, base.tokenizer, part, qa.max_length, qa.stride, batch_size, qa.max_answer_tokens)

    threshold = choose_null_threshold(spans(calibration), calibration)
    outputs = answers(spans(examples), threshold)
    return Predictions(ids=[ex.id for ex in examples], gold=[ex.label for ex in examples], outputs=outputs,
                       parsed=[task.parse(text) for text in outputs], seconds=time.perf_counter() - started,
                       references=[list(ex.references) for ex in examples], threshold=threshold)


def predict_classes(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example],
                    batch_size: int) -> Predictions:
    """An encoder head's argmax label per example: always in the schema, so validity is 1 by construction."""
    started = time.perf_counter()
    logits = classify_logits(model, base.tokenizer, examples, batch_size)
    outputs = [task.card.labels[int(i)] for i in logits.argmax(-1)]
    return Predictions(ids=[ex.id for ex in examples], gold=[ex.label for ex in examples], outputs=outputs,
                       parsed=[task.parse(text) for text in outputs], seconds=time.perf_counter() - started)


def predict_generative(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                       progress: bool, desc: str, batch_size: int) -> Predictions:
    """Free generations (the schema gate reads them) and, with decode: score, each example's likeliest label."""
    started = time.perf_counter()
    prompts = [ex.prompt for ex in examples]
    generations = generations_of(task, tier, model, base.tokenizer, prompts, progress, desc, batch_size)
    scored = None
    if task.card.tier(tier).eval.decode == "score":
        scores = label_log_likelihoods(model, base.tokenizer, prompts, targets(task), batch_size)
        scored = likeliest(scores, task.card.labels)
    return Predictions(
        ids=[ex.id for ex in examples],
        gold=[ex.label for ex in examples],
        outputs=generations.texts,
        parsed=[task.parse(text) for text in generations.texts],
        seconds=time.perf_counter() - started,
        generations=generations,
        scored=scored,
    )


def score(task: Task, predictions: Predictions) -> Metrics:
    """Metrics of the parsed outputs; with scored labels, an example whose output parsed counts as its
    likeliest label. An output that did not parse stays invalid either way: invalid outputs are wrong answers,
    and the validity gate reads free generation. Text kinds are scored against their references."""
    valid = [p.valid for p in predictions.parsed]
    if task.card.kind == "extractive_qa":
        return qa_metrics(predictions.ids, predictions.outputs, predictions.references, valid)
    if task.card.kind == "instruct":
        return instruct_metrics(predictions.ids, predictions.outputs, [refs[0] for refs in predictions.references],
                                valid, predictions.generations.terminated, predictions.nll, predictions.tokens)
    predicted = [label_of(p) for p in predictions.parsed]
    if predictions.scored is not None:
        predicted = [s if p is not None else None for p, s in zip(predicted, predictions.scored)]
    return classification_metrics(predictions.gold, predicted, task.card.labels, predictions.outputs)


def load_splits(task: Task, options: RunOptions) -> Splits:
    """The task's shipped data, a --data file in its real format, or a Hugging Face dataset (hub id or local
    directory) written once in that format: the task's loader and its checks read all three."""
    data = options.data
    if is_dataset(data):  # data-parallel: rank 0 downloads and converts, the others read its file
        data = current().from_main(lambda: materialize(task.card.name, task, options.data, options.cache))
    return task.load_splits(data)


def prepare_base(task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
    """The card's base for `tier` (or --base-model): 'tiny' is built offline from the task's text."""
    name = options.base_model or task.card.tier(tier).base_model
    if task.card.kind in ENCODER_KINDS:
        if options.quantize is not None:
            raise CardError(f"--quantize {options.quantize}: {task.card.name} is a {task.card.kind} task on an encoder; "
                            f"quantization is for causal bases. Drop --quantize or choose causal tasks with --task")
        return load_encoder(name, task.card.kind, task.card.labels, options.device, options.dtype,
                            head_seed=task.card.tier(tier).train.seed)
    if name == "tiny":
        template, texts = None, splits.texts()
        if task.card.kind == "instruct":  # the tiny tokenizer learns the tiny template's prompts, whatever `splits` holds
            template, texts = TINY_CHAT_TEMPLATE, render_tiny_splits(splits, task.card.prompt_template).texts()
        spec = task.card.tier(tier).tiny_base  # data-parallel: rank 0 builds it, the others load what it built
        path = current().from_main(lambda: tiny_base_dir(options.cache, task.card.name, spec, texts, template))
        return load_causal(str(path), options.device, options.dtype, display_name=f"tiny:{task.card.name}",
                           quantize=options.quantize)
    return load_causal(name, options.device, options.dtype, quantize=options.quantize)


def for_base(task: Task, splits: Splits, base: LoadedBase) -> Splits:
    """Instruct prompts rendered with the loaded base's own chat template (a no-op on the tiny base, whose
    template the shipped prompts were rendered with); other kinds' splits as they are."""
    if task.card.kind != "instruct":
        return splits
    return format_splits(splits, base.tokenizer, task.card.prompt_template)


def versions() -> dict[str, str]:
    import peft
    import transformers

    return {"loragate": loragate.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def train_and_store(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                    key: str) -> tuple[PeftModel, Path, dict, TrainResult]:
    settings = task.card.tier(tier)
    model = attach_lora(base.model, settings.lora, settings.train.seed, PEFT_TASK_TYPE[task.card.kind],
                        settings.lora.modules_to_save or None)
    model.peft_config["default"].base_model_name_or_path = base.name  # not a local cache path
    result = train(task, tier, model, base, splits, options)
    eval_metrics = score(task, predict(task, model, base, splits.eval, tier, False, "eval split"))
    if isinstance(eval_metrics, TextMetrics):
        at_train = {f"eval_{name}": value for name, value in eval_metrics.values.items()}
    else:
        at_train = {"eval_accuracy": eval_metrics.accuracy, "eval_macro_f1": eval_metrics.macro_f1}
    manifest = {
        "task": task.card.name,
        "tier": tier,
        "base": {"name": base.name, "fingerprint": base.fingerprint, "parameters": base.parameters,
                 "quantization": base.quantization},
        "data_hash": splits.data_hash(),
        "lora": settings.lora.model_dump(),
        "train": settings.train.model_dump(),
        "seed": settings.train.seed,
        "versions": versions(),
        "machine": training_machine(options.device),  # the CPU instruction set changes the bytes (retrain elsewhere)
        "loss_curve": [round(loss, 6) for loss in result.loss_curve],
        "train_seconds": round(result.seconds, 2),
        "data_parallel_processes": current().world,  # the same recipe and key; float summation order differs
        "eval_curve": [[step, round(loss, 6)] for step, loss in result.eval_curve],
        "chat_template_sha256": chat_template_sha256(base) if task.card.kind == "instruct" else None,
        "metrics_at_train": {"eval_loss": round(result.eval_loss, 6), **at_train,
                             "eval_validity": eval_metrics.validity_rate},
    }
    entry = current().from_main(lambda: AdapterStore(options.store_root).save(model, manifest, task.card.name, tier, key))
    return model, entry, read_manifest(entry, key), result


def train(task: Task, tier: Tier, model: PeftModel, base: LoadedBase, splits: Splits,
          options: RunOptions) -> TrainResult:
    """Train `model` in place as the task's kind needs: completion loss for a causal LM, the head's loss
    for an encoder."""
    settings, desc = task.card.tier(tier).train, f"train {task.card.name}/{tier}"
    if task.card.kind in ENCODER_KINDS:
        features, eval_features = (encoder_features(task, base, part, settings.max_length)
                                   for part in (splits.train, splits.eval))
        result = train_features(model, features, settings, base.tokenizer.pad_token_id, options.progress, desc)
        result.eval_loss = features_loss(model, eval_features, base.tokenizer.pad_token_id)
        return result
    eval_every = task.card.instruct.eval_every if task.card.instruct else 0
    return train_lora(model, base.tokenizer, splits.train, splits.eval, settings, progress=options.progress,
                      desc=desc, eval_every=eval_every)


def encoder_features(task: Task, base: LoadedBase, examples: list[Example], max_length: int) -> list[dict]:
    """Tokenized training features of an encoder kind: text + label, or QA windows with answer positions."""
    if task.card.kind == "extractive_qa":
        return qa_features(base.tokenizer, examples, task.card.qa.max_length, task.card.qa.stride, with_positions=True)
    return classification_features(base.tokenizer, examples, task.card.labels, max_length)


def chat_template_sha256(base: LoadedBase) -> str | None:
    template = getattr(base.tokenizer, "chat_template", None)
    return hashlib.sha256(template.encode()).hexdigest() if isinstance(template, str) else None


def check_chat_template(task: Task, base: LoadedBase, adapter_dir: Path) -> None:
    """An instruct adapter evaluated under another chat template than it was trained with would be gated on
    prompts it never saw; refused when the adapter's loragate manifest recorded its template."""
    manifest_file = adapter_dir / "manifest.json"
    if task.card.kind != "instruct" or not manifest_file.is_file():
        return
    trained = json.loads(manifest_file.read_text()).get("chat_template_sha256")
    current = chat_template_sha256(base)
    if trained and trained != current:
        raise AdapterStoreError(
            f"{adapter_dir}: trained under chat template {trained[:12]}, but the base's tokenizer ({base.name}) has "
            f"{(current or 'none')[:12]}: evaluate with the tokenizer it was trained with, or retrain (--retrain)")


class CanaryFailed(RuntimeError):
    """The tiny-tier canary of a task failed, so its full-tier training was not started."""


def run_canary(task: Task, splits: Splits, options: RunOptions) -> None:
    """Tiny-then-full: before GPU hours go into the full adapter, the tiny adapter of the same task and data
    must train with a falling, finite loss and produce outputs that parse."""
    tiny = replace(options, base_model=None, adapter=None, baseline_adapter=None, baseline_report=None)
    where = f"canary {task.card.name}/tiny"
    try:
        base = prepare_base(task, "tiny", splits, tiny)
        splits = for_base(task, splits, base)
        model, entry, manifest, _ = prepare_adapter(task, "tiny", base, splits, tiny)
    except TrainingDiverged as exc:
        raise CanaryFailed(f"{where}: {exc}; the full run was not started") from exc
    curve = (manifest or {}).get("loss_curve", [])
    problems = []
    if len(curve) < 2 or not curve[-1] < curve[0]:
        problems.append(f"loss did not fall ({curve[:1]} -> {curve[-1:]}, {len(curve)} steps)")
    predictions = predict(task, model, base, splits.eval, "tiny", False, where)
    invalid = predictions.invalid()
    validity = 1 - len(invalid) / len(predictions.ids)
    if validity < task.card.gates.min_validity:
        problems.append(f"{len(invalid)} of {len(predictions.ids)} eval outputs do not parse, e.g. "
                        + "; ".join(f"{i}: {out!r} ({reason})" for i, out, reason in invalid[:3]))
    if problems:
        raise CanaryFailed(f"{where} ({entry}): {'; '.join(problems)}. The full run was not started: fix the "
                           f"data, the card's prompt or its training settings first.")


def prepare_adapter(task: Task, tier: Tier, base: LoadedBase, splits: Splits,
                    options: RunOptions) -> tuple[PeftModel, Path, dict | None, TrainResult | None]:
    """--adapter if given; else the store's entry for this key; else train one and store it."""
    if options.adapter is not None:
        if not options.allow_foreign_adapter:
            check_origin(options.adapter, task.card.name, base.name, base.fingerprint)
        check_chat_template(task, base, options.adapter)
        return load_adapter(base.model, options.adapter), options.adapter, None, None
    settings = task.card.tier(tier)
    key = adapter_key(base.fingerprint, splits.data_hash(), settings.lora, settings.train)
    store = AdapterStore(options.store_root)
    ranks = current()
    lock: FileLock | None = None

    def take_lock() -> None:  # data-parallel: only the main rank locks, stores and decides for all ranks
        nonlocal lock
        lock = acquire(store, task.card.name, tier, key)

    ranks.from_main(take_lock)
    try:
        entry = ranks.from_main(lambda: store.find(task.card.name, tier, key))
        if entry is not None and not options.retrain:
            manifest = read_manifest(entry, key)
            if manifest["base"]["fingerprint"] != base.fingerprint:
                raise AdapterStoreError(f"{entry}: trained on base {manifest['base']['fingerprint'][:12]}, "
                                        f"loaded base is {base.fingerprint[:12]}; retrain with --retrain")
            check_chat_template(task, base, entry)
            return load_adapter(base.model, entry), entry, manifest, None
        if tier == "full":
            run_canary(task, splits, options)
        return train_and_store(task, tier, base, splits, options, key)
    finally:
        if lock is not None:
            lock.release()


def acquire(store: AdapterStore, task: str, tier: Tier, key: str) -> FileLock:
    """The store's lock for one key: of several runs that need the same adapter, one trains while the
    others wait, then load it. Temp dirs of killed saves are removed first."""
    lock = store.lock(task, tier, key)
    store.remove_stale_temps(task, tier)  # what saves killed earlier left behind
    try:
        lock.acquire()
    except Timeout as exc:
        raise AdapterStoreError(f"waited {lock.timeout:.0f} s for another run training {task}/{tier} "
                                f"key {key} (lock {lock.lock_file}); let it finish or stop it") from exc
    return lock


def predict_with_baseline(task: Task, tier: Tier, base: LoadedBase, splits: Splits,
                          options: RunOptions) -> Predictions:
    """Test predictions of the last release's adapter, which is then unloaded: the base is left bit-identical
    (checked) for the adapter under test."""
    if not options.allow_foreign_adapter:
        check_origin(options.baseline_adapter, task.card.name, base.name, base.fingerprint)
    baseline = load_adapter(base.model, options.baseline_adapter)
    predictions = predict(task, baseline, base, splits.test, tier, options.progress, "baseline", splits.eval)
    base.model = baseline.unload()
    if fingerprint(base.model) != base.fingerprint:
        raise RuntimeError(f"unloading the baseline adapter {options.baseline_adapter} changed the base weights")
    return predictions


def curve_gate(task: Task, manifest: dict | None, baseline_dir: Path) -> GateResult:
    """The training loss curve against the baseline adapter's, where both adapters carry a manifest."""
    check = CurveCheck(task.card.gates.curve_rtol, task.card.gates.curve_alpha, "training curve vs baseline")
    reference = json.loads((baseline_dir / "manifest.json").read_text()) if (baseline_dir / "manifest.json").is_file() else {}
    if not (manifest or {}).get("loss_curve") or not reference.get("loss_curve"):
        return GateResult(check.name, None, "not compared: an adapter without a loragate manifest has no loss curve")
    return GateResult(check.name, check.fails(manifest["loss_curve"], reference["loss_curve"]),
                      f"{len(manifest['loss_curve'])} steps within {check.rtol:.0%}, no one-sided shift")


def eval_curve_gate(task: Task, manifest: dict | None, baseline_dir: Path) -> GateResult | None:
    """The validation loss logged every `instruct.eval_every` steps against the baseline adapter's, where both
    manifests hold one (instruct tasks): the same tolerance and sign test as the training curve."""
    check = CurveCheck(task.card.gates.curve_rtol, task.card.gates.curve_alpha, "validation curve vs baseline")
    reference_file = baseline_dir / "manifest.json"
    reference = json.loads(reference_file.read_text()).get("eval_curve") if reference_file.is_file() else None
    curve = (manifest or {}).get("eval_curve")
    if not curve or not reference:
        return None
    steps, reference_steps = [step for step, _ in curve], [step for step, _ in reference]
    if steps != reference_steps:
        return GateResult(check.name, f"{check.name}: logged at steps {steps[:5]}... vs {reference_steps[:5]}... in "
                                      f"the baseline; retrain with the same eval_every and data to compare")
    return GateResult(check.name, check.fails([loss for _, loss in curve], [loss for _, loss in reference]),
                      f"{len(steps)} validation points within {check.rtol:.0%}, no one-sided shift")


def lora_shape(task: Task, tier: Tier, options: RunOptions) -> tuple[int, list[str]]:
    """Rank and target modules of the adapter that will be gated, read before it wraps the base."""
    if options.adapter is not None:
        config = LoraConfig.from_pretrained(str(options.adapter))
        return config.r, sorted(config.target_modules)
    lora = task.card.tier(tier).lora
    return lora.r, lora.target_modules


def run_task(name: str, tier: Tier, options: RunOptions) -> TaskRun:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    task = get_task(name)
    if options.baseline_report is not None and task.card.kind not in CLASSIFICATION_KINDS:
        raise CardError(f"--baseline-report: {name} is a {task.card.kind} task; a stored report pairs labels, "
                        f"not text scores. Pass the last release's adapter with --baseline-adapter instead")
    checks = checks_from(task.card.gates, task.card.kind)
    splits = load_splits(task, options)
    base = prepare_base(task, tier, splits, options)
    splits = for_base(task, splits, base)
    lap("load base")
    base_logits = probe_logits(task, tier, base.model, base, splits.test)
    base_predictions = predict(task, base.model, base, splits.test, tier, options.progress, f"base {name}/{tier}",
                               splits.eval)
    lap("base predictions")
    baseline_predictions = None
    if options.baseline_adapter is not None:
        baseline_predictions = predict_with_baseline(task, tier, base, splits, options)
        lap("baseline predictions")
    expected = expected_lora_parameters(base.model, *lora_shape(task, tier, options))
    model, adapter_dir, manifest, trained = prepare_adapter(task, tier, base, splits, options)
    lap("train adapter" if trained else "load adapter")
    tuned_logits = probe_logits(task, tier, model, base, splits.test)
    tuned_predictions = predict(task, model, base, splits.test, tier, options.progress, f"tuned {name}/{tier}",
                                splits.eval)
    lap("tuned predictions")
    base_metrics, tuned_metrics = score(task, base_predictions), score(task, tuned_predictions)
    gates = [*run_gates(checks, tuned_metrics, base_metrics),
             leakage_gate(splits.leaked(), len(splits.test), task.card.gates.max_leakage)]
    baseline_metrics = None
    if baseline_predictions is not None:
        baseline_metrics = score(task, baseline_predictions)
        gates += run_gates(regression_checks(task.card.gates), tuned_metrics, baseline_metrics)
        gates.append(curve_gate(task, manifest, options.baseline_adapter))
        validation = eval_curve_gate(task, manifest, options.baseline_adapter)
        if validation is not None:
            gates.append(validation)
    elif options.baseline_report is not None:
        baseline_metrics = baseline_from_report(options.baseline_report, name, tier, splits, task.card.labels)
        gates += run_gates(regression_checks(task.card.gates), tuned_metrics, baseline_metrics)
    return TaskRun(
        task=task, tier=tier, splits=splits, base=base, model=model, adapter_dir=adapter_dir, manifest=manifest,
        expected_lora_parameters=expected, base_logits=base_logits, tuned_logits=tuned_logits, base_predictions=base_predictions,
        tuned_predictions=tuned_predictions, base_metrics=base_metrics, tuned_metrics=tuned_metrics,
        baseline_metrics=baseline_metrics, gates=gates, ceiling=task.ceiling(splits.test),
        trained=trained, seconds=seconds,
    )
