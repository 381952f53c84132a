"""Fine-tuning scores on hand-worked cases: accuracy, seqeval-style entity F1, SQuAD exact match and token F1."""

import pytest

from minitransformer.finetune import (
    accuracy,
    entities,
    entity_f1,
    exact_match,
    normalize_answer,
    qa_scores,
    token_f1,
)


def test_accuracy():
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert accuracy([2], [2]) == 1.0
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        accuracy([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="no examples"):
        accuracy([], [])


@pytest.mark.parametrize("tags,expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),  # I after O starts an entity (conlleval, seqeval default)
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # a type change closes and opens
    (["B-ORG", "B-ORG", "I-ORG"], [("ORG", 0, 1), ("ORG", 1, 3)]),  # B closes the previous entity
    (["O", "O"], []),
    ([], []),
    (["B-DATE", "I-DATE"], [("DATE", 0, 2)]),  # an entity running to the end is closed
    (["I-LOC"], [("LOC", 0, 1)]),
])
def test_entities_hand_cases(tags, expected):
    assert entities(tags) == expected


@pytest.mark.parametrize("bad", ["X-PER", "B", "B-", "PER", "o"])
def test_entities_refuses_non_iob_tags(bad):
    with pytest.raises(ValueError, match="not an IOB2 tag"):
        entities(["O", bad])


def test_entity_f1_counts_exact_spans_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"],
            ["B-ORG", "I-ORG", "I-ORG", "O", "B-DATE"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O"],  # PER right; LOC predicted as ORG: wrong type
            ["B-ORG", "I-ORG", "O", "O", "B-DATE"]]  # ORG one word short: wrong span; DATE right
    s = entity_f1(gold, pred)
    assert (s["n_gold"], s["n_predicted"], s["n_correct"]) == (4, 4, 2)
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    assert s["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "n_gold": 1}
    assert s["per_type"]["LOC"]["recall"] == 0.0 and s["per_type"]["LOC"]["f1"] == 0.0
    assert s["per_type"]["ORG"]["precision"] == 0.0 and s["per_type"]["ORG"]["n_gold"] == 1
    assert s["per_type"]["DATE"]["f1"] == 1.0


def test_entity_f1_precision_and_recall_differ():
    gold = [["B-PER", "O", "B-LOC", "O"]]
    pred = [["B-PER", "O", "O", "O"]]  # one of two found, nothing wrong predicted
    s = entity_f1(gold, pred)
    assert s["precision"] == 1.0 and s["recall"] == 0.5
    assert s["f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert entity_f1([["O", "O"]], [["O", "O"]])["f1"] == 0.0  # no entities anywhere: 0, not a division by 0
    assert entity_f1(gold, gold)["f1"] == 1.0


def test_entity_f1_errors():
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        entity_f1([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 0 has 2 gold tags but 1 predicted"):
        entity_f1([["O", "O"]], [["O"]])


def test_entity_f1_follows_seqeval_default_mode_rules():
    """seqeval's start_of_chunk/end_of_chunk rules worked by hand: I after O or after another type opens an entity.

    gold entities: PER(0,2) LOC(3,4) LOC(4,5) | ORG(1,2) PER(2,3) | DATE(0,2)        -> 6
    predicted:     PER(0,2) LOC(3,4) LOC(4,5) | ORG(1,3)          | DATE(0,2)        -> 5, of which 4 correct
    """
    gold = [["B-PER", "I-PER", "O", "I-LOC", "B-LOC"], ["O", "B-ORG", "I-PER", "O"], ["B-DATE", "I-DATE", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], ["O", "B-ORG", "I-ORG", "O"], ["B-DATE", "I-DATE", "O"]]
    s = entity_f1(gold, pred)
    assert (s["n_gold"], s["n_predicted"], s["n_correct"]) == (6, 5, 4)
    assert s["precision"] == pytest.approx(4 / 5) and s["recall"] == pytest.approx(4 / 6)
    assert s["f1"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))


@pytest.mark.parametrize("text,expected", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple, a pear and THE plum.", "apple pear and plum"),
    ("children's books", "childrens books"),
    ("theater", "theater"),  # "the" only as a whole word
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_token_f1_hand_cases():
    assert exact_match("the Eiffel Tower", "Eiffel Tower.") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    # "Paris France" vs "Paris": common 1, P = 1/2, R = 1/1, F1 = 2/3
    assert token_f1("Paris France", "Paris") == pytest.approx(2.0 / 3.0)
    # repeated words count with their multiplicity: pred "a b b", gold "b b c" -> common 2 (a is an article)
    assert token_f1("x y y", "y y z") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert token_f1("London", "Paris") == 0.0
    assert token_f1("the", "a") == 1.0  # both normalise to nothing: equal
    assert token_f1("the", "Paris") == 0.0
    scores = qa_scores(["Paris France", "London", "1984"], ["Paris", "London", "1985"])
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="2 predictions for 1 gold"):
        qa_scores(["a", "b"], ["a"])
