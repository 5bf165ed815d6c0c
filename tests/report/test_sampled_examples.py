"""A sampled run's wrong outputs (eval.sampling): one entry per example, saying how many of its k samples did not parse
or are wrong, with its distinct wrong answers, under a heading that counts examples, not k x n rows."""

from __future__ import annotations

import html
from types import SimpleNamespace

from loragate.data.examples import Example
from loragate.inference.predictions import Predictions
from loragate.metrics.scores import classification_metrics, with_input_groups
from loragate.report.examples import acted_examples, markdown_listing
from loragate.report.html import acted_html
from tests.report.test_examples import LABELS, TEMPLATE, parsed

K = 3


def sampled_run() -> SimpleNamespace:
    """Three tickets, each answered 3 times: t-1 right in all, t-2 wrong once and unparsed once, t-3 wrong in all."""
    examples = [Example(f"t-{i}", "", f" {gold}", gold, {"text": f"ticket {i}", "channel": "mail", "id": f"t-{i}"})
                for i, gold in ((1, "billing"), (2, "billing"), (3, "technical"))]
    rows = [ex for ex in examples for _ in range(K)]
    gold = [ex.label for ex in rows]
    outputs = ["billing"] * 3 + ["technical", "billing", "<tech>"] + ["billing"] * 3

    def predictions(answers: list[str]) -> Predictions:
        return Predictions([ex.id for ex in rows], gold, answers, [parsed(o) for o in answers], 1.0)

    tuned = predictions(outputs)
    metrics = classification_metrics(gold, [p.value.team if p.valid else None for p in tuned.parsed], LABELS, outputs)
    card = SimpleNamespace(kind="generative_classification", prompt_template=TEMPLATE)
    return SimpleNamespace(task=SimpleNamespace(card=card), splits=SimpleNamespace(test=examples),
                           base_predictions=predictions(["billing"] * 9), tuned_predictions=tuned,
                           tuned_metrics=with_input_groups(metrics, (0, 0, 0, 1, 1, 1, 2, 2, 2), K), decoding="free")


def test_each_example_is_listed_once_with_its_wrong_samples_and_distinct_wrong_answers() -> None:
    run = sampled_run()
    acted = acted_examples(run)
    assert [(a.id, a.problem, a.tuned_outputs()) for a in acted] == [
        ("t-2", "2 of 3 samples did not parse or are wrong (the first: wrong (accuracy))", ("technical", "<tech>")),
        ("t-3", "wrong (accuracy) in 3 of 3 samples", ("billing",))]
    listing = "\n".join(markdown_listing(run))
    assert "**Tuned outputs that did not parse or are wrong (accuracy): 2 of 3 examples (3 samples each)**" in listing
    assert "  - tuned: `'technical'`, `'<tech>'`" in listing and listing.count("`t-3`") == 1, listing
    page = acted_html(run)
    assert f"<code>{html.escape(repr('technical'))}</code><br><code>{html.escape(repr('<tech>'))}</code>" in page
