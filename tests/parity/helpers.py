"""Shared pieces of the parity tests: the pairs, the tolerances, one forward+backward runner, the worst-error log.

Every comparison uses ``gradcheck.rel_error`` (normwise: max|a - b| / (max|a| + max|b|)) with the bound of
the dtype: 1e-10 in float64, 1e-5 in float32.

One documented exception: the attention key bias ``b_k``. Its true gradient is exactly zero (it adds
q_i . b_k to every score of row i, and softmax ignores a constant added to a whole row), so both sides hold
rounding noise and their ratio means nothing. ``b_k`` is compared on an absolute bound instead:
max|ours - torch| <= tol * (largest gradient entry of the module).
"""

from __future__ import annotations

import warnings

import numpy as np

from minitransformer import backend
from minitransformer.gradcheck import rel_error
from minitransformer.nn.decoder import Decoder, DecoderLayer
from minitransformer.nn.embedding import Embedding
from minitransformer.nn.encoder import Encoder, EncoderLayer
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.module import Module
from minitransformer.nn.multihead import MultiHeadAttention

TOL = {"float64": 1e-10, "float32": 1e-5}
DTYPES = ("float64", "float32")
KINDS = ("Linear", "Embedding", "LayerNorm", "MultiheadAttention", "TransformerEncoderLayer",
         "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder", "Transformer")
VOCAB_SIZE = 11

# (check, dtype) -> (worst error, "tensor [case]", bound), filled as the tests run; printed by conftest.py
WORST: dict[tuple[str, str], tuple[float, str, float]] = {}


class EncoderDecoder(Module):
    """Our side of nn.Transformer: encoder then decoder, no embeddings (test-only)."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, src, tgt, src_key_padding_mask=None, tgt_key_padding_mask=None):
        """src: (B, S, d_model), tgt: (B, T, d_model) -> (B, T, d_model); the decoder is causal."""
        memory = self.encoder(src, key_padding_mask=src_key_padding_mask)  # (B, S, d_model)
        self._cache = ()
        return self.decoder(tgt, memory, tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=src_key_padding_mask)  # (B, T, d_model)

    def backward(self, dy):
        """dy: (B, T, d_model) -> (dsrc (B, S, d_model), dtgt (B, T, d_model))."""
        self._pop_cache()
        dtgt, dmemory = self.decoder.backward(dy)  # inverts y = decoder(tgt, memory)
        dsrc = self.encoder.backward(dmemory)  # inverts memory = encoder(src)
        return dsrc, dtgt


def torch_dtype(torch, dtype: str):
    return {"float64": torch.float64, "float32": torch.float32}[dtype]


def make_pair(torch, kind: str, dtype: str, *, d: int = 8, n_heads: int = 2, d_ff: int = 16, n_layers: int = 2,
              norm_first: bool = False, activation: str = "relu", final_norm: bool = True, bias: bool = True):
    """A fresh (ours, theirs) pair of ``kind`` in ``dtype``, same sizes, weights NOT yet copied.

    torch is seeded, so ``theirs`` is the same on every call; its biases and LayerNorms are randomized
    (see ``randomize_torch``) so that a swapped or dropped bias shows.
    """
    nn = torch.nn
    torch.manual_seed(0)
    layer = dict(dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first)
    ours_layer = dict(dropout=0.0, activation=activation, norm_first=norm_first, dtype=dtype)
    with warnings.catch_warnings():  # nn.Transformer warns that pre-LN disables its nested-tensor fast path
        warnings.simplefilter("ignore", UserWarning)
        if kind == "Linear":
            pair = Linear(d, d_ff, bias=bias, dtype=dtype), nn.Linear(d, d_ff, bias=bias)
        elif kind == "Embedding":
            pair = Embedding(VOCAB_SIZE, d, dtype=dtype), nn.Embedding(VOCAB_SIZE, d)
        elif kind == "LayerNorm":
            pair = LayerNorm(d, dtype=dtype), nn.LayerNorm(d)
        elif kind == "MultiheadAttention":
            pair = (MultiHeadAttention(d, n_heads, bias=bias, dtype=dtype),
                    nn.MultiheadAttention(d, n_heads, bias=bias, batch_first=True))
        elif kind == "TransformerEncoderLayer":
            pair = EncoderLayer(d, n_heads, d_ff, **ours_layer), nn.TransformerEncoderLayer(d, n_heads, d_ff, **layer)
        elif kind == "TransformerDecoderLayer":
            pair = DecoderLayer(d, n_heads, d_ff, **ours_layer), nn.TransformerDecoderLayer(d, n_heads, d_ff, **layer)
        elif kind == "TransformerEncoder":
            pair = (Encoder(n_layers, d, n_heads, d_ff, final_norm=final_norm, **ours_layer),
                    nn.TransformerEncoder(nn.TransformerEncoderLayer(d, n_heads, d_ff, **layer), n_layers,
                                          norm=nn.LayerNorm(d) if final_norm else None, enable_nested_tensor=False))
        elif kind == "TransformerDecoder":
            pair = (Decoder(n_layers, d, n_heads, d_ff, final_norm=final_norm, **ours_layer),
                    nn.TransformerDecoder(nn.TransformerDecoderLayer(d, n_heads, d_ff, **layer), n_layers,
                                          norm=nn.LayerNorm(d) if final_norm else None))
        elif kind == "Transformer":
            pair = (EncoderDecoder(Encoder(n_layers, d, n_heads, d_ff, final_norm=True, **ours_layer),
                                   Decoder(n_layers, d, n_heads, d_ff, final_norm=True, **ours_layer)),
                    nn.Transformer(d, n_heads, n_layers, n_layers, d_ff, **layer))
        else:
            raise ValueError(f"unknown kind {kind!r}")
    ours, theirs = pair
    theirs = theirs.to(torch_dtype(torch, dtype))
    randomize_torch(torch, theirs)
    return ours, theirs


def randomize_torch(torch, module, seed: int = 0) -> None:
    """Biases ~ 0.1 N(0, 1), LayerNorm gain ~ 1 + 0.5 N(0, 1): torch initialises them to 0 and 1."""
    g = np.random.default_rng(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim == 1:
                p.copy_(torch.from_numpy(0.1 * g.standard_normal(p.shape)))
        for mod in module.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(torch.from_numpy(1.0 + 0.5 * g.standard_normal(mod.weight.shape)))


def randomize_ours(module, seed: int) -> None:
    """Every parameter of ours drawn afresh (N(0, 1) / 4 around its init), so a copy can be told apart."""
    g = np.random.default_rng(seed)
    for _, p in module.named_parameters():
        p.data[...] = backend.asarray(backend.to_numpy(p.data) + 0.25 * g.standard_normal(p.shape), dtype=p.dtype)


def host(rng, *shape):
    """A float64 host array of N(0, 1) (inputs and upstream gradients; cast per dtype by the caller)."""
    return rng.standard_normal(shape)


def ours_array(a, dtype=None):
    return backend.asarray(a, dtype=dtype)


def torch_tensor(torch, a, dtype=None, grad: bool = False):
    t = torch.from_numpy(np.array(backend.to_numpy(a)))  # a copy: torch never shares our memory
    if dtype is not None:
        t = t.to(torch_dtype(torch, dtype))
    return t.requires_grad_() if grad else t


def record(check: str, dtype: str, tensor: str, err: float, bound: float | None = None) -> None:
    key = (check, dtype)
    if key not in WORST or err > WORST[key][0]:
        WORST[key] = (err, tensor, TOL[dtype] if bound is None else bound)


def assert_match(check: str, dtype: str, tensor: str, ours, theirs, case: str = "") -> float:
    """rel_error(ours, theirs) < TOL[dtype]; recorded in WORST."""
    theirs = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else theirs
    err = rel_error(ours, theirs)
    record(check, dtype, f"{tensor} [{case}]" if case else tensor, err)
    assert err < TOL[dtype], f"{check} [{case}] ({dtype}) {tensor}: rel. error {err:.2e} >= {TOL[dtype]:.0e}"
    return err


def assert_grads_match(check: str, dtype: str, ours_module, theirs_grads: dict, case: str = "") -> None:
    """Every parameter gradient of ours against torch's (``interop.grads_from_torch``), b_k on the absolute bound."""
    named = dict(ours_module.named_parameters())
    assert set(theirs_grads) == set(named), (sorted(set(theirs_grads) ^ set(named)))
    scale = max(float(np.abs(backend.to_numpy(p.grad)).max()) for p in named.values())
    for name, p in named.items():
        if name.endswith("b_k"):  # true gradient exactly 0: both are rounding noise (see module docstring)
            err = float(np.abs(backend.to_numpy(p.grad) - theirs_grads[name]).max()) / scale
            record("b_k |ours - torch| / max|grad|", dtype, f"{check}.{name} [{case}]", err)
            assert err <= TOL[dtype], f"{check} [{case}] ({dtype}) {name}: |ours - torch| / scale = {err:.2e}"
        else:
            assert_match(check, dtype, name, p.grad, theirs_grads[name], case)


def format_worst() -> str:
    rows = [("check", "dtype", "worst error", "bound", "tensor [case]")]
    for (check, dtype), (err, where, bound) in sorted(WORST.items(), key=lambda kv: (KINDS.index(kv[0][0])
                                                                              if kv[0][0] in KINDS else 99, kv[0])):
        rows.append((check, dtype, f"{err:.1e}", f"{bound:.0e}", where))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
