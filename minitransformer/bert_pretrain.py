"""Pre-train a small BERT from scratch: WordPiece vocabulary, masked LM + next-sentence prediction, evaluation.

    from minitransformer.data.corpus import generate_documents
    from minitransformer.bert_pretrain import pretrain

    run = pretrain(generate_documents(4000, seed=0), vocab_size=4000, size="small", steps=2000)
    run.metrics          # held-out mlm_loss, mlm_accuracy, nsp_accuracy, unigram_mlm_accuracy, ...
    run.save("bert_run")  # a Hugging Face folder: BertForSequenceClassification.from_pretrained("bert_run")

What ``pretrain`` does, in order:
1. keeps the last documents apart (held out: never trained on, never in the vocabulary);
2. learns a WordPiece vocabulary from the training documents (``tokenizers.train_wordpiece``);
3. builds ``BertForPreTraining`` of a named size with ``max_position_embeddings = max_len``;
4. trains it with AdamW (weight decay on matrices only), linear warmup then cosine decay, gradient
   clipping at norm 1, on endless fresh batches (``data.pretraining.pretraining_batches``);
5. scores it on a fixed set of held-out pairs: masked-LM loss and accuracy, NSP accuracy, and the
   unigram baseline (always predict the most frequent token among the masked positions).

The loss is BertForPreTraining's, computed a little faster: ``PretrainingObjective`` runs the
vocabulary projection only at the masked positions (about 15% of the tokens), which gives the same
loss and the same gradients as scoring every position and ignoring the -100 labels (tested).

Ref: Devlin et al. 2019, Section 3.1 and Appendix A.2 (pre-training procedure).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import backend
from .data.pretraining import (
    IGNORE_INDEX,
    PretrainingBatch,
    SpecialIds,
    make_pretraining_batch,
    pretraining_batches,
    sample_nsp_pairs,
    tokenize_documents,
)
from .models.bert import BertConfig
from .models.bert_heads import BertForPreTraining
from .nn.losses import cross_entropy_backward, cross_entropy_forward
from .nn.module import Module
from .optim import AdamW, decay_groups
from .tokenizers import WordPieceTokenizer, train_wordpiece
from .train import History, Trainer

__all__ = ["EVAL_SEED", "SIZES", "PretrainRun", "PretrainingObjective", "budget_schedule", "eval_batches", "evaluate",
           "plot_pretraining", "pretrain", "split_documents"]

# Model sizes (BertConfig fields). "small" is the one the 10-minute CPU target trains: on the built-in corpus
# hidden 64 learned the masked LM faster per CPU-second than hidden 128 (which costs ~3x more per pair).
SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
    "small": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
}

EVAL_SEED = 4242  # seed of the held-out pairs and masks: the same evaluation set for every training seed


class PretrainingObjective(Module):
    """The pre-training loss of a ``BertForPreTraining``, scoring the vocabulary only where labels are set.

    Args:
        model: a BertForPreTraining; the objective holds it (so ``parameters()`` are the model's).
        nsp_weight: lambda, the weight of the next-sentence loss (1.0: BERT's plain sum).

    Math:
        h, pooled = model.bert(input_ids, attention_mask, token_type_ids)     (B, T, hidden), (B, hidden)
        idx       = flat positions with labels != -100                        (N,)
        h_sel     = h.reshape(B*T, hidden)[idx]                               (N, hidden)
        mlm_loss  = mean_n -log softmax(predictions(h_sel)_n)[labels[idx_n]]
        nsp_loss  = mean_b -log softmax(seq_relationship(pooled)_b)[next_sentence_label_b]
        loss      = mlm_loss + lambda * nsp_loss
    With lambda = 1, equal to ``model(..., labels, next_sentence_label).loss`` (which scores all B*T positions and then
    ignores the -100 ones), at about 15% of the cost of the (hidden x vocab_size) projection.
    """

    def __init__(self, model: BertForPreTraining, nsp_weight: float = 1.0):
        super().__init__()
        if not isinstance(model, BertForPreTraining):
            raise TypeError(f"PretrainingObjective needs a BertForPreTraining, got {type(model).__name__}")
        if isinstance(nsp_weight, bool) or not isinstance(nsp_weight, (int, float)) or not nsp_weight >= 0:
            raise ValueError(f"PretrainingObjective: nsp_weight must be a number >= 0, got {nsp_weight!r}")
        self.model = model
        self.nsp_weight = float(nsp_weight)
        self.mlm_loss = self.nsp_loss = None  # () arrays of the last forward

    def heads(self, batch: PretrainingBatch):
        """Forward to both heads' logits.

        Returns:
            mlm_logits (1, N, vocab_size) at the N labelled positions, their targets (1, N),
            nsp_logits (B, 2), and the flat positions idx (N,).
        """
        m = self.model
        out = m.bert(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        h, pooled = out.last_hidden_state, out.pooler_output  # (B, T, hidden), (B, hidden)
        B, T, H = h.shape
        labels = batch.labels.reshape(B * T)  # (B*T,)
        host = backend.to_numpy(labels)  # (B*T,)
        idx = backend.asarray(backend.get_array_module(host).flatnonzero(host != IGNORE_INDEX))  # (N,)
        h_sel = h.reshape(B * T, H)[idx][None]  # (1, N, hidden)
        mlm_logits = m.cls.predictions(h_sel)  # (1, N, vocab_size)
        nsp_logits = m.cls.seq_relationship(pooled)  # (B, 2)
        return mlm_logits, labels[idx][None], nsp_logits, idx  # (1, N, V), (1, N), (B, 2), (N,)

    def forward(self, batch: PretrainingBatch):
        """batch -> loss () = masked-LM cross-entropy + nsp_weight * next-sentence cross-entropy."""
        mlm_logits, targets, nsp_logits, idx = self.heads(batch)  # (1, N, V), (1, N), (B, 2), (N,)
        mlm, mlm_cache = cross_entropy_forward(mlm_logits, targets)  # ()
        nsp, nsp_cache = cross_entropy_forward(nsp_logits, batch.next_sentence_label)  # ()
        self.mlm_loss, self.nsp_loss = mlm, nsp
        self._cache = (idx, tuple(batch.input_ids.shape), mlm_cache, nsp_cache)
        return backend.get_array_module(mlm).asarray(mlm + self.nsp_weight * nsp)  # ()

    def backward(self, dloss=1.0):
        """Backpropagate ``dloss`` * the last loss into every parameter of the model (accumulating)."""
        idx, (B, T), mlm_cache, nsp_cache = self._pop_cache()
        m = self.model
        dmlm_logits = cross_entropy_backward(dloss, mlm_cache)  # (1, N, V)  inverts mlm = CE(mlm_logits)
        dnsp_logits = cross_entropy_backward(dloss * self.nsp_weight, nsp_cache)  # (B, 2)  inverts lambda CE(nsp_l.)
        dh_sel = m.cls.predictions.backward(dmlm_logits)  # (1, N, hidden)  inverts mlm_logits = predictions(h_sel)
        dpooled = m.cls.seq_relationship.backward(dnsp_logits)  # (B, hidden)  inverts nsp_logits = seq_rel.(pooled)
        xp = backend.get_array_module(dh_sel)
        dh = xp.zeros((B * T, dh_sel.shape[-1]), dtype=dh_sel.dtype)  # (B*T, hidden)
        dh[idx] = dh_sel[0]  # (B*T, hidden)  inverts h_sel = h[idx]: idx is distinct, so no scatter-add
        m.bert.backward(dh.reshape(B, T, -1), dpooled)  # every BERT parameter  inverts h, pooled = bert(...)


@dataclass
class PretrainRun:
    """A pre-trained model, its tokenizer, the training history and the held-out metrics."""

    model: BertForPreTraining
    tokenizer: WordPieceTokenizer
    history: History | None = None
    metrics: dict = field(default_factory=dict)
    mlm_loss: list = field(default_factory=list)  # training masked-LM loss per step
    nsp_loss: list = field(default_factory=list)  # training next-sentence loss per step

    def save(self, folder):
        """Write a Hugging Face folder (config.json, model.safetensors, vocab.txt, tokenizer_config.json).

        ``BertForSequenceClassification.from_pretrained(folder)`` (and the other heads) start from it;
        ``WordPieceTokenizer.from_pretrained(folder)`` reads the vocabulary.
        """
        return self.model.save_pretrained(folder, tokenizer=self.tokenizer)


def split_documents(documents: Sequence, eval_fraction: float = 0.1) -> tuple[list, list]:
    """(train, held_out): the last ``max(2, round(eval_fraction * n))`` documents are held out.

    Raises ValueError when fewer than 2 documents would remain for training.
    """
    documents = list(documents)
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"split_documents: eval_fraction must be in (0, 1), got {eval_fraction}")
    n_eval = max(2, round(eval_fraction * len(documents)))
    if len(documents) - n_eval < 2:
        raise ValueError(f"split_documents: {len(documents)} documents leave fewer than 2 for training after "
                         f"holding out {n_eval}; give at least {n_eval + 2}")
    return documents[:-n_eval], documents[-n_eval:]


def eval_batches(docs, ids: SpecialIds, max_len: int, n_pairs: int = 1000, batch_size: int = 100,
                 seed: int = EVAL_SEED, spans: bool = False) -> list[PretrainingBatch]:
    """A fixed evaluation set: ``n_pairs`` NSP pairs with their masks, drawn from ``seed``, in batches.

    ``spans`` as in ``pretraining_batches`` (pairs of sentence spans that fill ``max_len``, or single sentences).
    """
    rng = backend.host_rng(seed)
    pairs = sample_nsp_pairs(docs, n_pairs, rng, span_tokens=max_len - 3 if spans else None)
    return [make_pretraining_batch(pairs[i:i + batch_size], ids, max_len, rng)
            for i in range(0, len(pairs), batch_size)]


def evaluate(model: BertForPreTraining, batches: Sequence[PretrainingBatch]) -> dict:
    """Held-out scores of a pre-training model (in eval mode: no dropout).

    Returns:
        mlm_loss (mean cross-entropy over the masked positions), mlm_accuracy (argmax == original token),
        nsp_loss, nsp_accuracy, unigram_mlm_accuracy (the share of the most frequent original token among
        the masked positions: the best constant guess), n_masked, n_pairs.

    Math:
        mlm_accuracy         = mean over masked positions of [argmax_v logits_v == label]
        unigram_mlm_accuracy = max_v count(label == v) / n_masked
        nsp_accuracy         = mean over pairs of [argmax_c nsp_logits_c == next_sentence_label]
    """
    objective = PretrainingObjective(model)
    was_training = model.training
    model.eval()
    mlm_sum = nsp_sum = 0.0
    mlm_right = nsp_right = n_masked = n_pairs = 0
    counts: dict[int, int] = {}
    for batch in batches:
        mlm_logits, targets, nsp_logits, _ = objective.heads(batch)  # (1, N, V), (1, N), (B, 2), (N,)
        N, B = int(targets.shape[1]), int(nsp_logits.shape[0])
        if N:
            mlm, _ = cross_entropy_forward(mlm_logits, targets)  # ()
            mlm_sum += float(mlm) * N
            mlm_right += int((mlm_logits.argmax(axis=-1) == targets).sum())
            for v in backend.to_numpy(targets).ravel().tolist():
                counts[v] = counts.get(v, 0) + 1
        nsp, _ = cross_entropy_forward(nsp_logits, batch.next_sentence_label)  # ()
        nsp_sum += float(nsp) * B
        nsp_right += int((nsp_logits.argmax(axis=-1) == batch.next_sentence_label).sum())
        n_masked, n_pairs = n_masked + N, n_pairs + B
        model.clear_cache()  # forward only: free every layer's activations
    model.train(was_training)
    return {"mlm_loss": mlm_sum / max(n_masked, 1), "mlm_accuracy": mlm_right / max(n_masked, 1),
            "nsp_loss": nsp_sum / max(n_pairs, 1), "nsp_accuracy": nsp_right / max(n_pairs, 1),
            "unigram_mlm_accuracy": max(counts.values(), default=0) / max(n_masked, 1),
            "n_masked": n_masked, "n_pairs": n_pairs}


def _texts(documents) -> list[str]:
    return [s for doc in documents for s in getattr(doc, "sentences", doc)]


def budget_schedule(peak_lr: float, warmup: int, steps: int, max_seconds: float | None = None,
                    clock: Callable | None = None, decay_fraction: float = 1.0) -> Callable:
    """Linear warmup, then cosine decay to 0 at the end of the run: after ``steps`` steps or ``max_seconds``.

    Args:
        peak_lr: the learning rate after warmup.
        warmup: warmup steps (0: none).
        steps: the most steps of the run.
        max_seconds: the training-time budget, or None (steps only).
        clock: ``clock() -> training seconds so far`` (needed with ``max_seconds``).
        decay_fraction: the share of the run (after warmup) over which the cosine decays; before it the
            rate stays at ``peak_lr`` ("warmup-stable-decay"). 1.0: cosine over the whole run.
    Returns:
        ``schedule(step) -> lr`` for steps from 1.

    Math:
        lr(step) = peak_lr * step / warmup                                   step <= warmup
        p        = max((step - warmup) / (steps - warmup), clock() / max_seconds), clipped to [0, 1]
        q        = (p - (1 - decay_fraction)) / decay_fraction, clipped to [0, 1]
        lr(step) = 0.5 * peak_lr * (1 + cos(pi * q))                         after warmup
    Without a time budget and with decay_fraction 1 this is ``optim.warmup_cosine(peak_lr, warmup, steps)``;
    with a budget, the decay follows whichever runs out first, so a run cut short by a busy CPU still ends at
    a small learning rate.
    """
    if not 0 <= warmup < steps:
        raise ValueError(f"budget_schedule needs 0 <= warmup < steps, got warmup={warmup}, steps={steps}")
    if max_seconds is not None and (clock is None or not max_seconds > 0.0):
        raise ValueError(f"budget_schedule: max_seconds={max_seconds} needs a clock and a value > 0")
    if not 0.0 < decay_fraction <= 1.0:
        raise ValueError(f"budget_schedule: decay_fraction must be in (0, 1], got {decay_fraction}")

    def schedule(step) -> float:
        if step <= warmup:
            return float(peak_lr) * step / warmup
        p = (step - warmup) / (steps - warmup)
        if max_seconds is not None:
            p = max(p, clock() / float(max_seconds))
        q = (min(1.0, max(0.0, p)) - (1.0 - decay_fraction)) / decay_fraction  # the decay's own progress
        return 0.5 * float(peak_lr) * (1.0 + math.cos(math.pi * min(1.0, max(0.0, q))))

    return schedule


def pretrain(documents: Sequence, vocab_size: int = 4000, size: str = "small", steps: int = 2000,
             batch_size: int = 64, max_len: int = 64, lr: float = 5e-3, warmup: int | None = None, seed: int = 0,
             dropout: float = 0.0, weight_decay: float = 0.01, max_seconds: float | None = None,
             eval_fraction: float = 0.1, eval_pairs: int = 1000, eval_every: int = 0, progress: bool = True,
             dtype="float32", callback: Callable | None = None, spans: bool = True, decay_fraction: float = 1.0,
             nsp_weight: float = 1.0, **config_overrides) -> PretrainRun:
    """Learn a WordPiece vocabulary and pre-train ``BertForPreTraining`` on ``documents``; score it held out.

    Args:
        documents: lists of sentence strings, or objects with ``.sentences`` (``data.corpus.Document``).
        vocab_size: WordPiece vocabulary size, special tokens included (fewer if the corpus runs out of merges).
        size: a key of ``SIZES`` ("tiny", "small").
        steps, batch_size: the most optimizer steps, and sentence pairs per step.
        max_len: longest packed pair, and the model's max_position_embeddings.
        lr: peak learning rate; warmup: warmup steps (None: 5% of ``steps``, at most 200).
        seed: weights, sentence pairs and masks.
        dropout: hidden and attention dropout.
        weight_decay: AdamW's decoupled decay of the matrices (biases and LayerNorm are not decayed).
        max_seconds: stop training after this many seconds of training steps (evaluations not counted),
            even before ``steps``; the learning rate decays with time too (``budget_schedule``). None: no limit.
        eval_fraction: share of documents held out for the evaluation.
        eval_pairs: held-out NSP pairs scored (fixed by ``EVAL_SEED``).
        eval_every: also evaluate every this many steps (0: only at the end).
        progress: show a tqdm bar on stderr.
        dtype: parameter dtype.
        callback: ``callback(step, run)`` after every step.
        spans: True: A and B are spans of consecutive sentences that fill ``max_len``, as in the BERT paper
            (more text on each side makes "same document?" easier to tell); False: one sentence each.
            Training and held-out pairs alike.
        decay_fraction: the last share of the run over which the learning rate decays (``budget_schedule``);
            1.0: cosine over the whole run.
        nsp_weight: the weight of the next-sentence loss in the sum (``PretrainingObjective``).
        config_overrides: BertConfig fields that replace the size's (``hidden_size=96``, ``initializer_range=...``).
    Returns:
        a ``PretrainRun``; ``run.metrics`` holds the final held-out scores plus sizes and timings.
    """
    from tqdm.auto import tqdm

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose from {sorted(SIZES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"pretrain: steps must be an int >= 1, got {steps!r}")
    t_start = time.perf_counter()
    train_docs, held_out = split_documents(documents, eval_fraction)
    vocab = train_wordpiece(_texts(train_docs), vocab_size)
    tokenizer = WordPieceTokenizer(vocab, model_max_length=max_len)
    ids = SpecialIds.from_tokenizer(tokenizer)
    train_ids, held_ids = tokenize_documents(train_docs, tokenizer), tokenize_documents(held_out, tokenizer)
    eval_set = eval_batches(held_ids, ids, max_len, n_pairs=eval_pairs, spans=spans)
    prepare_seconds = time.perf_counter() - t_start

    backend.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=max_len,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        pad_token_id=tokenizer.pad_token_id, **{**SIZES[size], **config_overrides})
    model = BertForPreTraining(config, dtype=dtype)
    objective = PretrainingObjective(model, nsp_weight)
    opt = AdamW(decay_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-6)
    warmup = min(200, max(1, steps // 20)) if warmup is None else warmup
    warmup = min(warmup, steps - 1)
    clock = {"train": 0.0}  # seconds spent in training steps so far
    schedule = (budget_schedule(lr, warmup, steps, max_seconds, lambda: clock["train"], decay_fraction)
                if steps > 1 else None)
    run = PretrainRun(model, tokenizer)
    trainer = Trainer(objective, opt, lambda obj, batch: (obj(batch), batch.n_masked), schedule=schedule,
                      clip_norm=1.0, eval_fn=lambda _: evaluate(model, eval_set))
    batches = pretraining_batches(train_ids, batch_size, max_len, ids, seed=seed, spans=spans)
    bar = tqdm(total=steps, desc="pretrain-bert", disable=not progress, dynamic_ncols=True, leave=True)
    try:
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            loss, _ = trainer.train_step(next(batches))
            clock["train"] += time.perf_counter() - t0
            run.mlm_loss.append(float(objective.mlm_loss))
            run.nsp_loss.append(float(objective.nsp_loss))
            bar.set_postfix(mlm=f"{run.mlm_loss[-1]:.3f}", nsp=f"{run.nsp_loss[-1]:.3f}",
                            lr=f"{trainer.history.lr[-1]:.2e}", refresh=False)
            bar.update(1)
            if eval_every and step % eval_every == 0:
                m = trainer.evaluate()
                bar.write(f"step {step}: held-out MLM accuracy {m['mlm_accuracy']:.3f} (unigram "
                          f"{m['unigram_mlm_accuracy']:.3f}), NSP accuracy {m['nsp_accuracy']:.3f}, "
                          f"MLM loss {m['mlm_loss']:.3f}")
            if callback is not None:
                callback(step, run)
            if max_seconds is not None and clock["train"] >= max_seconds:
                break
    finally:
        bar.close()
    h = run.history = trainer.history
    h.seconds = clock["train"]
    t_eval = time.perf_counter()
    scores = h.evals[-1] if h.evals and h.evals[-1]["step"] == h.steps[-1] else trainer.evaluate()
    model.eval()
    run.metrics = {
        **{k: v for k, v in scores.items() if k != "step"},
        "size": size, "steps": len(h.steps), "max_steps": steps, "max_seconds": max_seconds,
        "batch_size": batch_size, "max_len": max_len, "spans": spans, "decay_fraction": decay_fraction,
        "nsp_weight": nsp_weight,
        "lr": lr, "warmup": warmup, "dropout": dropout,
        "weight_decay": weight_decay, "seed": seed, "vocab_size": tokenizer.vocab_size,
        "parameters": model.num_parameters(), "train_documents": len(train_docs),
        "held_out_documents": len(held_out), "prepare_seconds": round(prepare_seconds, 2),
        "seconds": round(h.seconds, 2), "final_eval_seconds": round(time.perf_counter() - t_eval, 2),
        "total_seconds": round(time.perf_counter() - t_start, 2),
        "final_train_loss": h.loss[-1], "final_train_mlm_loss": run.mlm_loss[-1],
        "final_train_nsp_loss": run.nsp_loss[-1], "config": config.to_dict(),
    }
    return run


def plot_pretraining(run: PretrainRun, title: str | None = None, smooth: int | None = None):
    """Training losses and held-out accuracies of a pre-training run, as a matplotlib Figure.

    Top panel: the masked-LM and next-sentence training losses (faint raw, solid moving average).
    Bottom panel: held-out MLM accuracy, NSP accuracy and the unigram baseline at every evaluation
    (``eval_every``; at least the final one).
    """
    from matplotlib.figure import Figure

    from .viz import moving_average

    if not run.mlm_loss:
        raise ValueError("plot_pretraining: the run has no training steps")
    steps = list(range(1, len(run.mlm_loss) + 1))
    smooth = max(1, len(steps) // 25) if smooth is None else smooth
    fig = Figure(figsize=(7.5, 5.8), layout="constrained")
    ax, acc_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for values, name, color in ((run.mlm_loss, "masked LM", "tab:blue"), (run.nsp_loss, "next sentence", "tab:red")):
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, moving_average(values, smooth), color=color, linewidth=1.8,
                label=f"{name} loss (mean of {smooth} steps)")
    ax.set_ylabel("training loss")
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    evals = run.history.evals if run.history else []
    for key, name, style in (("mlm_accuracy", "MLM accuracy", "o-"), ("nsp_accuracy", "NSP accuracy", "s-"),
                             ("unigram_mlm_accuracy", "MLM unigram baseline", "--")):
        points = [(e["step"], e[key]) for e in evals if key in e]
        if points:
            acc_ax.plot([p[0] for p in points], [p[1] for p in points], style, markersize=4, linewidth=1.2,
                        label=f"{name} (last {points[-1][1]:.3f})")
    acc_ax.set_ylim(-0.03, 1.03)
    acc_ax.set_xlabel("step")
    acc_ax.set_ylabel("held-out accuracy")
    acc_ax.grid(alpha=0.3)
    acc_ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
