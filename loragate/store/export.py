"""Export a merged adapter model, and check that what was written still answers like the adapter model.

Two formats: merged safetensors (`save_pretrained`: any architecture, exact) and GGUF for llama.cpp (Llama
architecture only; f32, f16 or q8_0). A GGUF is read back with transformers' own GGUF loader and compared with
the adapter model on prompts, so an export that loads but answers differently (a tensor under the wrong name,
q/k rows in the wrong rotary layout, a tokenizer that splits text differently) is caught before it ships.
Every write goes to a temporary path renamed into place: a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from loragate.atomic import atomic_file
from loragate.inference.engine import next_token_logits
from loragate.models.bases import save_atomically

# GGUF type of the 2-D weights per export type; 1-D tensors (the RMS norms) stay f32, as llama.cpp keeps them.
GGUF_TYPES: dict[str, gguf.GGMLQuantizationType] = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
}
FILE_TYPES: dict[str, gguf.LlamaFileType] = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}

# q8_0 stores each weight as an 8-bit integer times one f16 scale per block of 32: within 1/254 of the block's
# largest weight. Read back, the tiny adapters' q8_0 logits moved by 0.7-2.9% of each prompt's largest logit and
# no top-1 token changed (iris, sst2, instruct test splits). Broken exports moved them by 45-130%: q/k rows left
# in transformers' rotary layout (top-1 agreement 0.58-0.85) or the first block's ffn_gate and ffn_up swapped
# (0.86-0.87 on sst2 and instruct, but 1.00 on Iris, where three labels dominate the answer position: top-1 alone
# cannot see it there, the logit bound does). Top-1 may change on 1 prompt in 20 (near ties), logits by 10%.
Q8_0_MIN_TOP1_AGREEMENT = 0.95
Q8_0_LOGIT_RTOL = 0.10
# The read-back's task metrics against the adapter model's: q8_0 moved none of the tiny tier's accuracies and
# moved ROUGE-L and perplexity by about 0.1%; the broken exports above cost up to 0.37 accuracy, 0.36-0.49 ROUGE-L
# and 3-8x perplexity. Bounded metrics (accuracy, F1, ROUGE-L...) may move by one answer in 20; perplexity by 5%.
Q8_0_METRIC_ATOL = 0.05
Q8_0_PERPLEXITY_RTOL = 0.05

# Llama 3's pre-tokenizer regex (its tokenizer.json), which transformers' GGUF reader rebuilds a "llama-bpe"
# tokenizer with before byte-level BPE. A tokenizer that splits any other way would read back as another tokenizer.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


class ExportError(RuntimeError):
    """A model or tokenizer this exporter cannot write faithfully; the message says what to do instead."""


def require_merged(model: torch.nn.Module) -> None:
    """A LoRA-wrapped model would export its base weights and lora_A/lora_B side by side, not the merged ones."""
    if isinstance(model, PeftModel):
        raise ExportError("the model still carries LoRA layers: export loragate.models.parameters.merged_copy(model), "
                          "the merged and unwrapped copy")


def save_merged(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
    """Write the merged model and its tokenizer with `save_pretrained` into `out_dir`, atomically: the
    directory appears complete or not at all."""
    require_merged(model)
    if out_dir.exists():
        raise ExportError(f"{out_dir} already exists: remove it or export to a new directory")
    save_atomically(model, tokenizer, out_dir)
    return out_dir


def reload_mismatch(reloaded: torch.nn.Module, merged: torch.nn.Module) -> str | None:
    """None when a model read back from merged safetensors holds the merged model's tensors bit for bit and its
    config field for field (the path it was read from aside); else the first difference, by name."""
    expected, actual = merged.state_dict(), reloaded.state_dict()
    if expected.keys() != actual.keys():
        return (f"tensors missing {sorted(expected.keys() - actual.keys())[:5]}, "
                f"unexpected {sorted(actual.keys() - expected.keys())[:5]}")
    for name, tensor in expected.items():
        other = actual[name]
        if other.dtype != tensor.dtype or other.shape != tensor.shape:
            return f"tensor {name}: {other.dtype} {tuple(other.shape)} instead of {tensor.dtype} {tuple(tensor.shape)}"
        if not torch.equal(other, tensor):
            return f"tensor {name}: up to {(other.float() - tensor.float()).abs().max().item():.2e} away"
    was, now = (dict(model.config.to_dict(), _name_or_path=None) for model in (merged, reloaded))
    changed = sorted(key for key in was.keys() | now.keys() if was.get(key) != now.get(key))
    if changed:
        return "config " + "; ".join(f"{key}: {now.get(key)!r} instead of {was.get(key)!r}" for key in changed[:5])
    return None


def gguf_unsupported(model: torch.nn.Module) -> str | None:
    """Why this exporter cannot write `model` as a GGUF that reads back as the same model, or None if it can."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type != "llama" or not isinstance(model, PreTrainedModel) or model.get_output_embeddings() is None:
        return (f"{type(model).__name__} (model_type {model_type!r}) is not a Llama-architecture causal LM, the one "
                f"architecture this exporter writes. Export merged safetensors (loragate.store.export.save_merged) and "
                f"convert them with llama.cpp's convert_hf_to_gguf.py, which knows the others")
    rope_type = (config.rope_parameters or {}).get("rope_type", "default")
    if rope_type != "default":
        return (f"rope_parameters.rope_type is {rope_type!r}: llama.cpp needs a rope_freqs tensor for it and "
                f"transformers' GGUF reader ignores it, so the read-back could not be compared. Export merged "
                f"safetensors (loragate.store.export.save_merged) and convert them with llama.cpp's "
                f"convert_hf_to_gguf.py")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            return (f"config.{flag} is true; this exporter writes bias-free Llama layers only. Convert merged "
                    f"safetensors with llama.cpp's convert_hf_to_gguf.py")
    if config.hidden_act != "silu":
        return (f"config.hidden_act is {config.hidden_act!r}, but llama.cpp's Llama graph computes silu. Export merged "
                f"safetensors (loragate.store.export.save_merged) instead")
    return None


def write_gguf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path, quant: str = "q8_0") -> Path:
    """Write a merged Llama model and its tokenizer as one GGUF file at `path`, atomically."""
    require_merged(model)
    if quant not in GGUF_TYPES:
        raise ExportError(f"{path}: quant {quant!r} is not one of {sorted(GGUF_TYPES)}")
    reason = gguf_unsupported(model)
    if reason is not None:
        raise ExportError(f"cannot write {path} as GGUF: {reason}")
    vocab = gguf_vocab(tokenizer, model.get_input_embeddings().num_embeddings)
    tensors = gguf_tensors(model, GGUF_TYPES[quant])
    with atomic_file(path) as staged:
        writer = gguf.GGUFWriter(staged.path, "llama")
        try:
            add_hyperparameters(writer, model, FILE_TYPES[quant])
            add_vocab(writer, vocab)
            for name, data, qtype in tensors:
                writer.add_tensor(name, data, raw_dtype=qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    return path


def add_hyperparameters(writer: gguf.GGUFWriter, model: PreTrainedModel, file_type: gguf.LlamaFileType) -> None:
    """The `llama.*` keys llama.cpp builds its graph from; transformers' reader maps them back to a LlamaConfig."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name("loragate merged adapter")
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(model.get_input_embeddings().num_embeddings)


def llama_cpp_rotary_layout(weight: np.ndarray, heads: int) -> np.ndarray:
    """q/k rows in llama.cpp's rotary layout. transformers rotates the first half of each head's dimensions
    against the second half; llama.cpp rotates adjacent pairs, so each head's two halves are interleaved
    (a0, b0, a1, b1, ...). transformers' GGUF reader undoes exactly this for Llama."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


BLOCK_TENSORS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
MODEL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                 "lm_head.weight": "output.weight"}


def gguf_name(hf_name: str) -> str | None:
    """llama.cpp's name for a LlamaForCausalLM weight (model.layers.3.mlp.up_proj.weight -> blk.3.ffn_up.weight);
    None for one it has no name for."""
    if hf_name in MODEL_TENSORS:
        return MODEL_TENSORS[hf_name]
    parts = hf_name.split(".")
    if len(parts) < 5 or parts[:2] != ["model", "layers"] or parts[-1] != "weight":
        return None
    module = BLOCK_TENSORS.get(".".join(parts[3:-1]))
    return None if module is None else f"blk.{parts[2]}.{module}.weight"


def gguf_tensors(model: PreTrainedModel,
                 qtype: gguf.GGMLQuantizationType) -> list[tuple[str, np.ndarray, gguf.GGMLQuantizationType]]:
    """(GGUF name, data, type) of every weight. A tied output projection is left out: its absence is how
    llama.cpp and transformers know to reuse token_embd."""
    config = model.config
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    tensors = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        name = gguf_name(hf_name)
        if name is None:
            raise ExportError(f"tensor {hf_name} has no llama.cpp name: this exporter writes plain LlamaForCausalLM "
                              f"weights only. Convert merged safetensors with llama.cpp's convert_hf_to_gguf.py")
        data = tensor.detach().to("cpu", torch.float32).numpy()
        if ".attn_q." in name:
            data = llama_cpp_rotary_layout(data, config.num_attention_heads)
        elif ".attn_k." in name:
            data = llama_cpp_rotary_layout(data, config.num_key_value_heads)
        tensors.append((name, *encode_tensor(data, qtype)))
    return tensors


def encode_tensor(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """1-D tensors stay f32; a q8_0 tensor whose rows are not whole blocks of 32 falls back to f16, as llama.cpp's
    converter does."""
    if data.ndim == 1:
        return data, gguf.GGMLQuantizationType.F32
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if data.shape[-1] % block:
        qtype = gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(data, qtype), qtype


@dataclass(frozen=True)
class GgufVocab:
    """A tokenizer as GGUF metadata."""

    model: str  # tokenizer.ggml.model: "llama" (SentencePiece-style BPE) or "gpt2" (byte-level BPE)
    pre: str  # tokenizer.ggml.pre: how text is split before BPE
    tokens: list[str]
    types: list[int]  # gguf.TokenType per token
    merges: list[str]  # "left right"
    special_ids: dict[str, int]  # "bos", "eos", "unk", "pad" -> id, where the tokenizer has one
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool  # "llama" only: a space is prepended to the text, as SentencePiece does
    chat_template: str | None


def gguf_tokenizer_kind(spec: dict) -> tuple[str, str]:
    """(tokenizer.ggml.model, tokenizer.ggml.pre) of a tokenizer.json, for the two kinds transformers' GGUF reader
    rebuilds: BPE over a Metaspace pre-tokenizer (Llama 1/2, the tiny bases) and byte-level BPE split by Llama 3's
    regex. The first reads back with byte fallback and a leading space only at the start of the text: a character
    outside the vocabulary vanishes instead of becoming <unk>, and text after a special token written inside the
    text gets no leading space. Ordinary prompts encode the same; the gate checks its test prompts do."""
    model, pre, normalizer = spec["model"], spec["pre_tokenizer"] or {}, spec["normalizer"]
    plain_bpe = (model["type"] == "BPE" and normalizer is None and not model.get("continuing_subword_prefix")
                 and not model.get("end_of_word_suffix"))
    if plain_bpe and pre.get("type") == "Metaspace" and pre.get("replacement") == "\u2581":
        return "llama", "default"
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    llama3 = (len(steps) == 2 and steps[0].get("type") == "Split" and steps[0].get("pattern") == {"Regex": LLAMA3_SPLIT}
              and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert")
              and steps[1].get("type") == "ByteLevel" and not steps[1].get("add_prefix_space")
              and not steps[1].get("use_regex"))
    if plain_bpe and llama3:
        return "gpt2", "llama-bpe"
    raise ExportError(
        f"tokenizer model {model['type']}, normalizer {(normalizer or {}).get('type')}, pre-tokenizer "
        f"{[step.get('type') for step in steps] or pre.get('type')}: GGUF export writes a BPE over a Metaspace "
        f"pre-tokenizer (SentencePiece-style, Llama 1/2) or byte-level BPE split by Llama 3's regex, the two that "
        f"transformers reads back as the same tokenizer. Export merged safetensors (loragate.store.export.save_merged) "
        f"and convert them with llama.cpp's convert_hf_to_gguf.py, which knows each model's pre-tokenizer")


def gguf_vocab(tokenizer: PreTrainedTokenizerBase, rows: int) -> GgufVocab:
    """The tokenizer as GGUF metadata, for a model whose embedding has `rows` rows (rows past the vocabulary
    become unused [PAD<id>] tokens, as llama.cpp's converter writes them)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{type(tokenizer).__name__} is not a fast tokenizer; GGUF export reads its tokenizer.json")
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    kind, pre = gguf_tokenizer_kind(spec)
    vocab = tokenizer.get_vocab()
    if len(vocab) > rows:
        raise ExportError(f"the tokenizer has {len(vocab)} tokens but the embedding only {rows} rows: they must "
                          f"belong to different models")
    by_id = {i: token for token, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(rows):
        tokens.append(by_id.get(i, f"[PAD{i}]"))
        if i not in by_id:
            types.append(gguf.TokenType.UNUSED)
        elif i == tokenizer.unk_token_id:
            types.append(gguf.TokenType.UNKNOWN)
        elif i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = [pair if isinstance(pair, str) else " ".join(pair) for pair in spec["model"]["merges"]]
    spaced = [merge for merge in merges if merge.count(" ") != 1]
    if spaced:
        raise ExportError(f"merges {spaced[:3]} hold a space, which GGUF's 'left right' merge strings cannot carry")
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a")["input_ids"]
    add_bos = framed[:1] == [tokenizer.bos_token_id] and tokenizer.bos_token_id not in plain[:1]
    add_eos = framed[-1:] == [tokenizer.eos_token_id] and tokenizer.eos_token_id not in plain[-1:]
    if framed != [tokenizer.bos_token_id] * add_bos + plain + [tokenizer.eos_token_id] * add_eos:
        raise ExportError(f"the tokenizer frames the ids of 'a' {plain} as {framed}; GGUF can only say 'add BOS' and "
                          f"'add EOS'")
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "unk": tokenizer.unk_token_id,
           "pad": tokenizer.pad_token_id}
    template = getattr(tokenizer, "chat_template", None)
    return GgufVocab(
        model=kind, pre=pre, tokens=tokens, types=[int(t) for t in types], merges=merges,
        special_ids={key: value for key, value in ids.items() if value is not None},
        add_bos=add_bos, add_eos=add_eos,
        add_space_prefix=kind == "llama" and spec["pre_tokenizer"].get("prepend_scheme", "always") != "never",
        chat_template=template if isinstance(template, str) else None,
    )


def add_vocab(writer: gguf.GGUFWriter, vocab: GgufVocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.model == "llama":
        # llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result scores highest. A BPE trainer
        # numbers merged tokens in merge order (and SentencePiece sorts its vocabulary by score), so -id ranks them
        # as the merges do.
        writer.add_token_scores([-float(i) for i in range(len(vocab.tokens))])
        writer.add_add_space_prefix(vocab.add_space_prefix)
    writer.add_token_merges(vocab.merges)
    setters = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
               "pad": writer.add_pad_token_id}
    for key, token_id in vocab.special_ids.items():
        setters[key](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.chat_template is not None:
        writer.add_chat_template(vocab.chat_template)


def load_gguf(path: Path, device: str = "cpu",
              dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The GGUF read back by transformers (weights dequantized to `dtype`), with its tokenizer padding on the left
    as the engine batches prompts."""
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype,
                                                 local_files_only=True).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    tokenizer.padding_side = "left"
    model.eval()
    return model, tokenizer


@dataclass(frozen=True)
class Agreement:
    """How closely one model's next-token logits follow a reference's on the same prompts."""

    top1: float  # fraction of prompts whose most likely next token is the same
    max_logit_diff: float  # largest |logit difference| over prompts and vocabulary
    relative_diff: float  # the largest, over prompts, of max |diff| / max |reference logit| of that prompt
    flipped: list[int]  # prompts whose top-1 token changed

    def problem(self, min_top1: float = Q8_0_MIN_TOP1_AGREEMENT, logit_rtol: float = Q8_0_LOGIT_RTOL) -> str | None:
        """None within the tolerances (q8_0's by default), else what is off and by how much."""
        problems = []
        if self.top1 < min_top1:
            problems.append(f"top-1 token agreement {self.top1:.3f} < {min_top1:.3f} (changed on prompts "
                            f"{self.flipped[:10]})")
        if self.relative_diff > logit_rtol:
            problems.append(f"logits moved by up to {self.relative_diff:.1%} of a prompt's largest logit > "
                            f"{logit_rtol:.0%} (max |diff| {self.max_logit_diff:.3g})")
        return "; ".join(problems) or None


def agreement(logits: torch.Tensor, reference: torch.Tensor) -> Agreement:
    """Compare next-token logits (prompts x vocabulary) with the reference's."""
    if logits.shape != reference.shape:
        raise ValueError(f"logits of shape {tuple(logits.shape)} vs reference {tuple(reference.shape)}: different "
                         f"prompts or vocabulary")
    same = logits.argmax(-1) == reference.argmax(-1)
    diff = (logits.float() - reference.float()).abs()
    scale = reference.float().abs().amax(-1).clamp(min=1e-6)
    return Agreement(top1=same.float().mean().item(), max_logit_diff=diff.max().item(),
                     relative_diff=(diff.amax(-1) / scale).max().item(), flipped=(~same).nonzero().flatten().tolist())


def tokenization_mismatches(tokenizer: PreTrainedTokenizerBase, reference: PreTrainedTokenizerBase,
                            texts: list[str]) -> list[int]:
    """Indices of the texts the two tokenizers encode to different ids."""
    return [i for i, text in enumerate(texts) if tokenizer(text)["input_ids"] != reference(text)["input_ids"]]


def metric_tolerance(metric: str, tuned: float) -> float:
    """How far a q8_0 read-back's `metric` may move from the adapter model's value `tuned`."""
    return Q8_0_PERPLEXITY_RTOL * tuned if metric == "perplexity" else Q8_0_METRIC_ATOL


@dataclass(frozen=True)
class GgufComparison:
    agreement: Agreement
    tokenization_mismatches: list[int]  # prompts the GGUF's tokenizer encodes differently


def compare_gguf(path: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                 batch_size: int = 32) -> GgufComparison:
    """Read the GGUF at `path` back and compare it with `model` (the adapter model, or its merged copy) on
    `prompts`: next-token logits, each model through its own tokenizer, and the two tokenizers' ids."""
    device = str(next(model.parameters()).device)
    exported, exported_tokenizer = load_gguf(path, device, next(model.parameters()).dtype)
    logits = next_token_logits(exported, exported_tokenizer, prompts, batch_size)
    reference = next_token_logits(model, tokenizer, prompts, batch_size)
    return GgufComparison(agreement(logits, reference),
                          tokenization_mismatches(exported_tokenizer, tokenizer, prompts))
