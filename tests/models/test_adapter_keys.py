"""Which of a PeftModel's parameters belong to one named adapter, and their names in its saved file: read at peft's
own place in the key (`.lora_A.<name>`, `.modules_to_save.<name>.`), whatever the name."""

from __future__ import annotations

from loragate.models.parameters import lora_of, saved_key

KEY = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.{}.weight"


def test_an_adapter_named_like_a_module_of_the_base_claims_only_its_own_weights() -> None:
    assert saved_key(KEY.format("model"), "model") == KEY.replace(".{}", "")
    assert saved_key(KEY.format("other"), "model") is None
    assert not lora_of(KEY.format("other"), "q_proj") and not lora_of(KEY.format("other"), "layers")
    assert lora_of(KEY.format("q_proj"), "q_proj")


def test_saved_names_drop_the_adapter_name_at_its_place() -> None:
    assert saved_key("m.embed.lora_embedding_A.r8", "r8") == "m.embed.lora_embedding_A"
    assert saved_key("m.score.modules_to_save.r8.weight", "r8") == "m.score.weight"
    assert saved_key("m.score.original_module.weight", "r8") is None
    assert not lora_of(KEY.format("r8"), "r")
