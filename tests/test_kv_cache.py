import numpy as np
import pytest

from minitransformer import backend
from minitransformer.models.gpt import GPT, GPTConfig
from minitransformer.nn.kv_cache import KVCache, cached_self_attention
from minitransformer.nn.multihead import MultiHeadAttention
from tests.conftest import assert_close, randn


def tiny_gpt(dtype="float64", **overrides):
    sizes = dict(vocab_size=13, max_len=10, d_model=8, n_heads=2, n_layers=3, d_ff=16, dropout=0.1)
    model = GPT(GPTConfig(**{**sizes, **overrides}), dtype=dtype, seed=3)
    rng = backend.host_rng(7)
    for name, p in model.named_parameters():  # random biases and LayerNorms: zeros and ones would hide bugs
        p.data[...] = backend.asarray(0.5 * rng.standard_normal(p.shape) + name.endswith("gamma"), dtype=p.dtype)
    return model.eval()


def test_cached_decoding_equals_full_recomputation_at_every_step():
    model = tiny_gpt()
    ids = backend.host_rng(1).integers(0, 13, (2, 10))  # (B, T) = (2, 10), the whole context window
    cache = model.init_cache(2)
    worst = 0.0
    steps = [4] + [1] * 3  # a prompt of 4 tokens at once, then one token at a time
    pos = 0
    for t in steps:
        new = backend.to_numpy(model.forward_cached(backend.asarray(ids[:, pos:pos + t]), cache))
        pos += t
        full = backend.to_numpy(model(backend.asarray(ids[:, :pos])))
        model.clear_cache()
        assert new.shape == (2, t, 13) and cache.length == pos
        worst = max(worst, float(np.abs(new - full[:, pos - t:]).max() / np.abs(full).max()))
    assert worst < 1e-12, worst
    # several tokens at once after a one-token step: the offset of a multi-token chunk in the middle
    new = backend.to_numpy(model.forward_cached(backend.asarray(ids[:, pos:pos + 3]), cache))
    full = backend.to_numpy(model(backend.asarray(ids[:, :pos + 3])))
    assert_close(new, full[:, pos:], rtol=1e-12, atol=1e-13)


def test_cached_step_float32_in_float32_out():
    model = tiny_gpt(dtype="float32")
    cache = model.init_cache(1)
    out = model.forward_cached(backend.asarray([[1, 2, 3]]), cache)
    assert out.dtype == np.float32 and cache.K[0].dtype == np.float32
    full = model(backend.asarray([[1, 2, 3]]))
    assert_close(out, full, rtol=1e-5, atol=1e-5)


def test_past_max_len_is_a_clear_error_and_cache_unchanged():
    model = tiny_gpt()
    cache = model.init_cache(1, max_len=5)
    model.forward_cached(backend.asarray([[1, 2, 3, 4]]), cache)
    with pytest.raises(ValueError, match="make 6 positions, past max_len=5"):
        model.forward_cached(backend.asarray([[5, 6]]), cache)
    assert cache.length == 4
    model.forward_cached(backend.asarray([[5]]), cache)
    with pytest.raises(ValueError, match="past max_len=5"):
        model.forward_cached(backend.asarray([[6]]), cache)
    with pytest.raises(ValueError, match="exceeds the model's max_len=10"):
        model.init_cache(1, max_len=11)


def test_bad_cached_input_errors():
    model = tiny_gpt()
    cache = model.init_cache(2)
    with pytest.raises(ValueError, match="B = the cache's 2"):
        model.forward_cached(backend.asarray([[1, 2]]), cache)
    with pytest.raises(IndexError, match="token id 13 is out of range"):
        model.forward_cached(backend.asarray([[1], [13]]), cache)
    with pytest.raises(ValueError, match="needs t >= 1"):
        model.forward_cached(backend.asarray(np.zeros((2, 0), dtype=np.int64)), cache)


def test_cached_self_attention_matches_causal_multi_head_attention(rng):
    """The layer-level function alone: chunks of 3, 1, 2 equal the causal MHA over all 6 positions."""
    attn = MultiHeadAttention(6, 3).to(dtype="float64")
    for b in (attn.b_q, attn.b_k, attn.b_v, attn.b_o):
        b.data[...] = randn(rng, 6)
    x = randn(rng, 2, 6, 6)  # (B, T, d_model)
    full = attn(x, causal=True)
    cache = KVCache(n_layers=1, B=2, n_heads=3, max_len=6, d_k=2, dtype="float64")
    outs = []
    for a, b in ((0, 3), (3, 4), (4, 6)):
        outs.append(cached_self_attention(attn, x[:, a:b], cache, 0))
        cache.advance(b - a)
    assert_close(np.concatenate([backend.to_numpy(o) for o in outs], axis=1), full, rtol=1e-12, atol=1e-14)
    assert_close(cache.K[0][:, :, :6].transpose(0, 2, 1, 3).reshape(2, 6, 6),
                 x @ attn.W_k.data + attn.b_k.data, rtol=1e-13)  # the cache holds the projected keys


def test_cache_is_per_sequence_and_reset_reuses_it():
    model = tiny_gpt()
    ids = backend.asarray([[1, 2, 3], [4, 5, 6]])
    cache = model.init_cache(2)
    both = backend.to_numpy(model.forward_cached(ids, cache))
    cache.reset()
    assert cache.length == 0
    again = backend.to_numpy(model.forward_cached(ids, cache))
    assert_close(again, both, rtol=0)
    single = model.init_cache(1)
    one = backend.to_numpy(model.forward_cached(ids[1:], single))
    assert_close(one[0], both[1], rtol=1e-13)  # batch rows never mix
    assert "length=3" in repr(cache)


def test_kvcache_bad_sizes():
    with pytest.raises(ValueError, match="KVCache B must be a positive int"):
        KVCache(1, 0, 2, 4, 2)
    attn = MultiHeadAttention(4, 2).to(dtype="float64")
    cache = KVCache(1, 1, 4, 4, 1, dtype="float64")
    with pytest.raises(ValueError, match="cache was made for B=1, n_heads=4"):
        cached_self_attention(attn, backend.asarray(np.zeros((1, 1, 4))), cache, 0)
