"""minitransformer.interop.torch itself: exact round trips, the name map, clear errors, import without torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

from minitransformer.nn.decoder import Decoder
from minitransformer.nn.encoder import Encoder, EncoderLayer
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.module import ModuleList
from minitransformer.nn.multihead import MultiHeadAttention
from tests.parity.helpers import DTYPES, KINDS, make_pair, randomize_ours

pytestmark = pytest.mark.torch


def _state(module) -> dict:
    return module.state_dict()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_ours_torch_ours_is_exact(torch, interop, kind, dtype):
    opts = dict(norm_first=True, activation="gelu") if kind.startswith("Transformer") else {}
    a, theirs = make_pair(torch, kind, dtype, **opts)
    b, _ = make_pair(torch, kind, dtype, **opts)
    randomize_ours(a, seed=1)
    randomize_ours(b, seed=2)  # b starts different from a everywhere
    before = {k: v.detach().clone() for k, v in theirs.state_dict().items()}
    interop.copy_to_torch(a, theirs)
    assert all(not torch.equal(before[k], v) for k, v in theirs.state_dict().items()), "copy_to_torch missed a tensor"
    interop.load_from_torch(b, theirs)
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sb[k].dtype == np.dtype(dtype), k
        np.testing.assert_array_equal(sb[k], sa[k], err_msg=k)


def test_load_casts_to_our_dtype(torch, interop):
    ours = Linear(4, 3, dtype="float32")
    theirs = torch.nn.Linear(4, 3).double()
    interop.load_from_torch(ours, theirs)
    assert ours.W.data.dtype == np.float32
    np.testing.assert_array_equal(ours.W.data, theirs.weight.detach().numpy().T.astype(np.float32))
    interop.copy_to_torch(ours, theirs)  # and back into float64: exact, float32 values are float64 values
    assert theirs.weight.dtype == torch.float64
    np.testing.assert_array_equal(theirs.weight.detach().numpy().T, ours.W.data)


def test_mha_packing_layout(torch, interop):
    ours, theirs = make_pair(torch, "MultiheadAttention", "float64")
    interop.load_from_torch(ours, theirs)
    W, b = theirs.in_proj_weight.detach().numpy(), theirs.in_proj_bias.detach().numpy()
    np.testing.assert_array_equal(ours.W_k.data, W[8:16].T)  # rows [d, 2d) are the keys, (out, in)
    np.testing.assert_array_equal(ours.b_v.data, b[16:24])
    names = [e.name for e in interop.param_map(None, theirs)]
    assert names == ["W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o"]
    assert {e.name for e in interop.param_map(ours, theirs)} == {k for k, _ in ours.named_parameters()}


def test_grads_names_match_ours_for_nn_transformer(torch, interop):
    ours, theirs = make_pair(torch, "Transformer", "float64")
    src, tgt = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 2, 8, dtype=torch.float64)
    theirs(src, tgt).sum().backward()
    grads = interop.grads_from_torch(theirs)
    assert set(grads) == {k for k, _ in ours.named_parameters()}
    assert grads["decoder.layers.1.cross_attn.W_v"].shape == (8, 8)
    assert grads["encoder.norm.gamma"].shape == (8,)
    copy = grads["decoder.norm.beta"].copy()
    theirs(src, tgt).sum().backward()  # torch accumulates into .grad: what we returned must not change
    np.testing.assert_array_equal(grads["decoder.norm.beta"], copy)


def test_our_transformer_model_pairs_with_nn_transformer(torch, interop):
    from minitransformer.models.transformer import Transformer

    model = Transformer(src_vocab_size=5, tgt_vocab_size=5, d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1,
                        n_decoder_layers=1, dtype="float64")
    theirs = torch.nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True).double()
    with pytest.raises(ValueError, match=r"final norm differs.*final_norm=True"):
        interop.load_from_torch(model, theirs)
    model.encoder = Encoder(1, 8, 2, 16, final_norm=True, dtype="float64")
    model.decoder = Decoder(1, 8, 2, 16, final_norm=True, dtype="float64")
    embed = model.src_embed.W.data.copy()
    interop.load_from_torch(model, theirs)
    np.testing.assert_array_equal(model.decoder.norm.gamma.data, theirs.decoder.norm.weight.detach().numpy())
    np.testing.assert_array_equal(model.src_embed.W.data, embed)  # embeddings are not nn.Transformer's


def test_size_mismatch_names_both_shapes_and_writes_nothing(torch, interop):
    ours = EncoderLayer(8, 2, 16, dropout=0.0, dtype="float64")
    theirs = torch.nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, batch_first=True).double()
    before = ours.state_dict()
    with pytest.raises(ValueError, match=r"ff\.linear1\.W: ours has shape \(8, 16\), torch linear1\.weight has "
                                         r"shape \(32, 8\), transposed to \(8, 32\)"):
        interop.load_from_torch(ours, theirs)
    with pytest.raises(ValueError, match=r"ff\.linear2\.W: ours has shape \(16, 8\)"):
        interop.copy_to_torch(ours, theirs)
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)  # the norms fit, yet nothing was written
    with pytest.raises(ValueError, match=r"W_q: ours has shape \(4, 4\), torch in_proj_weight\[0:8\] has shape "
                                         r"\(8, 8\), transposed"):
        interop.load_from_torch(MultiHeadAttention(4, 2), torch.nn.MultiheadAttention(8, 2))


def test_unsupported_and_mismatched_modules(torch, interop):
    nn = torch.nn
    with pytest.raises(TypeError, match=r"unsupported torch module Conv1d \(supported: nn.Transformer,"):
        interop.load_from_torch(Linear(2, 2), nn.Conv1d(2, 2, 1))
    with pytest.raises(TypeError, match=r"unsupported torch module Sequential"):
        interop.grads_from_torch(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="torch Linear pairs with our Linear, got LayerNorm"):
        interop.copy_to_torch(LayerNorm(2), nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"torch Transformer pairs with a module that has \.encoder"):
        interop.load_from_torch(Linear(2, 2), nn.Transformer(8, 2, 1, 1, 16, batch_first=True))
    theirs = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 1)
    with pytest.raises(TypeError, match="<root>: torch TransformerDecoder pairs with our Decoder, got Encoder"):
        interop.load_from_torch(Encoder(1, 8, 2, 16), theirs)
    ours = Decoder(1, 8, 2, 16)
    ours.layers = ModuleList([EncoderLayer(8, 2, 16)])  # a wrong child is named by its path
    with pytest.raises(TypeError, match=r"layers\.0: torch TransformerDecoderLayer pairs with our DecoderLayer, "
                                        "got EncoderLayer"):
        interop.load_from_torch(ours, theirs)


def test_option_mismatches_are_errors(torch, interop):
    nn = torch.nn
    with pytest.raises(ValueError, match="n_heads differs: ours 2, torch 4"):
        interop.load_from_torch(MultiHeadAttention(8, 2), nn.MultiheadAttention(8, 4))
    with pytest.raises(ValueError, match="norm_first differs: ours False, torch True"):
        interop.load_from_torch(EncoderLayer(8, 2, 16), nn.TransformerEncoderLayer(8, 2, 16, norm_first=True))
    with pytest.raises(ValueError, match="activation differs: ours 'relu', torch 'gelu'"):
        interop.load_from_torch(EncoderLayer(8, 2, 16), nn.TransformerEncoderLayer(8, 2, 16, activation="gelu"))
    with pytest.raises(ValueError, match="LayerNorm eps differs: ours 1e-05, torch 1e-06"):
        interop.load_from_torch(LayerNorm(8), nn.LayerNorm(8, eps=1e-6))
    with pytest.raises(ValueError, match="bias differs: ours True, torch False"):
        interop.load_from_torch(Linear(8, 2), nn.Linear(8, 2, bias=False))
    with pytest.raises(ValueError, match="number of layers differs: ours 1, torch 2"):
        interop.load_from_torch(Encoder(1, 8, 2, 16), nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2,
                                                                            enable_nested_tensor=False))
    with pytest.raises(ValueError, match="padding_idx"):
        interop.load_from_torch(None, nn.Embedding(5, 8, padding_idx=0))
    with pytest.raises(ValueError, match="add_bias_kv"):
        interop.grads_from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match="elementwise_affine=False"):
        interop.grads_from_torch(nn.LayerNorm(8, elementwise_affine=False))


def test_grads_before_backward_is_an_error(torch, interop):
    with pytest.raises(RuntimeError, match="no parameter of the torch Linear has a gradient; run backward first"):
        interop.grads_from_torch(torch.nn.Linear(2, 3))


def test_interop_package_does_not_import_torch_and_torch_module_says_how_to_install(monkeypatch):
    code = ("import sys; sys.modules['torch'] = None; import minitransformer.interop; "
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "try:\n    import minitransformer.interop.torch\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install -e '.[parity]'" in out
    # in this process too, with torch hidden: the interop package imports, its torch module refuses clearly
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "minitransformer.interop.torch", raising=False)
    importlib.import_module("minitransformer.interop")
    with pytest.raises(ImportError, match=r"pip install -e '\.\[parity\]'"):
        importlib.import_module("minitransformer.interop.torch")
