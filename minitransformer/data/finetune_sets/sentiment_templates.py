"""Templated sentiment sentences: the second part of the TRAINING set (never the held-out one).

Each template is a sentence pattern whose label follows from its slots: plain praise or complaint,
negation that flips an adjective ("not bad" -> positive, "not good" -> negative), and contrast, where
the clause after "but" decides ("good actors but a dull plot" -> negative). ``template_sentences(seed)``
draws distinct sentences, half positive, reproducibly; ``python -m minitransformer.data.finetune_sets``
writes them to ``sentiment_train_templated.tsv``.
"""

from __future__ import annotations

import random

__all__ = ["template_sentences"]

SUBJECTS = ("the movie", "this film", "the book", "the novel", "the restaurant", "the meal", "this phone",
            "the sequel", "the show", "the ending", "the plot", "the acting", "the service", "the camera",
            "the script", "the soundtrack", "the dinner", "this laptop", "the story", "the main character")
POSITIVE = ("good", "great", "excellent", "wonderful", "enjoyable", "brilliant", "fun", "charming",
            "impressive", "delightful", "lovely", "amazing", "superb", "fantastic", "memorable")
NEGATIVE = ("bad", "awful", "terrible", "boring", "dull", "disappointing", "weak", "bland", "poor",
            "tedious", "mediocre", "dreadful", "forgettable", "annoying", "clumsy")
# Adjectives whose negation reads as the opposite ("not bad" = fine): only these are negated.
NEGATABLE_NEGATIVE = ("bad", "boring", "dull", "disappointing", "tedious", "forgettable", "annoying")
NEGATABLE_POSITIVE = ("good", "great", "enjoyable", "fun", "impressive", "memorable", "interesting", "funny")
ADVERBS = ("", "really ", "very ", "truly ", "quite ", "absolutely ", "pretty ")
POSITIVE_NP = ("good actors", "a great cast", "lovely music", "a clever idea", "tasty starters", "a nice screen",
               "a friendly waiter", "beautiful pictures", "a strong opening", "sharp dialogue", "a fair price",
               "a fast processor")
NEGATIVE_NP = ("a dull plot", "a weak script", "bad acting", "cold food", "a slow battery", "a rude waiter",
               "a silly ending", "flat characters", "a high price", "a boring second half", "a cheap finish",
               "a terrible ending")
LOVE = ("loved", "enjoyed", "liked", "adored", "really liked")
HATE = ("hated", "disliked", "regretted", "could not stand", "did not like", "did not enjoy")


def _one(rng: random.Random, positive: bool) -> str:
    """One sentence of the given polarity from a randomly chosen template."""
    good, bad = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    kind = rng.randrange(6)
    s = rng.choice(SUBJECTS)
    if kind == 0:  # plain: "the movie was really good."
        text = f"{s} was {rng.choice(ADVERBS)}{rng.choice(good)}."
    elif kind == 1:  # negation flips: "the plot was not bad." / "the plot was not good."
        adj = rng.choice(NEGATABLE_NEGATIVE if positive else NEGATABLE_POSITIVE)
        text = f"{s} was {rng.choice(('not', 'never', 'not at all'))} {adj}."
        text = text.replace("not at all " + adj, "not " + adj + " at all")
    elif kind == 2:  # contrast: the clause after "but" decides
        s2 = rng.choice([x for x in SUBJECTS if x != s])
        text = f"{s} was {rng.choice(bad)} but {s2} was {rng.choice(good)}."
    elif kind == 3:  # noun-phrase contrast: "good actors but a dull plot."
        first, second = (NEGATIVE_NP, POSITIVE_NP) if positive else (POSITIVE_NP, NEGATIVE_NP)
        text = f"{rng.choice(first)} but {rng.choice(second)}."
    elif kind == 4:  # verbs: "I loved the book."
        text = f"I {rng.choice(LOVE if positive else HATE)} {s}."
    else:  # two adjectives of one polarity
        a, b = rng.sample(good, 2)
        text = f"{s} was {a} and {b}."
    return text[0].upper() + text[1:]


def template_sentences(n: int = 420, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` distinct templated (text, label) pairs, alternating positive (1) and negative (0), reproducible."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    while len(out) < n:
        label = len(out) % 2 == 0
        text = _one(rng, label)
        if text not in seen:
            seen.add(text)
            out.append((text, int(label)))
    return out
