"""Readers of the fine-tuning data files (and the writer of the generated ones); see the package docstring."""

from __future__ import annotations

import json
from pathlib import Path

from .ner import LABELS as NER_LABELS
from .ner import generate_ner
from .qa import generate_qa
from .sentiment_templates import template_sentences

__all__ = ["FOLDER", "GENERATED", "NER_LABELS", "SENTIMENT_LABELS", "generate_ner", "generate_qa", "load_ner",
           "load_qa", "load_sentiment", "read_tsv", "render", "template_sentences", "write_generated"]

FOLDER = Path(__file__).resolve().parent
SENTIMENT_LABELS = ("negative", "positive")  # label id -> name
SPLITS = ("train", "test")

# generated file -> the function that produces its records
GENERATED = {
    "sentiment_train_templated.tsv": lambda: template_sentences(420, seed=0),
    "ner_train.jsonl": lambda: generate_ner(1200, "train", seed=0),
    "ner_test.jsonl": lambda: generate_ner(300, "test", seed=0),
    "qa_train.jsonl": lambda: generate_qa(1200, "train", seed=0),
    "qa_test.jsonl": lambda: generate_qa(300, "test", seed=0),
}
_TSV_HEADER = ("# Training sentiment set, part 2: sentences generated from templates by sentiment_templates.py\n"
               "# (python -m minitransformer.data.finetune_sets). 1 = positive, 0 = negative. Training only:\n"
               "# the held-out file uses none of these templates.\n")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def read_tsv(path) -> list[tuple[str, int]]:
    """(text, label) rows of a ``label<TAB>text`` file; ``#`` lines and the ``label text`` header are skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#") or line == "label\ttext":
                continue
            label, sep, text = line.partition("\t")
            if not sep or label not in ("0", "1") or not text.strip():
                raise ValueError(f"{path}:{number}: expected 'label<TAB>text' with label 0 or 1, got {line!r}")
            rows.append((text, int(label)))
    return rows


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_sentiment(split: str = "train", templated: bool = True, blind: bool = True) -> list[tuple[str, int]]:
    """Sentiment examples ``(text, label)``, label 1 = positive, 0 = negative.

    Args:
        split: "train" (2,710 sentences: 358 hand-written, 420 templated, 944 of part 3, 988 of part 4)
            or "test" (200 hand-written, held out).
        templated: for "train", include the templated part (``sentiment_train_templated.tsv``).
        blind: for "train", include parts 3 and 4: sentences written without access to the held-out file,
            then filtered against it (``sentiment_train_blind.tsv``, ``sentiment_train_blind_2.tsv``).
    """
    _check_split(split)
    if split == "test":
        return read_tsv(FOLDER / "sentiment_test.tsv")
    rows = read_tsv(FOLDER / "sentiment_train.tsv")
    if templated:
        rows += read_tsv(FOLDER / "sentiment_train_templated.tsv")
    if blind:
        rows += read_tsv(FOLDER / "sentiment_train_blind.tsv") + read_tsv(FOLDER / "sentiment_train_blind_2.tsv")
    return rows


def load_ner(split: str = "train") -> list[dict]:
    """NER examples ``{"tokens": list[str], "tags": list[str]}`` (IOB2 over ``NER_LABELS``): 1,200 train, 300 test."""
    _check_split(split)
    return _read_jsonl(FOLDER / f"ner_{split}.jsonl")


def load_qa(split: str = "train") -> list[dict]:
    """QA examples ``{"context", "question", "answer", "answer_start"}``: 1,200 train, 300 test."""
    _check_split(split)
    return _read_jsonl(FOLDER / f"qa_{split}.jsonl")


def render(name: str) -> str:
    """The text of the generated file ``name`` (a key of ``GENERATED``)."""
    records = GENERATED[name]()
    if name.endswith(".tsv"):
        return _TSV_HEADER + "label\ttext\n" + "".join(f"{label}\t{text}\n" for text, label in records)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_generated(folder=FOLDER) -> list[Path]:
    """Write every generated file into ``folder`` (atomically); returns the paths."""
    from ...fileio import atomic_write

    paths = []
    for name in GENERATED:
        path = Path(folder) / name
        with atomic_write(path, "w") as f:
            f.write(render(name))
        paths.append(path)
    return paths
