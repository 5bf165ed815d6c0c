"""Issue 34, points 1 and 3: a card's `candidates:` block (loragate.card.candidates). A sweep's variants are checked on
every tier that trains when the card loads, so a mistake is one line naming the card file, the variant and the fix;
`variant_card` gives one candidate's card."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loragate.card.candidates import Candidates, Variant, variant_card
from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError, TaskCard
from loragate.tasks import CARDS_DIR, get_task
from tests.card.errors import card_error
from tests.plugin.test_data_check import project, tickets, usage_error

DOC = Path(__file__).resolve().parents[2] / "docs" / "tasks.md"
SWEEP = """candidates:
  pick: best
  variants:
    - name: r4-lr3
      set: {lora.r: 4, train.lr: 0.003}
    - name: r16
      set: {lora.r: 16}
"""


def iris_card(tmp_path: Path, candidates: str) -> Path:
    """The iris card with a `candidates:` block, written where the test reads it."""
    path = tmp_path / "iris.yaml"
    path.write_text((CARDS_DIR / "iris.yaml").read_text() + candidates)
    return path


def test_a_sweep_parses_and_each_variant_card_changes_only_its_tier(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(iris_card(tmp_path, SWEEP))
    assert card.candidates.pick == "best"
    assert [variant.name for variant in card.candidates.variants] == ["r4-lr3", "r16"]
    varied = variant_card(card, "tiny", card.candidates.variants[0])
    assert (varied.tier("tiny").lora.r, varied.tier("tiny").train.lr) == (4, 0.003)
    assert varied.tier("tiny").lora.alpha == card.tier("tiny").lora.alpha, "a field the variant does not set changed"
    assert varied.tier("full") == card.tier("full"), "another tier changed"
    assert varied.candidates is None, "a variant's card is one candidate's: it holds no sweep"
    assert varied.path == card.path, "the card's relative names would be read from elsewhere"


def test_pick_defaults_to_all_and_a_card_without_the_block_has_none(tmp_path: Path) -> None:
    assert TaskCard.from_yaml(iris_card(tmp_path, "candidates: {}\n")).candidates == Candidates(pick="all")
    assert get_task("iris").card.candidates is None


def test_the_block_survives_a_set_and_set_can_change_it() -> None:
    card = apply_overrides(get_task("iris").card, ("candidates={variants: [{name: r2, set: {lora.r: 2}}]}",))
    again = apply_overrides(card, ("candidates.pick=best",))
    assert again.candidates == Candidates(pick="best", variants=[Variant(name="r2", set={"lora.r": 2})])


@pytest.mark.parametrize(("block", "message"), [
    ("candidates: {pik: best}\n", "field 'candidates': Value error, candidates has no key 'pik' (did you mean "
                                  "'pick'?); it takes pick, variants"),
    ("candidates: {pick: first}\n", "field 'candidates.pick': Input should be 'all' or 'best'"),
    ("candidates:\n  variants: [{name: r4, sett: {lora.r: 4}}]\n",
     "candidates variant 'r4' has no key 'sett' (did you mean 'set'?); it takes name, set"),
    ("candidates:\n  variants: [{name: r4, set: {lora.rank: 4}}]\n",
     "candidates variant 'r4': lora.rank: lora has no field 'rank'; it has r, alpha, dropout, target_modules"),
    ("candidates:\n  variants: [{name: lr, set: {train.lr_: 0.1}}]\n",
     "candidates variant 'lr': train.lr_: train has no field 'lr_' (did you mean train.lr?)"),
    ("candidates:\n  variants: [{name: b, set: {eval.batch_size: 4}}]\n",
     "candidates variant 'b': eval.batch_size: a variant changes how an adapter trains, so it sets train.* or "
     "lora.* only"),
    ("candidates:\n  variants: [{name: b, set: {base_model: tiny}}]\n", "base_model: a variant changes how an "
                                                                       "adapter trains"),
    ("candidates:\n  variants: [{name: r4, set: {tiers.tiny.lora.r: 4}}]\n",
     "tiers.tiny.lora.r: write it relative to tiers.<tier>: lora.r"),
    ("candidates:\n  variants: [{name: r4, set: {lora: {r: 4}}}]\n", "lora: name one field of lora by its path"),
    ("candidates:\n  variants: [{name: m, set: {train.max_length: 32}}]\n",
     "train.max_length: every candidate is gated on the same examples, and it fits the test inputs too"),
    ("candidates:\n  variants: [{name: r4, set: {}}]\n", "field 'candidates.variants.0.set': Dictionary should have "
                                                          "at least 1 item"),
    ("candidates:\n  variants: [{name: r4, set: {lora.r: 4}}, {name: r4, set: {lora.r: 8}}]\n",
     "two variants are named 'r4' and 'r4': name each once"),
    ("candidates:\n  variants: [{name: r4, set: {lora.r: 4}}, {name: R4, set: {lora.r: 8}}]\n",
     "two variants are named 'r4' and 'R4'"),
    ("candidates:\n  variants: [{name: r4/a, set: {lora.r: 4}}]\n", "'r4/a' is not a usable name: use letters, "
                                                                    "digits, _ and - only"),
    ("candidates:\n  variants: [{name: r4.lr3, set: {lora.r: 4}}]\n", "'r4.lr3' is not a usable name"),  # peft: no dots
    ("candidates:\n  variants: [{name: lora_A, set: {lora.r: 4}}]\n", "'lora_A' is not a usable name: that name is"),
    ("candidates:\n  variants: [{name: '', set: {lora.r: 4}}]\n", "'' is not a usable name"),
    ("candidates:\n  variants: [{name: .., set: {lora.r: 4}}]\n", "'..' is not a usable name"),
    ("candidates:\n  variants: [{name: base, set: {lora.r: 4}}]\n", "'base' is not a usable name: that name is the"),
    ("candidates:\n  variants: [{name: __base__, set: {lora.r: 4}}]\n", "'__base__' is not a usable name"),
])
def test_a_wrong_block_is_one_line_naming_the_file_the_field_and_the_fix(tmp_path: Path, block: str,
                                                                         message: str) -> None:
    error = card_error(iris_card(tmp_path, block))
    assert error.startswith(f"{tmp_path / 'iris.yaml'}: field 'candidates") and "\n" not in error, error
    assert message in error, error


@pytest.mark.parametrize(("variant", "message"), [
    ("{name: r0, set: {lora.r: 0}}", "candidates variant 'r0': tiers.tiny.lora.r=0: Input should be greater than 0; "
                                     "fix its value in candidates.variants, or drop it"),
    ("{name: rt, set: {lora.r: true}}", "candidates variant 'rt': tiers.tiny.lora.r=True: Value error, True where a "
                                        "number is due"),
    ("{name: lr, set: {train.lr: fast}}", "candidates variant 'lr': tiers.tiny.train.lr='fast': Input should be a "
                                          "valid number"),
    ("{name: p, set: {train.batching: packd}}", "candidates variant 'p': tiers.tiny.train.batching='packd': Input "
                                                "should be 'grouped', 'dynamic', 'max' or 'packed'"),
    ("{name: t, set: {train.tokens_per_batch: 64}}", "candidates variant 't': tiers.tiny.train: Value error, "
                                                     "tokens_per_batch 64 applies only to batching: packed"),
])
def test_a_bad_value_is_refused_as_the_card_loads(tmp_path: Path, variant: str, message: str) -> None:
    error = card_error(iris_card(tmp_path, f"candidates:\n  variants: [{variant}]\n"))
    assert error.startswith(f"{tmp_path / 'iris.yaml'}: field 'candidates.variants.0.set': ") and "\n" not in error
    assert message in error, error


def test_every_tier_that_trains_is_checked(tmp_path: Path) -> None:
    """A variant valid on one tier may not be on another: here the tiny tier packs its batches and the full tier does
    not, so a token budget applies to tiny alone."""
    path = iris_card(tmp_path, "candidates:\n  variants: [{name: budget, set: {train.tokens_per_batch: 64}}]\n")
    path.write_text(path.read_text().replace("max_length: auto, seed: 0}", "max_length: auto, seed: 0, "
                                             "batching: packed}"))
    error = card_error(path)
    assert "field 'candidates.variants.0.set': candidates variant 'budget': tiers.full.train: Value error, " \
           "tokens_per_batch 64 applies only to batching: packed" in error, error
    assert "tiers.tiny" not in error, error


def test_two_variants_with_the_same_settings_are_refused(tmp_path: Path) -> None:
    error = card_error(iris_card(tmp_path, "candidates:\n  variants: [{name: a, set: {lora.r: 4}}, "
                                           "{name: b, set: {lora.r: 4, train.seed: 0}}]\n"))
    assert "field 'candidates.variants.1.set': candidates variants 'a' and 'b' give tiers.tiny the same settings, " \
           "so they would train one adapter: change or drop one" in error, error


def test_a_tier_that_trains_nothing_has_no_sweep(tmp_path: Path) -> None:
    """A gate-only tier (no lora: it gates --adapter alone) is not checked as the card loads; its variant card is
    refused, naming what the tier lacks."""
    text = (CARDS_DIR / "iris.yaml").read_text()
    full = text[text.index("  full:"):text.index("gates:")]
    path = tmp_path / "iris.yaml"
    path.write_text(text.replace(full, "  full:\n    base_model: google/gemma-3-1b-it\n")
                    + "candidates:\n  variants: [{name: r4, set: {lora.r: 4}}]\n")
    card = TaskCard.from_yaml(path)
    with pytest.raises(CardError, match=re.escape(f"{path}: candidates variant 'r4': tiers.full does not say how to "
                                                  f"train an adapter (it has no lora, train.epochs, train.batch_size, "
                                                  f"train.lr), so it has no sweep; add them to the card")):
        variant_card(card, "full", card.candidates.variants[0])


@pytest.mark.parametrize(("block", "model"), [("candidates", Candidates), ("candidates.variants", Variant)])
def test_every_field_of_the_block_has_a_row_in_docs_tasks(block: str, model: type) -> None:
    section = re.search(r"^## Candidates: `candidates`.*?(?=^## )", DOC.read_text(), re.M | re.S)
    assert section, "docs/tasks.md has no '## Candidates: `candidates`' section"
    under = re.search(rf"^\| {re.escape(block)} field \|.*?\n\n", section.group(0), re.M | re.S)
    assert under, f"docs/tasks.md's candidates section has no '| {block} field |' table"
    rows = re.findall(r"^\| `([a-z_]+)` \|", under.group(0), re.M)
    assert rows == list(model.model_fields), f"docs/tasks.md's {block} table: {rows}, the model: {model.model_fields}"


def test_a_bad_variant_stops_pytest_at_start_up_with_exit_4(gate_dir: pytest.Pytester) -> None:
    """In a user's project, `pytest -m smoke` stops as it starts, one line and exit 4, before any model loads."""
    project(gate_dir, tickets(candidates={"pick": "best", "variants": [{"name": "r0", "set": {"lora.r": 0}}]}))
    error = usage_error(gate_dir)
    assert "tickets.yaml: field 'candidates.variants.0.set': candidates variant 'r0': tiers.tiny.lora.r=0: Input " \
           "should be greater than 0; fix its value in candidates.variants, or drop it" in error, error
