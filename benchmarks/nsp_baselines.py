"""How learnable is next-sentence prediction on the built-in corpus? Two baselines without a neural network.

    python benchmarks/nsp_baselines.py          # prints a table, writes benchmarks/results/nsp_baselines.json

The pre-training target of issue 6 asks for NSP accuracy >= 90%. Before blaming the model, measure what the
data allows, on the same documents as ``benchmarks/pretrain_target.py`` (4,000 documents of seed 0, the last
10% held out) and held-out pairs drawn by ``sample_nsp_pairs`` (single sentences, and spans that fill
``max_len`` 64):

1. **word overlap**: count the word types A and B share, leaving out the 60 most frequent words; predict
   "B follows A" when the count is above a threshold (the best threshold on the held-out pairs: an optimistic
   score for this baseline);
2. **topic match** (a naive-Bayes-style vote, using the generator's topic labels of the training documents,
   which the network never sees): score(t | A) = sum over A's words of log p(t | word), with add-one word
   counts per topic, normalised to q(t | A) by a softmax; the same for B; "B follows A" when
   sum_t q(t | A) q(t | B) is above a threshold (again the best one).

Random B comes from another document, which has the same topic with probability about 1/12, so a perfect
topic matcher scores about 1 - 0.5 / 12 = 0.958. Words are lower-cased word and punctuation tokens (the
baselines need no WordPiece vocabulary).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
from collections import Counter

import numpy as np

from minitransformer import backend
from minitransformer.data.corpus import generate_documents
from minitransformer.data.pretraining import sample_nsp_pairs

DOCUMENTS, HELD_OUT_FRACTION, PAIRS, MAX_LEN = 4000, 0.1, 4000, 64


def _words(sentence: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", sentence.lower())


def _best_threshold_accuracy(score: np.ndarray, is_next: np.ndarray) -> float:
    """max over thresholds c of mean[(score > c) == is_next]."""
    return float(max(((score > c) == is_next).mean() for c in np.unique(np.concatenate([[-np.inf], score]))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "nsp_baselines.json"))
    args = parser.parse_args(argv)

    docs = generate_documents(DOCUMENTS, seed=0)
    n_train = DOCUMENTS - int(round(HELD_OUT_FRACTION * DOCUMENTS))
    words = [[_words(s) for s in d.sentences] for d in docs]
    train, held = words[:n_train], words[n_train:]
    common = {w for w, _ in Counter(w for d in train for s in d for w in s).most_common(60)}
    topics = sorted({d.topic for d in docs})
    index = {t: i for i, t in enumerate(topics)}
    counts: dict[str, np.ndarray] = {}
    for d, doc in zip(train, docs[:n_train], strict=True):
        for s in d:
            for w in s:
                counts.setdefault(w, np.ones(len(topics)))[index[doc.topic]] += 1.0
    log_p = {w: np.log(c / c.sum()) for w, c in counts.items()}  # log p(topic | word), add-one

    def topic_posterior(ws):
        z = sum((log_p.get(w, np.zeros(len(topics))) for w in ws), np.zeros(len(topics)))  # (n_topics,)
        p = np.exp(z - z.max())  # (n_topics,)
        return p / p.sum()

    rows = {}
    for name, span in (("single sentences", None), (f"spans (max_len {MAX_LEN})", MAX_LEN - 3)):
        pairs = sample_nsp_pairs(held, PAIRS, backend.host_rng(0), span_tokens=span)
        is_next = np.array([label == 0 for _, _, label in pairs])
        overlap = np.array([len((set(a) - common) & (set(b) - common)) for a, b, _ in pairs], dtype=float)
        match = np.array([float(topic_posterior(a) @ topic_posterior(b)) for a, b, _ in pairs])
        rows[name] = {"word_overlap": _best_threshold_accuracy(overlap, is_next),
                      "topic_match_naive_bayes": _best_threshold_accuracy(match, is_next),
                      "mean_words_per_pair": float(np.mean([len(a) + len(b) for a, b, _ in pairs]))}
    same_topic_ceiling = 1.0 - 0.5 / len(topics)
    print(f"held-out NSP pairs: {PAIRS} from {len(held)} documents; {len(topics)} topics "
          f"(a perfect topic matcher: about {same_topic_ceiling:.3f})")
    for name, r in rows.items():
        print(f"  {name:22s} word overlap {r['word_overlap']:.3f}   topic match {r['topic_match_naive_bayes']:.3f}"
              f"   ({r['mean_words_per_pair']:.1f} words per pair)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"date": datetime.date.today().isoformat(), "documents": DOCUMENTS, "held_out_pairs": PAIRS,
                   "topics": len(topics), "topic_ceiling": same_topic_ceiling, "baselines": rows}, f, indent=2)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
