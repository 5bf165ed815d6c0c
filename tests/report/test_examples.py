"""Reports a person can act on (issue 32, point 4): every wrong or invalid tuned output with the input it came from
(cut, with a pointer to report.json's whole text), base's and tuned's outputs and the gold answer; the data the run
read; throughput as one explained figure; deltas coloured by the metric's direction; the loss figure's axes in the
kind's own units. Built on small runs made by hand: no model."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

from pydantic import BaseModel

from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput
from loragate.inference.engine import Generations
from loragate.inference.predictions import Predictions
from loragate.metrics import plots
from loragate.metrics.scores import classification_metrics
from loragate.report.data_sources import data_line, data_sources
from loragate.report.examples import INPUT_CHARS, acted_examples, cut, example_input, markdown_listing
from loragate.report.html import acted_html, delta_cell
from loragate.report.throughput import throughput_json, throughput_lines
from loragate.report.writer import LOSS_UNITS, run_plots

LABELS = ["billing", "technical"]
TEMPLATE = "Ticket: {text}\nChannel: {channel}\nTeam:"
LONG = "my card was charged twice " * 20  # 520 characters


class Team(BaseModel):
    team: str


def parsed(output: str) -> ParsedOutput:
    return ParsedOutput(Team(team=output), None) if output in LABELS else ParsedOutput(None, f"{output!r} is no team")


def ticket_run(card_data: object = None, card_path: Path | None = None, data: str | None = None) -> SimpleNamespace:
    """Three test tickets: one right, one wrong (its text long), one whose tuned output did not parse."""
    examples = [Example("t-1", "", " billing", "billing", {"text": "refund please", "channel": "mail", "id": "t-1"}),
                Example("t-2", "", " billing", "billing", {"text": LONG, "channel": "chat", "id": "t-2"}),
                Example("t-3", "", " technical", "technical", {"text": "app <crashes>", "channel": "web", "id": "t-3"})]
    gold = [ex.label for ex in examples]

    def predictions(outputs: list[str], seconds: float, tokens: tuple[int, int] | None) -> Predictions:
        generations = None if tokens is None else Generations(outputs, tokens[0], tokens[1], seconds, [True] * 3)
        return Predictions(["t-1", "t-2", "t-3"], gold, outputs, [parsed(o) for o in outputs], seconds, generations,
                           batch_size=32, card_batch_size=32)

    base = predictions(["refund", "billing", "no idea"], 0.5, (60, 6))
    tuned = predictions(["billing", "technical", "<tech>"], 0.25, (60, 3))
    metrics = classification_metrics(gold, [p.value.team if p.valid else None for p in tuned.parsed], LABELS,
                                     tuned.outputs)
    card = SimpleNamespace(kind="generative_classification", prompt_template=TEMPLATE, data=card_data, path=card_path)
    splits = SimpleNamespace(test=examples, data_hash=lambda: "ab" * 32)
    return SimpleNamespace(task=SimpleNamespace(card=card), splits=splits, base_predictions=base,
                           tuned_predictions=tuned, tuned_metrics=metrics, decoding="free", data=data,
                           benchmark_seconds=None)


def test_an_input_is_the_fields_the_prompt_reads_and_is_cut_with_a_pointer() -> None:
    example = Example("a", "Ticket: x", " billing", "billing", {"channel": "mail", "id": "a", "text": "x"})
    assert example_input(example, TEMPLATE) == {"text": "x", "channel": "mail"}  # the template's order, not its id
    assert example_input(replace_fields(example), TEMPLATE) == {"prompt": "Ticket: x"}
    assert cut("short") == "short"
    assert cut(LONG) == f"{LONG[:INPUT_CHARS]}... (520 characters; report.json has the whole input)"


def replace_fields(example: Example) -> Example:
    return Example(example.id, example.prompt, example.target, example.label, {})


def test_every_wrong_or_invalid_output_is_listed_with_its_input_outputs_and_gold() -> None:
    run = ticket_run()
    acted = acted_examples(run)
    assert [(a.id, a.problem) for a in acted] == [("t-2", "wrong (accuracy)"),
                                                  ("t-3", "did not parse: '<tech>' is no team")]
    wrong = acted[0]
    assert (wrong.gold, wrong.base_output, wrong.tuned_output) == ("billing", "billing", "technical")
    assert wrong.input == {"text": LONG, "channel": "chat"}
    listing = "\n".join(markdown_listing(run))
    assert "**Tuned outputs that did not parse or are wrong (accuracy): 2 of 3**" in listing
    cut_text = f"text: {LONG[:INPUT_CHARS - 6]}... (540 characters; report.json has the whole input)"
    assert f"  - input: `{cut_text}`" in listing
    assert "  - gold: `billing`\n  - base: `'billing'`\n  - tuned: `'technical'`" in listing
    assert "- `t-3`: did not parse: '<tech>' is no team" in listing and "t-1" not in listing
    assert "  - input: `text: app <crashes> ⏎ channel: web`" in listing  # as code: no markup renders


def test_the_html_listing_escapes_what_it_shows() -> None:
    page = acted_html(ticket_run())
    assert "<tech>" not in page and html.escape(repr("<tech>")) in page
    assert "<th>input</th><th>gold</th><th>base output</th><th>tuned output</th>" in page
    assert "<td>text: app &lt;crashes&gt;<br>channel: web</td>" in page and "<crashes>" not in page  # a line a field
    assert html.escape("text: refund please") not in page  # t-1 is right


def test_the_data_the_run_read_is_named() -> None:
    assert data_sources(ticket_run(data="/data/tickets.csv")) == ["/data/tickets.csv (--data)"]
    files = SimpleNamespace(file=None, train="../data/train.csv", eval=None, test="../data/test.csv")
    run = ticket_run(card_data=files, card_path=Path("/project/tasks/tickets.yaml"))
    assert data_sources(run) == ["train: /project/tasks/../data/train.csv", "test: /project/tasks/../data/test.csv"]
    assert data_line(run).endswith("(data hash abababababab)")
    assert data_sources(ticket_run()) == ["the task module's own data (types)"]


def test_throughput_is_base_and_tuned_from_the_same_run_with_their_ratio_explained() -> None:
    run = ticket_run()
    lines = throughput_lines(run)
    assert lines[:3] == ["base: 6.0 examples/s, 132 tokens/s (3 in 0.50 s)",
                         "tuned: 12.0 examples/s, 252 tokens/s (3 in 0.25 s)", "tuned / base: 2.00x examples/s"]
    assert lines[3].startswith("measured: the run's own prediction passes over the 3 test examples (free decoding, "
                               "eval batch 32): base first, then tuned")
    assert "test_evaluation_throughput times the tuned pass again" in lines[3]
    run.benchmark_seconds = 0.5
    assert "pytest-benchmark, tuned pass again: 6.0 examples/s (median of its rounds)" in throughput_lines(run)
    figures = throughput_json(run)
    assert figures["tuned_over_base"] == 2.0 and figures["benchmark_tuned_examples_per_s"] == 6.0
    assert figures["base"] == {"examples": 3, "seconds": 0.5, "tokens": 66, "examples_per_s": 6.0,
                               "tokens_per_s": 132.0}
    run.base_predictions = replace(run.base_predictions, seconds=0.0, generations=None)  # not timed: no NaN in JSON
    assert throughput_lines(run)[0] == "base: not timed (3 examples)"
    assert throughput_lines(run)[2] == "tuned / base: n/a (a pass was not timed)"
    figures = throughput_json(run)
    assert figures["tuned_over_base"] is None and figures["base"]["examples_per_s"] is None
    assert figures["tuned"]["tokens_per_s"] == 252.0


def test_a_delta_is_coloured_by_its_metrics_direction() -> None:
    """A fall of 1514 in perplexity was coloured red."""
    assert delta_cell("-1514.000", higher_is_better=False) == '<span class="better">-1514.000</span>'
    assert delta_cell("+0.100", higher_is_better=False) == '<span class="worse">+0.100</span>'
    assert delta_cell("+0.100") == '<span class="better">+0.100</span>'
    assert delta_cell("n/a", higher_is_better=False) == "n/a"


def test_a_classifier_heads_loss_figure_has_no_perplexity_axis() -> None:
    unit, caption = LOSS_UNITS["SEQ_CLS"]
    svg = plots.loss_svg([0.7, 0.5, 0.3], 0.4, unit=unit)
    texts = [element.text for element in ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert "loss (nats per example)" in texts and "eval loss 0.4000" in texts
    assert not [text for text in texts if re.search("perplexity|answer token", text)]
    assert "no perplexity" in caption
    causal = plots.loss_svg([0.7, 0.5, 0.3], 0.4, unit=LOSS_UNITS["CAUSAL_LM"][0])
    assert "perplexity = exp(loss)" in causal and "loss (nats per answer token)" in causal


def test_the_loss_figure_of_a_span_head_is_drawn_per_window() -> None:
    manifest = SimpleNamespace(loss_curve=[2.0, 1.5, 1.2], metrics_at_train={"eval_loss": 1.3}, eval_curve=None)
    run = SimpleNamespace(task=SimpleNamespace(card=SimpleNamespace(name="squad_v2", kind="extractive_qa")),
                          tier="tiny", candidate="", manifest=manifest)
    (figure,) = run_plots(run)
    assert figure.file == "squad_v2-tiny-loss.svg" and "nats per window" in figure.caption
    assert "perplexity" not in figure.svg and "loss (nats per window)" in figure.svg
