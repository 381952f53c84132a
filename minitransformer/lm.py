"""Using a trained GPT as a language model: generate text, and score any text.

The course text defines a language model as one that assigns a probability to
any text. With a tokenizer that turns the text into tokens ``w_1 .. w_N``, the
chain rule gives it from the model's next-token distributions:

    log p(text) = sum_{t=1..N} log p(w_t | <s>, w_1, ..., w_{t-1})

where ``<s>`` is the start token (the tokenizer's ``<|endoftext|>``, as in
GPT-2: the model reads it as "a document starts here"), so even the first
token is predicted. ``score`` returns every term, their sum and the perplexity

    perplexity = exp(-log p(text) / N)

(the geometric-mean inverse probability per token; a uniform guess over V
tokens has perplexity V).

``generate`` runs the same model forwards: start from ``<s>`` + the prompt, and
repeatedly pick the next token from the logits with ``sampling.sample``
(greedy, temperature, top-k, top-p), stopping at the token budget, at
``<|endoftext|>``, or at a stop string or id. With ``use_cache=True`` (the
default) it keeps every layer's keys and values (``model.init_cache`` /
``model.forward_cached``), so each step feeds one token instead of the whole
sequence; ``use_cache=False`` recomputes the full sequence at every step and
gives the same tokens (it exists for tests and the speed benchmark).

Context window. The model sees at most ``max_len`` positions. A prompt that does
not fit (with its start token) is refused with a clear error. A generation that
fills the window continues with a sliding window: the oldest tokens are dropped
so that the last ``max_len // 2`` remain, and the cache is rebuilt from them
(one full forward), so cached and uncached generation still see the same
context. ``score`` of a text longer than the window uses overlapping windows
(stride ``max_len // 2``): each token is predicted from at least the
``max_len // 2`` tokens before it (all of them when the text fits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import backend
from .nn.softmax import log_softmax_forward
from .sampling import check_sampling_options, sample

__all__ = ["Generation", "ScoreResult", "generate", "score", "token_log_probs"]


@dataclass
class Generation:
    """What ``generate`` produced.

    ``text`` is the continuation only (the prompt not repeated), cut before a
    stop string or stop token; ``ids`` are every token drawn (the last one may
    be the stop token, or complete the stop string); ``token_log_probs[i]`` is
    log p(ids[i] | context) under the model itself (temperature 1, no filters),
    so it can be compared with ``score``.
    """

    text: str
    ids: list[int]
    prompt_ids: list[int]
    token_log_probs: list[float]
    stop_reason: str  # "max_new_tokens", "eos", "stop_id" or "stop_string"

    @property
    def total_log_prob(self) -> float:
        return float(sum(self.token_log_probs))


@dataclass
class ScoreResult:
    """``score``'s answer: the text's tokens, their log-probabilities (nats), the total and the perplexity."""

    text: str
    ids: list[int]
    tokens: list[str]  # each id decoded on its own
    log_probs: list[float]  # log p(w_t | <s>, w_<t), natural log
    total_log_prob: float = field(default=0.0)  # sum of log_probs = log p(text)
    perplexity: float = field(default=1.0)  # exp(-total_log_prob / n_tokens)

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


class _EvalMode:
    """Context: model.eval() inside; previous mode restored and activations freed after."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.clear_cache()
        self.model.train(self.was_training)


def _check_model_tokenizer(model, tokenizer) -> tuple[int, int]:
    """(max_len, vocab size of the tokenizer); errors if the tokenizer has ids the model cannot read."""
    for attr in ("encode", "decode", "eos_id", "vocab_size"):
        if not hasattr(tokenizer, attr):
            raise TypeError(f"tokenizer must have encode, decode, eos_id and vocab_size; "
                            f"{type(tokenizer).__name__} has no {attr!r}")
    V_model, V_tok = int(model.config.vocab_size), int(tokenizer.vocab_size)
    if V_tok > V_model:
        raise ValueError(f"the tokenizer has {V_tok} tokens but the model only vocab_size={V_model}: "
                         "they do not belong together")
    return int(model.config.max_len), V_tok


def _ids_array(rows):
    """Host list of equal-length id lists -> (B, T) int64 array on the active backend."""
    return backend.asarray(rows, dtype="int64")  # (B, T)


def token_log_probs(model, ids: list[int], start_id: int, stride: int | None = None,
                    batch_size: int = 16) -> list[float]:
    """log p(ids[t] | start_id, ids[:t]) for every t, with overlapping windows when the sequence is long.

    Args:
        model: a GPT (``model(ids (B, T)) -> logits (B, T, vocab_size)``, ``config.max_len``).
        ids: N >= 1 token ids; start_id: the token the first one is conditioned on.
        stride: new tokens scored per window when N > max_len (default ``max_len // 2``); each token
            then has at least ``max_len - stride`` tokens of context.
        batch_size: windows per forward pass.
    Returns:
        N log-probabilities (Python floats, natural log).

    Math:
        s = [start_id] + ids;  window k reads s[b_k : b_k + W] (W = min(max_len, N)) and predicts
        s[b_k + 1 : b_k + W + 1]; b_k = 0, stride, 2 stride, ..., and finally N - W; each target is
        taken from the first window that has not scored it yet.
    """
    N, W = len(ids), int(model.config.max_len)
    if N < 1:
        raise ValueError("nothing to score: the text has no tokens")
    s = [int(start_id)] + [int(i) for i in ids]
    if N <= W:
        windows = [0]
        W = N
    else:
        stride = W // 2 if stride is None else int(stride)
        if not 1 <= stride <= W:
            raise ValueError(f"stride must be in [1, max_len={W}], got {stride}")
        windows = list(range(0, N - W, stride)) + [N - W]
    out: list[float] = [0.0] * N
    scored = 0  # targets s[1 .. scored] are done
    with _EvalMode(model):
        for i in range(0, len(windows), batch_size):
            chunk = windows[i:i + batch_size]
            x = _ids_array([s[b:b + W] for b in chunk])  # (b, W)
            y = _ids_array([s[b + 1:b + W + 1] for b in chunk])  # (b, W)
            logp, _ = log_softmax_forward(model(x))  # (b, W, vocab_size)
            model.clear_cache()
            xp = backend.get_array_module(logp)
            picked = backend.to_numpy(xp.take_along_axis(logp, y[:, :, None], axis=-1)[:, :, 0])  # (b, W)
            for row, b in enumerate(chunk):
                for j in range(max(scored, b), b + W):  # target s[j + 1], predicted at window position j - b
                    out[j] = float(picked[row, j - b])
                scored = b + W
    return out


def score(model, tokenizer, text: str, stride: int | None = None) -> ScoreResult:
    """The probability the model assigns to ``text``: per-token log-probabilities, total, perplexity.

    Args:
        model: a GPT; tokenizer: its tokenizer (``encode``, ``decode``, ``eos_id``).
        text: any non-empty string the tokenizer can encode.
        stride: for texts longer than the context window (see ``token_log_probs``).
    Returns:
        ScoreResult(text, ids, tokens, log_probs, total_log_prob, perplexity).

    Math:
        log_probs[t] = log p(w_t | <s>, w_1 .. w_{t-1})     (<s> = tokenizer.eos_id)
        total_log_prob = sum_t log_probs[t]
        perplexity = exp(-total_log_prob / N)
    """
    _check_model_tokenizer(model, tokenizer)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("cannot score an empty text: it has no tokens (and no perplexity)")
    ids = list(tokenizer.encode(text))
    if not ids:
        raise ValueError(f"the tokenizer turned {text!r} into no tokens")
    log_probs = token_log_probs(model, ids, tokenizer.eos_id, stride=stride)
    total = math.fsum(log_probs)
    return ScoreResult(text, ids, [tokenizer.decode([i]) for i in ids], log_probs, total,
                       math.exp(-total / len(ids)))


def _split_stop(stop, V_tok: int) -> tuple[list[str], set[int]]:
    """``stop`` (None, a str, an int, or a list of them) -> (stop strings, stop ids)."""
    if stop is None:
        return [], set()
    items = [stop] if isinstance(stop, (str, int)) else list(stop)
    strings, ids = [], set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(f"stop must hold strings or token ids, got {item!r}")
        if isinstance(item, str):
            if not item:
                raise ValueError("a stop string must not be empty")
            strings.append(item)
        elif not 0 <= item < V_tok:
            raise ValueError(f"stop id {item} is outside the vocabulary [0, {V_tok})")
        else:
            ids.add(item)
    return strings, ids


def generate(model, tokenizer, prompt: str, max_new_tokens: int = 64, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, greedy: bool = False, stop=None,
             seed: int | None = 0, use_cache: bool = True) -> Generation:
    """Continue ``prompt`` with up to ``max_new_tokens`` tokens drawn from the model.

    Args:
        model: a GPT; tokenizer: its tokenizer.
        prompt: the text to continue; "" starts a new document (from the start token alone).
        max_new_tokens: the most tokens to draw (>= 1).
        temperature, top_k, top_p: sampling options (``sampling.sampling_probs``); greedy: argmax instead.
        stop: a string, a token id, or a list of them; generation ends when a stop id is drawn or the
            continuation contains a stop string (the text is cut before it). ``<|endoftext|>`` always stops.
        seed: seed of the host generator used for the draws (same seed, same text); None: the shared one.
        use_cache: incremental decoding with the model's KV cache (False: recompute every step).
    Returns:
        Generation(text, ids, prompt_ids, token_log_probs, stop_reason).

    Math:
        context = [<s>] + encode(prompt)
        repeat: logits = model(context)[-1];  w ~ sampling_probs(logits, T, k, p)  (or argmax);
                context += [w]
    """
    max_len, V_tok = _check_model_tokenizer(model, tokenizer)
    check_sampling_options(temperature, top_k, top_p)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    stop_strings, stop_ids = _split_stop(stop, V_tok)
    eos = int(tokenizer.eos_id)
    prompt_ids = [int(i) for i in tokenizer.encode(prompt)]
    context = [eos] + prompt_ids
    if len(context) > max_len:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens (+1 start token); the model's context window "
                         f"is max_len={max_len} tokens: shorten the prompt to at most {max_len - 1} tokens")
    rng = backend.host_rng(seed) if seed is not None else backend.host_rng()
    keep = max(1, max_len // 2)  # tokens kept when the window slides
    start = 0  # the model sees context[start:]
    generated: list[int] = []
    log_probs: list[float] = []
    reason = "max_new_tokens"
    with _EvalMode(model):
        cache = model.init_cache(1) if use_cache else None
        logits = _run(model, context[start:], cache)  # (1, vocab_size)
        for step in range(max_new_tokens):
            if V_tok < logits.shape[-1]:  # a model vocabulary padded past the tokenizer's: never draw those
                logits[:, V_tok:] = -backend.get_array_module(logits).inf  # (1, vocab_size)
            logp, _ = log_softmax_forward(logits)  # (1, vocab_size)
            w = int(sample(logits, temperature, top_k, top_p, rng=rng, do_greedy=greedy)[0])
            generated.append(w)
            context.append(w)
            log_probs.append(float(logp[0, w]))
            if w == eos:
                reason = "eos"
                break
            if w in stop_ids:
                reason = "stop_id"
                break
            if stop_strings and any(s in tokenizer.decode(generated) for s in stop_strings):
                reason = "stop_string"
                break
            if step == max_new_tokens - 1:
                break
            if len(context) - start > max_len:  # the window is full: slide it, rebuild the cache
                start = len(context) - keep
                cache = model.init_cache(1) if use_cache else None
                logits = _run(model, context[start:], cache)  # (1, vocab_size)
            elif use_cache:
                logits = _run(model, [w], cache)  # (1, vocab_size)  one new token
            else:
                logits = _run(model, context[start:], None)  # (1, vocab_size)  the whole window again
    text = tokenizer.decode([i for i in generated if i != eos and i not in stop_ids])
    if reason == "stop_string":
        text = text[:min(text.find(s) for s in stop_strings if s in text)]
    return Generation(text, generated, prompt_ids, log_probs, reason)


def _run(model, ids: list[int], cache):
    """Logits of the next token after ``ids``: through the cache (appending ``ids``) or a full forward."""
    x = _ids_array([ids])  # (1, t)
    if cache is not None:
        logits = model.forward_cached(x, cache)  # (1, t, vocab_size)
    else:
        logits = model(x)  # (1, t, vocab_size)
        model.clear_cache()
    return logits[:, -1].copy()  # (1, vocab_size)
