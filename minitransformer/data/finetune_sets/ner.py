"""NER-style tagging data: sentences from templates and name lists, one BIO tag per word.

Entity types: PER (people), LOC (cities, countries, regions), ORG (companies, institutions), DATE.
Tags are IOB2: the first word of an entity is ``B-TYPE``, the following words ``I-TYPE``, the rest ``O``.
Words are pre-split (punctuation is its own word, as in CoNLL-2003), so the only sub-word question
is WordPiece's, which ``minitransformer.finetune.align_word_labels`` answers (first piece labelled).

Held-out split. The test split draws every entity from name lists that training never sees
(``_split(names)`` gives a disjoint train part and test part of each list) and uses its own
sentence templates (``TEST_TEMPLATES``) besides the training ones, so a model must recognise new
names in new contexts, not memorise them.
"""

from __future__ import annotations

import random

__all__ = ["LABELS", "generate_ner"]

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-DATE", "I-DATE")

FIRST = ("Maria", "John", "Aisha", "Kenji", "Olga", "Pedro", "Fatima", "Liam", "Chen", "Amara", "Lucas", "Sofia",
         "Ivan", "Nadia", "Tom", "Priya", "Omar", "Elena", "Kwame", "Hana", "David", "Ines", "Ravi", "Clara",
         "Mateo", "Yuki", "Sara", "Ahmed", "Lena", "Noah", "Zara", "Felix", "Mina", "Oscar", "Rosa", "Jonas")
LAST = ("Lopez", "Smith", "Khan", "Tanaka", "Petrova", "Silva", "Haddad", "Murphy", "Wang", "Okafor", "Martin",
        "Rossi", "Novak", "Karimi", "Baker", "Patel", "Farouk", "Garcia", "Mensah", "Sato", "Cohen", "Moreau",
        "Singh", "Weber", "Torres", "Kim", "Larsen", "Nasser", "Fischer", "Brown", "Ali", "Dubois", "Park",
        "Eriksen", "Costa", "Vargas")
PLACES = ("Paris", "Lisbon", "Nairobi", "Osaka", "Toronto", "Lima", "Cairo", "Oslo", "Mumbai", "Berlin",
          "New York", "Buenos Aires", "Cape Town", "Hong Kong", "San Diego", "Rio de Janeiro", "Kenya", "Japan",
          "Brazil", "Canada", "Norway", "Peru", "Egypt", "India", "Vienna", "Seoul", "Dublin", "Madrid",
          "Accra", "Hanoi", "New Delhi", "Mexico City", "Tel Aviv", "Los Angeles", "South Africa", "New Zealand")
ORGS = ("Acme Corporation", "Northwind Traders", "Blue River Bank", "Globex", "Initech", "Umbrella Pharma",
        "Stark Industries", "Greenleaf Foods", "the United Nations", "the Red Cross", "Oxford University",
        "Apex Motors", "Silverline Airlines", "Bright Energy", "Nova Labs", "Helios Solar", "Orbit Media",
        "the World Bank", "Cedar Health", "Pioneer Books", "Harbor Logistics", "Vertex Software",
        "the National Museum", "Summit Insurance", "Redwood Capital", "Lakeside Hospital", "Falcon Games",
        "Crystal Water Company", "Ironclad Security", "the City Council", "Sunrise Bakery", "Quantum Systems")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

TRAIN_TEMPLATES = (
    "{PER} moved to {LOC} in {DATE} .",
    "{PER} joined {ORG} on {DATE} .",
    "{ORG} opened a new office in {LOC} .",
    "On {DATE} , {PER} met {PER} in {LOC} .",
    "{PER} works for {ORG} in {LOC} .",
    "The meeting between {ORG} and {ORG} took place in {LOC} on {DATE} .",
    "{PER} was born in {LOC} .",
    "According to {PER} , {ORG} will cut prices in {DATE} .",
    "Shares of {ORG} rose after {PER} spoke in {LOC} .",
    "{PER} and {PER} visited {LOC} last week .",
    "{ORG} hired {PER} as its new director .",
    "The festival in {LOC} starts on {DATE} .",
    "{PER} left {ORG} in {DATE} to start a company .",
    "Flights from {LOC} to {LOC} were cancelled on {DATE} .",
    "{PER} said the weather in {LOC} was lovely .",
    "{ORG} announced its results on {DATE} .",
    "Nobody from {ORG} came to the party .",
    "It rained all day , so we stayed home .",
)
TEST_TEMPLATES = (  # only in the test split
    "Last year {PER} sold her shares in {ORG} .",
    "A spokesperson for {ORG} confirmed on {DATE} that the plant in {LOC} will close .",
    "{PER} , who grew up in {LOC} , now teaches at {ORG} .",
    "Police in {LOC} are looking for {PER} .",
    "The new bridge linking {LOC} and {LOC} opens on {DATE} .",
    "{PER} thanked {PER} for her help .",
)


def _split(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Disjoint (train, test) parts of a name list: every fourth name is kept for the test split."""
    return tuple(n for i, n in enumerate(names) if i % 4 != 3), tuple(n for i, n in enumerate(names) if i % 4 == 3)


def _date(rng: random.Random, years: range) -> str:
    kind = rng.randrange(5)
    month, day, year = rng.choice(MONTHS), rng.randint(1, 28), rng.choice(years)
    return (f"{month} {day}", f"{day} {month} {year}", f"{month} {year}", str(year), rng.choice(WEEKDAYS))[kind]


def _entity(kind: str, rng: random.Random, test: bool) -> str:
    part = 1 if test else 0
    if kind == "PER":
        first, last = _split(FIRST)[part], _split(LAST)[part]
        return rng.choice((f"{rng.choice(first)} {rng.choice(last)}", rng.choice(first), rng.choice(last),
                           f"{rng.choice(first)} {rng.choice(last)}"))
    if kind == "LOC":
        return rng.choice(_split(PLACES)[part])
    if kind == "ORG":
        return rng.choice(_split(ORGS)[part])
    return _date(rng, range(2020, 2026) if test else range(1990, 2020))


def _fill(template: str, rng: random.Random, test: bool) -> tuple[list[str], list[str]]:
    """The words and IOB2 tags of one filled template ("the" before an ORG is not part of it)."""
    tokens, tags = [], []
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            kind = word[1:-1]
            words = _entity(kind, rng, test).split()
            if words[0] == "the":
                tokens.append("the")
                tags.append("O")
                words = words[1:]
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    tokens[0] = tokens[0][0].upper() + tokens[0][1:]
    return tokens, tags


def generate_ner(n: int, split: str = "train", seed: int = 0) -> list[dict]:
    """``n`` examples ``{"tokens": [...], "tags": [...]}`` of the given split ("train" or "test"), reproducible.

    The test split uses held-out name lists and, for about half its sentences, templates training never has.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    test = split == "test"
    rng = random.Random(f"ner-{split}-{seed}")
    out = []
    for _ in range(int(n)):
        templates = TEST_TEMPLATES if test and rng.random() < 0.5 else TRAIN_TEMPLATES
        tokens, tags = _fill(rng.choice(templates), rng, test)
        out.append({"tokens": tokens, "tags": tags})
    return out
