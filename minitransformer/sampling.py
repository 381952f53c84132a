"""Choosing the next token from a language model's logits: greedy, temperature, top-k, top-p.

A language model gives, at each position, logits ``x`` (one score per
vocabulary entry) for the next token. Decoding turns them into one token id:

- **greedy**: ``argmax_v x_v`` (deterministic; ties go to the lowest id);
- **temperature** ``T > 0``: sample from ``softmax(x / T)``; ``T < 1``
  sharpens the distribution (``T -> 0`` approaches greedy), ``T > 1``
  flattens it;
- **top-k** (Fan et al. 2018): keep the ``k`` largest logits, renormalise;
- **top-p / nucleus** (Holtzman et al. 2020): keep the smallest set of tokens,
  taken in order of decreasing probability, whose probability sums to at
  least ``p`` (always at least the most likely token), renormalise.

Filters are applied in that order (temperature, then top-k, then top-p, as in
Hugging Face transformers), and ``sampling_probs`` returns the resulting
distribution, so a test (or a student) can look at exactly what is sampled.

Randomness: every draw takes ``rng``, a NumPy ``Generator`` from
``backend.host_rng(seed)`` (or an int seed). One uniform number per row is
drawn on the host and the token is found by inverting the cumulative
distribution, so a seed gives the same tokens on the NumPy and CuPy backends
(up to float rounding of the probabilities) and the functions never touch a
global generator.

Ref: Fan, Lewis and Dauphin 2018, "Hierarchical Neural Story Generation" (top-k);
Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration" (top-p).
"""

from __future__ import annotations

import math

from . import backend
from .nn.softmax import softmax_forward

__all__ = [
    "check_sampling_options",
    "greedy",
    "sample",
    "sampling_probs",
    "top_k_filter",
    "top_p_filter",
]


def check_sampling_options(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise ValueError naming the bad option: temperature must be > 0, top_k >= 1, top_p in (0, 1]."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0 (for argmax decoding use greedy), "
                         f"got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None for no top-k), got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (or None for no nucleus), got {top_p!r}")


def _check_logits(logits) -> None:
    if not backend.is_array(logits) or logits.ndim not in (1, 2) or logits.shape[-1] < 1:
        shape = getattr(logits, "shape", type(logits).__name__)
        raise ValueError(f"logits must be an array of shape (V,) or (B, V) with V >= 1, got {shape}")
    if logits.dtype.kind != "f":
        raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
    xp = backend.get_array_module(logits)
    if bool(xp.isnan(logits).any()):
        raise ValueError("logits contain NaN")
    if not bool((logits > -xp.inf).any(axis=-1).all()):
        raise ValueError("every logit of a row is -inf: no token can be chosen")


def greedy(logits):
    """The most likely token of each row.

    Args:
        logits: (B, V) or (V,) scores.
    Returns:
        ids: (B,) or 0-d int64 array on the logits' backend; ties go to the lowest id.

    Math:
        ids = argmax_v logits[..., v]
    """
    _check_logits(logits)
    return logits.argmax(axis=-1)  # (B,) or ()


def top_k_filter(logits, top_k: int):
    """Keep the ``top_k`` largest logits of each row, set the others to -inf.

    Exactly ``min(top_k, V)`` entries stay finite-or-kept; among equal logits at
    the boundary the lower ids are kept.

    Args:
        logits: (B, V) or (V,) scores; top_k: k >= 1 (k > V keeps everything).
    Returns:
        filtered: (B, V) or (V,), same dtype.

    Math:
        keep_v = rank(logits_v) < k     (rank 0 = largest; stable order)
        filtered_v = logits_v if keep_v else -inf
    """
    check_sampling_options(top_k=top_k)
    _check_logits(logits)
    xp = backend.get_array_module(logits)
    V = logits.shape[-1]
    if top_k >= V:
        return logits.copy()  # (..., V)
    order = xp.argsort(-logits, axis=-1, kind="stable")  # (..., V)  ids by decreasing logit
    keep = xp.zeros(logits.shape, dtype=bool)  # (..., V)
    xp.put_along_axis(keep, order[..., :top_k], True, axis=-1)  # (..., V)  the k best
    return xp.where(keep, logits, -xp.inf).astype(logits.dtype)  # (..., V)


def top_p_filter(logits, top_p: float):
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches ``top_p``.

    Tokens are taken in order of decreasing probability (stable: lower id first
    among equals); a token is kept when the probability of the tokens before it
    is still below ``top_p``. So the most likely token is always kept, and
    ``top_p = 1`` keeps every token of nonzero probability.

    Args:
        logits: (B, V) or (V,) scores; top_p: p in (0, 1].
    Returns:
        filtered: (B, V) or (V,), -inf outside the nucleus, same dtype.

    Math:
        P = softmax(logits);  sort P decreasing: P_(1) >= P_(2) >= ...
        keep the (i) with  sum_{j < i} P_(j) < top_p
        (the smallest prefix with sum_{j <= i} P_(j) >= top_p)
    """
    check_sampling_options(top_p=top_p)
    _check_logits(logits)
    xp = backend.get_array_module(logits)
    P, _ = softmax_forward(logits)  # (..., V)
    order = xp.argsort(-P, axis=-1, kind="stable")  # (..., V)
    P_sorted = xp.take_along_axis(P, order, axis=-1)  # (..., V)
    before = xp.cumsum(P_sorted, axis=-1) - P_sorted  # (..., V)  mass of the tokens ranked higher
    keep_sorted = before < top_p  # (..., V)  always True for the first token (before = 0)
    keep_sorted[..., 0] = True  # guard against top_p below rounding of 0
    keep = xp.zeros(logits.shape, dtype=bool)  # (..., V)
    xp.put_along_axis(keep, order, keep_sorted, axis=-1)  # (..., V)  back to vocabulary order
    return xp.where(keep, logits, -xp.inf).astype(logits.dtype)  # (..., V)


def sampling_probs(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """The distribution ``sample`` draws from: temperature, then top-k, then top-p, then softmax.

    Args:
        logits: (B, V) or (V,) scores.
        temperature: T > 0; top_k: k >= 1 or None; top_p: p in (0, 1] or None.
    Returns:
        P: (B, V) or (V,) probabilities (rows sum to 1), same dtype as logits.

    Math:
        z = logits / T
        z = top_k_filter(z, k)      (if k)
        z = top_p_filter(z, p)      (if p)
        P = softmax(z)
    """
    check_sampling_options(temperature, top_k, top_p)
    _check_logits(logits)
    z = logits / float(temperature)  # (..., V)
    if top_k is not None:
        z = top_k_filter(z, top_k)  # (..., V)
    if top_p is not None:
        z = top_p_filter(z, top_p)  # (..., V)
    P, _ = softmax_forward(z)  # (..., V)
    return P


def _as_rng(rng):
    """An int seed -> a fresh host Generator; a Generator as is; None -> the shared host generator."""
    if rng is None:
        return backend.host_rng()
    if isinstance(rng, int) and not isinstance(rng, bool):
        return backend.host_rng(rng)
    if hasattr(rng, "random"):
        return rng
    raise TypeError(f"rng must be an int seed, a numpy Generator (backend.host_rng(seed)) or None, got {rng!r}")


def sample(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           rng=None, do_greedy: bool = False):
    """Draw one token per row from ``sampling_probs(logits, temperature, top_k, top_p)``.

    Args:
        logits: (B, V) or (V,) scores.
        temperature, top_k, top_p: as ``sampling_probs`` (checked even with do_greedy).
        rng: a host Generator (``backend.host_rng(seed)``), an int seed, or None (the shared host generator).
        do_greedy: take the argmax instead of sampling (no random number is drawn).
    Returns:
        ids: (B,) or 0-d int64 array on the logits' backend.

    Math:
        u ~ Uniform[0, 1) per row (host generator)
        C_v = sum_{w <= v} P_w                     (cumulative distribution)
        id = #{v : C_v <= u * C_{V-1}}             (inverse CDF: the first v with C_v > u * C_{V-1},
                                                    so never a token with P_v = 0)
    """
    check_sampling_options(temperature, top_k, top_p)
    if do_greedy:
        return greedy(logits)  # (B,) or ()
    P = sampling_probs(logits, temperature, top_k, top_p)  # (..., V)
    xp = backend.get_array_module(P)
    gen = _as_rng(rng)
    V = P.shape[-1]
    u = backend.asarray(gen.random(P.shape[:-1]), dtype=P.dtype)  # (...,)  host draws, then to the device
    u = xp.minimum(u, 1.0 - float(backend.finfo(P.dtype).epsneg))  # (...,)  float32 rounding must not reach 1
    C = xp.cumsum(P, axis=-1)  # (..., V)
    ids = (C <= (u * C[..., -1])[..., None]).sum(axis=-1)  # (...,)  the first v with C_v > u * total
    last = V - 1 - (P[..., ::-1] > 0).argmax(axis=-1)  # (...,)  the last token of nonzero probability
    return xp.minimum(ids, last).astype("int64")  # (B,) or ()  rounding of u * total can never pass it
