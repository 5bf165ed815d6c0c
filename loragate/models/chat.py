"""Chat templates: a prompt that is a conversation up to the assistant header.

Instruct cards always take their prompts this way, and any causal card that sets `chat_template: true` (as TRL's
SFT renders conversational data). Design. Such an Example keeps its conversation in `fields` (the card's
prompt_template over them is the user turn, and "system" is a system turn where the data has one) and its prompt as
text rendered from them:

* before any tokenizer exists, prompts are rendered with TINY_CHAT_TEMPLATE (`render_tiny`, `render_tiny_splits`):
  the tiny base's tokenizer is trained on that text (`Splits.texts()`), and saved with the same template
  (`tiny_base_dir(..., chat_template=TINY_CHAT_TEMPLATE)`), so on the tiny tier `tokenizer.apply_chat_template`
  gives back exactly that text. Instruct's loader stores these prompts; another kind's loader stores the plain
  prompt, which the base's template replaces.
* once the base is loaded, `format_splits(splits, tokenizer, prompt_template)` renders every prompt again from
  `fields` with that tokenizer's own template (`format_prompt`): the tiny template on the tiny base, Llama 3.2's or
  Gemma 3's header on a hub instruct model. Both tiers go through `apply_chat_template`, and rendering from the
  fields makes it idempotent (the full tier's canary renders hub-formatted splits again for the tiny base).

The target is not rendered through the template: it follows the assistant header as the card's target_template
writes it (every template here ends its header with a newline, so a chat card's target has no leading space), and
training appends the tokenizer's EOS after it (training.encode_all), as the tiny template's assistant turns end with
`eos_token`.

A tokenizer without a chat template (a base, non-instruct checkpoint) is a ChatTemplateError that names the
model, the card field and the fix; nothing is guessed for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache

from jinja2 import Template
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from loragate.card.templates import fill
from loragate.data.examples import Example, Splits
from loragate.models.bases import ModelLoadError

# Roles system, user, assistant; an assistant turn ends with EOS, as a trained response does.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
TINY_EOS = "</s>"  # models.SPECIAL_TOKENS["eos_token"]: what the tiny tokenizer renders for eos_token


NO_TEMPLATE_FIX = ("use the model's instruct/chat variant (e.g. meta-llama/Llama-3.2-1B-Instruct, not "
                   "meta-llama/Llama-3.2-1B), or save the tokenizer with a chat_template "
                   "(loragate.models.chat.TINY_CHAT_TEMPLATE is a minimal one)")


class ChatTemplateError(ModelLoadError):
    """A tokenizer that cannot format a chat prompt; the message names the model and the fix."""


def example_messages(fields: Mapping[str, str], user_template: str = "{instruction}") -> list[dict[str, str]]:
    """The conversation of a chat-formatted example: an optional system turn (`fields["system"]`), then the user turn,
    `user_template` (the card's prompt_template) over the fields."""
    system = fields.get("system", "")
    return [*([{"role": "system", "content": system}] if system else []),
            {"role": "user", "content": fill(user_template, fields, "prompt_template")}]


@cache
def tiny_template() -> Template:
    """TINY_CHAT_TEMPLATE compiled once: compiling it took 12 ms, rendering an example takes 0.1 ms."""
    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(TINY_CHAT_TEMPLATE)


def render_tiny(messages: list[dict[str, str]]) -> str:
    """The prompt TINY_CHAT_TEMPLATE gives, up to and including the assistant header, without a tokenizer: the
    same Jinja environment options as transformers' apply_chat_template (tested against it)."""
    return tiny_template().render(messages=messages, add_generation_prompt=True, eos_token=TINY_EOS)


def format_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The prompt text of `messages` under the tokenizer's chat template, up to and including the assistant
    header. A BOS the template writes is dropped when the tokenizer adds one itself (Llama 3's and Gemma 3's
    templates start with it, and tokenizing the prompt adds another), so the model sees one BOS."""
    name = tokenizer.name_or_path or type(tokenizer).__name__
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"{name}: the tokenizer has no chat template, so the card's prompts (kind instruct, or chat_template: "
            f"true) cannot be formatted. Fix: {NO_TEMPLATE_FIX}, or, for a kind other than instruct, remove "
            f"chat_template from the card."
        )
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError as exc:
        roles = [message["role"] for message in messages]
        raise ChatTemplateError(
            f"{name}: its chat template refused the roles {roles}: {exc}. Fix: drop the system turn from the "
            f"data, or use a model whose template accepts it."
        ) from exc
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        text = text[len(bos):]
    return text


def has_chat_template(name_or_path: str) -> bool | None:
    """Whether the base's tokenizer has a chat template, read without its weights: a local directory's tokenizer
    files, or a hub id's in the Hugging Face cache (never the network). None where the tokenizer cannot be read here
    (a hub id not cached, a directory without tokenizer files): loading the base says why, in its own words."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError):  # not found here: the load, which may reach the hub, raises the real error
        return None
    return bool(getattr(tokenizer, "chat_template", None))


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether tokenizing text (special tokens on, as training and generation do) puts BOS first."""
    ids = tokenizer("a").input_ids
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def format_splits(splits: Splits, tokenizer: PreTrainedTokenizerBase, user_template: str = "{instruction}") -> Splits:
    """Every example's prompt rendered again from its fields with `tokenizer`'s chat template (`user_template`:
    the card's prompt_template); targets, ids and references unchanged. On the tiny base (saved with
    TINY_CHAT_TEMPLATE) the result equals `splits`, so its data hash is unchanged too."""
    def formatted(examples: list[Example]) -> list[Example]:
        return [replace(ex, prompt=format_prompt(tokenizer, example_messages(ex.fields, user_template)))
                for ex in examples]

    return Splits(train=formatted(splits.train), eval=formatted(splits.eval), test=formatted(splits.test))


def render_tiny_splits(splits: Splits, user_template: str = "{instruction}") -> Splits:
    """Every prompt rendered again with TINY_CHAT_TEMPLATE, no tokenizer needed: the splits a tiny base is built
    from (`.texts()`) even when `splits` were formatted for a hub model (the full tier's canary)."""
    def rendered(examples: list[Example]) -> list[Example]:
        return [replace(ex, prompt=render_tiny(example_messages(ex.fields, user_template))) for ex in examples]

    return Splits(train=rendered(splits.train), eval=rendered(splits.eval), test=rendered(splits.test))


def drop_overlong(splits: Splits, tokenizer: PreTrainedTokenizerBase,
                  max_length: int) -> tuple[Splits, dict[str, list[str]]]:
    """`splits` without the examples whose prompt + target + EOS exceed `max_length` tokens (training would
    refuse them), and the ids dropped per split, for the report. Real Dolly/FineTome rows can be long."""
    dropped: dict[str, list[str]] = {}
    kept: dict[str, list[Example]] = {}
    for name in ("train", "eval", "test"):
        examples = getattr(splits, name)
        prompts = tokenizer([ex.prompt for ex in examples]).input_ids if examples else []
        targets = tokenizer([ex.target for ex in examples], add_special_tokens=False).input_ids if examples else []
        fits = [len(p) + len(t) + 1 <= max_length for p, t in zip(prompts, targets)]
        kept[name] = [ex for ex, ok in zip(examples, fits) if ok]
        dropped[name] = [ex.id for ex, ok in zip(examples, fits) if not ok]
    return Splits(**kept), dropped
