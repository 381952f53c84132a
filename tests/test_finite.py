"""The opt-in NaN/inf check (``minitransformer.set_check_finite`` / ``check_finite``)."""

import numpy as np
import pytest

import minitransformer
from minitransformer import backend
from minitransformer.models.transformer import Transformer
from minitransformer.nn import finite
from minitransformer.nn.encoder import Encoder
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.multihead import MultiHeadAttention
from tests.conftest import randn


@pytest.fixture(autouse=True)
def _finite_off():
    """Every test starts and ends with the check off, whatever it did."""
    minitransformer.set_check_finite(False)
    yield
    minitransformer.set_check_finite(False)


def _tiny_transformer():
    return Transformer(src_vocab_size=11, tgt_vocab_size=13, d_model=8, n_heads=2, d_ff=16,
                       n_encoder_layers=2, n_decoder_layers=2, max_len=16, dropout=0.0)


def _ids(B=2, T=4):
    return backend.asarray(np.arange(B * T).reshape(B, T) % 10 + 1, dtype="int64")


def test_off_by_default_nan_passes_silently():
    assert not minitransformer.nn.finite.is_check_finite()
    model = _tiny_transformer()
    model.encoder.layers[0].norm1.gamma.data[3] = float("nan")
    loss = model.loss(_ids(), _ids(), _ids())
    assert np.isnan(float(backend.to_numpy(loss)))


def test_off_path_never_enters_the_checker(monkeypatch, rng):
    def boom(*args):
        raise AssertionError("checked_call reached with the flag off")

    monkeypatch.setattr(finite, "checked_call", boom)
    y = Linear(4, 3)(randn(rng, 2, 4, dtype="float32"))
    assert y.shape == (2, 3)
    minitransformer.set_check_finite(True)
    with pytest.raises(AssertionError, match="flag off"):
        Linear(4, 3)(randn(rng, 2, 4, dtype="float32"))


def test_nan_parameter_names_the_first_layer_it_reaches():
    model = _tiny_transformer()
    model.encoder.layers[0].norm1.gamma.data[3] = float("nan")
    with minitransformer.check_finite(model):
        with pytest.raises(FloatingPointError, match=r"^NaN in the output of LayerNorm 'encoder\.layers\.0\.norm1'$"):
            model.loss(_ids(), _ids(), _ids())
    assert not finite.is_check_finite()  # the context manager restored the setting


def test_nan_embedding_row_names_the_embedding():
    model = _tiny_transformer()
    model.src_embed.W.data[2, 0] = float("nan")
    minitransformer.set_check_finite(True, model)
    with pytest.raises(FloatingPointError, match=r"NaN in the output of Embedding 'src_embed'"):
        model(_ids(), _ids())


def test_nan_input_names_the_module_it_enters(rng):
    model = _tiny_transformer()
    x = randn(rng, 2, 4, 8, dtype="float32")
    x[1, 2, 5] = float("nan")
    with minitransformer.check_finite(model):
        with pytest.raises(FloatingPointError, match=r"NaN in the input of Encoder 'encoder'"):
            model.encoder(x)
    with minitransformer.check_finite(model.encoder):
        with pytest.raises(FloatingPointError, match=r"NaN in the input of Encoder \(the model\)"):
            model.encoder(x)


def test_without_a_model_the_path_is_relative_to_the_outer_call(rng):
    enc = Encoder(2, 8, 2, 16, dropout=0.0)
    enc.layers[1].norm2.beta.data[0] = float("inf")
    minitransformer.set_check_finite(True)
    with pytest.raises(FloatingPointError, match=r"inf in the output of LayerNorm 'layers\.1\.norm2' of Encoder"):
        enc(randn(rng, 2, 3, 8, dtype="float32"))


def test_overflow_inside_a_layer_is_caught_at_its_output(rng):
    layer = Linear(4, 3)
    layer.W.data[...] = 1e38
    with minitransformer.check_finite(layer), backend.errstate(over="ignore"):
        with pytest.raises(FloatingPointError, match=r"inf in the output of Linear \(the model\)"):
            layer(backend.asarray(np.full((2, 4), 1e3), dtype="float32"))


def test_additive_minus_inf_mask_is_not_an_error(rng):
    mha = MultiHeadAttention(8, 2).to(dtype="float64")
    x = randn(rng, 2, 3, 8)
    mask = backend.asarray(np.triu(np.full((3, 3), -np.inf), k=1))  # float additive causal mask
    with minitransformer.check_finite(mha):
        y = mha(x, attn_mask=mask)
        assert np.isfinite(backend.to_numpy(y)).all()
        # an entirely masked query row gives zeros, still finite
        y = mha(x, key_padding_mask=backend.asarray(np.ones((2, 3), dtype=bool)))
        assert np.isfinite(backend.to_numpy(y)).all()


def test_finite_inputs_give_the_same_output_with_the_check_on(rng):
    model = _tiny_transformer()
    off = backend.to_numpy(model(_ids(), _ids()))
    with minitransformer.check_finite(model):
        on = backend.to_numpy(model(_ids(), _ids()))
    np.testing.assert_array_equal(on, off)


def test_context_manager_restores_on_error(rng):
    ln = LayerNorm(4)
    x = backend.asarray(np.full((2, 4), np.nan), dtype="float32")
    with pytest.raises(FloatingPointError):
        with minitransformer.check_finite(ln):
            ln(x)
    assert not finite.is_check_finite()
    assert finite._stack == []  # nothing left on the call stack after the error
    assert np.isnan(backend.to_numpy(ln(x))).all()  # off again: no error
