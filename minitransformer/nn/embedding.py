"""Token embedding: look up one row of W per token id.

The forward is plain indexing, ``W[ids]``; it equals ``one_hot(ids) @ W``
without ever building the (B, T, vocab_size) one-hot matrix. The backward is
the matching scatter-add: every position adds its upstream gradient into the
row of its token, so a token that appears several times collects the sum.
(Fancy-index ``dW[ids] += dy`` would keep only one of the repeated writes;
``backend.scatter_add`` accumulates them.)

Ref: Vaswani et al. 2017, section 3.4 (Embeddings and Softmax).
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from .checks import check_ids, check_size
from .module import Module, Parameter

__all__ = ["Embedding", "EmbeddingCache", "embedding_backward", "embedding_forward"]


class EmbeddingCache(NamedTuple):
    ids: object  # (...) integer token ids, the rows to scatter into
    vocab_size: int  # number of rows of W; dW is rebuilt as zeros of (vocab_size, d_model)


def embedding_forward(ids, W):
    """Rows of ``W`` selected by ``ids``.

    Args:
        ids: (...) integer token ids in [0, vocab_size), e.g. (B, T).
        W: (vocab_size, d_model) embedding matrix.
    Returns:
        y: (..., d_model), and the cache for backward.

    Math:
        y[b, t] = W[ids[b, t]]          (= one_hot(ids) @ W, without the one-hot)
    """
    y = W[ids]  # (..., d_model)  a gather, one row per id
    return y, EmbeddingCache(ids, W.shape[0])


def embedding_backward(dy, cache: EmbeddingCache):
    """Gradient of ``embedding_forward`` with respect to ``W`` (ids are not differentiable).

    Args:
        dy: (..., d_model) upstream gradient.
        cache: from ``embedding_forward``.
    Returns:
        dW: (vocab_size, d_model), zero in the rows of ids that did not occur.

    Math:
        dW[v] = sum over positions (b, t) with ids[b, t] == v of dy[b, t]
    """
    # BEGIN SOLUTION embedding: dW = zeros (vocab_size, d_model); dW[v] = sum of dy at the positions where ids == v
    # HINT: repeated ids must add up: backend.scatter_add(target, indices, values), not dW[ids] += dy
    ids, vocab_size = cache
    xp = backend.get_array_module(dy)
    d_model = dy.shape[-1]
    dW = xp.zeros((vocab_size, d_model), dtype=dy.dtype)  # (vocab_size, d_model)
    # inverts y = W[ids]: repeated ids accumulate
    backend.scatter_add(dW, ids.reshape(-1), dy.reshape(-1, d_model))  # dW: (vocab_size, d_model)
    return dW
    # END SOLUTION


class Embedding(Module):
    """Lookup table ``W`` (vocab_size, d_model), initialised standard normal like ``torch.nn.Embedding``.

    Args:
        vocab_size: number of token ids.
        d_model: embedding size.
        dtype: parameter dtype (float32 default).
    """

    def __init__(self, vocab_size: int, d_model: int, dtype="float32"):
        super().__init__()
        check_size(vocab_size, "Embedding vocab_size")
        check_size(d_model, "Embedding d_model")
        self.vocab_size, self.d_model = vocab_size, d_model
        rng = backend.host_rng()  # host init: same weights on CPU and GPU for one seed
        self.W = Parameter(backend.asarray(rng.standard_normal((vocab_size, d_model)), dtype=dtype))

    def forward(self, ids):
        """ids: (...) integers in [0, vocab_size) -> y: (..., d_model)."""
        check_ids(ids, self.vocab_size, "Embedding ids")  # on the host: CuPy would wrap silently
        y, self._cache = embedding_forward(ids, self.W.data)
        return y

    def backward(self, dy):
        """dy: (..., d_model) -> None (ids have no gradient); accumulates W.grad."""
        self.W.grad += embedding_backward(dy, self._pop_cache())
        return None

    def __repr__(self) -> str:
        return f"Embedding(vocab_size={self.vocab_size}, d_model={self.d_model})"
