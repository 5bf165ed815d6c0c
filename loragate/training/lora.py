"""LoRA training with peft: completion-only loss, seeded batches, a hard stop on NaN.

Batches are padded to their longest by default; `grouped` sorts them by length, `max` pads to max_length, and
`packed` removes padding: examples end to end in rows of up to max_length tokens, position ids restarting per
example, which transformers (5.x) turns into a block-diagonal attention mask, and as many rows a micro-batch as
tokens_per_batch holds (benchmarks/compare.py measures them against each other). fp32 on CPU; bf16 autocast on
CUDA, optional gradient checkpointing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from loragate.card.settings import LoraSettings, TrainSettings
from loragate.data.examples import Example
from loragate.inference.engine import length_batches
from loragate.inference.mixed_batches import candidates, row_adapters
from loragate.progress import SILENT, reporter
from loragate.training.distributed import Ranks, current

IGNORE = -100  # label id that cross-entropy skips: prompt and padding positions
MEGA_BATCH = 32  # batches per mega-batch that `grouped` sorts by length: more is less padding, less shuffling
OPEN_ROWS = 64  # rows that `packed` still fills (first fit): more is fuller rows, and time in the search


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing was stored."""


@dataclass
class TrainResult:
    loss_curve: list[float] = field(default_factory=list)  # mean loss of each optimizer step
    eval_loss: float = float("nan")
    steps: int = 0
    seconds: float = 0.0
    answer_tokens: int = 0  # tokens that carried loss, over all epochs
    tokens: int = 0  # prompt and answer tokens that are not padding, over all epochs
    positions: int = 0  # positions computed, padding included
    eval_curve: list[tuple[int, float]] = field(default_factory=list)  # (optimizer step, eval loss) while training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def training_machine(device: str) -> dict[str, str | int]:
    """What decides an adapter's bytes besides its key and the library versions, for its manifest: ATen's CPU kernels
    are vectorized for the instruction set (AVX2, AVX512, ...) and round differently on each, and a GPU differs
    again, so the same training elsewhere writes other bytes. The thread count is recorded too."""
    machine: dict[str, str | int] = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                     "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return machine


def encode(tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Prompt and answer ids, answer + EOS as labels (see `encode_all`)."""
    return encode_all(tokenizer, [example], max_length)[0]


def encode_all(tokenizer: PreTrainedTokenizerBase, examples: list[Example],
               max_length: int) -> list[tuple[list[int], list[int]]]:
    """Prompt and answer ids of each example, answer + EOS as labels. Prompt and answer are tokenized
    separately, the same way generation sees them: the prompt alone, then the model's continuation. One
    tokenizer call per side, not per example: per-call overhead would rival a tiny model's forward pass."""
    if not examples:
        return []
    prompts = tokenizer([ex.prompt for ex in examples]).input_ids
    answers = tokenizer([ex.target for ex in examples], add_special_tokens=False).input_ids
    encoded = []
    for example, prompt, answer in zip(examples, prompts, answers):
        ids = prompt + answer + [tokenizer.eos_token_id]
        if len(ids) > max_length:
            raise ValueError(
                f"example {example.id}: {len(ids)} tokens > train.max_length {max_length}; the answer would be "
                f"cut. Raise train.max_length in the card, or set train.truncation to left or right (examples are "
                f"fitted by loragate.data.truncation.fit_splits before training)."
            )
        encoded.append((ids, [IGNORE] * len(prompt) + answer + [tokenizer.eos_token_id]))
    return encoded


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int, width: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad for training to `width` (default: the longest row); labels carry IGNORE on padding, so
    padding never counts."""
    width = width or max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def collate_packed(batch: list[tuple[list[int], list[int]]], width: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Packed rows, no attention mask: the examples end to end, cut in order into rows of at most `width` tokens
    (`recut_rows`), position ids restarting at 0 for each. Without a mask transformers reads the restarts in each row
    as separate sequences and masks attention block-diagonally (sdpa, eager; its flash-attention path reads them
    only in a batch of one row, so `train_lora` refuses packing under flash attention); an example's first token is
    a prompt token, so no loss crosses from one example into the next. Rows shorter than the longest end in a filler
    sequence (pad ids, positions from 0, no loss) that attends only to itself; `real_tokens` marks the examples'
    tokens, for the count of what was trained on."""
    rows = recut_rows([len(ids) for ids, _ in batch], width)
    span = max(sum(len(batch[index][0]) for index in row) for row in rows)
    columns: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": [], "real_tokens": []}
    for row in rows:
        ids = [token for index in row for token in batch[index][0]]
        filler = span - len(ids)
        columns["input_ids"].append(ids + [pad_id] * filler)
        columns["labels"].append([label for index in row for label in batch[index][1]] + [IGNORE] * filler)
        columns["position_ids"].append([position for index in row for position in range(len(batch[index][0]))]
                                       + list(range(filler)))
        columns["real_tokens"].append([1] * len(ids) + [0] * filler)
    return {name: torch.tensor(values) for name, values in columns.items()}


def recut_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Positions in `lengths`, cut in order into rows whose lengths add up to at most `width` (a row is closed when
    the next one does not fit): a packed micro-batch's rows again, as `packed_rows` made them. None may be longer
    than a row."""
    rows: list[list[int]] = []
    used = 0
    for index, length in enumerate(lengths):
        if not rows or used + length > width:
            rows.append([])
            used = 0
        rows[-1].append(index)
        used += length
    return rows


def packed_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Positions in `lengths`, in order, each into the first of the last OPEN_ROWS rows that has room for it, else into
    a new row (first fit: rows of 128 on the speed benchmark's data are 94% full, against 73% when a row closes at the
    first example that does not fit). Rows come in the order they were opened; an example that opened a row fitted
    in none before it, and rows only grow, so `recut_rows` cuts the rows' concatenation into the same rows again."""
    rows: list[list[int]] = []
    used: list[int] = []
    for index, length in enumerate(lengths):
        room = next((row for row in range(max(0, len(rows) - OPEN_ROWS), len(rows))
                     if used[row] + length <= width), None)
        if room is None:
            rows.append([])
            used.append(0)
            room = len(rows) - 1
        rows[room].append(index)
        used[room] += length
    return rows


def packed_batches(lengths: Sequence[int], tokens_per_batch: int, width: int,
                   generator: torch.Generator) -> list[list[int]]:
    """One epoch's packed micro-batches of example indices: a seeded shuffle packed, in its order, into rows of at
    most `width` tokens (`packed_rows`), and the rows, in order, into micro-batches of tokens_per_batch // width
    rows, each the concatenation of its rows (which `collate_packed` cuts again). Each example once."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    rows = [[order[index] for index in row] for row in packed_rows([lengths[index] for index in order], width)]
    per_batch = max(1, tokens_per_batch // width)
    return [[index for row in rows[first : first + per_batch] for index in row]
            for first in range(0, len(rows), per_batch)]


def token_budget(settings: TrainSettings) -> int:
    """The positions of one packed micro-batch: the card's tokens_per_batch, else what a `max` batch holds."""
    return settings.tokens_per_batch or settings.batch_size * settings.resolved_max_length()


def row_width(settings: TrainSettings) -> int:
    """The tokens of one packed row: max_length, or the whole budget where that is less."""
    return min(settings.resolved_max_length(), token_budget(settings))


def epoch_batches(lengths: Sequence[int], batch_size: int, grouped: bool,
                  generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches of example indices, each example exactly once, from a seeded shuffle.

    Ungrouped: the shuffle cut into batches. Grouped: the shuffle is cut into mega-batches of MEGA_BATCH
    batches, each sorted by length and cut into batches, whose order is shuffled again: a batch holds similar
    lengths while the epoch stays random. The batch with the longest example goes first, so running out of
    memory shows at step 1, not hours in."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not grouped:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    mega = batch_size * MEGA_BATCH
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda index: -lengths[index])
        batches += [chunk[first : first + batch_size] for first in range(0, len(chunk), batch_size)]
    batches = [batches[index] for index in torch.randperm(len(batches), generator=generator).tolist()]
    longest = max(range(len(batches)), key=lambda b: max(lengths[index] for index in batches[b]))
    return [batches[longest]] + batches[:longest] + batches[longest + 1 :]


def epoch_steps(lengths: Sequence[int], settings: TrainSettings, generator: torch.Generator,
                ranks: Ranks) -> list[list[list[int]]]:
    """One epoch's optimizer steps, each this rank's micro-batches of example indices: grad_accum batches
    per step, dealt over the data-parallel ranks (all of them in a single process). Packed micro-batches are
    rows of at most `row_width` tokens, as many as `token_budget` holds."""
    if settings.batching == "packed":
        batches = packed_batches(lengths, token_budget(settings), row_width(settings), generator)
    else:
        batches = epoch_batches(lengths, settings.batch_size, settings.batching == "grouped", generator)
    return [ranks.share(batches[first : first + settings.grad_accum], settings.batch_size)
            for first in range(0, len(batches), settings.grad_accum)]


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA (matmuls and SDPA attention in bf16, the LoRA weights and optimizer stay fp32);
    off on CPU, where bf16 is slow and fp32 keeps runs bit-reproducible."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def row_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the sum of answer-token cross-entropies and the number of answer tokens. A packed batch (position
    ids, no attention mask: `collate_packed`) holds several examples a row."""
    labels = batch["labels"]
    first = int((labels != IGNORE).int().argmax(-1).min())
    keep = labels.shape[1] - first + 1
    inputs = {name: batch[name] for name in ("input_ids", "attention_mask", "position_ids", "adapter_names")
              if name in batch}
    with autocast(labels.device):
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    targets = labels[:, labels.shape[1] - keep + 1 :]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=IGNORE, reduction="none"
    )
    return losses.sum(-1), (targets != IGNORE).sum(-1)


def summed_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of answer-token cross-entropies and their count, so batches can be weighted by tokens. Logits are
    computed only from the batch's first answer position on: prompt positions carry no loss, and with a
    large vocabulary their logits would cost more than the rest of the model."""
    per_row, counts = row_losses(model, batch)
    return per_row.sum(), int(counts.sum())


@torch.no_grad()
def example_losses(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
                   max_length: int, batch_size: int = 32) -> tuple[list[float], list[int]]:
    """Per example, in example order: the summed NLL of its answer (+ EOS) given the prompt, and its token
    count. Their ratio of sums is the split's loss; per-example values let a perplexity delta be bootstrapped.
    `batch_size` examples a batch, each once per candidate of a mixed model (loragate.inference.mixed_batches)."""
    model.eval()
    device = next(model.parameters()).device
    encoded = encode_all(tokenizer, examples, max_length)
    nll, tokens = [0.0] * len(examples), [0] * len(examples)
    for rows in length_batches([len(ids) for ids, _ in encoded], batch_size * candidates(model)):
        batch = collate([encoded[row] for row in rows], tokenizer.pad_token_id)
        sums, counts = row_losses(model, {**{k: v.to(device) for k, v in batch.items()}, **row_adapters(model, rows)})
        for row, total, count in zip(rows, sums.tolist(), counts.tolist()):
            nll[row], tokens[row] = total, int(count)
    return nll, tokens


def attach_lora(model: PreTrainedModel, lora: LoraSettings, seed: int, task_type: str = "CAUSAL_LM",
                modules_to_save: list[str] | None = None) -> PeftModel:
    """Wrap `model` with fresh LoRA layers; the seed fixes lora_A's random init. `modules_to_save` (a new
    classification or QA head) is trained in full beside the LoRA weights and saved with the adapter."""
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in [*lora.target_modules, *(modules_to_save or [])]
               if not any(n.endswith(f".{t}") or n == t for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ValueError(f"lora.target_modules {missing} are not in the model; its linear modules are {linear}")
    seed_everything(seed)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type=task_type,
        # a copy: peft extends the list it is given (SEQ_CLS adds classifier and score), which was the card's own
        modules_to_save=list(modules_to_save) if modules_to_save else None,
    )
    return get_peft_model(model, config)


@torch.no_grad()
def eval_loss(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
              max_length: int, batch_size: int = 32) -> float:
    """Token-weighted mean answer loss over `examples` (its exp is the perplexity), in length-sorted batches:
    the same number as one example at a time, far faster."""
    model.eval()
    device = next(model.parameters()).device
    encoded = encode_all(tokenizer, examples, max_length)
    total, count = 0.0, 0
    for rows in length_batches([len(ids) for ids, _ in encoded], batch_size):
        batch = collate([encoded[row] for row in rows], tokenizer.pad_token_id)
        loss, n = summed_loss(model, {k: v.to(device) for k, v in batch.items()})
        total, count = total + float(loss), count + n
    return total / count


def train_lora(model: PeftModel, tokenizer: PreTrainedTokenizerBase, train: list[Example], eval_: list[Example],
               settings: TrainSettings, progress: bool = True, desc: str = "train", eval_every: int = 0) -> TrainResult:
    """Train the LoRA weights of a causal LM in place on completion-only loss; raise TrainingDiverged at the
    first non-finite loss. With `eval_every`, the eval split's loss is recorded every that many steps."""
    max_length = settings.resolved_max_length()
    encoded = encode_all(tokenizer, train, max_length)
    lengths = [len(ids) for ids, _ in encoded]
    width = {"max": max_length, "packed": row_width(settings)}.get(settings.batching)  # else: the batch's longest
    if settings.batching == "packed":
        require_packable(lengths, settings, current(), getattr(model.config, "_attn_implementation", None) or "")

    def make_batch(rows: list[int]) -> dict[str, torch.Tensor]:
        if settings.batching == "packed":
            return collate_packed([encoded[i] for i in rows], width, tokenizer.pad_token_id)
        return collate([encoded[i] for i in rows], tokenizer.pad_token_id, width)

    def evaluate() -> float:
        return eval_loss(model, tokenizer, eval_, max_length)

    result = optimize(model, lengths, make_batch, summed_loss, settings, progress, desc, eval_every, evaluate)
    result.eval_loss = result.eval_curve[-1][1] if result.eval_curve else evaluate()
    return result


def require_packable(lengths: Sequence[int], settings: TrainSettings, ranks: Ranks, attention: str) -> None:
    """Packing needs every example to fit one row; one process (data-parallel ranks deal rows by example count,
    which would break the token budget); and, with several rows a micro-batch, an attention that reads the restarts
    in each row (`attention`: the model's attn_implementation; transformers' flash-attention path finds packed
    sequences only in a batch of one row, and would let a row's examples attend to each other)."""
    budget = token_budget(settings)
    if max(lengths) > budget:
        raise ValueError(f"train.tokens_per_batch {budget} is less than the longest training example ({max(lengths)} "
                         f"tokens): raise train.tokens_per_batch to at least {max(lengths)}")
    if ranks.world > 1:
        raise ValueError(f"train.batching: packed runs in one process ({ranks.world} data-parallel processes here): "
                         f"use batching: dynamic under torchrun, or train in one process")
    rows = budget // row_width(settings)
    if attention.startswith("flash") and rows > 1:
        raise ValueError(f"train.batching: packed puts {rows} rows in a micro-batch, and {attention} would read each "
                         f"row as one sequence (its examples attending to each other): load the base with sdpa "
                         f"attention (loragate's default), or set train.tokens_per_batch to at most "
                         f"{row_width(settings)} (one row a micro-batch)")


def model_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The loss a head model computes itself (sequence classification, extractive QA), as a sum over the
    batch's examples and their count: HF heads return the batch mean."""
    with autocast(batch["input_ids"].device):
        loss = model(**batch).loss
    rows = batch["input_ids"].shape[0]
    return loss.float() * rows, rows


def pad_features(rows: list[dict[str, list[int] | int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the list fields of tokenized features (input_ids, attention_mask, token_type_ids) to the
    batch's longest; scalar fields (labels, start/end positions) are stacked."""
    width = max(len(row["input_ids"]) for row in rows)  # type: ignore[arg-type]
    batch = {}
    for name, first in rows[0].items():
        if isinstance(first, list):
            fill = pad_id if name == "input_ids" else 0
            batch[name] = torch.tensor([row[name] + [fill] * (width - len(row[name])) for row in rows])  # type: ignore[operator]
        else:
            batch[name] = torch.tensor([row[name] for row in rows])
    return batch


@torch.no_grad()
def features_loss(model: torch.nn.Module, features: list[dict[str, list[int] | int]], pad_id: int,
                  batch_size: int = 32) -> float:
    """Mean loss of the model's own head over `features` (the eval split's loss for the manifest)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for rows in length_batches([len(f["input_ids"]) for f in features], batch_size):  # type: ignore[arg-type]
        batch = pad_features([features[i] for i in rows], pad_id)
        loss, n = model_loss(model, {k: v.to(device) for k, v in batch.items()})
        total, count = total + float(loss), count + n
    return total / count


def train_features(model: PeftModel, features: list[dict[str, list[int] | int]], settings: TrainSettings,
                   pad_id: int, progress: bool = True, desc: str = "train") -> TrainResult:
    """Train the LoRA weights (and modules_to_save) of a model with its own head and loss, on tokenized
    features, in length-grouped batches; raise TrainingDiverged at the first non-finite loss."""
    if settings.batching == "packed":
        raise ValueError(f"{desc}: train.batching: packed is for causal LMs; a model with its own head (sequence "
                         f"classification, extractive QA) takes one example per row: use batching: dynamic")
    lengths = [len(row["input_ids"]) for row in features]  # type: ignore[arg-type]

    def make_batch(rows: list[int]) -> dict[str, torch.Tensor]:
        return pad_features([features[i] for i in rows], pad_id)

    return optimize(model, lengths, make_batch, model_loss, settings, progress, desc)


def checkpointing(model: PeftModel, action: str) -> None:
    """Activation (gradient) checkpointing on or off, by the name transformers uses: `activation_checkpointing_*`
    since it deprecated `gradient_checkpointing_*` in 5.x, the old name before."""
    if hasattr(model, "activation_checkpointing_enable"):
        method = getattr(model, f"activation_checkpointing_{action}")
        kwargs = {"activation_checkpointing_kwargs": {"use_reentrant": False}} if action == "enable" else {}
    else:
        method = getattr(model, f"gradient_checkpointing_{action}")
        kwargs = {"gradient_checkpointing_kwargs": {"use_reentrant": False}} if action == "enable" else {}
    method(**kwargs)


LossFn = Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, int]]


def optimize(model: PeftModel, lengths: Sequence[int], make_batch: Callable[[list[int]], dict[str, torch.Tensor]],
             loss_fn: LossFn, settings: TrainSettings, progress: bool, desc: str, eval_every: int = 0,
             evaluate: Callable[[], float] | None = None) -> TrainResult:
    """The optimizer loop every kind shares: AdamW with warmup and linear decay, seeded epoch order, a hard
    stop on a non-finite loss or weight. Every epoch's optimizer steps (this rank's micro-batches of example
    indices, `epoch_steps`) are planned first, so the schedule knows the step count also where packing decides it;
    `make_batch(indices)` collates one micro-batch when it is needed. `loss_fn` returns a summed loss and its count,
    so micro-batches (and data-parallel ranks) are weighted by count. With `eval_every`, `evaluate()` (the eval
    split's loss) is recorded every that many steps and at the end."""
    seed_everything(settings.seed)
    ranks = current()
    device = next(model.parameters()).device
    order = torch.Generator().manual_seed(settings.seed)
    plan = [epoch_steps(lengths, settings, order, ranks) for _epoch in range(settings.epochs)]
    total_steps = sum(len(steps) for steps in plan)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / max(1, settings.warmup_steps)) * max(0.0, 1 - step / total_steps),
    )
    result = TrainResult()
    if settings.gradient_checkpointing:
        checkpointing(model, "enable")
    started = time.perf_counter()
    counter = (reporter() if progress and ranks.main else SILENT).steps(total_steps, "steps")
    model.train()
    try:
        for steps in plan:
            for step in steps:
                group = [make_batch(rows) for rows in step]
                step_loss = train_step(model, params, group, loss_fn, device, ranks, result)
                if not math.isfinite(step_loss):
                    raise TrainingDiverged(
                        f"{desc}: loss became {step_loss} at optimizer step {result.steps + 1}; "
                        f"no adapter was stored. Lower train.lr or check the data."
                    )
                optimizer.step()
                if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
                    raise TrainingDiverged(
                        f"{desc}: LoRA weights became non-finite at optimizer step {result.steps + 1} (loss "
                        f"{step_loss}); no adapter was stored. Lower train.lr or check the data."
                    )
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                result.steps += 1
                result.loss_curve.append(step_loss)
                if evaluate is not None and eval_every and result.steps % eval_every == 0:
                    result.eval_curve.append((result.steps, evaluate()))
                    model.train()
                counter.advance(note=f"loss {step_loss:.4f}")
    finally:
        if settings.gradient_checkpointing:
            checkpointing(model, "disable")
    model.eval()
    ranks.check_same(params, desc)
    result.seconds = time.perf_counter() - started
    if evaluate is not None and eval_every and (not result.eval_curve or result.eval_curve[-1][0] != result.steps):
        result.eval_curve.append((result.steps, evaluate()))
    return result


def train_step(model: PeftModel, params: list[torch.nn.Parameter], group: list[dict[str, torch.Tensor]],
               loss_fn: LossFn, device: torch.device, ranks: Ranks, result: TrainResult) -> float:
    """Forward and backward over this rank's micro-batches of one optimizer step. Each micro-batch's summed
    loss is backpropagated at once (its activations freed); the summed gradients, losses and counts are added
    over the data-parallel ranks, and the gradients divided by the step's total count (answer tokens, or
    examples): the step's loss is the mean over all of them, however the rows were split. Returns that mean,
    non-finite when any micro-batch's loss was (the caller stops; every rank sees the same value)."""
    total, step_loss, tokens, positions = 0, 0.0, 0, 0
    for batch in group:
        loss, count = loss_fn(model, {k: v.to(device) for k, v in batch.items()})
        total, step_loss = total + count, step_loss + float(loss.detach())
        # packed rows have no attention mask; a head model's tokenizer may return none either
        real = batch.get("attention_mask", batch.get("real_tokens", torch.ones_like(batch["input_ids"])))
        tokens += int(real.sum())
        positions += real.numel()
        if not math.isfinite(step_loss):
            break
        loss.backward()
    step_loss, total, tokens, positions = ranks.sum_gradients(params, step_loss, total, tokens, positions)
    for param in params:
        if param.grad is not None:
            param.grad /= total
    result.tokens += int(tokens)
    result.positions += int(positions)
    result.answer_tokens += int(total)
    return step_loss / total
