"""Question answering as span extraction: short generated biographies and questions whose answer is a span.

A context tells four or five facts about one person (birthplace, birth year, subject studied,
company founded, what it makes, where it is based), in shuffled order, plus one sentence about a second
person of the same kind (a distractor: the model must match the name, not just the type of answer).
Each example is ``{"context", "question", "answer", "answer_start"}`` with
``context[answer_start:answer_start + len(answer)] == answer``, as in SQuAD.

Held-out split: the test split's people, places and companies come from name lists that training
never sees (the disjoint test part of each list, company names included), and half of its questions
are worded by templates training never has (``TEST_QUESTIONS``).
"""

from __future__ import annotations

import random

from .ner import FIRST, LAST, PLACES, _split

__all__ = ["generate_qa"]

SUBJECTS = ("chemistry", "history", "music", "economics", "medicine", "physics", "law", "architecture",
            "biology", "philosophy", "mathematics", "engineering", "art history", "computer science")
COMPANY_A = ("Blue", "Red", "Silver", "Green", "North", "Bright", "Swift", "Golden", "Clear", "Iron", "Cedar",
             "Maple", "Stone", "River", "Cloud", "Sun")
COMPANY_B = ("Labs", "Works", "Systems", "Foods", "Robotics", "Media", "Textiles", "Motors", "Designs", "Energy",
             "Studios", "Tools")
PRODUCTS = ("water filters", "electric bikes", "solar panels", "garden tools", "children's books", "video games",
            "running shoes", "kitchen knives", "hearing aids", "weather sensors", "wooden toys", "coffee machines",
            "delivery drones", "winter coats")

# fact -> sentence templates; {name} is the full name or, after the first mention, the pronoun
FACTS = {
    "birthplace": ("{name} was born in {birthplace}.", "{name} was born and raised in {birthplace}."),
    "year": ("{name} was born in {year}.", "The year {name} was born was {year}."),
    "subject": ("{name} studied {subject} at university.", "At university, {name} studied {subject}."),
    "company": ("{name} founded {company}.", "{company} was founded by {name}."),
    "product": ("{company} makes {product}.", "The main product of {company} is {product}."),
    "base": ("{company} is based in {base}.", "The headquarters of {company} are in {base}."),
}
QUESTIONS = {
    "birthplace": ("Where was {name} born?", "In which place was {name} born?"),
    "year": ("When was {name} born?", "In what year was {name} born?"),
    "subject": ("What did {name} study?", "Which subject did {name} study at university?"),
    "company": ("Which company did {name} found?", "What is the name of the company {name} founded?"),
    "product": ("What does {company} make?", "What is the main product of {company}?"),
    "base": ("Where is {company} based?", "Where are the headquarters of {company}?"),
}
TEST_QUESTIONS = {  # wordings that only the test split uses
    "birthplace": ("What is the birthplace of {name}?",),
    "year": ("Which year saw the birth of {name}?",),
    "subject": ("What was {name}'s field of study?",),
    "company": ("{name} is the founder of which company?",),
    "product": ("What kind of products come from {company}?",),
    "base": ("In what place does {company} have its headquarters?",),
}
ANSWERS = {"birthplace": "birthplace", "year": "year", "subject": "subject", "company": "company",
           "product": "product", "base": "base"}


def _person(rng: random.Random, part: int, exclude: set) -> dict:
    """One person's facts, with names from the train (part 0) or test (part 1) lists, avoiding ``exclude``."""
    firsts, lasts, places = _split(FIRST)[part], _split(LAST)[part], _split(PLACES)[part]
    while True:
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        company = f"{rng.choice(_split(COMPANY_A)[part])} {rng.choice(COMPANY_B)}"
        if name not in exclude and company not in exclude:
            break
    birthplace, base = rng.sample(places, 2)
    return {"name": name, "birthplace": birthplace, "year": str(rng.randint(1940, 1999)),
            "subject": rng.choice(SUBJECTS), "company": company, "product": rng.choice(PRODUCTS), "base": base}


def _sentence(fact: str, person: dict, rng: random.Random) -> str:
    return rng.choice(FACTS[fact]).format(**person)


def generate_qa(n: int, split: str = "train", seed: int = 0) -> list[dict]:
    """``n`` SQuAD-style examples of the given split ("train" or "test"), reproducible.

    Returns:
        dicts ``{"context": str, "question": str, "answer": str, "answer_start": int}``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    test = split == "test"
    rng = random.Random(f"qa-{split}-{seed}")
    out = []
    while len(out) < int(n):
        main = _person(rng, int(test), set())
        other = _person(rng, int(test), {main["name"], main["company"]})
        facts = rng.sample(list(FACTS), rng.randint(4, 5))
        sentences = [_sentence(f, main, rng) for f in facts]
        distractor_fact = rng.choice(list(FACTS))
        sentences.insert(rng.randrange(len(sentences) + 1), _sentence(distractor_fact, other, rng))
        context = " ".join(sentences)
        for fact in rng.sample(facts, 2):  # two questions per context
            if len(out) == int(n):
                break
            answer = main[ANSWERS[fact]]
            if context.count(answer) != 1:  # ambiguous span (e.g. the same city twice): ask something else
                continue
            wordings = TEST_QUESTIONS[fact] + QUESTIONS[fact] if test and rng.random() < 0.5 else QUESTIONS[fact]
            question = rng.choice(wordings).format(**main)
            out.append({"context": context, "question": question, "answer": answer,
                        "answer_start": context.index(answer)})
    return out
