import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.models import Transformer, TransformerConfig
from minitransformer.nn.module import Module
from tests.conftest import assert_close
from tests.test_encoder import _randomize_gamma


class _Loss(Module):
    """The model's scalar loss as a module, so check_module can differentiate it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *batch):
        return self.model.loss(*batch)

    def backward(self, dy):
        assert float(dy) == 1.0
        self.model.backward()


def _tiny(share, norm_first=False, dropout=0.2):
    cfg = TransformerConfig(src_vocab_size=7, tgt_vocab_size=7 if share else 6, d_model=4, n_heads=2, d_ff=8,
                            n_encoder_layers=1, n_decoder_layers=2, dropout=dropout, max_len=16,
                            norm_first=norm_first, share_embeddings=share, label_smoothing=0.1)
    return Transformer(cfg).to(dtype="float64")


def _batch():
    src = backend.asarray(np.array([[3, 4, 5, 6], [4, 5, 0, 0]]), dtype="int64")  # S = 4
    tgt_in = backend.asarray(np.array([[1, 3, 4], [1, 5, 0]]), dtype="int64")  # T = 3
    tgt_out = backend.asarray(np.array([[3, 4, 2], [5, 2, -100]]), dtype="int64")
    src_kpm = backend.asarray(np.array([[0, 0, 0, 0], [0, 0, 1, 1]], dtype=bool))
    tgt_kpm = backend.asarray(np.array([[0, 0, 0], [0, 0, 1]], dtype=bool))
    return src, tgt_in, tgt_out, src_kpm, tgt_kpm


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_end_to_end_gradcheck(rng, share, norm_first):
    """The loss against every parameter: padding, causal mask, label smoothing, dropout replayed."""
    model = _tiny(share, norm_first)
    _randomize_gamma(model, rng)
    r = check_module(_Loss(model), _batch(), wrt=())
    assert r.passed, r
    assert len(r.errors) == len(model.parameters())


def test_shared_embeddings_are_one_parameter():
    model = _tiny(share=True)
    assert model.src_embed.W is model.tgt_embed.W
    assert model.out_proj is None
    names = [k for k, _ in model.named_parameters()]
    assert "src_embed.W" in names and "tgt_embed.W" not in names


def test_loss_ignores_padding_targets():
    model = _tiny(share=False, dropout=0.0)
    src, tgt_in, tgt_out, src_kpm, tgt_kpm = _batch()
    base = float(model.loss(src, tgt_in, tgt_out, src_kpm, tgt_kpm))
    tgt_in2 = tgt_in.copy()
    tgt_in2[1, 2] = 4  # change the padded input token: masked as a key, its own target ignored
    assert abs(float(model.loss(src, tgt_in2, tgt_out, src_kpm, tgt_kpm)) - base) < 1e-12


def test_paper_base_configuration_parameter_count():
    backend.manual_seed(0)
    model = Transformer(TransformerConfig.base())
    d, ff, V = 512, 2048, 37000
    mha = 4 * (d * d + d)
    ln = 2 * d
    ffn = d * ff + ff + ff * d + d
    expected = V * d + 6 * (mha + ffn + 2 * ln) + 6 * (2 * mha + ffn + 3 * ln)
    assert model.num_parameters() == expected
    assert 60e6 < expected < 66e6  # the paper's Table 3 says 65M for base
    assert model.src_embed.W.dtype == np.float32


def test_float32_logits_and_errors():
    cfg = dict(src_vocab_size=7, tgt_vocab_size=6, d_model=4, n_heads=2, d_ff=8, n_encoder_layers=1,
               n_decoder_layers=1, max_len=5)
    model = Transformer(**cfg)
    src, tgt_in, *_ = _batch()
    assert model(src, tgt_in).dtype == np.float32
    with pytest.raises(IndexError, match="out of range"):
        model(src + 10, tgt_in)
    with pytest.raises(ValueError, match="exceeds max_len=5"):
        model(backend.asarray(np.ones((1, 6)), dtype="int64"), tgt_in)
    with pytest.raises(ValueError, match="share_embeddings needs one vocabulary"):
        Transformer(**{**cfg, "share_embeddings": True})
    with pytest.raises(RuntimeError, match="needs a loss"):
        model.backward()


def test_config_round_trip():
    cfg = TransformerConfig(10, 12, d_model=8)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TransformerConfig fields"):
        TransformerConfig.from_dict({**cfg.to_dict(), "n_layer": 3})


def test_grads_accumulate_over_two_backward_calls():
    model = _tiny(share=True, dropout=0.0)
    batch = _batch()
    model.loss(*batch)
    model.backward()
    once = {k: p.grad.copy() for k, p in model.named_parameters()}
    model.loss(*batch)
    model.backward()
    for k, p in model.named_parameters():
        assert_close(p.grad, 2 * once[k], rtol=1e-12, err_msg=k)
