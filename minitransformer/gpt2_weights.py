"""Hugging Face GPT-2 folders (config.json + model.safetensors) read into our GPT and written back, no pickle.

    from minitransformer.gpt2_weights import from_pretrained, save_pretrained

    model = from_pretrained("gpt2-folder")     # a GPT in eval mode: same logits as transformers' GPT2LMHeadModel
    save_pretrained(model, "my-gpt")          # transformers.GPT2LMHeadModel.from_pretrained("my-gpt") loads it

Layout. GPT-2 computes its projections with ``Conv1D``, whose ``weight`` is (in, out) for
``x @ weight + bias``: exactly our ``x @ W + b``, so no weight is transposed. The query, key and
value projections are fused in one ``c_attn`` (d_model, 3 d_model) = [W_q | W_k | W_v] along the
output axis; we split it into three and concatenate them back when saving.

    wte.weight                          -> token_embedding.W          (the head is tied to it)
    wpe.weight                          -> position_embedding.W
    h.{i}.ln_1.weight / bias            -> layers.{i}.norm1.gamma / beta
    h.{i}.attn.c_attn.weight / bias     -> layers.{i}.self_attn.W_q|W_k|W_v / b_q|b_k|b_v   (split)
    h.{i}.attn.c_proj.weight / bias     -> layers.{i}.self_attn.W_o / b_o
    h.{i}.ln_2.weight / bias            -> layers.{i}.norm2.gamma / beta
    h.{i}.mlp.c_fc.weight / bias        -> layers.{i}.ff.linear1.W / b
    h.{i}.mlp.c_proj.weight / bias      -> layers.{i}.ff.linear2.W / b
    ln_f.weight / bias                  -> norm.gamma / beta

Keys may carry the ``transformer.`` prefix (GPT2LMHeadModel's save_pretrained) or not (the original
gpt2 upload). ``lm_head.weight``, when present, must equal ``wte.weight`` (the model ties them);
the ``h.{i}.attn.bias`` / ``attn.masked_bias`` buffers of old checkpoints (causal masks, not weights)
are ignored. Anything else missing or unexpected is an error listing every key, as a strict load.

The file reading (checked safetensors headers, shards, refusal of pickles) is ``pretrained.py``'s.

Ref: Radford et al. 2019, GPT-2; https://huggingface.co/docs/transformers/model_doc/gpt2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import backend
from .fileio import atomic_write
from .models.gpt import GPT, GPTConfig
from .pretrained import CONFIG_NAME, WEIGHTS_NAME, _check_folder, read_weights, save_safetensors

__all__ = ["config_from_hf", "from_pretrained", "hf_config", "hf_to_ours", "name_map", "ours_to_hf",
           "read_config", "save_pretrained"]

PREFIX = "transformer."
TIED_HEAD = "lm_head.weight"
IGNORED_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
# Hugging Face activation_function -> ours, and back
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
TO_HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
# config.json options that change the model: only these values are implemented
FIXED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
         "tie_word_embeddings": True}
# GPT2Config's defaults, used (as transformers does) for sizes a config.json leaves out
HF_DEFAULTS = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
               "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1,
               "layer_norm_epsilon": 1e-5}


def config_from_hf(d: dict) -> GPTConfig:
    """Our GPTConfig from a GPT-2 ``config.json`` dict (HF names: n_embd, n_head, n_layer, ...).

    Raises ValueError for another ``model_type``, an unknown activation, or an option this GPT does not
    implement (unscaled or layer-scaled attention, cross-attention, an untied head). Dropout: ``resid_pdrop``
    (GPT-2 uses the same 0.1 for resid_pdrop, embd_pdrop and attn_pdrop; it plays no part in eval mode).
    """
    model_type = d.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"config is for model_type={model_type!r}, not 'gpt2'")
    for key, value in FIXED.items():
        if key in d and d[key] != value:
            raise ValueError(f"config sets {key}={d[key]!r}; this GPT implements only {key}={value!r}")
    d = {**HF_DEFAULTS, **{k: v for k, v in d.items() if v is not None or k != "n_inner"}}
    if d["activation_function"] not in HF_ACTIVATIONS:
        raise ValueError(f"config activation_function={d['activation_function']!r} is not one of "
                         f"{sorted(HF_ACTIVATIONS)}")
    n_embd = d["n_embd"]
    return GPTConfig(vocab_size=d["vocab_size"], max_len=d["n_positions"], d_model=n_embd, n_heads=d["n_head"],
                     n_layers=d["n_layer"], d_ff=4 * n_embd if d["n_inner"] is None else d["n_inner"],
                     dropout=float(d["resid_pdrop"]), layer_norm_eps=float(d["layer_norm_epsilon"]),
                     activation=HF_ACTIVATIONS[d["activation_function"]])


def hf_config(config: GPTConfig, dtype="float32", eos_token_id: int | None = None) -> dict:
    """``config.json`` contents in transformers' GPT2Config names (model_type "gpt2", GPT2LMHeadModel).

    ``eos_token_id`` (also written as bos_token_id) defaults to GPT-2's 50256 when the vocabulary has it,
    else null.
    """
    eos = eos_token_id if eos_token_id is not None else (50256 if config.vocab_size > 50256 else None)
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": config.vocab_size,
            "n_positions": config.max_len, "n_embd": config.d_model, "n_layer": config.n_layers,
            "n_head": config.n_heads, "n_inner": config.d_ff,
            "activation_function": TO_HF_ACTIVATION[config.activation], "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
            "layer_norm_epsilon": config.layer_norm_eps, "initializer_range": 0.02, "tie_word_embeddings": True,
            "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": str(backend.dtype(dtype))}


def name_map(n_layers: int) -> list[tuple[str, tuple[str, ...]]]:
    """(HF name without prefix, our names) for every GPT-2 weight; three names = split along the last axis."""
    entries = [("wte.weight", ("token_embedding.W",)), ("wpe.weight", ("position_embedding.W",))]
    for i in range(n_layers):
        h, o = f"h.{i}.", f"layers.{i}."
        a = o + "self_attn."
        entries += [
            (h + "ln_1.weight", (o + "norm1.gamma",)), (h + "ln_1.bias", (o + "norm1.beta",)),
            (h + "attn.c_attn.weight", (a + "W_q", a + "W_k", a + "W_v")),
            (h + "attn.c_attn.bias", (a + "b_q", a + "b_k", a + "b_v")),
            (h + "attn.c_proj.weight", (a + "W_o",)), (h + "attn.c_proj.bias", (a + "b_o",)),
            (h + "ln_2.weight", (o + "norm2.gamma",)), (h + "ln_2.bias", (o + "norm2.beta",)),
            (h + "mlp.c_fc.weight", (o + "ff.linear1.W",)), (h + "mlp.c_fc.bias", (o + "ff.linear1.b",)),
            (h + "mlp.c_proj.weight", (o + "ff.linear2.W",)), (h + "mlp.c_proj.bias", (o + "ff.linear2.b",)),
        ]
    return entries + [("ln_f.weight", ("norm.gamma",)), ("ln_f.bias", ("norm.beta",))]


def hf_to_ours(state: dict, model: GPT) -> dict:
    """Rename (and split) a GPT-2 state dict into ``model``'s parameter names, strictly.

    Args:
        state: ``{HF name: array}``, with or without the ``transformer.`` prefix.
        model: our GPT (only its names and shapes are read).
    Returns:
        ``{our name: array}`` for ``model.load_state_dict`` (c_attn split into views).
    Raises:
        ValueError listing every missing key, unexpected key and shape mismatch, or an lm_head.weight that
        differs from wte.weight.

    Math:
        [W_q | W_k | W_v] = c_attn.weight   (d_model, 3 d_model), split along the output axis
    """
    given = {}  # name without prefix -> (key as in the file, array)
    for key, value in state.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        if name in given:
            raise ValueError(f"the checkpoint names {name!r} twice ({given[name][0]!r} and {key!r})")
        given[name] = (key, value)
    params = dict(model.named_parameters())
    ours, missing, bad = {}, [], []
    used = {name for name in given if IGNORED_BUFFER.match(name)}
    for hf, names in name_map(model.config.n_layers):
        if hf not in given:
            missing.append(hf)
            continue
        used.add(hf)
        key, a = given[hf]
        shapes = [tuple(params[n].shape) for n in names]
        expected = (*shapes[0][:-1], sum(s[-1] for s in shapes))  # the parts side by side on the last axis
        if tuple(a.shape) != expected:
            bad.append(f"{key!r}: checkpoint has shape {tuple(a.shape)}, model expects {expected}")
            continue
        start = 0
        for n, s in zip(names, shapes, strict=True):
            ours[n] = a[..., start:start + s[-1]]  # (..., part)  W_q, W_k, W_v (or the whole array)
            start += s[-1]
    if TIED_HEAD in given:
        used.add(TIED_HEAD)
        (key, head), ref = given[TIED_HEAD], given.get("wte.weight", (None, None))[1]
        if ref is not None and (tuple(head.shape) != tuple(ref.shape) or not bool((head == ref).all())):
            bad.append(f"{key!r} differs from wte.weight, but this GPT ties the head to the token embedding")
    unexpected = sorted(key for name, (key, _) in given.items() if name not in used)
    if missing or unexpected or bad:
        parts = [f"missing keys {missing}" if missing else "", f"unexpected keys {unexpected}" if unexpected else "",
                 "shape mismatches: " + "; ".join(bad) if bad else ""]
        raise ValueError("checkpoint does not match GPT: " + ", ".join(p for p in parts if p))
    return ours


def ours_to_hf(arrays: dict, n_layers: int, prefix: str = PREFIX) -> dict:
    """``{our name: array}`` (a state_dict, or the gradients) under GPT-2 names, c_attn concatenated.

    Returns:
        ``{prefix + HF name: host array}``, C-contiguous; the tied head is not written (as transformers).
    """
    out = {}
    for hf, names in name_map(n_layers):
        parts = [backend.to_numpy(arrays[n]) for n in names]  # host arrays
        whole = backend.get_array_module(parts[0]).concatenate(parts, axis=-1)  # (..., sum of parts)  a copy
        out[prefix + hf] = whole
    return out


def read_config(folder) -> dict:
    """``config.json`` of a folder as a dict (a JSON object), with a clear error naming the file."""
    path = _check_folder(folder) / CONFIG_NAME
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, nesting too deep
        raise ValueError(f"{path} is not valid UTF-8 JSON ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} holds a JSON {type(d).__name__}, not an object")
    return d


def from_pretrained(folder, dtype="float32") -> GPT:
    """Build a GPT from a Hugging Face GPT-2 folder (config.json + model.safetensors), in eval mode.

    Args:
        folder: the model folder (e.g. written by transformers' ``GPT2LMHeadModel.save_pretrained``).
        dtype: "float32" (default) or "float64" for the parameters.
    Returns:
        the GPT, weights loaded, ``model.eval()`` applied.
    """
    folder = _check_folder(folder)
    try:
        config = config_from_hf(read_config(folder))
    except (TypeError, ValueError) as e:  # another model type, unknown options, bad sizes: name the file
        raise ValueError(f"{folder / CONFIG_NAME}: {e}") from None
    state = read_weights(folder)  # checked safetensors headers; pickles refused
    model = GPT(config, dtype=dtype)
    try:
        ours = hf_to_ours(state, model)
    except ValueError as e:
        raise ValueError(f"{folder / WEIGHTS_NAME}: {e}") from None
    model.load_state_dict(ours)
    return model.eval()


def save_pretrained(model: GPT, folder, tokenizer=None, eos_token_id: int | None = None) -> Path:
    """Write ``model`` as a GPT-2 folder that transformers' ``GPT2LMHeadModel.from_pretrained`` (and ours) loads.

    ``model.safetensors`` (``transformer.``-prefixed GPT-2 names, Conv1D layout) and ``config.json``, each
    atomically, config last; with a ``tokenizer``, its ``save(folder)`` writes its files too.

    Returns:
        the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = model.token_embedding.W.dtype
    save_safetensors(ours_to_hf(model.state_dict(), model.config.n_layers), folder / WEIGHTS_NAME,
                     metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save(folder)
    with atomic_write(folder / CONFIG_NAME, "w") as f:
        f.write(json.dumps(hf_config(model.config, dtype, eos_token_id), indent=2, sort_keys=True) + "\n")
    return folder
