"""The tiny base and its fingerprint, the pad policy, and load errors that name the base and the fix."""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

import loragate.models.bases as models
from loragate.models.bases import (
    ModelLoadError,
    build_tiny_causal,
    fingerprint,
    load_causal,
    load_encoder,
    state_fingerprint,
    train_tokenizer,
)


def load(path: Path):
    return load_causal(str(path), "cpu", torch.float32)


def test_same_seed_same_fingerprint_other_seed_other(tmp_path: Path, iris, iris_splits, tiny_dir: Path) -> None:
    spec = iris.card.tier("tiny").tiny_base
    build_tiny_causal(spec, iris_splits.texts(), tmp_path / "again")
    build_tiny_causal(spec.model_copy(update={"seed": spec.seed + 1}), iris_splits.texts(), tmp_path / "other")
    first, again, other = load(tiny_dir), load(tmp_path / "again"), load(tmp_path / "other")
    assert first.fingerprint == again.fingerprint, "rebuilding with the same seed changed the weights"
    assert first.fingerprint != other.fingerprint, "a different seed gave the same weights"
    assert (tiny_dir / "tokenizer.json").read_bytes() == (tmp_path / "again" / "tokenizer.json").read_bytes()


def test_saved_base_reloads_equal_through_auto_classes(iris, iris_splits, tiny_dir: Path) -> None:
    spec = iris.card.tier("tiny").tiny_base
    torch.manual_seed(spec.seed)
    rebuilt = LlamaForCausalLM(AutoConfig.from_pretrained(tiny_dir))
    reloaded = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert fingerprint(reloaded) == fingerprint(rebuilt) == load(tiny_dir).fingerprint
    trained = train_tokenizer(iris_splits.texts(), spec.vocab_size)
    prompt = iris_splits.test[0].prompt + iris_splits.test[0].target
    assert AutoTokenizer.from_pretrained(tiny_dir)(prompt).input_ids == trained(prompt).input_ids


def test_state_fingerprint_covers_names_values_and_scalars() -> None:
    one = {"w": torch.ones(2, 3), "scale": torch.tensor(2.0)}  # a 0-dim tensor must hash, not crash
    assert state_fingerprint(one) == state_fingerprint({k: v.clone() for k, v in one.items()})
    assert state_fingerprint(one) != state_fingerprint({**one, "scale": torch.tensor(3.0)})
    assert state_fingerprint(one) != state_fingerprint({"w2": one["w"], "scale": one["scale"]})
    assert state_fingerprint(one) != state_fingerprint({**one, "w": torch.ones(3, 2)}), "shape must count"


def test_state_fingerprint_is_the_one_stored_manifests_hold() -> None:
    """Manifests and the store's base checks keep fingerprints: hashing the arrays in place of copies of their bytes
    must give the same digest (fp32, bf16, 0-dim, empty)."""
    state = {"w": torch.arange(6.0).reshape(3, 2), "half": torch.arange(4).to(torch.bfloat16),
             "scale": torch.tensor(2.0), "empty": torch.zeros(0)}
    assert state_fingerprint(state) == "70c0454ab64b33045a7686cb0e4f4ddc4e759b21fc892a40a551a7c183374a35"


def test_tokenizer_pads_left_and_prepends_bos(tiny_dir: Path, iris_splits) -> None:
    base = load(tiny_dir)
    tok = base.tokenizer
    short, long = "Species:", iris_splits.test[0].prompt
    enc = tok([short, long], padding=True)
    pad = len(enc.input_ids[1]) - len(tok(short).input_ids)
    assert pad > 0 and enc.attention_mask[0] == [0] * pad + [1] * (len(enc.input_ids[0]) - pad), enc.attention_mask
    assert enc.input_ids[0][:pad] == [tok.pad_token_id] * pad, f"expected {pad} left pads: {enc.input_ids[0]}"
    assert enc.input_ids[0][pad] == enc.input_ids[1][0] == tok.bos_token_id, f"no BOS first: {enc.input_ids}"
    assert base.pad_policy == "tokenizer's own pad token" and tok.pad_token_id != tok.eos_token_id


def test_tokenizer_without_pad_pads_with_eos(tmp_path: Path, tiny_dir: Path) -> None:
    no_pad = tmp_path / "no-pad"
    shutil.copytree(tiny_dir, no_pad)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.pad_token = None
    tok.save_pretrained(no_pad)
    base = load(no_pad)
    assert base.pad_policy == "pad = EOS (tokenizer has no pad token)", base.pad_policy
    assert base.tokenizer.pad_token_id == base.tokenizer.eos_token_id
    assert base.tokenizer.padding_side == "left"


def test_a_base_that_cannot_be_loaded_names_itself_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="--base-model PATH") as error:
        load(tmp_path / "no-such-model")
    assert str(tmp_path / "no-such-model") in str(error.value)


@pytest.mark.parametrize("loader, what", [
    (lambda name: load_causal(name, "cpu", torch.float32), "base model"),
    (lambda name: load_encoder(name, "sequence_classification", ["a", "b"], "cpu", torch.float32), "encoder"),
])
def test_a_hub_id_fails_fast_without_network_when_hf_hub_offline_is_unset(monkeypatch: pytest.MonkeyPatch, loader,
                                                                         what: str) -> None:
    """HF_HUB_OFFLINE unset and no network: a hub id cost ~50 s of retries before the error. The probe says at once
    that the hub does not answer (replaced here: no test touches the network) and only the cache is read."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "hub_reachable", lambda: False)

    def no_network(*args, **kwargs):
        raise AssertionError("the load tried the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    started = time.perf_counter()
    endpoint = re.escape(huggingface_hub.constants.ENDPOINT)
    with pytest.raises(ModelLoadError, match=rf"cannot load {what} 'nobody/no-such-model'.*\("
                                             rf"{endpoint} did not answer within 3 s, "
                                             rf"so only the local cache was read\)"):
        loader("nobody/no-such-model")
    assert time.perf_counter() - started < 5


def test_a_path_is_never_probed_on_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a valid hub id costs the probe: a missing local path fails at once, with no request."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "hub_reachable", lambda: pytest.fail("a local path was probed on the hub"))
    with pytest.raises(ModelLoadError, match="cannot load base model"):
        load(tmp_path / "no-such-model")


@pytest.mark.parametrize("answers", [True, False])
def test_the_hub_probe_is_one_quick_request_through_huggingface_hubs_session(monkeypatch: pytest.MonkeyPatch,
                                                                            answers: bool) -> None:
    requests = []

    class Session:  # huggingface_hub's session, which carries its endpoint, proxy and certificate settings
        def head(self, url: str, timeout: float) -> None:
            requests.append((url, timeout))
            if not answers:
                raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub.utils, "get_session", Session)
    assert models.hub_reachable() is answers
    assert requests == [(huggingface_hub.constants.ENDPOINT, models.HUB_PROBE_TIMEOUT_S)]


def test_a_pickle_only_base_is_not_loaded(tmp_path: Path, tiny_dir: Path) -> None:
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_dir, pickled)
    weights = AutoModelForCausalLM.from_pretrained(tiny_dir).state_dict()
    (pickled / "model.safetensors").unlink()
    torch.save(weights, pickled / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot load base model"):
        load(pickled)
