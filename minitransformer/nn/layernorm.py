"""Layer normalisation over the last axis: y = gamma * (x - mu) / sqrt(var + eps) + beta.

Each position (each row of the last axis) is normalised on its own, so the
statistics never mix tokens or examples. The variance is the biased one
(divide by d_model, not d_model - 1), as in PyTorch's ``nn.LayerNorm``.

A row whose entries are all equal has var = 0: then rstd = 1/sqrt(eps) is
large but finite, x_hat = 0, y = beta, and the gradients stay finite.

Ref: Ba, Kiros and Hinton 2016, "Layer Normalization", Eq. 4.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from .checks import check_dtype_match, check_last_dim, check_size
from .module import Module, Parameter

__all__ = ["LayerNorm", "LayerNormCache", "layernorm_backward", "layernorm_forward"]


class LayerNormCache(NamedTuple):
    x_hat: object  # (..., d_model) normalised input, needed for dgamma and dx
    rstd: object  # (..., 1)       1 / sqrt(var + eps) per row, needed for dx
    gamma: object  # (d_model,)     scale, needed for dx
    # Recomputed in backward instead of cached: g = dy * gamma. x and mu are not needed.


def layernorm_forward(x, gamma, beta, eps: float = 1e-5):
    """Normalise each row of the last axis, then scale and shift.

    Args:
        x: (..., d_model) input.
        gamma: (d_model,) scale.
        beta: (d_model,) shift.
        eps: added to the variance, keeps zero-variance rows finite.
    Returns:
        y: (..., d_model), and the cache for backward.

    Math:
        mu    = mean(x)                       over the last axis
        var   = mean((x - mu)^2)              biased, as torch
        rstd  = 1 / sqrt(var + eps)
        x_hat = (x - mu) * rstd
        y     = gamma * x_hat + beta

    Ref: Ba et al. 2016, Eq. 4.
    """
    # BEGIN SOLUTION layernorm: mu = mean(x), var = mean((x - mu)^2) (biased), rstd = 1 / sqrt(var + eps), last axis
    # HINT: x_hat = (x - mu) * rstd, y = gamma * x_hat + beta; return y, LayerNormCache(x_hat, rstd, gamma)
    xp = backend.get_array_module(x)
    d_model = x.shape[-1]
    x2 = x.reshape(-1, d_model)  # (N, d_model)  N = product of leading axes
    y = xp.empty(x2.shape, dtype=x.dtype)  # (N, d_model)
    x_hat = xp.empty(x2.shape, dtype=x.dtype)  # (N, d_model)
    rstd = xp.empty((x2.shape[0], 1), dtype=x.dtype)  # (N, 1)
    # Rows are independent, so the lines run on cache-sized blocks of rows (backend.row_blocks; one block on a
    # GPU), spread over the CPU's cores (backend.for_each_block): a block's ~8 passes stay in the core's cache.
    def block(x_b, y_b, xh_b, rstd_b):  # (r, d_model) views, rstd_b (r, 1): r rows of the block
        mu = x_b.mean(axis=-1, keepdims=True)  # (r, 1)
        xc = xp.subtract(x_b, mu, out=xh_b)  # (r, d_model)  centred input, built in x_hat's block
        var = (xc * xc).mean(axis=-1, keepdims=True)  # (r, 1)  two-pass variance: no cancellation
        rstd_b[...] = 1.0 / xp.sqrt(var + float(eps))  # (r, 1)  Python float eps: float32 stays float32
        xc *= rstd_b  # (r, d_model)  x_hat = (x - mu) * rstd, in place
        xp.multiply(xc, gamma, out=y_b)  # (r, d_model)  y = gamma * x_hat + beta
        y_b += beta

    backend.for_each_block(block, backend.row_blocks(x2, y, x_hat, rstd))
    y, x_hat, rstd = y.reshape(x.shape), x_hat.reshape(x.shape), rstd.reshape(*x.shape[:-1], 1)  # (...)
    return y, LayerNormCache(x_hat, rstd, gamma)
    # END SOLUTION


def layernorm_backward(dy, cache: LayerNormCache):
    """Gradients of ``layernorm_forward`` in the compact form.

    Args:
        dy: (..., d_model) upstream gradient dL/dy.
        cache: from ``layernorm_forward``.
    Returns:
        dx: (..., d_model), dgamma: (d_model,), dbeta: (d_model,).

    Math:
        Per row, with n = d_model and g = dy * gamma (= dL/dx_hat):
        x_hat_i = (x_i - mu) * rstd, and since d mu/dx_j = 1/n and
        d rstd/dx_j = -rstd^3 (x_j - mu) / n = -rstd^2 x_hat_j / n,
            d x_hat_i / d x_j = rstd * ([i == j] - 1/n - x_hat_i x_hat_j / n).
        Summing g_i times this over i:
            dx_j = rstd * (g_j - mean(g) - x_hat_j * mean(g * x_hat))
        The parameters see every position, so their gradients sum over all
        leading axes:
            dgamma = sum(dy * x_hat),   dbeta = sum(dy)
    """
    # BEGIN SOLUTION layernorm: g = dy * gamma; dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), last-axis means
    # HINT: dgamma = sum(dy * x_hat), dbeta = sum(dy), each summed over every leading axis to shape (d_model,)
    x_hat, rstd, gamma = cache
    xp = backend.get_array_module(dy, x_hat)
    d_model = gamma.shape[0]
    dy2, x_hat2 = dy.reshape(-1, d_model), x_hat.reshape(-1, d_model)  # (N, d_model)
    rstd2 = rstd.reshape(-1, 1)  # (N, 1)
    dx = xp.empty(dy2.shape, dtype=dy.dtype)  # (N, d_model)

    # As in the forward, dx's lines run on blocks of rows, spread over the cores.
    def block(dy_b, xh_b, rstd_b, dx_b):  # (r, d_model) views, rstd_b (r, 1)
        g = xp.multiply(dy_b, gamma, out=dx_b)  # (r, d_model)  inverts y = gamma * x_hat + beta, w.r.t. x_hat
        mean_g = g.mean(axis=-1, keepdims=True)  # (r, 1)       inverts mu = mean(x)
        # einsum for the sum of products: no (r, d_model) temporary for g * x_hat
        mean_gx = xp.einsum("ri,ri->r", g, xh_b)[:, None] / d_model  # (r, 1)  inverts rstd = 1/sqrt(var + eps)
        dx_b[...] = rstd_b * (g - mean_g - xh_b * mean_gx)  # (r, d_model)  inverts x_hat = (x - mu) * rstd

    backend.for_each_block(block, backend.row_blocks(dy2, x_hat2, rstd2, dx))
    dgamma = xp.einsum("ni,ni->i", dy2, x_hat2)  # (d_model,)  inverts gamma * x_hat: sums over all rows
    dbeta = dy2.sum(axis=0)  # (d_model,)  inverts + beta
    dx = dx.reshape(dy.shape)  # (..., d_model)
    return dx, dgamma, dbeta
    # END SOLUTION


class LayerNorm(Module):
    """Layer normalisation with learned ``gamma`` (ones) and ``beta`` (zeros), as PyTorch.

    Args:
        d_model: size of the normalised last axis.
        eps: added to the variance.
        dtype: parameter dtype (float32 default).
    """

    def __init__(self, d_model: int, eps: float = 1e-5, dtype="float32"):
        super().__init__()
        check_size(d_model, "LayerNorm d_model")
        if not eps > 0.0:  # also refuses NaN
            raise ValueError(f"LayerNorm eps must be > 0 (it keeps 1 / sqrt(var + eps) finite), got {eps!r}")
        self.d_model = d_model
        self.eps = float(eps)
        self.gamma = Parameter(backend.asarray([1.0] * d_model, dtype=dtype))  # (d_model,)
        self.beta = Parameter(backend.asarray([0.0] * d_model, dtype=dtype))  # (d_model,)

    def forward(self, x):
        """x: (..., d_model) -> y: (..., d_model)."""
        check_last_dim(x, self.d_model, "LayerNorm input")
        check_dtype_match(x, self.gamma.data, "LayerNorm input")
        y, self._cache = layernorm_forward(x, self.gamma.data, self.beta.data, self.eps)
        return y

    def backward(self, dy):
        """dy: (..., d_model) -> dx: (..., d_model); accumulates gamma.grad and beta.grad."""
        dx, dgamma, dbeta = layernorm_backward(dy, self._pop_cache())
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        return dx

    def __repr__(self) -> str:
        return f"LayerNorm(d_model={self.d_model}, eps={self.eps})"
