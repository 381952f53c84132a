"""Fine-tuning BERT with a small task head: sentence classification, token tagging, span question answering.

    from minitransformer.finetune import finetune

    result = finetune("sentiment", "minilm")       # the real all-MiniLM-L6-v2 weights, then a classifier
    result.metrics                                  # {"accuracy": ...} on the held-out sentences
    finetune("sentiment", "random")                 # the same model and run from random weights
    finetune("ner", "my-bert/")                     # a folder from pretrain-bert (or any HF BERT folder)
    finetune("qa", "minilm", epochs=2)              # {"exact_match": ..., "f1": ...}

Each task is the recipe of Devlin et al. 2019, Section 4 / Figure 4: start from a pre-trained encoder,
add one randomly initialised layer, train everything for a few epochs with Adam(W) at a small learning
rate, warmup then decay. ``finetune`` returns a ``FinetuneResult`` (the model, its tokenizer, held-out
metrics, the loss history, every setting) that ``save_finetuned`` writes as a Hugging Face folder.

- sentiment (``BertForSequenceClassification``): one label per sentence; accuracy. By default the classifier
  reads the mean of the last hidden states over the real tokens (``pooling="mean"``: all-MiniLM-L6-v2 was
  trained as a mean-pooled sentence encoder); ``pooling="cls"`` is BERT's [CLS] pooler, as in the paper.
- ner (``BertForTokenClassification``): one IOB2 tag per word. WordPiece may cut a word into several
  pieces: the first piece carries the word's label, the others -100 (ignored by the loss), and the word's
  prediction is read at its first piece (``align_word_labels``). Score: entity-level F1 (``entity_f1``:
  an entity counts only with exactly the right type, start and end, as seqeval/conlleval).
- qa (``BertForQuestionAnswering``): ``[CLS] question [SEP] context [SEP]``; the answer is the span of
  context tokens from ``start`` to ``end`` (``encode_qa``); prediction by ``best_span`` over context
  tokens, mapped back to characters of the context. Scores: SQuAD's exact match and token F1 after
  ``normalize_answer`` (lower case, no punctuation, no articles a/an/the, single spaces).

Data: ``minitransformer.data.finetune_sets`` (written for this project; held-out splits are not drawn
from the training templates), or any lists of examples in the same format (``train=..., test=...``).
"""

from __future__ import annotations

import collections
import math
import os
import random
import re
import string
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import backend
from .models.bert import BertConfig
from .models.bert_heads import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    best_span,
)
from .nn.module import Module
from .tokenizers.encoding import Encoding, collate

__all__ = [
    "TASKS", "FinetuneResult", "Task", "accuracy", "align_word_labels", "answer", "classify", "encode_qa",
    "entities", "entity_f1", "evaluate", "exact_match", "finetune", "finetune_question_answering",
    "finetune_sequence_classification", "finetune_token_classification", "load_start", "normalize_answer",
    "qa_scores", "save_finetuned", "tag", "token_f1",
]

# ----------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------


def accuracy(predictions, labels) -> float:
    """Fraction of ``predictions`` equal to ``labels`` (two sequences of the same length)."""
    predictions, labels = list(predictions), list(labels)
    if len(predictions) != len(labels):
        raise ValueError(f"accuracy: {len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise ValueError("accuracy: no examples")
    return sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not kind:
        raise ValueError(f"not an IOB2 tag: {tag!r} (expected 'O', 'B-TYPE' or 'I-TYPE')")
    return prefix, kind


def entities(tags) -> list[tuple[str, int, int]]:
    """The entities of one IOB2 tag sequence, as ``(type, start, end)`` word positions, ``end`` exclusive.

    The rules of conlleval and seqeval's default mode: an entity starts at ``B-X``, or at ``I-X`` whose
    previous tag is not of type X (an ``I`` after ``O`` or after another type starts a new entity); it
    ends before ``O``, before any ``B-``, or before a tag of another type.

    Example: ``["B-PER", "I-PER", "O", "I-LOC", "B-LOC"]`` -> ``[("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5)]``.
    """
    out, start, kind = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):  # the sentinel "O" closes an entity at the end
        prefix, this = _split_tag(tag)
        if start is not None and (prefix in ("O", "B") or this != kind):
            out.append((kind, start, i))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, this
    return out


def entity_f1(gold, predicted) -> dict:
    """Entity-level precision, recall and F1 over a corpus (exact match of type, start and end).

    Args:
        gold, predicted: lists of IOB2 tag sequences, one per sentence, the same lengths.
    Returns:
        {"precision", "recall", "f1", "n_gold", "n_predicted", "n_correct",
         "per_type": {type: {"precision", "recall", "f1", "n_gold"}}}; 0.0 where a denominator is 0.

    Math:
        precision = correct / predicted,  recall = correct / gold,  F1 = 2 P R / (P + R)
        (micro-averaged over every entity of the corpus, as seqeval's classification_report "micro avg")
    """
    gold, predicted = list(gold), list(predicted)
    if len(gold) != len(predicted):
        raise ValueError(f"entity_f1: {len(gold)} gold sentences but {len(predicted)} predicted")
    counts = collections.defaultdict(lambda: [0, 0, 0])  # type -> [gold, predicted, correct]
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"entity_f1: sentence {i} has {len(g)} gold tags but {len(p)} predicted")
        g_set, p_set = set(entities(g)), set(entities(p))
        for kind, *_ in g_set:
            counts[kind][0] += 1
        for kind, *_ in p_set:
            counts[kind][1] += 1
        for kind, *_ in g_set & p_set:
            counts[kind][2] += 1

    def prf(n_gold, n_pred, n_correct):
        precision = n_correct / n_pred if n_pred else 0.0
        recall = n_correct / n_gold if n_gold else 0.0
        f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    totals = [sum(c[k] for c in counts.values()) for k in range(3)]
    precision, recall, f1 = prf(*totals)
    per_type = {}
    for kind in sorted(counts):
        p, r, f = prf(*counts[kind])
        per_type[kind] = {"precision": p, "recall": r, "f1": f, "n_gold": counts[kind][0]}
    return {"precision": precision, "recall": recall, "f1": f1, "n_gold": totals[0], "n_predicted": totals[1],
            "n_correct": totals[2], "per_type": per_type}


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, drop punctuation and the articles a/an/the, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0 (SQuAD v1.1 evaluate script)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the bags of normalised words (SQuAD v1.1): 2 P R / (P + R) over common word counts.

    Math:
        common = sum over words w of min(count_pred(w), count_gold(w))
        P = common / len(pred words),  R = common / len(gold words);  0 when common == 0
    """
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)  # both empty: 1, one empty: 0
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2.0 * precision * recall / (precision + recall)


def qa_scores(predictions, golds) -> dict:
    """Mean exact match and token F1 over examples: {"exact_match", "f1"} in [0, 1]."""
    predictions, golds = list(predictions), list(golds)
    if len(predictions) != len(golds) or not golds:
        raise ValueError(f"qa_scores: {len(predictions)} predictions for {len(golds)} gold answers")
    n = len(golds)
    return {"exact_match": sum(map(exact_match, predictions, golds)) / n,
            "f1": sum(map(token_f1, predictions, golds)) / n}


# ----------------------------------------------------------------------------------------------------------
# Encoding: words and labels to WordPiece positions, question + context to start/end tokens
# ----------------------------------------------------------------------------------------------------------


def align_word_labels(tokenizer, words, labels=None, max_length: int = 128):
    """WordPiece-encode pre-split ``words`` and put each word's label on its first piece.

    Args:
        tokenizer: a WordPieceTokenizer.
        words: list of str (one sentence, already split into words).
        labels: None, or one int label per word.
        max_length: the longest encoding, [CLS] and [SEP] included; words beyond it are cut off.
    Returns:
        (encoding, token_labels, first_piece):
        encoding: an ``Encoding`` of ``[CLS] pieces [SEP]`` (T,);
        token_labels: (T,) the word's label at its first piece, -100 at other pieces, [CLS] and [SEP]
            (all -100 when ``labels`` is None);
        first_piece: (len(words),) the token position of each word's first piece, -1 for a word that was
            cut off by ``max_length``.
    """
    if labels is not None and len(labels) != len(words):
        raise ValueError(f"align_word_labels: {len(words)} words but {len(labels)} labels")
    if max_length < 2:
        raise ValueError(f"align_word_labels: max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")
    ids, token_labels, first_piece = [tokenizer.cls_token_id], [-100], []
    for i, word in enumerate(words):
        pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)) or [tokenizer.unk_token_id]
        room = max_length - 1 - len(ids)  # the final [SEP] needs one place
        if room <= 0:
            first_piece.append(-1)
            continue
        pieces = pieces[:room]
        first_piece.append(len(ids))
        ids += pieces
        token_labels += [-100 if labels is None else int(labels[i])] + [-100] * (len(pieces) - 1)
    ids.append(tokenizer.sep_token_id)
    token_labels.append(-100)
    return Encoding(ids, [0] * len(ids), [1] * len(ids)), token_labels, first_piece


def _piece_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """WordPiece ids of ``text`` and each piece's (start, end) character span in ``text``.

    The text is normalised one character at a time as the tokenizer does (``basic.normalize``: cleaning,
    accents, lower case), remembering which original character each normalised one came from; each word
    of the basic tokenizer is then found in the normalised text from where the last one ended, and its
    pieces get their own characters (a piece "##xy" covers two). An [UNK] piece covers its whole word.
    """
    folded, source = [], []  # normalised characters, and the index in ``text`` of each
    for i, ch in enumerate(text):
        for c in tokenizer.basic.normalize(ch):
            folded.append(c)
            source.append(i)
    folded = "".join(folded)
    ids, spans, cursor = [], [], 0
    for word in tokenizer.basic.tokenize(text):
        pieces = tokenizer.tokenize(word)
        ids += tokenizer.convert_tokens_to_ids(pieces)
        at = folded.find(word, cursor)
        if at < 0:  # not expected (the words come from the same normalisation): an empty span, never a wrong one
            end = source[cursor - 1] + 1 if cursor else 0
            spans += [(end, end)] * len(pieces)
            continue
        lengths = [len(p) - 2 if p.startswith("##") else len(p) for p in pieces]
        if sum(lengths) != len(word) or tokenizer.unk_token in pieces:
            starts, lengths = [at] * len(pieces), [len(word)] * len(pieces)
        else:
            starts = [at + sum(lengths[:k]) for k in range(len(pieces))]
        spans += [(source[a], source[a + n - 1] + 1) for a, n in zip(starts, lengths, strict=True)]
        cursor = at + len(word)
    return ids, spans


@dataclass
class QAFeature:
    """One encoded question + context: the model input, the answer's token span, the way back to characters."""

    encoding: Encoding  # [CLS] question [SEP] context [SEP], (T,)
    start: int  # token position of the answer's first piece; 0 ([CLS]) when the answer was cut off
    end: int  # token position of its last piece (inclusive); 0 when cut off
    spans: list  # (T,) the (start, end) characters of each context token, None for the others
    context: str
    truncated: bool  # the context did not fit in max_length


def encode_qa(tokenizer, question: str, context: str, answer_start: int | None = None, answer: str | None = None,
              max_length: int = 192, max_question_length: int = 64) -> QAFeature:
    """``[CLS] question [SEP] context [SEP]`` with the answer's start and end token positions.

    Args:
        question, context: the texts.
        answer_start, answer: the answer's first character in ``context`` and its text (None to predict).
        max_length: the longest encoding; the question is cut to ``max_question_length`` pieces and the
            context to what is left. An answer that no longer fits is labelled (0, 0), the [CLS] token, as
            Hugging Face's run_qa does; ``truncated`` tells whether anything was cut.
    Returns:
        a QAFeature (start, end are token positions; token_type_ids 0 for the question part, 1 for the context).
    """
    q_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(question))[:max_question_length]
    c_ids, c_spans = _piece_offsets(tokenizer, context)
    room = max_length - len(q_ids) - 3
    if room < 1:
        raise ValueError(f"encode_qa: max_length={max_length} leaves no room for the context after a question "
                         f"of {len(q_ids)} pieces and 3 special tokens")
    truncated = len(c_ids) > room
    c_ids, c_spans = c_ids[:room], c_spans[:room]
    offset = len(q_ids) + 2  # position of the first context token
    ids = [tokenizer.cls_token_id] + q_ids + [tokenizer.sep_token_id] + c_ids + [tokenizer.sep_token_id]
    types = [0] * offset + [1] * (len(c_ids) + 1)
    spans = [None] * offset + list(c_spans) + [None]
    start = end = 0
    if answer is not None:
        if answer_start is None or context[answer_start:answer_start + len(answer)] != answer:
            raise ValueError(f"encode_qa: answer {answer!r} is not at character {answer_start} of the context")
        a, b = answer_start, answer_start + len(answer)
        inside = [i for i, s in enumerate(c_spans) if s[1] > a and s[0] < b]
        if inside and c_spans[inside[-1]][1] >= b:  # every character of the answer is still there
            start, end = offset + inside[0], offset + inside[-1]
    return QAFeature(Encoding(ids, types, [1] * len(ids)), start, end, spans, context, truncated)


# ----------------------------------------------------------------------------------------------------------
# Prediction
# ----------------------------------------------------------------------------------------------------------


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield range(i, min(i + batch_size, n))


def _inputs(encodings, pad_id: int) -> dict:
    return collate(encodings, pad_id, True)  # {"input_ids", "token_type_ids", "attention_mask"}: (B, T) each


def _pad_labels(rows, length: int, pad: int = -100):
    return backend.asarray([list(r) + [pad] * (length - len(r)) for r in rows], dtype="int64")  # (B, T)


def _eval_mode(model):
    was_training = model.training
    model.eval()
    return was_training


def classify(model, tokenizer, texts, batch_size: int = 64, max_length: int = 128) -> list[int]:
    """The predicted label of each text: argmax of a sequence-classification model's logits."""
    was_training = _eval_mode(model)
    out = []
    try:
        for idx in _batches(len(texts), batch_size):
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length)
            logits = model(**batch).logits  # (B, num_labels)
            out += backend.to_numpy(logits.argmax(axis=-1)).tolist()
            model.clear_cache()
    finally:
        model.train(was_training)
    return out


def tag(model, tokenizer, sentences, labels, batch_size: int = 64, max_length: int = 128) -> list[list[str]]:
    """The predicted tag of every word of each sentence (a list of words), read at the word's first piece.

    Words cut off by ``max_length`` are tagged "O".
    """
    was_training = _eval_mode(model)
    out = []
    try:
        for idx in _batches(len(sentences), batch_size):
            aligned = [align_word_labels(tokenizer, sentences[i], None, max_length) for i in idx]
            logits = model(**_inputs([a[0] for a in aligned], tokenizer.pad_token_id)).logits  # (B, T, num_labels)
            best = backend.to_numpy(logits.argmax(axis=-1)).tolist()  # (B, T)
            for row, (_, _, first) in zip(best, aligned, strict=True):
                out.append([labels[row[t]] if t >= 0 else "O" for t in first])
            model.clear_cache()
    finally:
        model.train(was_training)
    return out


def answer(model, tokenizer, questions, contexts, batch_size: int = 32, max_length: int = 192,
           max_answer_length: int = 30) -> list[str]:
    """The predicted answer to each (question, context): the best context span, as characters of the context."""
    if len(questions) != len(contexts):
        raise ValueError(f"answer: {len(questions)} questions but {len(contexts)} contexts")
    was_training = _eval_mode(model)
    out = []
    try:
        for idx in _batches(len(questions), batch_size):
            features = [encode_qa(tokenizer, questions[i], contexts[i], max_length=max_length) for i in idx]
            out += _answer_features(model, features, tokenizer.pad_token_id, max_answer_length)
    finally:
        model.train(was_training)
    return out


def _answer_features(model, features, pad_id: int, max_answer_length: int) -> list[str]:
    batch = _inputs([f.encoding for f in features], pad_id)
    B, T = batch["input_ids"].shape
    mask = backend.asarray([[s is not None for s in f.spans] + [False] * (T - len(f.spans)) for f in features],
                           dtype="bool")  # (B, T)  only context tokens may be part of an answer
    out = model(**batch)
    starts, ends, _ = best_span(out.start_logits, out.end_logits, max_answer_length, mask)  # (B,), (B,)
    model.clear_cache()
    texts = []
    for f, s, e in zip(features, backend.to_numpy(starts).tolist(), backend.to_numpy(ends).tolist(), strict=True):
        texts.append(f.context[f.spans[s][0]:f.spans[e][1]])
    return texts


# ----------------------------------------------------------------------------------------------------------
# Tasks, starting points, training
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A fine-tuning task: its head class, its data, its headline metric and default settings."""

    name: str
    head: type
    description: str
    metric: str  # the key of the headline metric in ``FinetuneResult.metrics``
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    pooling: str = "cls"  # sequence classification: "cls" ([CLS] pooler) or "mean" (mean over real tokens)


TASKS = {
    # sentiment: lr 2e-5 and mean pooling chosen on a dev split of the training sentences, never on the held-out
    # file (issue 6; benchmarks/results/sentiment_dev_selection.json); pooling="cls" is BERT's own head.
    "sentiment": Task("sentiment", BertForSequenceClassification, "sentiment of short reviews (2 classes)",
                      "accuracy", epochs=3, lr=2e-5, batch_size=16, max_length=64, pooling="mean"),
    "ner": Task("ner", BertForTokenClassification, "IOB2 tags of PER/LOC/ORG/DATE entities",
                "f1", epochs=3, lr=5e-5, batch_size=16, max_length=64),
    "qa": Task("qa", BertForQuestionAnswering, "answer spans in short biographies",
               "f1", epochs=2, lr=1e-4, batch_size=16, max_length=192),
}


def _task(task) -> Task:
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[task]


def _labels(task: Task) -> tuple[str, ...]:
    from .data.finetune_sets import NER_LABELS, SENTIMENT_LABELS

    return {"sentiment": SENTIMENT_LABELS, "ner": NER_LABELS, "qa": ("start", "end")}[task.name]


def _load_split(task: Task, split: str) -> list:
    from .data import finetune_sets

    return {"sentiment": finetune_sets.load_sentiment, "ner": finetune_sets.load_ner,
            "qa": finetune_sets.load_qa}[task.name](split)


def load_start(source="minilm", head=BertForSequenceClassification, num_labels: int = 2, *, init: str = "pretrained",
               tokenizer=None, dtype="float32", seed: int = 0, pooling: str | None = None):
    """The starting point of fine-tuning: a head model and its tokenizer.

    Args:
        source: "minilm" (the installed all-MiniLM-L6-v2 weights), "random" (MiniLM's config and vocabulary,
            random weights), a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt: e.g.
            what ``pretrain-bert`` saves), or a ``BertConfig`` (random weights; pass ``tokenizer``).
        head: the head class (BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering).
        num_labels: classes of the head (overrides the folder's config).
        init: "pretrained" (load the folder's weights; the head layer is new) or "random" (the folder's
            config, fresh weights: what pre-training buys is the difference).
        tokenizer: a WordPieceTokenizer (default: the folder's vocab.txt).
        dtype: "float32" or "float64".
        seed: seeds the new weights and the dropout masks (``backend.manual_seed``).
        pooling: None (the source config's ``classifier_pooling``, "cls" for a transformers folder), "cls" or
            "mean": what a BertForSequenceClassification head classifies (see ``BertConfig.classifier_pooling``).
    Returns:
        (model in train mode, tokenizer, notes: the loader's warnings, e.g. which weights are new).
    """
    from .pretrained import load_pretrained, minilm_folder, read_config
    from .tokenizers import WordPieceTokenizer

    if init not in ("pretrained", "random"):
        raise ValueError(f"init must be 'pretrained' or 'random', got {init!r}")
    backend.manual_seed(seed)
    notes = []
    if isinstance(source, BertConfig):
        if init != "random" or tokenizer is None:
            raise ValueError("load_start: a BertConfig source means random weights: pass init='random' and a tokenizer")
        config, folder = source, None
    else:
        if isinstance(source, str) and source == "random":
            source, init = "minilm", "random"
        folder = minilm_folder() if isinstance(source, str) and source == "minilm" else Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"no model folder {str(folder)!r}: pass 'minilm', 'random' or a folder holding "
                                    "config.json, model.safetensors and vocab.txt")
        tokenizer = tokenizer or WordPieceTokenizer.from_pretrained(folder)
        try:
            config = BertConfig.from_dict(read_config(folder))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{folder / 'config.json'}: {e}") from None
    overrides = {"num_labels": int(num_labels)}
    if pooling is not None:
        overrides["classifier_pooling"] = pooling
    config = replace(config, **overrides)
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size} "
                         "embeddings: use the model's own vocab.txt")
    if init == "random" or folder is None:
        model = head(config, dtype=dtype)
    else:
        def build(c, dtype):  # load_pretrained's ``cls``: the head with this task's number of labels
            return head(replace(c, **overrides), dtype=dtype)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_pretrained(folder, build, dtype=dtype)
        notes = [str(w.message) for w in caught]
    return model.train(), tokenizer, notes


class _Trainable(Module):
    """The model as the Trainer sees it when some parameters are frozen: only the trainable ones are listed
    (so the optimizer, gradient clipping and the divergence check ignore the frozen ones)."""

    def __init__(self, model, frozen: set):
        super().__init__()
        self.model, self._frozen = model, frozen

    def named_parameters(self, prefix: str = ""):
        return ((n, p) for n, p in self.model.named_parameters(prefix) if n not in self._frozen)

    def backward(self):
        self.model.backward()
        for name, p in self.model.named_parameters():
            if name in self._frozen:
                p.zero_grad()  # gradients of frozen weights are computed, then dropped


def _features(task: Task, tokenizer, examples, max_length: int, labels) -> list:
    """Training items of each example: (encoding, label) / (encoding, token labels) / QAFeature."""
    if task.name == "sentiment":
        return [(tokenizer.encode(text, max_length=max_length, truncation=True), int(label))
                for text, label in examples]
    if task.name == "ner":
        index = {t: i for i, t in enumerate(labels)}
        items = []
        for ex in examples:
            unknown = sorted(set(ex["tags"]) - set(index))
            if unknown:
                raise ValueError(f"NER tags {unknown} are not among the labels {list(labels)}")
            enc, token_labels, _ = align_word_labels(tokenizer, ex["tokens"], [index[t] for t in ex["tags"]],
                                                     max_length)
            items.append((enc, token_labels))
        return items
    return [encode_qa(tokenizer, ex["question"], ex["context"], ex["answer_start"], ex["answer"], max_length)
            for ex in examples]


def _collate(task: Task, items, pad_id: int) -> tuple[dict, dict, int]:
    """(model inputs, label keyword arguments, number of real tokens) of a list of training items."""
    encodings = [it.encoding if task.name == "qa" else it[0] for it in items]
    inputs = _inputs(encodings, pad_id)  # (B, T) each
    n_tokens = sum(len(e.input_ids) for e in encodings)
    if task.name == "sentiment":
        return inputs, {"labels": backend.asarray([it[1] for it in items], dtype="int64")}, n_tokens  # (B,)
    if task.name == "ner":
        return inputs, {"labels": _pad_labels([it[1] for it in items], inputs["input_ids"].shape[1])}, n_tokens
    return inputs, {"start_positions": backend.asarray([it.start for it in items], dtype="int64"),  # (B,)
                    "end_positions": backend.asarray([it.end for it in items], dtype="int64")}, n_tokens  # (B,)


def _batches_forever(task: Task, items, batch_size: int, pad_id: int, rng: random.Random):
    """Shuffled mini-batches, epoch after epoch (each epoch a new permutation)."""
    while True:
        order = list(range(len(items)))
        rng.shuffle(order)
        for idx in _batches(len(order), batch_size):
            yield _collate(task, [items[order[i]] for i in idx], pad_id)


def evaluate(task, model, tokenizer, examples, max_length: int | None = None, batch_size: int = 64) -> dict:
    """Held-out metrics of ``model`` on ``examples`` (flat dict of floats; the task's ``metric`` among them)."""
    task = _task(task)
    max_length = max_length or task.max_length
    if task.name == "sentiment":
        predictions = classify(model, tokenizer, [t for t, _ in examples], batch_size, max_length)
        return {"accuracy": accuracy(predictions, [y for _, y in examples]), "examples": len(examples)}
    if task.name == "ner":
        predicted = tag(model, tokenizer, [ex["tokens"] for ex in examples], _labels(task), batch_size, max_length)
        scores = entity_f1([ex["tags"] for ex in examples], predicted)
        flat = {k: scores[k] for k in ("f1", "precision", "recall")}
        flat.update({f"f1_{kind}": s["f1"] for kind, s in scores["per_type"].items()})
        return {**flat, "entities": scores["n_gold"], "examples": len(examples)}
    predictions = answer(model, tokenizer, [ex["question"] for ex in examples], [ex["context"] for ex in examples],
                         min(batch_size, 32), max_length)
    return {**qa_scores(predictions, [ex["answer"] for ex in examples]), "examples": len(examples)}


@dataclass
class FinetuneResult:
    """What ``finetune`` returns: the trained model and its tokenizer, held-out metrics, history, settings."""

    task: str
    model: object
    tokenizer: object
    metrics: dict  # held-out metrics after training
    history: object  # train.History: loss and learning rate per step, evaluations
    settings: dict  # every setting of the run (source, init, epochs, lr, batch size, steps, ...)
    seconds: float  # wall-clock seconds, loading and evaluation included
    labels: tuple = field(default=())  # label id -> name

    def to_dict(self) -> dict:
        """JSON-ready: task, metrics, settings, seconds, the per-step loss and learning rate, evaluations."""
        h = self.history
        return {"task": self.task, "metrics": self.metrics, "settings": self.settings, "seconds": self.seconds,
                "labels": list(self.labels),
                "history": {"steps": h.steps, "loss": h.loss, "lr": h.lr, "evals": h.evals, "tokens": h.tokens,
                            "train_seconds": h.seconds}}


def finetune(task="sentiment", source="minilm", *, init: str = "pretrained", epochs: int | None = None,
             lr: float | None = None, batch_size: int | None = None, max_length: int | None = None,
             optimizer: str = "adamw", weight_decay: float = 0.01, warmup: float = 0.1, clip_norm: float | None = 1.0,
             freeze_word_embeddings: bool = False, train=None, test=None, tokenizer=None, max_steps: int | None = None,
             eval_each_epoch: bool = False, seed: int = 0, dtype="float32", progress: bool = True,
             pooling: str | None = None) -> FinetuneResult:
    """Fine-tune a BERT head on a task and score it on held-out data.

    Args:
        task: "sentiment", "ner" or "qa" (see ``TASKS`` for each one's defaults).
        source: "minilm", "random", a BERT folder, or a BertConfig (see ``load_start``).
        init: "pretrained" or "random" (the source's config with fresh weights).
        epochs, lr, batch_size, max_length: None = the task's default.
        optimizer: "adamw" (decoupled weight decay on matrices only, ``optim.decay_groups``) or "adam"
            (torch.optim.Adam, as the course text; ``weight_decay`` is then an L2 term on every parameter).
        weight_decay: the decay coefficient.
        warmup: fraction of the steps with a linear warmup; then cosine decay to 0 (``optim.warmup_cosine``).
        clip_norm: global gradient-norm limit, or None.
        freeze_word_embeddings: keep the word-embedding table fixed (faster steps; words seen only at
            test time keep their pre-trained neighbours).
        train, test: lists of examples in the task's format (default: ``data.finetune_sets``).
        tokenizer: default: the source folder's vocab.txt.
        max_steps: stop after this many steps (smoke tests); None = ``epochs`` full passes.
        eval_each_epoch: also score ``test`` after every epoch (recorded in ``history.evals``).
        seed: weights of the new layer, dropout masks, batch order.
        dtype: "float32" or "float64".
        progress: a tqdm bar on stderr.
        pooling: sentiment only: "cls" (BERT's [CLS] pooler) or "mean" (the mean of the last hidden states over
            the real tokens, how all-MiniLM-L6-v2 was trained); None = the task's default.
    Returns:
        FinetuneResult.
    """
    from .optim import Adam, AdamW, decay_groups, warmup_cosine
    from .train import Trainer

    t0 = time.perf_counter()
    task = _task(task)
    epochs = task.epochs if epochs is None else int(epochs)
    lr = task.lr if lr is None else float(lr)
    batch_size = task.batch_size if batch_size is None else int(batch_size)
    max_length = task.max_length if max_length is None else int(max_length)
    if epochs < 1 or batch_size < 1 or not lr > 0.0 or not 0.0 <= warmup < 1.0:
        raise ValueError(f"finetune: need epochs >= 1, batch_size >= 1, lr > 0 and 0 <= warmup < 1; got epochs="
                         f"{epochs}, batch_size={batch_size}, lr={lr}, warmup={warmup}")
    if optimizer not in ("adamw", "adam"):
        raise ValueError(f"optimizer must be 'adamw' or 'adam', got {optimizer!r}")
    pooling = task.pooling if pooling is None else pooling
    if pooling not in ("cls", "mean"):
        raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    if pooling != "cls" and task.head is not BertForSequenceClassification:
        raise ValueError(f"pooling={pooling!r} is an option of sequence classification, not of the {task.name} task")
    if task.head is not BertForSequenceClassification:
        pooling = None  # the token and span heads read every token's state: no pooling
    labels = _labels(task)
    model, tokenizer, notes = load_start(source, task.head, len(labels), init=init, tokenizer=tokenizer, dtype=dtype,
                                         seed=seed, pooling=pooling)
    max_length = min(max_length, model.config.max_position_embeddings)  # a small pre-trained model has fewer
    train = list(_load_split(task, "train") if train is None else train)
    test = list(_load_split(task, "test") if test is None else test)
    if not train or not test:
        raise ValueError(f"finetune: {len(train)} training and {len(test)} test examples; both must be non-empty")
    items = _features(task, tokenizer, train, max_length, labels)

    steps_per_epoch = math.ceil(len(items) / batch_size)
    steps = steps_per_epoch * epochs if max_steps is None else min(int(max_steps), steps_per_epoch * epochs)
    frozen = {"bert.embeddings.word_embeddings.W"} if freeze_word_embeddings else set()
    trained = _Trainable(model, frozen) if frozen else model
    named = list(trained.named_parameters())
    opt = (AdamW(decay_groups(named, weight_decay), lr=lr) if optimizer == "adamw"
           else Adam([p for _, p in named], lr=lr, weight_decay=weight_decay))
    warmup_steps = min(int(warmup * steps), steps - 1)

    def loss_fn(_, batch):
        inputs, targets, n_tokens = batch
        return model(**inputs, **targets).loss, n_tokens

    def eval_fn(_):
        return evaluate(task, model, tokenizer, test, max_length)

    trainer = Trainer(trained, opt, loss_fn, schedule=warmup_cosine(lr, warmup_steps, steps), clip_norm=clip_norm,
                      eval_fn=eval_fn, eval_every=steps_per_epoch if eval_each_epoch else 0)
    history = trainer.fit(_batches_forever(task, items, batch_size, tokenizer.pad_token_id, random.Random(seed)),
                          steps, progress=progress, desc=f"finetune {task.name}")
    metrics = history.evals[-1] if history.evals and history.evals[-1]["step"] == steps else trainer.evaluate()
    metrics = {k: v for k, v in metrics.items() if k != "step"}
    model.eval()
    settings = {
        "task": task.name, "source": str(source) if not isinstance(source, BertConfig) else "config",
        "init": "random" if source == "random" else init, "epochs": epochs, "steps": steps,
        "steps_per_epoch": steps_per_epoch, "lr": lr, "batch_size": batch_size, "max_length": max_length,
        "optimizer": optimizer, "weight_decay": weight_decay, "warmup_steps": warmup_steps, "schedule": "warmup_cosine",
        "clip_norm": clip_norm, "freeze_word_embeddings": bool(freeze_word_embeddings), "seed": seed,
        "dtype": str(dtype), "pooling": pooling, "train_examples": len(train), "test_examples": len(test),
        "parameters": model.num_parameters(), "trained_parameters": sum(int(p.data.size) for _, p in named),
        "model_config": model.config.to_dict(), "load_notes": notes,
    }
    if task.name == "qa":
        settings["train_answers_cut_off"] = sum(int(f.start == 0) for f in items)
    return FinetuneResult(task.name, model, tokenizer, metrics, history, settings, time.perf_counter() - t0, labels)


def finetune_sequence_classification(source="minilm", **kwargs) -> FinetuneResult:
    """``finetune("sentiment", source, **kwargs)``: BertForSequenceClassification on review sentiment."""
    return finetune("sentiment", source, **kwargs)


def finetune_token_classification(source="minilm", **kwargs) -> FinetuneResult:
    """``finetune("ner", source, **kwargs)``: BertForTokenClassification on IOB2 entity tags."""
    return finetune("ner", source, **kwargs)


def finetune_question_answering(source="minilm", **kwargs) -> FinetuneResult:
    """``finetune("qa", source, **kwargs)``: BertForQuestionAnswering on answer spans."""
    return finetune("qa", source, **kwargs)


def save_finetuned(result: FinetuneResult, folder) -> list[tuple[str, str]]:
    """Write the fine-tuned model as a Hugging Face folder (config.json with the label names,
    model.safetensors, vocab.txt + tokenizer_config.json) plus metrics.json; returns [(what, path)]."""
    import json

    from .fileio import atomic_write
    from .pretrained import save_pretrained

    folder = Path(folder)
    save_pretrained(result.model, folder, tokenizer=result.tokenizer)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if result.task != "qa":
        config["id2label"] = {str(i): name for i, name in enumerate(result.labels)}
        config["label2id"] = {name: i for i, name in enumerate(result.labels)}
    config["finetuning_task"] = result.task
    with atomic_write(config_path, "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    with atomic_write(folder / "metrics.json", "w") as f:
        f.write(json.dumps(result.to_dict(), indent=2) + "\n")
    return [("model", os.fspath(folder / "model.safetensors")), ("config", os.fspath(config_path)),
            ("vocabulary", os.fspath(folder / "vocab.txt")), ("metrics", os.fspath(folder / "metrics.json"))]
