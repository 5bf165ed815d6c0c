"""Batches shared across the tasks of a fleet (issue #34): tasks whose prompts, labels, stopping rules and parsers
differ, predicting on one model, have their generation batches run as one.

A kind predicts one task: it tokenizes that task's prompts, calls the model batch by batch and parses what comes back.
`SharedBatches.run` runs each task's prediction (a job) in a thread of its own, each given a `SharedModel` for the
model, and answers their model calls in rounds from the calling thread: a round starts when every job still running
waits on a call, so which calls share a round does not depend on timing. One job runs at a time (it holds the turn until
it waits on a call), so what jobs share besides the model (the tokenizer, whose padding setting a call changes, caches)
is never used by two at once. A round's `generate` calls that ask the same decoding (greedy or seeded sampling, the same
pad and EOS tokens, each row naming its adapter or none) run as one `model.generate` (unless their rows would run past
the base's positions together: within_positions): each call's rows left-padded further to the widest call's width
(positions count real tokens, so a row computes what it would alone, up to the last bits of a wider attention), each
call's own stopping criteria and logits processors applied to its own rows as they would see them alone, and its rows
ended at its own token budget. Other calls (a forward pass that carries a cache, a project's kind calling generate its
own way) run one at a time, in the jobs' order. Only the calling thread touches the model.

A call whose own stopping criteria or logits processors raise fails alone, its rows ended, the batch going on; a batch
that fails fails every call of it (an out-of-memory error halves each job's batch, as steps.halving does for one task);
a job that fails leaves the others running and is raised once all have ended. What stops the calling thread (an
interrupt) stops every job at its next call, and is raised once all have ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from loragate.data.truncation import position_cap
from loragate.inference.mixed_batches import UnmixedCall

T = TypeVar("T")
SHARED_GENERATE = {"input_ids", "attention_mask", "max_new_tokens", "do_sample", "pad_token_id", "eos_token_id",
                   "stopping_criteria", "logits_processor", "adapter_names"}  # what engine.greedy passes
AUTOCAST = ("cpu", "cuda")  # the device types whose autocast a job's call keeps


@dataclass
class Call:
    """One model call of a job, waiting for its round."""

    job: int
    method: str  # "forward" or "generate"
    args: tuple
    kwargs: dict[str, Any]
    modes: tuple  # the job's thread-local torch modes (modes()), which the round runs it under
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def shared_key(self) -> tuple | None:
        """What generate calls must agree on to run as one; None for a call that runs alone."""
        if self.method != "generate" or self.args or not set(self.kwargs) <= SHARED_GENERATE:
            return None
        ids, mask = self.kwargs.get("input_ids"), self.kwargs.get("attention_mask")
        if ids is None or mask is None or "max_new_tokens" not in self.kwargs:
            return None
        if not isinstance(self.kwargs.get("eos_token_id"), int | None):  # several EOS tokens: SlotStops reads one
            return None
        return (self.modes, self.kwargs.get("do_sample"), self.kwargs.get("pad_token_id"),
                self.kwargs.get("eos_token_id"), "adapter_names" in self.kwargs, ids.device)


class SharedModel:
    """A job's model: its attributes are the shared model's, its calls wait for their round. Changing the model's
    active adapter would change every other job's answers: refused (UnmixedCall), as the job's rows must name theirs."""

    def __init__(self, batches: SharedBatches, job: int):
        self.batches, self.job = batches, job

    def __getattr__(self, name: str) -> Any:
        return getattr(self.batches.model, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.batches.submit(Call(self.job, "forward", args, kwargs, modes()))

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.batches.submit(Call(self.job, "generate", args, kwargs, modes()))

    def set_adapter(self, *args: Any, **kwargs: Any) -> Any:
        raise UnmixedCall("a task sharing batches with others set the model's active adapter")

    def disable_adapter(self, *args: Any, **kwargs: Any) -> Any:
        raise UnmixedCall("a task sharing batches with others disabled the model's adapters")


def modes() -> tuple:
    """The calling thread's torch modes, all thread-local: inference mode, grad mode and, per device type, the
    autocast dtype or None (a kind's losses run under bf16 autocast on CUDA: training.lora.row_losses)."""
    return (torch.is_inference_mode_enabled(), torch.is_grad_enabled(),
            *(torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None for device in AUTOCAST))


@contextmanager
def under(call_modes: tuple) -> Iterator[None]:
    """The calling thread under a job's modes (modes())."""
    inference, grad, *casts = call_modes
    with torch.inference_mode(inference), torch.set_grad_enabled(grad), ExitStack() as stack:
        for device, dtype in zip(AUTOCAST, casts, strict=True):
            stack.enter_context(torch.autocast(device, dtype=dtype, enabled=dtype is not None))
        yield


class SharedBatches:
    """One model answering the calls of several jobs in rounds (the module docstring)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.changed = threading.Condition()
        self.turn = threading.Lock()  # held by the one job running between its calls
        self.pending: list[Call] = []
        self.running = 0  # jobs not yet ended
        self.stopped: BaseException | None = None  # what stopped the calling thread: every later call raises it
        self.rounds: list[list[int]] = []  # per round, how many calls each of its shared generates held

    def run(self, jobs: Sequence[Callable[[SharedModel], T]]) -> list[T]:
        """Each job's result, in order, each job called with its SharedModel in a thread of its own; the first job
        that raised (in order) raises, once every job has ended."""
        results: list[Any] = [None] * len(jobs)
        errors: list[BaseException | None] = [None] * len(jobs)

        def work(index: int) -> None:
            self.turn.acquire()
            try:
                results[index] = jobs[index](SharedModel(self, index))
            except BaseException as exc:  # handed to the calling thread, which raises it
                errors[index] = exc
            finally:
                self.turn.release()
                with self.changed:
                    self.running -= 1
                    self.changed.notify_all()

        self.running, self.pending, self.stopped = len(jobs), [], None
        threads = [threading.Thread(target=work, args=(index,), name=f"loragate-job-{index}", daemon=True)
                   for index in range(len(jobs))]
        for thread in threads:
            thread.start()
        try:
            self.answer_rounds()
        except BaseException as exc:  # an interrupt, or a bug here: no job may wait for a round that never comes
            with self.changed:
                self.stopped = exc
                for call in self.pending:
                    call.error = exc
                    call.done.set()
            for thread in threads:
                thread.join()
            raise
        for thread in threads:
            thread.join()
        for error in errors:
            if error is not None:
                raise error
        return results

    def answer_rounds(self) -> None:
        """Each round's calls answered, until every job has ended."""
        while True:
            with self.changed:
                while self.running and len(self.pending) < self.running:
                    self.changed.wait()
                if not self.running:
                    return
                calls, self.pending = sorted(self.pending, key=lambda call: call.job), []
            self.answer(calls)

    def submit(self, call: Call) -> Any:
        """Wait for `call`'s round; its result, or its error raised."""
        with self.changed:
            if self.stopped is not None:
                raise self.stopped
            self.pending.append(call)
            self.changed.notify_all()
        self.turn.release()
        call.done.wait()
        self.turn.acquire()
        if call.error is not None:
            raise call.error
        return call.result

    def answer(self, calls: list[Call]) -> None:
        """One round (settle_round), each call released once it is over: no job runs while the model answers another's
        call. What stops it (an interrupt, a fault here) stops every job, not only those whose call it stopped."""
        try:
            self.settle_round(calls)
        except BaseException as exc:
            for call in calls:
                call.error = exc
            raise
        finally:
            for call in calls:
                call.done.set()

    def settle_round(self, calls: list[Call]) -> None:
        """The generate calls that can share a batch as one, every other call alone, in the jobs' order."""
        groups: dict[tuple, list[Call]] = {}
        alone: list[Call] = []
        for call in calls:
            key = call.shared_key()
            if key is None:
                alone.append(call)
            else:
                groups.setdefault(key, []).append(call)
        for key, group in list(groups.items()):
            if not within_positions(self.model, group):
                alone = sorted(alone + groups.pop(key), key=lambda call: call.job)
        self.rounds.append([len(group) for group in groups.values()])
        for group in groups.values():
            self.settle(group, lambda group=group: generate_together(self.model, group))
        for call in alone:
            self.settle([call], lambda call=call: [call_alone(self.model, call)])

    def settle(self, calls: list[Call], compute: Callable[[], list[Any]]) -> None:
        """Each call's result from compute(), or compute()'s error for every one of them."""
        try:
            with under(calls[0].modes):
                for call, result in zip(calls, compute(), strict=True):
                    call.result = result
        except Exception as exc:  # the jobs' error: raised in each job's thread
            for call in calls:
                call.error = exc


def within_positions(model: torch.nn.Module, calls: list[Call]) -> bool:
    """Whether the calls' rows stay within the positions the base reads when run as one: every row runs on to the
    longest budget of them all, past its own call's end, which a base with learned positions (GPT-2's) cannot read."""
    cap = position_cap(model) if hasattr(model, "config") else None
    longest = max(int(call.kwargs["attention_mask"].sum(-1).max()) for call in calls)
    return cap is None or longest + max(call.kwargs["max_new_tokens"] for call in calls) <= cap


def call_alone(model: torch.nn.Module, call: Call) -> Any:
    method = model.generate if call.method == "generate" else model
    return method(*call.args, **call.kwargs)


@dataclass
class Slot:
    """One call's rows in a shared generate: rows start..stop, their prompts `width` wide before the shared padding."""

    call: Call
    start: int
    stop: int
    width: int
    criteria: StoppingCriteriaList
    processors: LogitsProcessorList
    budget: int
    ended_at: int | None = None  # how many new tokens the call had when all its rows had ended
    error: Exception | None = None  # what its own criteria or processors raised: its call's error, its rows ended

    def view(self, input_ids: torch.Tensor, shared_width: int) -> torch.Tensor:
        """Its rows as it would see them alone: without the padding the other calls' prompts added."""
        return input_ids[self.start : self.stop, shared_width - self.width :]


class SlotStops(StoppingCriteria):
    """Each call's own stopping criteria on its own rows, its budget, and EOS; a call whose rows have all ended is
    asked nothing more (its processors and criteria are called as often as they would be alone)."""

    def __init__(self, slots: list[Slot], width: int, eos: int | None, rows: int):
        self.slots, self.width, self.eos = slots, width, eos
        self.ended: torch.Tensor | None = None
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs) -> torch.BoolTensor:
        steps = input_ids.shape[1] - self.width
        ended = torch.zeros(self.rows, dtype=torch.bool, device=input_ids.device)
        if self.ended is not None:
            ended |= self.ended
        if self.eos is not None:
            ended |= input_ids[:, -1] == self.eos
        for slot in self.slots:
            rows = slice(slot.start, slot.stop)
            if slot.ended_at is not None or slot.error is not None:
                ended[rows] = True
                continue
            if len(slot.criteria):
                own = None if scores is None else scores[rows]
                try:
                    ended[rows] |= slot.criteria(slot.view(input_ids, self.width), own)
                except Exception as exc:  # its call's: the other calls' rows go on
                    slot.error, ended[rows] = exc, True
            if steps >= slot.budget:
                ended[rows] = True
            if bool(ended[rows].all()):
                slot.ended_at = steps
        self.ended = ended
        return ended


class SlotProcessors(LogitsProcessor):
    """Each call's own logits processors on its own rows, while any of them runs."""

    def __init__(self, slots: list[Slot], width: int):
        self.slots, self.width = slots, width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for slot in self.slots:
            if slot.ended_at is None and slot.error is None and len(slot.processors):
                try:
                    scores[slot.start : slot.stop] = slot.processors(slot.view(input_ids, self.width),
                                                                     scores[slot.start : slot.stop])
                except Exception as exc:  # its call's: the other calls' rows go on (SlotStops ends its rows)
                    slot.error = exc
        return scores


def generate_together(model: torch.nn.Module, calls: list[Call]) -> list[torch.Tensor]:
    """The calls' generate as one: each call's sequences as its own generate would return them (its prompt columns as
    it padded them, then its new tokens up to where all its rows ended or its budget); a call whose own criteria or
    processors raised gets that error instead (Call.error)."""
    first = calls[0].kwargs
    pad = first.get("pad_token_id")
    width = max(call.kwargs["input_ids"].shape[1] for call in calls)
    slots, start = [], 0
    for call in calls:
        rows, own = call.kwargs["input_ids"].shape
        criteria = call.kwargs.get("stopping_criteria") or StoppingCriteriaList()
        processors = call.kwargs.get("logits_processor") or LogitsProcessorList()
        slots.append(Slot(call, start, start + rows, own, criteria, processors, call.kwargs["max_new_tokens"]))
        start += rows

    def padded(name: str, value: int) -> torch.Tensor:
        return torch.cat([torch.nn.functional.pad(call.kwargs[name], (width - call.kwargs[name].shape[1], 0),
                                                  value=value) for call in calls])

    named = {}
    if "adapter_names" in first:
        named["adapter_names"] = [name for call in calls for name in call.kwargs["adapter_names"]]
    stops = SlotStops(slots, width, first.get("eos_token_id"), start)
    out = model.generate(input_ids=padded("input_ids", pad if pad is not None else 0),
                         attention_mask=padded("attention_mask", 0), do_sample=first.get("do_sample", False),
                         max_new_tokens=max(slot.budget for slot in slots), pad_token_id=pad,
                         eos_token_id=first.get("eos_token_id"), stopping_criteria=StoppingCriteriaList([stops]),
                         logits_processor=LogitsProcessorList([SlotProcessors(slots, width)]), **named)
    generated = out.shape[1] - width
    for slot in slots:
        slot.call.error = slot.error
    return [out[slot.start : slot.stop, width - slot.width : width + min(
        generated, slot.budget if slot.ended_at is None else slot.ended_at)] for slot in slots]
