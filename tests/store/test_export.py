"""Export of a merged tiny Llama: safetensors and GGUF round trips, the comparison that must catch a broken export,
refusals, and atomic writes."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

import loragate.store.export as export
from loragate.inference.engine import next_token_logits
from loragate.models.bases import load_causal
from loragate.models.parameters import merged_copy
from loragate.store.export import (
    Q8_0_LOGIT_RTOL,
    Q8_0_MIN_TOP1_AGREEMENT,
    ExportError,
    agreement,
    compare_gguf,
    load_gguf,
    reload_mismatch,
    save_merged,
    tokenization_mismatches,
    write_gguf,
)

# An f32 GGUF holds the merged weights bit for bit; only the read-back model's summation order may differ.
F32_MAX_LOGIT_DIFF = 1e-5


@pytest.fixture(scope="module")
def merged(tuned):
    """The conftest's trained Iris adapter, merged and unwrapped (the adapter model itself stays as it is)."""
    _, model = tuned
    return merged_copy(model)


def prompts_of(splits) -> list[str]:
    return [ex.prompt for ex in splits.train + splits.eval + splits.test]


def test_merged_safetensors_reload_with_identical_logits(tuned, merged, iris_splits, tmp_path: Path) -> None:
    base, _ = tuned
    out = save_merged(merged, base.tokenizer, tmp_path / "merged")
    reloaded = load_causal(str(out), "cpu", torch.float32)
    prompts = prompts_of(iris_splits)
    expected = next_token_logits(merged, base.tokenizer, prompts, 32)
    assert torch.equal(next_token_logits(reloaded.model, reloaded.tokenizer, prompts, 32), expected)
    assert tokenization_mismatches(reloaded.tokenizer, base.tokenizer, prompts) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"], "a temporary directory was left behind"


def test_reload_mismatch_names_the_tensor_or_the_config_field_that_changed(tuned, merged, tmp_path: Path) -> None:
    base, _ = tuned
    out = save_merged(merged, base.tokenizer, tmp_path / "merged")
    reloaded = type(merged).from_pretrained(out, dtype=torch.float32, use_safetensors=True)
    assert reload_mismatch(reloaded, merged) is None
    weight = reloaded.get_parameter("model.layers.0.mlp.down_proj.weight")
    with torch.no_grad():
        weight[0, 0] += 0.25
    assert reload_mismatch(reloaded, merged) == "tensor model.layers.0.mlp.down_proj.weight: up to 2.50e-01 away"
    with torch.no_grad():
        weight[0, 0] -= 0.25
    reloaded.config.rms_norm_eps = 0.5
    assert reload_mismatch(reloaded, merged) == f"config rms_norm_eps: 0.5 instead of {merged.config.rms_norm_eps!r}"


def test_save_merged_refuses_lora_layers_and_an_existing_directory(tuned, merged, tmp_path: Path) -> None:
    base, model = tuned
    with pytest.raises(ExportError, match="merged_copy"):
        save_merged(model, base.tokenizer, tmp_path / "wrapped")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        save_merged(merged, base.tokenizer, tmp_path / "taken")
    with pytest.raises(ExportError, match="merged_copy"):
        write_gguf(model, base.tokenizer, tmp_path / "wrapped.gguf")


def test_f32_gguf_reads_back_as_the_merged_model(tuned, merged, iris_splits, tmp_path: Path) -> None:
    base, _ = tuned
    path = write_gguf(merged, base.tokenizer, tmp_path / "iris-f32.gguf", "f32")
    model, tokenizer = load_gguf(path)
    for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
                  "bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(model.config, field) == getattr(merged.config, field), field
    assert model.config.rope_parameters["rope_theta"] == merged.config.rope_parameters["rope_theta"]
    texts = prompts_of(iris_splits) + [ex.prompt + ex.target for ex in iris_splits.test]
    assert tokenization_mismatches(tokenizer, base.tokenizer, texts) == []
    prompts = prompts_of(iris_splits)
    diff = (next_token_logits(model, tokenizer, prompts, 32) - next_token_logits(merged, base.tokenizer, prompts, 32))
    assert diff.abs().max().item() <= F32_MAX_LOGIT_DIFF, f"f32 GGUF logits differ by {diff.abs().max().item():.2e}"


def test_q8_0_gguf_holds_llama_cpp_metadata_and_block_types(tuned, merged, tmp_path: Path) -> None:
    base, _ = tuned
    config = merged.config
    reader = gguf.GGUFReader(write_gguf(merged, base.tokenizer, tmp_path / "iris.gguf"))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "llama"
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    expected = {"context_length": config.max_position_embeddings, "embedding_length": config.hidden_size,
                "block_count": config.num_hidden_layers, "feed_forward_length": config.intermediate_size,
                "attention.head_count": config.num_attention_heads,
                "attention.head_count_kv": config.num_key_value_heads,
                "rope.dimension_count": config.hidden_size // config.num_attention_heads,
                "vocab_size": config.vocab_size}
    assert {key: fields[f"llama.{key}"] for key in expected} == expected
    assert fields["llama.rope.freq_base"] == pytest.approx(config.rope_parameters["rope_theta"])
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config.rms_norm_eps)
    assert fields["tokenizer.ggml.model"] == "llama" and fields["tokenizer.ggml.add_bos_token"] is True
    assert fields["tokenizer.ggml.bos_token_id"] == base.tokenizer.bos_token_id
    assert len(fields["tokenizer.ggml.tokens"]) == config.vocab_size
    types = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    block = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
    names = [f"blk.{i}.{name}.weight" for i in range(config.num_hidden_layers) for name in block]
    assert set(types) == {"token_embd.weight", "output_norm.weight", *names}
    assert "output.weight" not in types, "a tied output projection must be left out"
    assert {types[name] for name in types if "norm" in name} == {gguf.GGMLQuantizationType.F32}
    assert {types[name] for name in types if "norm" not in name} == {gguf.GGMLQuantizationType.Q8_0}


def test_q8_0_gguf_agrees_with_the_adapter_model(tuned, merged, iris_splits, tmp_path: Path) -> None:
    base, model = tuned
    path = write_gguf(merged, base.tokenizer, tmp_path / "iris.gguf", "q8_0")
    result = compare_gguf(path, model, base.tokenizer, prompts_of(iris_splits))
    assert result.tokenization_mismatches == []
    assert result.agreement.problem() is None, result.agreement.problem()
    assert 0 < result.agreement.max_logit_diff, "q8_0 cannot be lossless: the file was not quantized"


ORIGINAL_GGUF_NAME = export.gguf_name


def swap_first_block_gate_and_up(hf_name: str) -> str | None:
    name = ORIGINAL_GGUF_NAME(hf_name)
    swapped = {"blk.0.ffn_gate.weight": "blk.0.ffn_up.weight", "blk.0.ffn_up.weight": "blk.0.ffn_gate.weight"}
    return swapped.get(name, name)


@pytest.mark.parametrize("fault", ["q/k not in llama.cpp's rotary layout", "block 0's ffn_gate and ffn_up swapped"])
def test_a_broken_export_fails_the_comparison(fault: str, tuned, merged, iris_splits, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    base, model = tuned
    if fault.startswith("q/k"):
        monkeypatch.setattr(export, "llama_cpp_rotary_layout", lambda weight, heads: weight)
    else:
        monkeypatch.setattr(export, "gguf_name", swap_first_block_gate_and_up)
    path = write_gguf(merged, base.tokenizer, tmp_path / "broken.gguf", "q8_0")
    result = compare_gguf(path, model, base.tokenizer, prompts_of(iris_splits))
    assert result.agreement.problem() is not None, f"{fault}: passed the comparison, {result.agreement}"
    # the logit bound catches both; the swap keeps every Iris top-1 answer, which is why the bound exists
    assert result.agreement.relative_diff > 3 * Q8_0_LOGIT_RTOL, result.agreement
    if fault.startswith("q/k"):
        assert result.agreement.top1 < Q8_0_MIN_TOP1_AGREEMENT, result.agreement


def test_agreement_names_what_moved_and_by_how_much() -> None:
    reference = torch.tensor([[4.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    assert agreement(reference.clone(), reference).problem() is None
    flipped = agreement(torch.tensor([[1.0, 4.0, 0.0], [0.0, 2.0, 1.0]]), reference)
    assert flipped.top1 == 0.5 and flipped.flipped == [0] and flipped.max_logit_diff == 3.0
    assert flipped.problem() == ("top-1 token agreement 0.500 < 0.950 (changed on prompts [0]); logits moved by up "
                                 "to 75.0% of a prompt's largest logit > 10% (max |diff| 3)")
    with pytest.raises(ValueError, match="different prompts or vocabulary"):
        agreement(reference[:1], reference)


def llama3_style_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE split by Llama 3's regex, with BOS prepended, trained offline like Llama 3's."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(export.LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                             special_tokens=[("<|begin_of_text|>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|begin_of_text|>",
                                   eos_token="<|end_of_text|>", pad_token="<|end_of_text|>", padding_side="left")


def test_llama3_tokenizer_grouped_kv_heads_wide_heads_and_untied_output_round_trip(iris_splits, tmp_path: Path) -> None:
    texts = iris_splits.texts()
    tokenizer = llama3_style_tokenizer(texts)
    config = LlamaConfig(vocab_size=len(tokenizer) + 4, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    path = write_gguf(model, tokenizer, tmp_path / "llama3.gguf", "f32")
    fields = {name: field.contents() for name, field in gguf.GGUFReader(path).fields.items()}
    assert (fields["tokenizer.ggml.model"], fields["tokenizer.ggml.pre"]) == ("gpt2", "llama-bpe")
    assert GGUF_PRE_TOKENIZER_SPLITS["llama-bpe"] == export.LLAMA3_SPLIT, "the reader splits Llama 3 text otherwise"
    assert fields["tokenizer.ggml.tokens"][-1] == f"[PAD{config.vocab_size - 1}]", "embedding rows past the vocab"
    samples = texts[:40] + ["Ünïcode ~` 12345 don't", "  two  spaces\n\nnew line", ""]
    result = compare_gguf(path, model, tokenizer, texts[:40])
    assert result.tokenization_mismatches == []
    assert tokenization_mismatches(load_gguf(path)[1], tokenizer, samples) == []
    assert result.agreement.max_logit_diff <= F32_MAX_LOGIT_DIFF, result.agreement


def tiny_gemma3() -> Gemma3ForCausalLM:
    return Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=1, head_dim=16))


def tiny_encoder() -> BertForSequenceClassification:
    return BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=64))


def llama3_rope_scaling() -> LlamaForCausalLM:
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, rope_parameters=rope))


@pytest.mark.parametrize("build, expected", [
    (tiny_gemma3, r"Gemma3ForCausalLM \(model_type 'gemma3_text'\) is not a Llama-architecture causal LM"),
    (tiny_encoder, r"BertForSequenceClassification \(model_type 'bert'\) is not a Llama-architecture causal LM"),
    (llama3_rope_scaling, r"rope_type is 'llama3'"),
], ids=["gemma3", "encoder", "llama3-rope-scaling"])
def test_models_it_cannot_write_are_refused_with_what_to_do(build, expected: str, tuned, tmp_path: Path) -> None:
    base, _ = tuned
    with pytest.raises(ExportError, match=expected) as error:
        write_gguf(build(), base.tokenizer, tmp_path / "other.gguf")
    assert "save_merged" in str(error.value) and "convert_hf_to_gguf.py" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_tokenizer_it_cannot_represent_is_refused(merged, tmp_path: Path) -> None:
    tokenizer = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    wordpiece = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    with pytest.raises(ExportError, match=r"tokenizer model WordPiece.*pre-tokenizer Whitespace.*convert_hf_to_gguf"):
        write_gguf(merged, wordpiece, tmp_path / "wordpiece.gguf")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_gguf_write_leaves_no_file(tuned, merged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = tuned
    write_tensors = gguf.GGUFWriter.write_tensors_to_file

    def write_then_fail(writer: gguf.GGUFWriter, **kwargs) -> None:
        write_tensors(writer, **kwargs)  # the whole file is on disk, under its temporary name
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_gguf(merged, base.tokenizer, tmp_path / "iris.gguf")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_safetensors_export_leaves_no_directory(tuned, merged, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = tuned

    def fail(*args, **kwargs) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(base.tokenizer, "save_pretrained", fail)  # the model's files are written by then
    with pytest.raises(OSError, match="disk full"):
        save_merged(merged, base.tokenizer, tmp_path / "merged")
    assert list(tmp_path.iterdir()) == []
