"""Decoding an encoder-decoder Transformer: batched greedy search and beam search.

Both run the encoder once, then grow the target one token at a time,
re-running the decoder on the whole prefix (no key/value cache: simple, and
cheap at the lengths of our tasks). The model is put in eval mode while
decoding (no dropout) and restored afterwards.

Greedy: at every step take the most likely next token,

    y_t = argmax_v log p(v | y_<t, x)

Beam search keeps the ``beam_size`` best prefixes by total log-probability
``sum_t log p(y_t | y_<t, x)``. A prefix that has produced <eos> is finished:
it keeps its slot and its score and is only extended by padding (at log-prob
0), so with ``beam_size=1`` beam search is exactly greedy search. At the end
the finished hypotheses are ranked by the length-normalised score of Wu et al.
(2016):

    score / lp(L),   lp(L) = ((5 + L) / 6) ** length_penalty

(``length_penalty=0`` ranks by raw log-probability, which favours short outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import backend
from .nn.softmax import log_softmax_forward

__all__ = ["DecodeResult", "attention_maps", "beam_search", "greedy_decode"]


@dataclass
class DecodeResult:
    """Decoded token ids per sequence (no <bos>, cut before <eos>) and their scores."""

    tokens: list[list[int]]
    scores: list[float]  # total log-probability (greedy) or length-normalised score (beam)


class _EvalMode:
    """Context: model.eval() inside, previous mode restored after."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.clear_cache()  # decoding never runs backward: free the layers' activations
        self.model.train(self.was_training)


def _strip(seq, eos_id: int) -> list[int]:
    """Host list of ids after <bos>, up to (not including) the first <eos>."""
    out = []
    for tok in seq[1:]:
        if tok == eos_id:
            break
        out.append(int(tok))
    return out


def greedy_decode(model, src_ids, src_key_padding_mask=None, max_len: int = 64, bos_id: int = 1,
                  eos_id: int = 2, pad_id: int = 0) -> DecodeResult:
    """Batched greedy decoding.

    Args:
        model: a Transformer.
        src_ids: (B, S) int source ids; src_key_padding_mask: (B, S) bool, True = padding.
        max_len: the most tokens to generate (the <eos> included).
    Returns:
        DecodeResult with B token lists and their total log-probabilities.
    """
    xp = backend.get_array_module(src_ids)
    B = src_ids.shape[0]
    with _EvalMode(model):
        memory = model.encode(src_ids, src_key_padding_mask)  # (B, S, d_model)
        ys = xp.full((B, 1), bos_id, dtype=src_ids.dtype)  # (B, 1)
        done = xp.zeros(B, dtype=bool)  # (B,)
        score = xp.zeros(B, dtype=memory.dtype)  # (B,)
        for _ in range(max_len):
            logits = model.decode(ys, memory, src_key_padding_mask)  # (B, t, V)
            logp, _ = log_softmax_forward(logits[:, -1])  # (B, V)
            nxt = logp.argmax(axis=-1)  # (B,)
            score = score + xp.where(done, 0.0, logp[xp.arange(B), nxt])  # (B,)
            nxt = xp.where(done, pad_id, nxt)  # (B,)  finished rows only pad
            ys = xp.concatenate([ys, nxt[:, None].astype(ys.dtype)], axis=1)  # (B, t + 1)
            done = done | (nxt == eos_id)  # (B,)
            if bool(done.all()):
                break
    host = backend.to_numpy(ys).tolist()
    return DecodeResult([_strip(s, eos_id) for s in host], [float(v) for v in backend.to_numpy(score)])


def beam_search(model, src_ids, src_key_padding_mask=None, beam_size: int = 4, max_len: int = 64,
                length_penalty: float = 0.6, bos_id: int = 1, eos_id: int = 2, pad_id: int = 0) -> DecodeResult:
    """Batched beam search; ``beam_size=1`` gives exactly ``greedy_decode``'s tokens.

    Args:
        model, src_ids, src_key_padding_mask, max_len: as greedy_decode.
        beam_size: hypotheses kept per sequence (k).
        length_penalty: alpha in lp(L) = ((5 + L) / 6) ** alpha, used to rank finished hypotheses.
    Returns:
        DecodeResult with the best hypothesis per sequence and its normalised score.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    xp = backend.get_array_module(src_ids)
    B, k = src_ids.shape[0], beam_size
    with _EvalMode(model):
        memory = model.encode(src_ids, src_key_padding_mask)  # (B, S, d_model)
        memory = xp.repeat(memory, k, axis=0)  # (B*k, S, d_model)   beam b*k + j reads source b
        kpm = None if src_key_padding_mask is None else xp.repeat(src_key_padding_mask, k, axis=0)  # (B*k, S)
        seqs = xp.full((B, k, 1), bos_id, dtype=src_ids.dtype)  # (B, k, 1)
        scores = xp.full((B, k), -xp.inf, dtype=memory.dtype)  # (B, k)
        scores[:, 0] = 0.0  # only one live beam at the start: no duplicate hypotheses
        done = xp.zeros((B, k), dtype=bool)  # (B, k)
        lengths = xp.zeros((B, k), dtype="int64")  # (B, k)  tokens generated, <eos> included
        for _ in range(max_len):
            logits = model.decode(seqs.reshape(B * k, -1), memory, kpm)  # (B*k, t, V)
            logp, _ = log_softmax_forward(logits[:, -1])  # (B*k, V)
            V = logp.shape[-1]
            logp = logp.reshape(B, k, V)  # (B, k, V)
            pad_only = xp.full(V, -xp.inf, dtype=logp.dtype)  # (V,)  a finished beam can only add <pad>...
            pad_only[pad_id] = 0.0  # ...at no cost, so its score stays put
            logp = xp.where(done[:, :, None], pad_only, logp)  # (B, k, V)
            cand = (scores[:, :, None] + logp).reshape(B, k * V)  # (B, k*V)  every one-token extension
            top = xp.argsort(-cand, axis=1, kind="stable")[:, :k]  # (B, k)   the k best, ties to the lower index
            beam, tok = top // V, top % V  # (B, k), (B, k)  which prefix, which next token
            scores = xp.take_along_axis(cand, top, axis=1)  # (B, k)
            seqs = xp.take_along_axis(seqs, beam[:, :, None], axis=1)  # (B, k, t)
            seqs = xp.concatenate([seqs, tok[:, :, None].astype(seqs.dtype)], axis=2)  # (B, k, t + 1)
            was_done = xp.take_along_axis(done, beam, axis=1)  # (B, k)
            lengths = xp.take_along_axis(lengths, beam, axis=1) + (~was_done)  # (B, k)
            done = was_done | (tok == eos_id)  # (B, k)
            if bool(done.all()):
                break
        lp = ((5.0 + lengths) / 6.0) ** length_penalty  # (B, k)   Wu et al. 2016, Eq. 14
        norm = xp.where(xp.isfinite(scores), scores / lp, -xp.inf)  # (B, k)
        best = norm.argmax(axis=1)  # (B,)
    host_seqs = backend.to_numpy(seqs)
    host_best = backend.to_numpy(best)
    host_norm = backend.to_numpy(norm)
    tokens = [_strip(host_seqs[b, host_best[b]].tolist(), eos_id) for b in range(B)]
    return DecodeResult(tokens, [float(host_norm[b, host_best[b]]) for b in range(B)])


def attention_maps(model, src_ids, tgt_in, src_key_padding_mask=None) -> dict:
    """All attention weights of one teacher-forced pass, for plots.

    Returns:
        {"encoder": [(B, n_heads, S, S) per layer], "decoder_self": [(B, n_heads, T, T) ...],
         "cross": [(B, n_heads, T, S) ...]}, host NumPy arrays.
    """
    with _EvalMode(model):
        memory = model.encode(src_ids, src_key_padding_mask, need_weights=True)  # (B, S, d_model)
        model.decode(tgt_in, memory, src_key_padding_mask, need_weights=True)  # (B, T, V)
    return {
        "encoder": [backend.to_numpy(layer.attn_weights) for layer in model.encoder.layers],
        "decoder_self": [backend.to_numpy(layer.self_attn_weights) for layer in model.decoder.layers],
        "cross": [backend.to_numpy(layer.cross_attn_weights) for layer in model.decoder.layers],
    }
