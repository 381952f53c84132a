"""Copy weights from torch layers into ours, for the parity tests.

torch stores Linear weights as (out, in); ours are (in, out): every copy transposes.
nn.MultiheadAttention packs W_q, W_k, W_v into one (3 d_model, d_model) in_proj_weight.
"""

from __future__ import annotations

import numpy as np


def t2n(t):
    return t.detach().cpu().numpy().copy()


def copy_linear(ours, ref):
    ours.W.data[...] = t2n(ref.weight).T
    ours.b.data[...] = t2n(ref.bias)


def copy_layernorm(ours, ref):
    ours.gamma.data[...] = t2n(ref.weight)
    ours.beta.data[...] = t2n(ref.bias)


def copy_mha(ours, ref):
    d = ref.embed_dim
    Wi, bi = t2n(ref.in_proj_weight), t2n(ref.in_proj_bias)
    for k, name in enumerate("qkv"):
        getattr(ours, f"W_{name}").data[...] = Wi[k * d:(k + 1) * d].T
        getattr(ours, f"b_{name}").data[...] = bi[k * d:(k + 1) * d]
    ours.W_o.data[...] = t2n(ref.out_proj.weight).T
    ours.b_o.data[...] = t2n(ref.out_proj.bias)


def mha_grads(ref):
    """torch MHA grads in our names and layout."""
    d = ref.embed_dim
    gW, gb = t2n(ref.in_proj_weight.grad), t2n(ref.in_proj_bias.grad)
    out = {}
    for k, name in enumerate("qkv"):
        out[f"W_{name}"] = gW[k * d:(k + 1) * d].T
        out[f"b_{name}"] = gb[k * d:(k + 1) * d]
    out["W_o"] = t2n(ref.out_proj.weight.grad).T
    out["b_o"] = t2n(ref.out_proj.bias.grad)
    return out


def copy_encoder_layer(ours, ref):
    copy_mha(ours.self_attn, ref.self_attn)
    copy_linear(ours.ff.linear1, ref.linear1)
    copy_linear(ours.ff.linear2, ref.linear2)
    copy_layernorm(ours.norm1, ref.norm1)
    copy_layernorm(ours.norm2, ref.norm2)


def copy_decoder_layer(ours, ref):
    copy_mha(ours.self_attn, ref.self_attn)
    copy_mha(ours.cross_attn, ref.multihead_attn)
    copy_linear(ours.ff.linear1, ref.linear1)
    copy_linear(ours.ff.linear2, ref.linear2)
    copy_layernorm(ours.norm1, ref.norm1)
    copy_layernorm(ours.norm2, ref.norm2)
    copy_layernorm(ours.norm3, ref.norm3)


_RENAMES = [
    ("self_attn.", "self_attn."), ("multihead_attn.", "cross_attn."), ("linear1.", "ff.linear1."),
    ("linear2.", "ff.linear2."),
]


def torch_grads_in_our_names(ref) -> dict:
    """Every parameter gradient of a torch encoder/decoder layer or stack, renamed to our keys and layouts."""
    import torch

    out = {}
    for mod_name, mod in ref.named_modules():
        prefix = (mod_name + ".") if mod_name else ""
        for a, b in _RENAMES:
            prefix = prefix.replace(a, b)
        if isinstance(mod, torch.nn.MultiheadAttention):
            for k, v in mha_grads(mod).items():
                out[prefix + k] = v
        elif isinstance(mod, torch.nn.Linear) and not mod_name.endswith("out_proj"):
            out[prefix + "W"] = t2n(mod.weight.grad).T
            out[prefix + "b"] = t2n(mod.bias.grad)
        elif isinstance(mod, torch.nn.LayerNorm):
            out[prefix + "gamma"] = t2n(mod.weight.grad)
            out[prefix + "beta"] = t2n(mod.bias.grad)
    return out


def randomize_layernorms(ref, seed=0):
    """Non-unit gamma and non-zero beta, so LayerNorm parameter bugs show."""
    import torch

    g = np.random.default_rng(seed)
    with torch.no_grad():
        for mod in ref.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(torch.from_numpy(1.0 + 0.5 * g.standard_normal(mod.weight.shape)))
                mod.bias.copy_(torch.from_numpy(0.1 * g.standard_normal(mod.bias.shape)))
