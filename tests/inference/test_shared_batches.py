"""Issue 34, point 4: the tasks of a fleet share batches where their prompts, budgets, stopping rules and grammars
differ. Each job's answers equal its own on the model alone; a round's generate calls run as one; a failing job or an
out-of-memory batch fails no other job's answers."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessor

from loragate.card.sampling import SamplingSettings
from loragate.inference.engine import generate, greedy, next_token_logits
from loragate.inference.grammar import one_of
from loragate.inference.mixed_batches import UnmixedCall
from loragate.inference.sampling import repeat_samples
from loragate.inference.shared_batches import SharedBatches
from loragate.run.steps import halving

SPECIES = ["setosa", "versicolor", "virginica"]


def jobs_of(base, iris_splits) -> list:
    """Four tasks' predictions with nothing in common but the model: prompts of other widths, other budgets, labels
    or none, a grammar, seeded samples, and a forward pass."""
    tokenizer = base.tokenizer
    prompts = [ex.prompt for ex in iris_splits.test]
    short = ["Species:", "Petal width: high. Species:", "Sepal width: low. Petal length: medium. Species:"] * 3
    sampling = SamplingSettings(temperature=0.9, samples=2, seed=3)
    sampled = [ex.prompt for ex in repeat_samples(iris_splits.test[:5], 2)]
    return [
        lambda model: generate(model, tokenizer, prompts, 4, 4, labels=[f" {label}" for label in SPECIES]),
        lambda model: generate(model, tokenizer, short, 9, 3),
        lambda model: generate(model, tokenizer, prompts[:7], 12, 5, constraint=one_of(["yes", "no"])),
        lambda model: generate(model, tokenizer, sampled, 6, 3, sampling=sampling),
        lambda model: next_token_logits(model, tokenizer, short, 2),
    ]


def test_each_job_answers_as_alone_and_a_rounds_generates_run_as_one(tuned, iris_splits) -> None:
    base, model = tuned
    jobs = jobs_of(base, iris_splits)
    alone = [job(model) for job in jobs]
    shared = SharedBatches(model)
    together = shared.run(jobs)
    for index, (own, joint) in enumerate(zip(alone[:4], together[:4], strict=True)):
        assert joint.texts == own.texts, f"job {index}: {joint.texts[:3]} != {own.texts[:3]}"
        assert joint.terminated == own.terminated and joint.row_new_tokens == own.row_new_tokens, index
    assert len(set(alone[0].texts)) > 1 and any(alone[2].terminated), "the check needs varied, ended answers"
    assert torch.equal(together[4], alone[4]), "a forward call runs alone, as it would"
    assert max(max(groups, default=0) for groups in shared.rounds) == 4, shared.rounds
    assert shared.run(jobs)[3].texts == together[3].texts, "seeded samples do not depend on the round"


def test_a_failing_job_fails_no_other_and_is_raised_when_all_have_ended(tuned, iris_splits) -> None:
    base, model = tuned
    jobs = jobs_of(base, iris_splits)
    ended = {}

    def failing(shared_model) -> None:
        generate(shared_model, base.tokenizer, ["Species:"], 2, 1)
        raise ValueError("customer07's parser broke")

    def recorded(index: int):
        return lambda shared_model: ended.setdefault(index, jobs[index](shared_model))

    with pytest.raises(ValueError, match="customer07's parser broke"):
        SharedBatches(model).run([recorded(0), failing, recorded(1)])
    assert [ended[index].texts for index in (0, 1)] == [job(model).texts for job in jobs[:2]]


class RunsOutOfMemory(torch.nn.Module):
    """The model, but a generate over more than `rows` rows runs out of memory (a GPU's batch that does not fit)."""

    def __init__(self, model: torch.nn.Module, rows: int):
        super().__init__()
        self.model, self.rows = model, rows

    def generate(self, **kwargs):
        if kwargs["input_ids"].shape[0] > self.rows:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model.generate(**kwargs)


def test_an_out_of_memory_round_halves_every_jobs_batch(tuned, iris_splits) -> None:
    base, model = tuned
    prompts = [ex.prompt for ex in iris_splits.test][:8]

    def job(shared_model):
        return halving("job", 4, lambda size: generate(shared_model, base.tokenizer, prompts, 4, size))[0]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        together = SharedBatches(RunsOutOfMemory(model, 6)).run([job, job])
    assert [joint.texts for joint in together] == [generate(model, base.tokenizer, prompts, 4, 4).texts] * 2
    assert sum("out of memory at eval batch size 4; retrying at 2" in str(w.message) for w in caught) == 2


def test_changing_the_active_adapter_is_refused_while_others_share_the_model(tuned) -> None:
    _, model = tuned
    with pytest.raises(UnmixedCall, match="set the model's active adapter"):
        SharedBatches(model).run([lambda shared_model: shared_model.set_adapter("default")])
    assert model.active_adapter == "default"


class CountsSteps(torch.nn.Module):
    """The model, counting the new tokens of each generate."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.steps = model, []

    def generate(self, **kwargs):
        out = self.model.generate(**kwargs)
        self.steps.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out


def test_a_shared_generate_runs_no_longer_than_its_longest_call_alone(tuned, iris_splits) -> None:
    """A call's rows end at its own budget: they do not run on to another call's."""
    base, model = tuned
    prompts = [ex.prompt for ex in iris_splits.test][:4]
    long = one_of(["versicolor virginica setosa versicolor virginica"])  # far more than 3 tokens
    jobs = [lambda m: generate(m, base.tokenizer, prompts, 3, 4, constraint=long),
            lambda m: generate(m, base.tokenizer, prompts, 12, 4)]
    alone = CountsSteps(model)
    together = [job(alone) for job in jobs]
    shared = CountsSteps(model)
    assert [joint.texts for joint in SharedBatches(shared).run(jobs)] == [own.texts for own in together]
    assert alone.steps[0] == 3 and alone.steps[1] < 12, alone.steps
    assert shared.steps == [max(alone.steps)], (shared.steps, alone.steps)


def test_one_job_runs_at_a_time_between_its_calls() -> None:
    """Jobs share more than the model (the tokenizer, whose padding setting a call changes): no two run at once."""
    inside, overlaps = [], []

    def job(shared_model) -> int:
        for step in range(4):
            inside.append(step)
            if len(inside) > 1:
                overlaps.append(list(inside))
            time.sleep(0.005)  # a tokenizer call: other threads would run meanwhile
            inside.pop()
            shared_model(torch.ones(1))
        return step

    assert SharedBatches(torch.nn.Identity()).run([job] * 4) == [3] * 4
    assert not overlaps, overlaps


class Interrupted(torch.nn.Module):
    """Counts its calls; the `at`-th is interrupted (Ctrl-C while the model runs)."""

    def __init__(self, at: int):
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return x


def test_an_interrupt_stops_every_job_at_once_and_leaves_no_thread_waiting() -> None:
    """Ctrl-C stops the pass: not only the job whose call it stopped while the others run on to their end."""
    model = Interrupted(at=3)

    def job(shared_model) -> None:
        for _ in range(50):
            shared_model(torch.ones(1))

    shared = SharedBatches(model)
    with pytest.raises(KeyboardInterrupt):
        shared.run([job, job])
    assert model.calls == 3, "the round's other call and every later one are not run"
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("loragate-job-")]
    assert shared.run([lambda shared_model: shared_model(torch.ones(1))]) == [torch.ones(1)], "run again, it answers"


class Busy(torch.nn.Module):
    """A forward that takes a while, saying meanwhile that it runs; a generate that adds no token."""

    def __init__(self):
        super().__init__()
        self.busy = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.busy = True
        time.sleep(0.05)
        self.busy = False
        return x

    def generate(self, **kwargs) -> torch.Tensor:
        return kwargs["input_ids"]


def test_a_job_runs_on_only_once_its_whole_round_is_answered() -> None:
    """A job whose shared generate is answered does not run while the model answers another job's call."""
    model, seen = Busy(), []
    ids = torch.ones((1, 2), dtype=torch.long)

    def generating(shared_model) -> None:
        shared_model.generate(input_ids=ids, attention_mask=ids, max_new_tokens=1)
        seen.append(model.busy)

    SharedBatches(model).run([generating, lambda shared_model: shared_model(torch.ones(1))])
    assert seen == [False]


class RefusesAtStep(LogitsProcessor):
    """A task's own logits processor (a grammar) that raises at its second step."""

    def __init__(self):
        self.steps = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        if self.steps == 2:
            raise RuntimeError("customer07's grammar refused a token")
        return scores


def test_a_calls_own_processor_failing_fails_no_other_call_of_its_shared_generate(tuned, iris_splits) -> None:
    """In a fleet, what one task's own grammar raises is that task's outcome, not every task's in its batch."""
    base, model = tuned
    tokenizer = base.tokenizer
    prompts = [ex.prompt for ex in iris_splits.test][:4]
    ended = {}

    def failing(shared_model) -> None:
        with torch.inference_mode():
            greedy(shared_model, tokenizer, tokenizer(prompts[:2]).input_ids, 4, None, sampler=RefusesAtStep())

    def answering(shared_model) -> None:
        ended["texts"] = generate(shared_model, tokenizer, prompts, 4, 4).texts

    shared = SharedBatches(model)
    with pytest.raises(RuntimeError, match="customer07's grammar refused a token"):
        shared.run([failing, answering])
    assert shared.rounds[0] == [2], "the two calls shared a generate"
    assert ended["texts"] == generate(model, tokenizer, prompts, 4, 4).texts


class RecordsAutocast(torch.nn.Module):
    """Records whether each call runs under CPU autocast, and its dtype."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return x


def test_a_call_runs_under_its_jobs_autocast() -> None:
    """Autocast is the job thread's own (a kind's losses run under bf16 autocast on CUDA): its calls keep it."""
    model = RecordsAutocast()

    def job(shared_model) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            shared_model(torch.ones(1))
        shared_model(torch.ones(1))

    SharedBatches(model).run([job, job])
    assert model.seen == [torch.bfloat16, torch.bfloat16, None, None]


def test_a_generate_naming_several_eos_tokens_runs_alone(tuned, iris_splits) -> None:
    """A project's kind may call generate its own way, with several EOS tokens (a chat model's): alone, as it would."""
    base, model = tuned
    tokenizer = base.tokenizer
    batch = tokenizer([ex.prompt for ex in iris_splits.test][:3], return_tensors="pt", padding=True)
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "max_new_tokens": 3,
              "do_sample": False, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": [tokenizer.eos_token_id]}
    shared = SharedBatches(model)
    with torch.inference_mode():
        alone = model.generate(**kwargs)
    together = shared.run([lambda m: m.generate(**kwargs), lambda m: generate(m, tokenizer, ["Species:"], 2, 1)])
    assert torch.equal(together[0], alone)
    assert shared.rounds[0] == [1], "the other job's generate had its round's shared batch to itself"


def test_a_fault_of_the_rounds_is_raised_and_leaves_no_job_waiting() -> None:
    """A call the rounds cannot read (input_ids not a tensor) faults the calling thread: raised, every job ended."""
    raised = []

    def coordinate() -> None:
        try:
            SharedBatches(torch.nn.Identity()).run([
                lambda m: m.generate(input_ids=[[1]], attention_mask=[[1]], max_new_tokens=1),
                lambda m: [m(torch.ones(1)) for _ in range(3)]])
        except AttributeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=coordinate, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "a job waits for a round that never comes"
    assert raised and not [job for job in threading.enumerate() if job.name.startswith("loragate-job-")]


def test_calls_whose_rows_would_run_past_the_bases_positions_together_run_alone() -> None:
    """A long prompt with a short budget beside a short prompt with a long one: each fits a base of 16 learned
    positions alone; as one, the long prompt's rows would run on to the long budget, past its positions."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_positions=16, n_embd=8, n_layer=1, n_head=2, vocab_size=32, bos_token_id=1,
                                       eos_token_id=2)).eval()

    def call(width: int, budget: int) -> dict:
        ids = torch.arange(3, 3 + width).unsqueeze(0)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "max_new_tokens": budget, "do_sample": False,
                "pad_token_id": 0, "eos_token_id": 2}

    calls = [call(12, 2), call(2, 10)]
    with torch.inference_mode():
        alone = [model.generate(**kwargs) for kwargs in calls]

    def job(kwargs: dict):
        def generating(shared_model) -> torch.Tensor:
            with torch.inference_mode():
                return shared_model.generate(**kwargs)
        return generating

    together = SharedBatches(model).run([job(kwargs) for kwargs in calls])
    assert all(torch.equal(own, joint) for own, joint in zip(alone, together, strict=True))
