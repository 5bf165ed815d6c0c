"""format.md beside the exported data: how the gate turns an exported row into tokens, trains on it and reads the
model's answer, stated from what the code does with this task's first training example and this base's tokenizer
(loragate.training.lora.encode_all), not from what a tokenizer usually does."""

from __future__ import annotations

import json

from transformers import PreTrainedTokenizerBase

from loragate.card.sampling import SamplingSettings
from loragate.card.settings import TaskCard, Tier
from loragate.data.examples import Example, Splits
from loragate.data.truncation import SPLITS, InputFit
from loragate.kinds import KINDS
from loragate.training.lora import IGNORE, encode_all


def format_markdown(card: TaskCard, tier: Tier, splits: Splits, tokenizer: PreTrainedTokenizerBase,
                    inputs: InputFit | None, chat: bool, base: str, command: str) -> str:
    """The README-sized format.md of an export: the files, the tokenization rules, how answers are read, and the
    command that gates an adapter trained on the files. `chat`: the prompts went through the base's chat template;
    `base`: a line saying which base the rows were fitted to."""
    spec = KINDS.get(card.kind)
    rows = ", ".join(f"`{name}.jsonl` ({len(getattr(splits, name))} rows)" for name in SPLITS)
    keys = ("`id`, `prompt`, `target` and, where the example has them, `label` (the gold label, or a structured "
            "output's gold object as compact JSON), `fields` (what the prompt was built from) and `references`")
    lines = [
        f"# {card.name}, {tier} tier: the data and format the gate uses", "",
        f"Written by `{command}`. The rows are the gate's own examples after every step it takes before tokenizing: "
        f"the task's data (or `--data`) with the card's `--set` overrides, the base's chat template where the card "
        f"asks for one, and prompts fitted to `train.max_length`. Use the strings as they are.", "",
        "## Files", "",
        f"- {rows}: one JSON object a line, with {keys}. The gate trains on train, computes the validation loss (and "
        f"any threshold) on eval, and gates on test: never train on test.",
        f"- {base}", "",
    ]
    if spec.encoder:
        lines += encoder_rules(card, splits, tokenizer)
    else:
        lines += causal_rules(card, tier, splits, tokenizer, inputs, chat)
    if spec.labels:
        lines += ["", f"Labels, in class order: {', '.join(f'`{label}`' for label in card.labels)}."]
    lines += ["", "## The card's own recipe", "", recipe(card, tier), ""]
    return "\n".join(lines)


def recipe(card: TaskCard, tier: Tier) -> str:
    """The card's LoRA and training blocks, or that it has no LoRA block (it only gates adapters trained elsewhere)."""
    settings = card.tier(tier)
    if settings.lora is None:
        return (f"None: the card has no `tiers.{tier}.lora` block, so the gate trains no adapter for this tier; it "
                f"gates only adapters trained elsewhere (`--adapter`).")
    return ("What the gate trains when it trains the adapter itself; an adapter trained elsewhere need not match it: "
            f"LoRA `{json.dumps(settings.lora.model_dump())}`, training `{json.dumps(settings.train.model_dump())}`.")


def causal_rules(card: TaskCard, tier: Tier, splits: Splits, tokenizer: PreTrainedTokenizerBase,
                 inputs: InputFit, chat: bool) -> list[str]:
    """The rules of a causal kind, read off the training encoding of the first training example."""
    example = splits.train[0]
    max_length = card.tier(tier).train.resolved_max_length()
    ((_, labels),) = encode_all(tokenizer, [example], max_length)
    prompt = tokenizer(example.prompt).input_ids
    answer = tokenizer(example.target, add_special_tokens=False).input_ids
    eos = f"EOS `{tokenizer.eos_token}` (id {tokenizer.eos_token_id})"
    bos = (f"BOS `{tokenizer.bos_token}` (id {tokenizer.bos_token_id}) is added first"
           if tokenizer.bos_token_id is not None and prompt[:1] == [tokenizer.bos_token_id] else "no BOS is added")
    prompt_end = f"the tokenizer also ends it with {eos}" if prompt[-1:] == [tokenizer.eos_token_id] else \
        "nothing is added after it"
    template = ("the `prompt` strings are already rendered with the base tokenizer's chat template (the card's "
                "prompt_template over `fields` is the user turn, up to and including the assistant header, a BOS the "
                "template writes dropped where the tokenizer adds one): use them as they are, do not apply the "
                "template again. The target is not rendered through the template: no end-of-turn token but the EOS "
                "below" if chat else "none: the prompt is plain text, as TRL's prompt-completion data, not a chat "
                "conversation")
    settings = card.tier(tier).eval
    budget = settings.max_new_tokens or "derived from the targets, as the card sets none"
    return [
        f"## Tokenization (kind {card.kind}: a causal LM, completion-only loss)", "",
        f"- **Prompt**: the `prompt` string, tokenized alone with the tokenizer's special tokens, in training as in "
        f"generation: {bos}; {prompt_end}.",
        f"- **Chat template**: {template}.",
        f"- **Target**: the `target` string exactly (a leading space included), tokenized alone without special "
        f"tokens and appended to the prompt's tokens (prompt and target are never tokenized together), then {eos}.",
        f"- **Loss**: on the target's tokens and that EOS only; prompt positions carry the label {IGNORE}. The first "
        f"training row has {len(prompt)} prompt tokens, then the target's {len(answer)} and EOS: "
        f"{sum(label != IGNORE for label in labels)} with loss.",
        f"- **Length**: `train.max_length` {max_length} tokens (prompt + answer; {length_rule(inputs)}). The "
        f"exported prompts are already cut as the gate cuts them.",
        "",
        "## How the gate reads the answer", "",
        f"- {decoding(settings.sampling)} of each test `prompt`, left-padded in batches of {settings.batch_size}, "
        f"up to `eval.max_new_tokens` new tokens ({budget}), stopping at EOS; the text is decoded without special "
        f"tokens and parsed by the task"
        + (": surrounding whitespace ignored, it must be exactly one label." if KINDS.get(card.kind).labels else "."),
        *(["- `eval.decode: score`: where the output parses, the prediction is the label whose target the model "
           "finds likeliest after the prompt."] if settings.decode == "score" else []),
    ]


def decoding(sampling: SamplingSettings | None) -> str:
    """How the gate decodes at this tier: greedy, or the card's eval.sampling (k seeded samples per example)."""
    if sampling is None:
        return "Greedy decoding (no sampling)"
    return (f"Sampling (`eval.sampling`: {sampling.line()}; every metric averages over an example's "
            f"{sampling.samples} samples)")


def length_rule(inputs: InputFit) -> str:
    """How the examples were fitted to train.max_length, in words."""
    source = "auto: the longest example's" if inputs.auto else "the card's number"
    if inputs.truncation == "refuse":
        return f"{source}; a longer example is refused, as train.truncation is refuse"
    cut = ", ".join(f"{inputs.truncated[name]} of {inputs.examples[name]} {name}" for name in SPLITS)
    return f"{source}; prompts cut from the {inputs.truncation} side where longer: {cut}"


def encoder_rules(card: TaskCard, splits: Splits, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The rules of an encoder kind: no text is generated, the head reads the prompt."""
    example: Example = splits.train[0]
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(example.prompt).input_ids)
    return [
        f"## Tokenization (kind {card.kind}: an encoder with a new head)", "",
        f"- The `prompt` string, tokenized with the tokenizer's special tokens (the first training row starts with "
        f"`{tokens[0]}` and ends with `{tokens[-1]}`); no chat template; the `target` is not generated: the head "
        f"predicts the gold (`label`, or the answer span of `references` in `fields.context`).",
    ]
