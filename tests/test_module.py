"""Parameter and Module: the tree walk, tying, grads, modes, state dicts, moving, and the cache contract.

The composite ``Tiny`` below has every shape of tree the library builds:
a direct child (``a``), a ``ModuleList`` (``layers.0``, ``layers.1``) and one
Parameter shared by two children (``s1.g is s2.g``, like tied embeddings).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.nn.linear import Linear
from minitransformer.nn.module import Module, ModuleList, Parameter
from tests.conftest import assert_close, randn


class Scale(Module):
    """y = x * g (elementwise over the last axis); g may be shared with another Scale."""

    def __init__(self, g: Parameter):
        super().__init__()
        self.g = g

    def forward(self, x):
        self._cache = x
        return x * self.g.data  # (..., d)

    def backward(self, dy):
        x = self._pop_cache()
        self.g.grad += (dy * x).reshape(-1, x.shape[-1]).sum(axis=0)  # (d,)  accumulate: g is tied
        return dy * self.g.data  # (..., d)


class Tiny(Module):
    """x (B, 3) -> a -> layers.0 -> s1 -> layers.1 -> s2 -> y (B, 4)."""

    def __init__(self, dtype="float32"):
        super().__init__()
        self.a = Linear(3, 4, dtype=dtype)
        self.layers = ModuleList([Linear(4, 4, dtype=dtype), Linear(4, 4, dtype=dtype)])
        g = Parameter(backend.asarray(backend.host_rng().uniform(0.5, 1.5, (4,)), dtype=dtype))
        self.s1 = Scale(g)
        self.s2 = Scale(g)  # tied: the same Parameter object

    def forward(self, x):
        h = self.a(x)  # (B, 4)
        h = self.layers[0](h)  # (B, 4)
        h = self.s1(h)  # (B, 4)
        h = self.layers[1](h)  # (B, 4)
        return self.s2(h)  # (B, 4)

    def backward(self, dy):
        dh = self.s2.backward(dy)  # inverts y = s2(h)
        dh = self.layers[1].backward(dh)  # inverts h = layers[1](h)
        dh = self.s1.backward(dh)  # inverts h = s1(h)
        dh = self.layers[0].backward(dh)  # inverts h = layers[0](h)
        return self.a.backward(dh)  # inverts h = a(x)


NAMES = ["a.W", "a.b", "layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b", "s1.g"]


def _fresh(seed: int, dtype="float32") -> Tiny:
    backend.manual_seed(seed)
    return Tiny(dtype)


def test_named_parameters_names_and_order():
    m = _fresh(0)
    assert [name for name, _ in m.named_parameters()] == NAMES
    assert [name for name, _ in m.named_parameters(prefix="model.")] == ["model." + n for n in NAMES]
    assert [name for name, _ in m.named_children()] == ["a", "layers", "s1", "s2"]


def test_tied_parameter_listed_once():
    m = _fresh(0)
    assert m.s1.g is m.s2.g
    params = m.parameters()
    assert len(params) == len(NAMES)
    assert len({id(p) for p in params}) == len(params)
    assert "s2.g" not in dict(m.named_parameters())
    assert "s2.g" not in m.state_dict()


def test_num_parameters_counts_tied_once():
    m = _fresh(0)
    # a: 3*4 + 4, layers: 2 * (4*4 + 4), g: 4 (once, not twice)
    assert m.num_parameters() == 16 + 40 + 4


def test_linear_without_bias_has_no_b():
    layer = Linear(3, 2, bias=False)
    assert [n for n, _ in layer.named_parameters()] == ["W"]
    assert layer.num_parameters() == 6


def test_parameter_basics():
    p = Parameter(backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float32"))
    assert p.shape == (2, 3)
    assert p.dtype == np.float32
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32
    assert float(abs(backend.to_numpy(p.grad)).max()) == 0.0
    assert repr(p) == "Parameter(shape=(2, 3), dtype=float32)"


def test_zero_grad_resets_every_parameter():
    m = _fresh(0)
    for p in m.parameters():
        p.grad += 1.0
    m.zero_grad()
    for name, p in m.named_parameters():
        assert float(abs(backend.to_numpy(p.grad)).max()) == 0.0, name
    assert float(abs(backend.to_numpy(m.s2.g.grad)).max()) == 0.0


def test_train_eval_propagate_to_all_children():
    m = _fresh(0)
    modules = list(m.modules())
    assert m.layers[1] in modules and m.s2 in modules
    assert all(x.training for x in modules)
    assert m.eval() is m
    assert not any(x.training for x in modules)
    m.train()
    assert all(x.training for x in modules)
    m.train(False)
    assert not m.layers[0].training


def test_state_dict_gives_host_copies():
    m = _fresh(0)
    sd = m.state_dict()
    assert list(sd) == NAMES
    for name, v in sd.items():
        assert isinstance(v, np.ndarray), name
        assert not np.shares_memory(v, backend.to_numpy(dict(m.named_parameters())[name].data)), name
    before = backend.to_numpy(m.a.W.data).copy()
    sd["a.W"][...] = 123.0
    np.testing.assert_array_equal(backend.to_numpy(m.a.W.data), before)


def test_load_state_dict_round_trip_exact(rng):
    src, dst = _fresh(1), _fresh(2)
    assert not np.array_equal(src.state_dict()["a.W"], dst.state_dict()["a.W"])
    dst.load_state_dict(src.state_dict())
    for name, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name], v, err_msg=name)
    assert dst.s1.g is dst.s2.g  # loading writes in place: tying survives
    x = randn(rng, 2, 3, dtype="float32")
    np.testing.assert_array_equal(backend.to_numpy(dst(x)), backend.to_numpy(src(x)))


def test_load_state_dict_casts_to_the_parameters_dtype():
    m = _fresh(0)
    sd = {k: v.astype(np.float64) for k, v in _fresh(1).state_dict().items()}
    m.load_state_dict(sd)
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_strict_load_lists_missing_and_unexpected_keys():
    m = _fresh(0)
    before = m.state_dict()
    sd = _fresh(1).state_dict()
    del sd["layers.1.W"]
    sd["extra.W"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(KeyError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys ['layers.1.W']" in msg
    assert "unexpected keys ['extra.W']" in msg
    for k, v in m.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_shape_mismatch_names_key_and_both_shapes():
    m = _fresh(0)
    before = m.state_dict()
    sd = _fresh(1).state_dict()
    sd["layers.0.W"] = np.zeros((4, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'layers.0.W': model expects \(4, 4\), state_dict has \(4, 5\)"):
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match="layers.0.W"):
        m.load_state_dict(sd, strict=False)  # a shape mismatch is always an error
    # all-or-nothing: a failed load leaves the model unchanged (a.W comes before layers.0.W)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_non_strict_load_takes_the_matching_subset():
    m = _fresh(0)
    before = m.state_dict()
    src = _fresh(1).state_dict()
    sd = {"a.W": src["a.W"], "s1.g": src["s1.g"], "unrelated": np.ones(3)}
    m.load_state_dict(sd, strict=False)
    after = m.state_dict()
    np.testing.assert_array_equal(after["a.W"], src["a.W"])
    np.testing.assert_array_equal(backend.to_numpy(m.s2.g.data), src["s1.g"])  # tied: both see it
    for k in ("a.b", "layers.0.W", "layers.1.b"):
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_to_float64_casts_params_and_grads_and_keeps_tying():
    m = _fresh(0)
    sd32 = m.state_dict()
    assert m.to(dtype="float64") is m
    for name, p in m.named_parameters():
        assert p.dtype == np.float64, name
        assert p.grad.dtype == np.float64, name
        np.testing.assert_array_equal(backend.to_numpy(p.data), sd32[name].astype(np.float64))
    assert m.s1.g is m.s2.g
    m.s1.g.data[0] = 7.0
    assert float(m.s2.g.data[0]) == 7.0
    assert m.layers[1].W.dtype == np.float64  # ModuleList children too
    assert m.double().a.W.dtype == np.float64


def test_to_resets_grads_and_drops_caches(rng):
    m = _fresh(0)
    m(randn(rng, 2, 3, dtype="float32"))
    m.a.W.grad += 1.0
    m.to(dtype="float32")
    assert float(abs(backend.to_numpy(m.a.W.grad)).max()) == 0.0
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(np.zeros((2, 4), dtype=np.float32))


def test_to_numpy_device_is_a_no_op_on_cpu():
    if backend.backend_name() != "numpy":
        pytest.skip("CPU run only")
    m = _fresh(0)
    W = m.a.W.data
    m.to("cpu")
    assert isinstance(m.a.W.data, np.ndarray)
    np.testing.assert_array_equal(m.a.W.data, W)


def test_to_unknown_device_is_value_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        _fresh(0).to("tpu")


def test_to_cuda_without_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match=r"minitransformer\[cuda12\]"):
        _fresh(0).to("cuda")


def test_backward_before_forward_raises():
    m = _fresh(0)
    with pytest.raises(RuntimeError, match="Scale.backward called before forward"):
        m.backward(np.zeros((2, 4), dtype=np.float32))


def test_second_backward_after_one_forward_raises(rng):
    m = _fresh(0, "float64")
    m(randn(rng, 2, 3))
    m.backward(randn(rng, 2, 4))
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(randn(rng, 2, 4))


def test_composite_gradcheck_with_tied_weight(rng):
    m = _fresh(0, "float64")
    r = check_module(m, (randn(rng, 3, 3),))
    assert r.passed, r
    assert set(r.errors) == {"arg0", *NAMES}


def test_tied_grad_is_the_sum_of_both_uses(rng):
    m = _fresh(0, "float64")
    x = randn(rng, 2, 3)
    dy = randn(rng, 2, 4)
    m(x)
    m.backward(dy)
    both = backend.to_numpy(m.s1.g.grad).copy()
    # the same gradient, split by hand: run the two uses with separate copies of g
    m2 = _fresh(0, "float64")
    m2.s2.g = Parameter(m2.s1.g.data.copy())
    m2(x)
    m2.backward(dy)
    assert_close(both, backend.to_numpy(m2.s1.g.grad) + backend.to_numpy(m2.s2.g.grad), rtol=1e-12)


def test_module_list_indexing_and_length():
    layers = ModuleList([Linear(2, 2), Linear(2, 3)])
    assert len(layers) == 2
    assert layers[1].d_out == 3
    assert [m.d_out for m in layers] == [2, 3]
    assert [n for n, _ in layers.named_parameters()] == ["0.W", "0.b", "1.W", "1.b"]


def test_clear_cache_drops_every_layers_activations():
    from minitransformer.nn.encoder import Encoder

    enc = Encoder(2, 4, 2, 8)
    enc(backend.asarray(np.zeros((2, 3, 4)), dtype="float32"))
    assert any(m._cache is not None for m in enc.modules())
    enc.clear_cache()
    assert all(m._cache is None for m in enc.modules())
    with pytest.raises(RuntimeError, match="before forward"):
        enc.backward(backend.asarray(np.zeros((2, 3, 4)), dtype="float32"))


def test_no_grad_keeps_no_cache_same_output_and_restores_on_exit(rng):
    from minitransformer.nn.encoder import Encoder
    from minitransformer.nn.module import no_grad

    enc = Encoder(2, 4, 2, 8).eval()
    x = randn(rng, 2, 3, 4, dtype="float32")
    y = enc(x)
    with no_grad():
        y_inference = enc(x)
        assert all(m._cache is None for m in enc.modules())  # every layer's activations already freed
        with pytest.raises(RuntimeError, match=r"inside no_grad\(\)"):
            enc.backward(y)
    np.testing.assert_array_equal(backend.to_numpy(y_inference), backend.to_numpy(y))
    with pytest.raises(ValueError, match="inside"), no_grad():
        raise ValueError("an error inside no_grad()")
    enc(x)  # outside again (also after an exception inside): the cache is kept
    assert enc.backward(y).shape == (2, 3, 4)


def test_parameter_grad_is_zero_c_contiguous_of_the_data_dtype():
    p = Parameter(backend.asarray(np.ones((3, 2)), dtype="float32").T)
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32 and not backend.to_numpy(p.grad).any()
