import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.nn.embedding import Embedding, embedding_backward, embedding_forward
from tests.conftest import assert_close, randn, require

# B=2, T=4 with repeats inside a row and across rows; ids 1 and 5 never occur
IDS = np.array([[3, 0, 3, 2], [2, 3, 6, 4]])


def _ids(a=IDS):
    return backend.asarray(a)


def test_embedding_op_gradcheck_repeated_ids(rng):
    W = randn(rng, 7, 3)
    r = check_op(embedding_forward, embedding_backward, (_ids(), W))
    assert r.passed, r
    assert set(r.errors) == {"arg1"}


def test_embedding_module_gradcheck(rng):
    layer = Embedding(7, 3).to(dtype="float64")
    r = check_module(layer, (_ids(),), wrt=())
    assert r.passed, r
    assert set(r.errors) == {"W"}


def test_embedding_forward_is_row_lookup(rng):
    W = randn(rng, 7, 3)
    y, _ = embedding_forward(_ids(), W)
    assert y.shape == (2, 4, 3)
    for b, t in np.ndindex(2, 4):
        assert_close(y[b, t], W[IDS[b, t]], rtol=0)


def test_embedding_backward_repeated_ids_match_loop(rng):
    W = randn(rng, 7, 3)
    dy = randn(rng, 2, 4, 3)
    _, cache = embedding_forward(_ids(), W)
    dW = embedding_backward(dy, cache)
    ref = np.zeros((7, 3))
    dyh = backend.to_numpy(dy)
    for b, t in np.ndindex(2, 4):
        ref[IDS[b, t]] += dyh[b, t]
    assert_close(dW, ref, rtol=1e-14)
    # id 3 occurs three times: its row is the sum of the three upstream rows, not only one of them
    assert_close(dW[3], dyh[0, 0] + dyh[0, 2] + dyh[1, 1], rtol=1e-14)
    assert float(abs(backend.to_numpy(dW)[[1, 5]]).max()) == 0.0


def test_embedding_grads_accumulate(rng):
    layer = Embedding(7, 3).to(dtype="float64")
    dy = randn(rng, 2, 4, 3)
    layer(_ids())
    assert layer.backward(dy) is None
    once = layer.W.grad.copy()
    layer(_ids())
    layer.backward(dy)
    assert_close(layer.W.grad, 2 * once)
    layer.zero_grad()
    assert float(abs(layer.W.grad).max()) == 0.0


def test_embedding_tied_weights_add_up(rng):
    emb1 = Embedding(7, 3).to(dtype="float64")
    emb2 = Embedding(7, 3).to(dtype="float64")
    emb2.W = emb1.W  # one Parameter object, two users
    ids2 = _ids(np.array([[1, 1, 5], [0, 6, 1]]))
    dy1, dy2 = randn(rng, 2, 4, 3), randn(rng, 2, 3, 3)
    emb1(_ids())
    emb2(ids2)
    emb1.backward(dy1)
    emb2.backward(dy2)
    _, c1 = embedding_forward(_ids(), emb1.W.data)
    _, c2 = embedding_forward(ids2, emb1.W.data)
    expected = backend.to_numpy(embedding_backward(dy1, c1)) + backend.to_numpy(embedding_backward(dy2, c2))
    assert_close(emb1.W.grad, expected, rtol=1e-14)


def test_embedding_backward_does_not_mutate_dy_or_cache(rng):
    layer = Embedding(7, 3).to(dtype="float64")
    ids = _ids()
    layer(ids)
    dy = randn(rng, 2, 4, 3)
    dy0 = dy.copy()
    layer.backward(dy)
    assert_close(dy, dy0, rtol=0)
    np.testing.assert_array_equal(backend.to_numpy(ids), IDS)


def test_embedding_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        Embedding(7, 3).backward(np.zeros((2, 4, 3), dtype=np.float32))


def test_embedding_float32_default(rng):
    layer = Embedding(7, 3)
    y = layer(_ids())
    assert layer.W.dtype == np.float32 and y.dtype == np.float32
    layer.backward(randn(rng, 2, 4, 3, dtype="float32"))
    assert layer.W.grad.dtype == np.float32


def test_embedding_init_standard_normal_and_seeded():
    backend.manual_seed(3)
    a = backend.to_numpy(Embedding(1000, 64).W.data)
    backend.manual_seed(3)
    b = backend.to_numpy(Embedding(1000, 64).W.data)
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1.0) < 0.01


def test_embedding_bad_ids():
    layer = Embedding(7, 3)
    with pytest.raises(IndexError, match="token id 7 is out of range \\[0, 7\\)"):
        layer(_ids(np.array([[1, 7]])))
    with pytest.raises(IndexError, match="token id -1 is out of range"):
        layer(_ids(np.array([[-1, 2]])))
    with pytest.raises(TypeError, match="token ids must be integers, got dtype float"):
        layer(backend.asarray(np.array([[1.0, 2.0]])))
    with pytest.raises(TypeError, match="NumPy or CuPy array"):
        layer([[1, 2]])


@pytest.mark.torch
def test_embedding_torch_parity(rng):
    torch = require("torch")
    layer = Embedding(7, 3).to(dtype="float64")
    dy = randn(rng, 2, 4, 3)
    ref = torch.nn.Embedding(7, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(backend.to_numpy(layer.W.data)))
    yt = ref(torch.from_numpy(IDS))
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    y = layer(_ids())
    layer.backward(dy)
    np.testing.assert_allclose(backend.to_numpy(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(layer.W.grad), ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
