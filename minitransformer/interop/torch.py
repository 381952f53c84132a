"""Copy weights between PyTorch modules and ours, both ways, and read torch's gradients under our names.

    from minitransformer.interop.torch import copy_to_torch, grads_from_torch, load_from_torch

    load_from_torch(ours, theirs)      # torch -> ours, in place
    copy_to_torch(ours, theirs)        # ours -> torch, in place
    grads_from_torch(theirs)           # {our parameter name: host array in our layout}

Supported pairs (torch -> ours):

    nn.Linear                   Linear              W = weight.T, b = bias
    nn.Embedding                Embedding           W = weight
    nn.LayerNorm                LayerNorm           gamma = weight, beta = bias
    nn.MultiheadAttention       MultiHeadAttention  W_q, W_k, W_v = in_proj_weight rows [0:d], [d:2d], [2d:3d], each .T;
                                                    b_q, b_k, b_v = in_proj_bias thirds; W_o = out_proj.weight.T
    nn.TransformerEncoderLayer  EncoderLayer        self_attn, ff.linear1 = linear1, ff.linear2 = linear2, norm1, norm2
    nn.TransformerDecoderLayer  DecoderLayer        self_attn, cross_attn = multihead_attn, ff.linear1/2, norm1..3
    nn.TransformerEncoder       Encoder             layers.i, norm (present on both sides or on neither)
    nn.TransformerDecoder       Decoder             layers.i, norm
    nn.Transformer              any module with .encoder (Encoder) and .decoder (Decoder), e.g. models.Transformer:
                                only those two are copied (nn.Transformer has no embeddings and no output layer),
                                and both need a final norm: build Encoder/Decoder(..., final_norm=True)

torch stores a Linear weight as (out, in) for ``x @ weight.T``; ours is (in, out) for ``x @ W``, hence the
transposes. Besides sizes, the pair must agree on everything that changes the output: n_heads, norm_first,
activation, LayerNorm eps and biases; a mismatch is an error that names both values. Dropout
probabilities and ``batch_first`` are not weights and are not compared (our layers are batch-first).

Values are cast to the destination's dtype and put on the destination's device; nothing is written
unless every shape fits (no half-copied model).
"""

from __future__ import annotations

try:
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    raise ImportError(
        f"minitransformer.interop.torch needs PyTorch, which is not importable ({e}); "
        "install it with: pip install -e '.[parity]'"
    ) from e

from typing import NamedTuple

from .. import backend
from ..nn.activations import GELU, ReLU
from ..nn.decoder import Decoder, DecoderLayer
from ..nn.embedding import Embedding
from ..nn.encoder import Encoder, EncoderLayer
from ..nn.layernorm import LayerNorm
from ..nn.linear import Linear
from ..nn.multihead import MultiHeadAttention

__all__ = ["ParamMapEntry", "copy_to_torch", "grads_from_torch", "load_from_torch", "param_map"]

nn = torch.nn


class ParamMapEntry(NamedTuple):
    """One of our parameters and where it lives in the torch module."""

    name: str  # our dotted name, relative to the module passed in ("layers.0.self_attn.W_q")
    torch_name: str  # torch's dotted name, for messages ("layers.0.self_attn.in_proj_weight[0:8]")
    tensor: object  # the torch Parameter holding it (the whole packed tensor for in_proj)
    rows: slice | None  # the rows of ``tensor`` that are ours (in_proj packs q, k, v), or None for all
    transpose: bool  # ours = theirs.T (Linear layout)
    param: object  # our Parameter, or None when mapping the torch module alone


def _where(name: str) -> str:
    """A prefix like ``layers.0.`` as a path for messages: ``layers.0`` (``<root>`` for the module itself)."""
    return name.rstrip(".") or "<root>"


def _fail(name: str, what: str, ours, theirs):
    raise ValueError(f"{_where(name)}: {what} differs: ours {ours!r}, torch {theirs!r}")


def _expect(ours, cls, theirs, name: str) -> None:
    if ours is not None and not isinstance(ours, cls):
        raise TypeError(f"{_where(name)}: torch {type(theirs).__name__} pairs with our {cls.__name__}, "
                        f"got {type(ours).__name__}")


def _get(ours, attr: str):
    """``ours.attr`` (a Parameter or a child module), or None when mapping the torch side alone."""
    return None if ours is None else getattr(ours, attr)


def _linear(theirs, ours, name, tname):
    _expect(ours, Linear, theirs, name)
    if ours is not None and (ours.b is None) != (theirs.bias is None):
        _fail(name, "bias", ours.b is not None, theirs.bias is not None)
    entries = [ParamMapEntry(name + "W", tname + "weight", theirs.weight, None, True, _get(ours, "W"))]
    if theirs.bias is not None:
        entries.append(ParamMapEntry(name + "b", tname + "bias", theirs.bias, None, False, _get(ours, "b")))
    return entries


def _embedding(theirs, ours, name, tname):
    _expect(ours, Embedding, theirs, name)
    if theirs.padding_idx is not None or theirs.max_norm is not None or theirs.scale_grad_by_freq:
        raise ValueError(f"{_where(name)}: nn.Embedding with padding_idx, max_norm or scale_grad_by_freq is "
                         "not supported (ours has none of them: gradients or outputs would differ)")
    return [ParamMapEntry(name + "W", tname + "weight", theirs.weight, None, False, _get(ours, "W"))]


def _layernorm(theirs, ours, name, tname):
    _expect(ours, LayerNorm, theirs, name)
    if theirs.weight is None or theirs.bias is None or len(theirs.normalized_shape) != 1:
        raise ValueError(f"{_where(name)}: only nn.LayerNorm over the last axis with weight and bias is "
                         f"supported, got normalized_shape={tuple(theirs.normalized_shape)}, "
                         f"elementwise_affine={theirs.weight is not None}, bias={theirs.bias is not None}")
    if ours is not None and float(ours.eps) != float(theirs.eps):
        _fail(name, "LayerNorm eps", ours.eps, theirs.eps)
    return [ParamMapEntry(name + "gamma", tname + "weight", theirs.weight, None, False, _get(ours, "gamma")),
            ParamMapEntry(name + "beta", tname + "bias", theirs.bias, None, False, _get(ours, "beta"))]


def _mha(theirs, ours, name, tname):
    _expect(ours, MultiHeadAttention, theirs, name)
    if not theirs._qkv_same_embed_dim or theirs.bias_k is not None or theirs.add_zero_attn:
        raise ValueError(f"{_where(name)}: nn.MultiheadAttention with kdim/vdim != embed_dim, add_bias_kv or "
                         "add_zero_attn is not supported (ours projects d_model -> d_model, without extra keys)")
    if ours is not None:
        if ours.n_heads != theirs.num_heads:
            _fail(name, "n_heads", ours.n_heads, theirs.num_heads)
        if (ours.b_q is None) != (theirs.in_proj_bias is None):
            _fail(name, "bias", ours.b_q is not None, theirs.in_proj_bias is not None)
    d = theirs.embed_dim
    entries = []
    for k, c in enumerate("qkv"):
        rows, at = slice(k * d, (k + 1) * d), f"[{k * d}:{(k + 1) * d}]"
        entries.append(ParamMapEntry(f"{name}W_{c}", f"{tname}in_proj_weight{at}", theirs.in_proj_weight, rows,
                                     True, _get(ours, f"W_{c}")))
        if theirs.in_proj_bias is not None:
            entries.append(ParamMapEntry(f"{name}b_{c}", f"{tname}in_proj_bias{at}", theirs.in_proj_bias, rows,
                                         False, _get(ours, f"b_{c}")))
    o = _linear(theirs.out_proj, None, name, tname + "out_proj.")  # W, b -> rename to W_o, b_o
    return entries + [e._replace(name=e.name + "_o", param=_get(ours, e.name[len(name):] + "_o")) for e in o]


def _activation_name(act) -> str | None:
    """Canonical name of a torch or our activation ("relu", "gelu", "gelu_tanh"), None if unknown."""
    if act is torch.nn.functional.relu or isinstance(act, (nn.ReLU, ReLU)):
        return "relu"
    if act is torch.nn.functional.gelu:
        return "gelu"
    if isinstance(act, (nn.GELU, GELU)):
        return "gelu" if act.approximate == "none" else "gelu_tanh"
    return None


def _check_layer(theirs, ours, name) -> None:
    """What an encoder/decoder layer pair must share besides weights: norm_first and the activation."""
    theirs_act = _activation_name(theirs.activation)
    if theirs_act is None:
        raise ValueError(f"{_where(name)}: unsupported torch activation {theirs.activation!r} "
                         "(ours has relu, gelu, gelu_tanh)")
    if ours is not None:
        if bool(ours.norm_first) != bool(theirs.norm_first):
            _fail(name, "norm_first", ours.norm_first, theirs.norm_first)
        if _activation_name(ours.ff.activation) != theirs_act:
            _fail(name, "activation", _activation_name(ours.ff.activation), theirs_act)


def _feedforward(theirs, ours, name, tname):
    ff = _get(ours, "ff")
    return (_map(theirs.linear1, _get(ff, "linear1"), name + "ff.linear1.", tname + "linear1.")
            + _map(theirs.linear2, _get(ff, "linear2"), name + "ff.linear2.", tname + "linear2."))


def _encoder_layer(theirs, ours, name, tname):
    _expect(ours, EncoderLayer, theirs, name)
    _check_layer(theirs, ours, name)
    return (_map(theirs.self_attn, _get(ours, "self_attn"), name + "self_attn.", tname + "self_attn.")
            + _feedforward(theirs, ours, name, tname)
            + _map(theirs.norm1, _get(ours, "norm1"), name + "norm1.", tname + "norm1.")
            + _map(theirs.norm2, _get(ours, "norm2"), name + "norm2.", tname + "norm2."))


def _decoder_layer(theirs, ours, name, tname):
    _expect(ours, DecoderLayer, theirs, name)
    _check_layer(theirs, ours, name)
    return (_map(theirs.self_attn, _get(ours, "self_attn"), name + "self_attn.", tname + "self_attn.")
            + _map(theirs.multihead_attn, _get(ours, "cross_attn"), name + "cross_attn.", tname + "multihead_attn.")
            + _feedforward(theirs, ours, name, tname)
            + _map(theirs.norm1, _get(ours, "norm1"), name + "norm1.", tname + "norm1.")
            + _map(theirs.norm2, _get(ours, "norm2"), name + "norm2.", tname + "norm2.")
            + _map(theirs.norm3, _get(ours, "norm3"), name + "norm3.", tname + "norm3."))


def _stack(cls):
    """Mapper of nn.TransformerEncoder / nn.TransformerDecoder to our Encoder / Decoder."""

    def mapper(theirs, ours, name, tname):
        _expect(ours, cls, theirs, name)
        if ours is not None:
            if len(ours.layers) != len(theirs.layers):
                _fail(name, "number of layers", len(ours.layers), len(theirs.layers))
            if (ours.norm is None) != (theirs.norm is None):
                raise ValueError(
                    f"{_where(name)}: final norm differs: ours {'has one' if ours.norm else 'has none'}, torch "
                    f"{'has one' if theirs.norm is not None else 'has none'} (build {cls.__name__}(..., "
                    f"final_norm={theirs.norm is not None}))")
        entries = []
        for i, layer in enumerate(theirs.layers):
            child = None if ours is None else ours.layers[i]
            entries += _map(layer, child, f"{name}layers.{i}.", f"{tname}layers.{i}.")
        if theirs.norm is not None:
            entries += _map(theirs.norm, _get(ours, "norm"), name + "norm.", tname + "norm.")
        return entries

    return mapper


def _transformer(theirs, ours, name, tname):
    if ours is not None and not (isinstance(getattr(ours, "encoder", None), Encoder)
                                 and isinstance(getattr(ours, "decoder", None), Decoder)):
        raise TypeError(f"{_where(name)}: torch Transformer pairs with a module that has .encoder (Encoder) and "
                        f".decoder (Decoder), such as models.Transformer; got {type(ours).__name__}")
    return (_map(theirs.encoder, _get(ours, "encoder"), name + "encoder.", tname + "encoder.")
            + _map(theirs.decoder, _get(ours, "decoder"), name + "decoder.", tname + "decoder."))


# Order matters only for subclasses: out_proj's NonDynamicallyQuantizableLinear is an nn.Linear.
_MAPPERS = [
    (nn.Transformer, _transformer),
    (nn.TransformerEncoder, _stack(Encoder)),
    (nn.TransformerDecoder, _stack(Decoder)),
    (nn.TransformerEncoderLayer, _encoder_layer),
    (nn.TransformerDecoderLayer, _decoder_layer),
    (nn.MultiheadAttention, _mha),
    (nn.LayerNorm, _layernorm),
    (nn.Embedding, _embedding),
    (nn.Linear, _linear),
]


def _map(theirs, ours, name: str, tname: str) -> list[ParamMapEntry]:
    for cls, mapper in _MAPPERS:
        if isinstance(theirs, cls):
            return mapper(theirs, ours, name, tname)
    supported = ", ".join(f"nn.{cls.__name__}" for cls, _ in _MAPPERS)
    raise TypeError(f"{tname.rstrip('.') or '<root>'}: unsupported torch module {type(theirs).__name__} "
                    f"(supported: {supported})")


def param_map(ours, theirs) -> list[ParamMapEntry]:
    """Every parameter of the pair: our name and Parameter, torch's tensor, rows and layout.

    Args:
        ours: our Module (or None to map the torch module alone; then ``param`` is None).
        theirs: a supported ``torch.nn`` module.
    Raises:
        TypeError for an unsupported torch module or a wrong partner type; ValueError when the
        pair differs in structure or in an option that changes the output.
    """
    return _map(theirs, ours, "", "")


def _theirs_as_ours(e: ParamMapEntry, t):
    """A torch tensor (``e.tensor`` or its ``.grad``) cut and laid out like ours, as a torch tensor."""
    t = t.detach()
    if e.rows is not None:
        t = t[e.rows]  # (d_model, ...) one of q, k, v
    return t.T if e.transpose else t


def _check_shapes(entries) -> None:
    """All shapes first, so that a mismatch writes nothing."""
    bad = []
    for e in entries:
        want = tuple(e.param.data.shape)
        got = tuple(_theirs_as_ours(e, e.tensor).shape)
        if want != got:
            own = tuple(reversed(got))  # torch's own layout of the (cut) tensor
            layout = f"{own}, transposed to {got}" if e.transpose else f"{got}"
            bad.append(f"{e.name}: ours has shape {want}, torch {e.torch_name} has shape {layout}")
    if bad:
        raise ValueError("shapes do not match:\n  " + "\n  ".join(bad))


def load_from_torch(ours, theirs) -> None:
    """Copy every weight of the torch module ``theirs`` into our module ``ours`` (in place).

    Values are cast to each of our parameters' dtype and put on its device. See the module
    docstring for the supported pairs and layouts.
    """
    entries = param_map(ours, theirs)
    _check_shapes(entries)
    for e in entries:
        host = _theirs_as_ours(e, e.tensor).to(device="cpu", dtype=torch.float64).numpy()  # (*our shape)
        xp = backend.get_array_module(e.param.data)
        e.param.data[...] = xp.asarray(host, dtype=e.param.data.dtype)  # in place: ties and views stay


def copy_to_torch(ours, theirs) -> None:
    """Copy every weight of our module ``ours`` into the torch module ``theirs`` (in place, no autograd).

    Values are cast to each torch parameter's dtype and device.
    """
    entries = param_map(ours, theirs)
    _check_shapes(entries)
    with torch.no_grad():
        for e in entries:
            src = torch.from_numpy(backend.to_numpy(e.param.data))  # (*our shape), on the host
            _theirs_as_ours(e, e.tensor).copy_(src)  # a view of e.tensor: writes the torch parameter


def grads_from_torch(theirs) -> dict:
    """The parameter gradients of a torch module, under our names and in our layouts.

    A parameter whose ``.grad`` is None (no gradient reached it) gives zeros.

    Returns:
        ``{our dotted name: host NumPy array}``, in torch's dtype; names as ``named_parameters()`` of
        the matching module of ours (``encoder.layers.0.self_attn.W_q`` ... for nn.Transformer).
    Raises:
        RuntimeError when no parameter has a gradient (backward was not run).
    """
    entries = param_map(None, theirs)
    if all(e.tensor.grad is None for e in entries):
        raise RuntimeError(f"grads_from_torch: no parameter of the torch {type(theirs).__name__} has a gradient; "
                           "run backward first")
    out = {}
    for e in entries:
        g = e.tensor.grad if e.tensor.grad is not None else torch.zeros_like(e.tensor)
        out[e.name] = _theirs_as_ours(e, g).to("cpu").clone().numpy()  # a copy: later backwards do not change it
    return out
