"""finetune(..., pooling="mean"): the sentiment head on the mean of the token states; saving and reloading it."""

import json

import numpy as np
import pytest

from minitransformer.cli import main as cli_main
from minitransformer.data.finetune_sets import load_ner, load_sentiment
from minitransformer.finetune import TASKS, classify, finetune, load_start, save_finetuned
from minitransformer.models import BertForSequenceClassification
from minitransformer.tokenizers import WordPieceTokenizer
from tests.test_finetune import tiny_config, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(["the", "was", "good", "bad", "movie", "book", "paris"])


def _run(tok, **kwargs):
    options = dict(init="random", tokenizer=tok, train=load_sentiment("train")[:24], test=load_sentiment("test")[:10],
                   epochs=1, batch_size=8, progress=False)
    return finetune("sentiment", tiny_config(tok), **{**options, **kwargs})


def test_mean_pooling_smoke_save_and_reload(tok, tmp_path):
    result = _run(tok, pooling="mean")
    assert result.settings["pooling"] == "mean" and result.model.mean_pooling
    assert result.model.config.classifier_pooling == "mean"
    assert all(np.isfinite(result.history.loss))
    save_finetuned(result, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["classifier_pooling"] == "mean"
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.mean_pooling
    texts = [t for t, _ in load_sentiment("test")[:12]]
    assert classify(reloaded, WordPieceTokenizer.from_pretrained(tmp_path), texts) == \
        classify(result.model, tok, texts)


def test_pooling_default_is_the_tasks_and_recorded(tok):
    result = _run(tok, max_steps=1)
    assert result.settings["pooling"] == TASKS["sentiment"].pooling
    assert result.model.config.classifier_pooling == TASKS["sentiment"].pooling
    cls_run = _run(tok, max_steps=1, pooling="cls")
    assert not cls_run.model.mean_pooling and cls_run.settings["pooling"] == "cls"


def test_mean_pooling_learns_a_separable_set(tok):
    train = [(f"the {w} was {a}", int(a == "good")) for w in ("movie", "book", "paris") for a in ("good", "bad")]
    config = tiny_config(tok, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    r = finetune("sentiment", config, init="random", tokenizer=tok, train=train * 4, test=train, epochs=30,
                 batch_size=8, lr=1e-2, warmup=0.0, progress=False, pooling="mean")
    assert r.history.loss[-1] < 0.05 and r.history.loss[0] > 0.6
    assert r.metrics["accuracy"] == 1.0


def test_pooling_errors(tok):
    with pytest.raises(ValueError, match="pooling must be 'cls' or 'mean', got 'max'"):
        _run(tok, pooling="max")
    with pytest.raises(ValueError, match="pooling='mean' is an option of sequence classification, not of the ner"):
        finetune("ner", tiny_config(tok), init="random", tokenizer=tok, train=load_ner("train")[:4],
                 test=load_ner("test")[:2], pooling="mean", progress=False)
    model, _, _ = load_start(tiny_config(tok), BertForSequenceClassification, 2, init="random", tokenizer=tok,
                             pooling="mean")
    assert model.mean_pooling


def test_cli_pooling_option(tok, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["finetune", "--task", "ner", "--pooling", "mean", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert "--pooling is an option of the sentiment task" in capsys.readouterr().err


def _dev_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sentiment_dev_selection.py"
    spec = importlib.util.spec_from_file_location("sentiment_dev_selection", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dev_split_is_carved_from_training_only():
    """The dev split that chose the sentiment recipe: 72 hand-written TRAINING sentences, 36 per label, none in
    training, none from the held-out file; the same split every time."""
    train, dev = _dev_script().dev_split(blind=False)
    held_out = {t for t, _ in load_sentiment("test")}
    assert len(dev) == 72 and sum(y for _, y in dev) == 36
    assert len(train) + len(dev) == len(load_sentiment("train", blind=False))
    train_b, dev_b = _dev_script().dev_split()  # the default: part 3 joins the training side only
    assert dev_b == dev and len(train_b) + len(dev_b) == len(load_sentiment("train"))
    assert not {t for t, _ in dev} & {t for t, _ in train}
    assert not {t for t, _ in dev} & held_out
    assert _dev_script().dev_split(blind=False) == (train, dev)  # the same split every time


def test_dev_folds_cover_the_hand_written_sentences_once():
    """5-fold cross-validation: each hand-written training sentence is dev in exactly one fold, a fold's dev
    sentences never appear on its training side (not even as a part-2/3 repeat), and fold 0 is the split above."""
    script = _dev_script()
    hand = load_sentiment("train", templated=False, blind=False)
    seen = []
    for fold in range(5):
        train, dev = script.dev_split(fold=fold)
        assert 70 <= len(dev) <= 72 and abs(2 * sum(y for _, y in dev) - len(dev)) <= 2  # balanced labels
        assert not {t for t, _ in dev} & {t for t, _ in train}
        seen += dev
    assert sorted(seen) == sorted(hand)
    assert script.dev_split(fold=0) == script.dev_split()
    with pytest.raises(ValueError, match="fold"):
        script.dev_split(fold=5)
