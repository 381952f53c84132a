"""The fine-tuning data sets: files as generated, sizes, balance, held-out splits really held out."""

import re
from pathlib import Path

import pytest

from minitransformer.data.finetune_sets import (
    FOLDER,
    GENERATED,
    NER_LABELS,
    generate_ner,
    generate_qa,
    load_ner,
    load_qa,
    load_sentiment,
    read_tsv,
    render,
    sentiment_templates,
    template_sentences,
)
from minitransformer.data.finetune_sets.ner import FIRST, LAST, ORGS, PLACES, TEST_TEMPLATES, _split
from minitransformer.finetune import entities

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_files_are_what_the_generators_give(name):
    assert (FOLDER / name).read_text(encoding="utf-8") == render(name), \
        f"{name} is stale: run python -m minitransformer.data.finetune_sets"


def test_sizes_and_balance():
    train, test = load_sentiment("train"), load_sentiment("test")
    sizes = [len(load_sentiment("train", templated=False, blind=False)), len(load_sentiment("train", blind=False)),
             len(train), len(test)]
    assert sizes == [358, 778, 2710, 200]
    assert sum(y for _, y in test) == 100 and sum(y for _, y in train) == 1357  # 50.1% positive
    assert (len(load_ner("train")), len(load_ner("test")), len(load_qa("train")), len(load_qa("test"))) == \
        (1200, 300, 1200, 300)
    with pytest.raises(ValueError, match="split must be one of"):
        load_sentiment("dev")


def test_sentiment_held_out_is_not_from_the_training_templates():
    train = {t.lower() for t, _ in load_sentiment("train")}
    test = [t for t, _ in load_sentiment("test")]
    assert not train & {t.lower() for t in test}  # no sentence in both
    templated = {t for t, _ in template_sentences(5000, seed=1)}  # many more than the file holds
    assert not templated & set(test)
    # no held-out sentence has the shape of a template, filled with any words of its slots
    T = sentiment_templates

    def alt(words):
        return "(?:" + "|".join(re.escape(w) for w in words) + ")"

    subject, adjective = alt(T.SUBJECTS), alt(T.POSITIVE + T.NEGATIVE + T.NEGATABLE_POSITIVE)
    shapes = [rf"{subject} was {alt(a.strip() for a in T.ADVERBS if a)}? ?{adjective}",
              rf"{subject} was (?:not|never) {adjective}(?: at all)?",
              rf"{subject} was {adjective} but {subject} was {adjective}",
              rf"{alt(T.POSITIVE_NP + T.NEGATIVE_NP)} but {alt(T.POSITIVE_NP + T.NEGATIVE_NP)}",
              rf"i {alt(T.LOVE + T.HATE)} {subject}", rf"{subject} was {adjective} and {adjective}"]
    shape = re.compile("^(?:" + "|".join(shapes) + r")\.$", re.IGNORECASE)
    assert shape.match("The plot was not bad at all.") and shape.match("Good actors but a dull plot.")
    assert not [t for t in test if shape.match(t)]


def _words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def _near(a_words, b_words):
    """The part-3 filter: a shared 4-word sequence, or word-set Jaccard >= 0.5."""
    grams = {tuple(a_words[i:i + 4]) for i in range(len(a_words) - 3)}
    if grams & {tuple(b_words[i:i + 4]) for i in range(len(b_words) - 3)}:
        return True
    a, b = set(a_words), set(b_words)
    return len(a & b) >= 0.5 * len(a | b)


def test_near_rule_catches_rewordings():
    assert _near(_words("Save your money."), _words("Save your money!"))  # the same words
    assert _near(_words("The food was far better than the reviews suggested."),
                 _words("Far better than the reviews suggested."))  # a shared 4-word sequence
    assert not _near(_words("The zip broke on the second wear."), _words("A delight from start to finish."))


@pytest.mark.parametrize(("name", "size", "positive"), [("sentiment_train_blind.tsv", 944, 473),
                                                       ("sentiment_train_blind_2.tsv", 988, 495)])
def test_sentiment_parts_3_and_4_are_balanced_and_far_from_the_held_out_file(name, size, positive):
    part = read_tsv(FOLDER / name)
    assert (len(part), sum(y for _, y in part)) == (size, positive)
    earlier = {" ".join(_words(t)) for t, _ in load_sentiment("train", blind=False)}
    held_out = [_words(t) for t, _ in load_sentiment("test")]
    for text, _ in part:
        w = _words(text)
        assert " ".join(w) not in earlier, text
        close = [" ".join(h) for h in held_out if _near(w, h)]
        assert not close, f"{text!r} is near the held-out {close}"


def test_default_training_split_ends_with_parts_3_and_4():
    parts = read_tsv(FOLDER / "sentiment_train_blind.tsv") + read_tsv(FOLDER / "sentiment_train_blind_2.tsv")
    assert load_sentiment("train")[-len(parts):] == parts
    assert load_sentiment("train")[:-len(parts)] == load_sentiment("train", blind=False)
    texts = [" ".join(_words(t)) for t, _ in parts]
    assert len(set(texts)) == len(texts)  # no sentence twice across the two parts


def test_sentiment_has_negation_and_contrast_in_both_splits():
    for split in ("train", "test"):
        rows = load_sentiment(split, templated=False, blind=False)
        negated = [y for t, y in rows if re.search(r"\b(not|never|no|nothing|hardly|nobody)\b|n't", t.lower())]
        contrast = [y for t, y in rows if re.search(r"\b(but|yet|though|although|however|despite)\b", t.lower())]
        assert len(negated) >= 20 and 0 < sum(negated) < len(negated), split  # both labels among them
        assert len(contrast) >= 15 and 0 < sum(contrast) < len(contrast), split
    train = dict(load_sentiment("train"))
    assert train["Not bad for a first film."] == 1 and train["Good actors but a dull plot."] == 0


def test_read_tsv_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("# comment\nlabel\ttext\n1\tfine\n2\tthree labels?\n")
    with pytest.raises(ValueError, match=r"bad.tsv:4: expected 'label<TAB>text'"):
        read_tsv(bad)


def test_ner_tags_are_iob2_and_entities_cover_their_words():
    for split in ("train", "test"):
        for ex in load_ner(split):
            assert len(ex["tokens"]) == len(ex["tags"]) and set(ex["tags"]) <= set(NER_LABELS)
            for i, tag in enumerate(ex["tags"]):
                assert not (tag.startswith("I-") and (i == 0 or ex["tags"][i - 1][2:] != tag[2:])), ex
    kinds = {kind for ex in load_ner("train") for kind, _, _ in entities(ex["tags"])}
    assert kinds == {"PER", "LOC", "ORG", "DATE"}


def test_ner_held_out_names_and_templates():
    def names(split, kind):
        return {" ".join(ex["tokens"][s:e]) for ex in load_ner(split) for k, s, e in entities(ex["tags"]) if k == kind}

    train_people = {w for n in names("train", "PER") for w in n.split()}
    test_people = {w for n in names("test", "PER") for w in n.split()}
    assert not train_people & test_people and test_people <= set(_split(FIRST)[1]) | set(_split(LAST)[1])
    assert not names("train", "LOC") & names("test", "LOC") and names("test", "LOC") <= set(_split(PLACES)[1])
    assert not names("train", "ORG") & names("test", "ORG")
    assert {o.removeprefix("the ") for o in _split(ORGS)[1]} >= names("test", "ORG")
    sentences = {" ".join(ex["tokens"]) for ex in load_ner("test")}
    starts = {t.split("{")[0].strip() or t.split()[1] for t in TEST_TEMPLATES}
    assert sum(any(s.startswith(p) or p in s for p in starts) for s in sentences) >= 100  # held-out templates used


def test_qa_answers_are_spans_and_test_people_are_new():
    for split in ("train", "test"):
        for ex in load_qa(split):
            a = ex["answer_start"]
            assert ex["context"][a:a + len(ex["answer"])] == ex["answer"] and ex["context"].count(ex["answer"]) == 1
    people = {split: {m for ex in load_qa(split) for m in re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", ex["question"])}
              for split in ("train", "test")}
    assert people["test"] and not people["train"] & people["test"]
    test_questions = {ex["question"] for ex in load_qa("test")}
    assert any(q.startswith("What is the birthplace of") for q in test_questions)  # a held-out wording
    assert not any(q.startswith("What is the birthplace of") for q in (ex["question"] for ex in load_qa("train")))


def test_generators_are_seeded_and_check_their_split():
    assert generate_ner(5, "train", seed=3) == generate_ner(5, "train", seed=3) != generate_ner(5, "train", seed=4)
    assert generate_qa(4, "test", seed=1) == generate_qa(4, "test", seed=1)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        generate_qa(1, "dev")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        generate_ner(1, "dev")


def test_pyproject_ships_the_data_files():
    """The .tsv/.jsonl files are package data: without the pyproject line a wheel would lack them."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"minitransformer\.data\.finetune_sets"\s*=\s*\[[^\]]*"\*\.tsv"[^\]]*"\*\.jsonl"', text), \
        'pyproject.toml needs, under [tool.setuptools.package-data]: ' \
        '"minitransformer.data.finetune_sets" = ["*.tsv", "*.jsonl", "*.md"]'
