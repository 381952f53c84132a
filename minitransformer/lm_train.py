"""Train a GPT language model on text: tokenizer, batches, training loop, validation, save and load.

The data is one long stream of token ids: the training text (documents joined
with a blank line, as ``data.corpus.corpus_text`` writes them) encoded after a
start token ``<|endoftext|>``. A batch is ``batch_size`` windows of
``block_size + 1`` tokens; the model reads the first ``block_size`` and must
predict each next one (targets = the window shifted left by one):

    x = stream[s : s + block_size],   y = stream[s + 1 : s + block_size + 1]
    loss = mean_t -log p(y_t | x_0 .. x_t)

Most windows start anywhere in the stream; a quarter start with
``<|endoftext|>`` followed by the beginning of a document, so the model learns
what ``lm.score`` and ``lm.generate`` assume: the start token means "a document
starts here".

Validation cross-entropy is measured on held-out text exactly as ``lm.score``
measures one text (every token predicted, the first from the start token,
overlapping windows of ``block_size`` with stride ``block_size // 2``), so on
the built-in corpus it is directly comparable with the true entropy per token
``-corpus_log_prob(val_docs) / len(encode(corpus_text(val_docs)))``.
Perplexity = exp(cross-entropy).

Optimizer: AdamW (weight decay on matrices only), gradient clipping at norm 1,
learning rate with linear warmup then cosine decay (``optim.warmup_cosine``);
with a ``time_limit`` the cosine runs on whichever is further along, the steps
or the clock, so a run cut by time still ends with small steps.

A run is saved as a directory: ``checkpoint.npz`` (model, optimizer state,
config, history; no pickle) and the tokenizer's own files, with
``lm_run.json`` naming the tokenizer kind and the training settings and
metrics. ``load_gpt_run`` also reads a Hugging Face GPT-2 folder
(``config.json``, ``model.safetensors``, ``vocab.json``, ``merges.txt``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import backend, checkpoint
from .fileio import atomic_write
from .lm import token_log_probs
from .models.gpt import GPT, GPTConfig
from .optim import AdamW, decay_groups, warmup_cosine
from .train import History, Trainer

__all__ = ["SIZES", "TOKENIZERS", "GPTRun", "LMData", "build_tokenizer", "evaluate_lm", "lm_batches", "lm_loss",
           "load_gpt_run", "prepare_data", "save_gpt_run", "train_gpt", "warmup_cosine_timed"]

# Model sizes, named (d_model, heads, layers, d_ff); "tiny" is for smoke tests.
SIZES = {
    "tiny": dict(d_model=32, n_heads=2, n_layers=1, d_ff=64),
    "small": dict(d_model=64, n_heads=4, n_layers=2, d_ff=256),
    "medium": dict(d_model=128, n_heads=4, n_layers=4, d_ff=512),
    "large": dict(d_model=256, n_heads=8, n_layers=6, d_ff=1024),
}

TOKENIZERS = ("char", "bpe")
RUN_FILE = "lm_run.json"
RUN_FORMAT = "minitransformer-gpt-run"
VAL_SEED_OFFSET = 1_000_003  # built-in corpus: validation documents come from seed + this
DOC_SEPARATOR = "\n\n"  # between documents, as corpus_text writes them
DOC_START_FRACTION = 0.25  # share of training windows that start with <|endoftext|> + a document start


@dataclass
class LMData:
    """Token streams for training and validation, and where the training documents start."""

    tokenizer: object
    train_ids: list[int]  # [<|endoftext|>] + encode(train text)
    val_ids: list[int]  # encode(validation text) (scored after the start token)
    doc_starts: list[int]  # positions in train_ids where a document begins
    val_text: str = ""
    true_entropy: float | None = None  # nats per validation token, when the generating process is known
    info: dict = field(default_factory=dict)


@dataclass
class GPTRun:
    """A trained (or loaded) GPT with its tokenizer and what is known about its training."""

    model: GPT
    tokenizer: object
    tokenizer_kind: str  # "char", "bpe" (or "gpt2" for a Hugging Face folder)
    history: History | None = None
    optimizer: object = None
    metrics: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def build_tokenizer(kind: str, texts: list[str], vocab_size: int = 512):
    """A tokenizer of ``kind`` ("char" or "bpe") fitted to ``texts``.

    char: one token per distinct character of the texts, plus <|endoftext|> (``vocab_size`` unused).
    bpe: byte-level BPE (GPT-2's algorithm) with at most ``vocab_size`` tokens (>= 257).
    """
    if kind == "char":
        from .tokenizers.char import CharTokenizer

        return CharTokenizer.train(texts)
    if kind == "bpe":
        from .tokenizers.bpe import ByteLevelBPETokenizer

        return ByteLevelBPETokenizer.train(texts, vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}: choose from {TOKENIZERS}")


def _token_char_offsets(tokenizer, ids: list[int]) -> list[int] | None:
    """Character offset of every token in decode(ids), or None when tokens do not decode one by one."""
    lengths: dict[int, int] = {}
    offsets, pos = [], 0
    for i in ids:
        n = lengths.get(i)
        if n is None:
            n = lengths[i] = len(tokenizer.decode([i]))
        offsets.append(pos)
        pos += n
    return offsets if pos == len(tokenizer.decode(ids)) else None


def prepare_data(tokenizer, train_docs: list[str], val_docs: list[str], true_entropy_nats: float | None = None
                 ) -> LMData:
    """Encode training and validation documents (joined by a blank line) into token streams.

    Args:
        tokenizer: with encode, decode, eos_id.
        train_docs, val_docs: document texts.
        true_entropy_nats: total -log p of the validation text under its generating process, if known;
            divided by the number of validation tokens it is the best cross-entropy any model can reach.
    """
    if not train_docs or not val_docs:
        raise ValueError(f"need at least one training and one validation document, got {len(train_docs)} and "
                         f"{len(val_docs)}")
    sep = DOC_SEPARATOR
    train_text, val_text = sep.join(train_docs), sep.join(val_docs)
    train_ids = [int(tokenizer.eos_id)] + [int(i) for i in tokenizer.encode(train_text)]
    val_ids = [int(i) for i in tokenizer.encode(val_text)]
    doc_starts = [1]
    offsets = _token_char_offsets(tokenizer, train_ids[1:])
    if offsets is not None:  # map each document's first character to its token
        char_starts, c = set(), 0
        for doc in train_docs[:-1]:
            c += len(doc) + len(sep)
            char_starts.add(c)
        doc_starts += [k + 1 for k, off in enumerate(offsets) if off in char_starts]
    true_entropy = None if true_entropy_nats is None else float(true_entropy_nats) / len(val_ids)
    info = {"train_documents": len(train_docs), "val_documents": len(val_docs), "train_tokens": len(train_ids),
            "val_tokens": len(val_ids), "train_characters": len(train_text), "val_characters": len(val_text)}
    return LMData(tokenizer, train_ids, val_ids, sorted(set(doc_starts)), val_text, true_entropy, info)


def lm_batches(data: LMData, batch_size: int, block_size: int, seed: int = 0,
               doc_start_fraction: float = DOC_START_FRACTION) -> Iterator[tuple]:
    """Endless batches (x, y) of (B, block_size) int64 arrays: random windows of the training stream.

    Math:
        s ~ Uniform{0 .. len(stream) - block_size - 1}
        x = stream[s : s + block_size],  y = stream[s + 1 : s + block_size + 1]
        (a ``doc_start_fraction`` of the rows: x = [<eos>] + stream[d : d + block_size - 1], d a document start)
    """
    ids = data.train_ids
    n = len(ids)
    if n < block_size + 1:
        raise ValueError(f"the training text has {n} tokens; a window of block_size={block_size} needs "
                         f"{block_size + 1}: use more text or a smaller block_size")
    rng = backend.host_rng(seed)
    eos = int(data.tokenizer.eos_id)
    starts = [d for d in data.doc_starts if d + block_size <= n]
    stream = backend.asarray(ids, dtype="int64")  # (n,)
    xp = backend.get_array_module(stream)
    offsets = xp.arange(block_size + 1)  # (block_size + 1,)
    while True:
        s = rng.integers(0, n - block_size, size=batch_size)  # (B,) host
        doc_rows = rng.random(batch_size) < doc_start_fraction if starts else [False] * batch_size
        win = stream[backend.asarray(s, dtype="int64")[:, None] + offsets]  # (B, block_size + 1)
        for b in range(batch_size):
            if doc_rows[b]:
                d = starts[int(rng.integers(0, len(starts)))]
                win[b, 0] = eos
                win[b, 1:] = stream[d:d + block_size]  # (block_size,)
        yield win[:, :-1], win[:, 1:]  # (B, block_size), (B, block_size)


def lm_loss(model, batch) -> tuple:
    """Next-token cross-entropy of one (x, y) batch; returns (loss, target tokens)."""
    x, y = batch
    return model.loss(x, y), int(y.size)


def evaluate_lm(model, data: LMData, max_tokens: int | None = None, stride: int | None = None) -> dict:
    """Validation cross-entropy (nats/token) and perplexity, scored as ``lm.score`` scores a text.

    Args:
        max_tokens: score only the first ``max_tokens`` validation tokens (a quick estimate).
    Returns:
        {"val_loss", "val_perplexity", "val_tokens"} (+ "true_entropy", "ratio_to_entropy" when known and
        the whole validation text was scored).

    Math:
        val_loss = -(1/N) sum_t log p(w_t | <s>, w_<t)      val_perplexity = exp(val_loss)
    """
    ids = data.val_ids if max_tokens is None else data.val_ids[:max_tokens]
    lp = token_log_probs(model, ids, data.tokenizer.eos_id, stride=stride)
    ce = -math.fsum(lp) / len(lp)
    out = {"val_loss": ce, "val_perplexity": math.exp(min(ce, 700.0)), "val_tokens": len(lp)}
    if data.true_entropy is not None and len(ids) == len(data.val_ids):
        out["true_entropy"] = data.true_entropy
        out["ratio_to_entropy"] = ce / data.true_entropy
    return out


def warmup_cosine_timed(peak_lr: float, warmup: int, total: int, min_lr: float = 0.0,
                        time_limit: float | None = None, clock=time.perf_counter):
    """``optim.warmup_cosine``, whose cosine also follows the clock when ``time_limit`` (seconds) is set.

    Math:
        lr(step) = peak_lr * step / warmup                                   step <= warmup
        progress = max((step - warmup) / (total - warmup), (t - t_w) / (time_limit - t_w)), capped at 1
        lr(step) = min_lr + 0.5 * (peak_lr - min_lr) * (1 + cos(pi * progress))
        (t: seconds since the first call; t_w: t at the first step after the warmup)
    """
    base = warmup_cosine(peak_lr, warmup, total, min_lr)
    if time_limit is None:
        return base
    marks: dict[str, float] = {}

    def schedule(step) -> float:
        now = clock()
        t = now - marks.setdefault("t0", now)
        if step <= warmup:
            return base(step)
        t_w = marks.setdefault("t_w", t)
        progress = max((step - warmup) / (total - warmup), (t - t_w) / max(time_limit - t_w, 1e-9))
        progress = min(1.0, progress)
        return float(min_lr) + 0.5 * (float(peak_lr) - float(min_lr)) * (1.0 + math.cos(math.pi * progress))

    return schedule


class _TimeUpError(Exception):
    """Raised by the training callback when the time limit is reached."""


def builtin_corpus(n_documents: int, val_documents: int, seed: int = 0):
    """(train texts, val texts, -corpus_log_prob(val)) from the built-in generated corpus."""
    from .data.corpus import corpus_log_prob, document_text, generate_documents

    train = generate_documents(n_documents, seed=seed)
    val = generate_documents(val_documents, seed=seed + VAL_SEED_OFFSET)
    return [document_text(d) for d in train], [document_text(d) for d in val], -corpus_log_prob(val)


def train_gpt(texts: list[str] | None = None, *, corpus: str = "builtin", n_documents: int = 4000,
              val_documents: int = 200, val_fraction: float = 0.1, tokenizer: str = "bpe", vocab_size: int = 512,
              size: str = "small", steps: int = 1000, batch_size: int = 16, block_size: int = 128,
              peak_lr: float = 3e-3, warmup: int = 100, min_lr: float = 1e-4, weight_decay: float = 0.1,
              dropout: float = 0.0, seed: int = 0, eval_every: int = 0, eval_tokens: int = 4096,
              time_limit: float | None = None, progress: bool = True, dtype="float32",
              **config_overrides) -> GPTRun:
    """Fit a tokenizer and a GPT to text and train it; returns the run with validation metrics.

    Args:
        texts: documents to train on (the last ``val_fraction`` of them are held out), or None for
            the built-in corpus (``n_documents`` for training, ``val_documents`` held out, drawn with
            another seed; the true entropy of the held-out text is then known).
        tokenizer: "char" (the characters of the training and held-out text) or "bpe" (``vocab_size``
            tokens, learnt from the training text only; bytes cover anything).
        size: a key of ``SIZES``; ``config_overrides`` change single GPTConfig fields.
        steps, batch_size, block_size, peak_lr, warmup, min_lr, weight_decay, dropout: training
            settings (block_size is the model's max_len).
        time_limit: stop training when this many seconds have passed since the call (corpus, tokenizer and
            training together; the final evaluation comes after); the learning-rate cosine follows the clock.
        eval_every: also evaluate every N steps on the first ``eval_tokens`` validation tokens.
    Returns:
        GPTRun with ``metrics`` = validation loss and perplexity on the whole held-out text (and the true
        entropy per token and the ratio, on the built-in corpus), steps, seconds, tokens/s.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose from {sorted(SIZES)}")
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: choose from {TOKENIZERS}")
    for name, v, lo in (("steps", steps, 1), ("batch_size", batch_size, 1), ("block_size", block_size, 2),
                        ("warmup", warmup, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    t_start = time.perf_counter()
    backend.manual_seed(seed)
    if texts is None:
        if corpus != "builtin":
            raise ValueError(f"unknown corpus {corpus!r}: 'builtin', or pass texts")
        train_docs, val_docs, val_nats = builtin_corpus(n_documents, val_documents, seed)
    else:
        texts = [t for t in texts if t.strip()]
        if len(texts) < 2:
            raise ValueError(f"need at least 2 non-empty documents (one held out for validation), got {len(texts)}")
        n_val = max(1, int(round(len(texts) * val_fraction)))
        train_docs, val_docs, val_nats = texts[:-n_val], texts[-n_val:], None
    # the separator is text too. char: the alphabet of the held-out text as well (an alphabet, no statistics),
    # so a name seen only in validation can still be scored; BPE learns from the training text alone
    fit_on = [DOC_SEPARATOR.join(train_docs)] + ([DOC_SEPARATOR.join(val_docs)] if tokenizer == "char" else [])
    tok = build_tokenizer(tokenizer, fit_on, vocab_size)
    data = prepare_data(tok, train_docs, val_docs, val_nats)
    cfg = GPTConfig(vocab_size=tok.vocab_size, max_len=block_size, dropout=dropout,
                    **{**SIZES[size], **config_overrides})
    model = GPT(cfg, dtype=dtype, seed=seed)
    opt = AdamW(decay_groups(model, weight_decay=weight_decay), lr=peak_lr, betas=(0.9, 0.95), eps=1e-8)
    warmup = min(warmup, steps // 2)
    schedule = warmup_cosine_timed(peak_lr, warmup, steps, min(min_lr, peak_lr))
    setup_seconds = time.perf_counter() - t_start
    if time_limit is not None:
        schedule = warmup_cosine_timed(peak_lr, warmup, steps, min(min_lr, peak_lr),
                                       max(time_limit - setup_seconds, 1e-3))

    def stop_when_time_is_up(step, history):
        if time_limit is not None and time.perf_counter() - t_start > time_limit:
            raise _TimeUpError

    trainer = Trainer(model, opt, lm_loss, schedule=schedule, clip_norm=1.0,
                      eval_fn=lambda m: evaluate_lm(m, data, max_tokens=eval_tokens), eval_every=eval_every,
                      callback=stop_when_time_is_up)
    try:
        trainer.fit(lm_batches(data, batch_size, block_size, seed), steps, progress=progress, desc="train-gpt")
    except _TimeUpError:
        pass
    h = trainer.history
    t_eval = time.perf_counter()
    final = evaluate_lm(model, data)
    metrics = {**final, "steps": len(h.steps), "setup_seconds": round(setup_seconds, 2),
               "train_seconds": round(h.seconds, 2),
               "eval_seconds": round(time.perf_counter() - t_eval, 2),
               "tokens_per_second": round(h.tokens / max(h.seconds, 1e-9), 1),
               "final_train_loss": h.loss[-1] if h.loss else None, "parameters": model.num_parameters(),
               "stopped_by": "time_limit" if time_limit is not None and len(h.steps) < steps else "steps",
               **data.info}
    settings = {"corpus": "builtin" if texts is None else "texts", "n_documents": n_documents if texts is None
                else len(train_docs), "val_documents": len(val_docs), "tokenizer": tokenizer,
                "vocab_size": tok.vocab_size, "size": size, "steps": steps, "batch_size": batch_size,
                "block_size": block_size, "peak_lr": peak_lr, "warmup": warmup, "min_lr": min_lr,
                "weight_decay": weight_decay, "dropout": dropout, "seed": seed, "time_limit": time_limit,
                "dtype": str(dtype), "config_overrides": dict(config_overrides)}
    h.evals = [e for e in h.evals if e.get("step") != len(h.steps)] + [{"step": len(h.steps), **final}]
    model.eval()
    return GPTRun(model, tok, tokenizer, h, opt, metrics, settings)


def save_gpt_run(run: GPTRun, folder) -> str:
    """Write ``checkpoint.npz`` (model, optimizer, config, history), the tokenizer files and ``lm_run.json``."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    if run.tokenizer_kind not in TOKENIZERS:
        raise ValueError(f"cannot save a run with tokenizer kind {run.tokenizer_kind!r}")
    extra = {"format": RUN_FORMAT, "tokenizer": run.tokenizer_kind,
             "history": run.history.to_dict() if run.history else None}
    path = checkpoint.save(folder, run.model, run.optimizer, config=run.model.config.to_dict(), extra=extra)
    run.tokenizer.save(folder)
    info = {"format": RUN_FORMAT, "tokenizer": run.tokenizer_kind, "settings": run.settings, "metrics": run.metrics}
    with atomic_write(os.path.join(folder, RUN_FILE), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return path


def load_gpt_run(path) -> GPTRun:
    """Load a run saved by ``save_gpt_run`` (its directory or its ``checkpoint.npz``), or a Hugging Face GPT-2 folder.

    Raises FileNotFoundError when there is nothing to load, ValueError (naming the file) when it is damaged
    or not a GPT run.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) if os.path.isfile(path) else path
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    if not os.path.isfile(checkpoint.resolve_path(path)) and os.path.isfile(os.path.join(folder, "config.json")):
        from .tokenizers.bpe import ByteLevelBPETokenizer

        model = GPT.from_pretrained(folder)
        return GPTRun(model, ByteLevelBPETokenizer.from_folder(folder), "gpt2")
    ckpt = checkpoint.load(path)
    extra = ckpt.extra if isinstance(ckpt.extra, dict) else {}
    if extra.get("format") != RUN_FORMAT or not isinstance(ckpt.config, dict):
        raise ValueError(f"{ckpt.path} is not a GPT run (saved by train-gpt); format {extra.get('format')!r}")
    kind = extra.get("tokenizer")
    try:
        if kind == "bpe":
            from .tokenizers.bpe import ByteLevelBPETokenizer as Tok
        elif kind == "char":
            from .tokenizers.char import CharTokenizer as Tok
        else:
            raise ValueError(f"unknown tokenizer kind {kind!r}")
        tok = Tok.from_folder(folder)
        model = GPT(GPTConfig.from_dict(ckpt.config), dtype=ckpt.model_state["token_embedding.W"].dtype
                    if "token_embedding.W" in ckpt.model_state else "float32")
        model.load_state_dict(ckpt.model_state, strict=True)
    except (KeyError, TypeError, ValueError) as e:
        msg = e.args[0] if e.args else str(e)
        raise ValueError(f"{ckpt.path}: {msg}") from None
    if tok.vocab_size > model.config.vocab_size:
        raise ValueError(f"{folder}: the tokenizer has {tok.vocab_size} tokens, the model {model.config.vocab_size}")
    try:
        history = History(**extra["history"]) if isinstance(extra.get("history"), dict) else None
    except TypeError:  # a history from another version: not needed to use the model
        history = None
    info = {}
    run_file = os.path.join(folder, RUN_FILE)
    if os.path.isfile(run_file):
        try:
            with open(run_file, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError, RecursionError):
            info = {}
    model.eval()
    return GPTRun(model, tok, kind, history, None, info.get("metrics", {}) if isinstance(info, dict) else {},
                  info.get("settings", {}) if isinstance(info, dict) else {})
