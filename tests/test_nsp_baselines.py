"""benchmarks/nsp_baselines.py: what next-sentence prediction on the built-in corpus allows without a network."""

import json

import numpy as np

from tests.conftest import load_script


def _load():
    return load_script("benchmarks/nsp_baselines.py")


def test_best_threshold_accuracy_by_hand():
    best = _load()._best_threshold_accuracy
    assert best(np.array([0.0, 1.0, 2.0, 3.0]), np.array([False, False, True, True])) == 1.0
    assert best(np.array([0.0, 1.0, 2.0, 3.0]), np.array([False, True, False, True])) == 0.75
    assert best(np.array([5.0, 5.0]), np.array([True, False])) == 0.5


def test_topic_match_reaches_the_topic_ceiling_and_beats_word_overlap(tmp_path, capsys):
    assert _load().main(["--out", str(tmp_path / "b.json")]) == 0
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["topics"] >= 10 and abs(r["topic_ceiling"] - (1 - 0.5 / r["topics"])) < 1e-12
    for row in r["baselines"].values():
        assert 0.9 < row["topic_match_naive_bayes"] <= r["topic_ceiling"] + 0.02
        assert 0.55 < row["word_overlap"] < row["topic_match_naive_bayes"]
    single, spans = r["baselines"].values()
    assert spans["mean_words_per_pair"] > 1.5 * single["mean_words_per_pair"]
    assert spans["word_overlap"] > single["word_overlap"]  # more text per side, more shared words
    assert "topic match" in capsys.readouterr().out
