"""``minitransformer finetune``: smoke runs of each task (a tiny saved model, a few steps), outputs, errors."""

import json

import pytest

from minitransformer.cli import main
from minitransformer.models import BertForTokenClassification, BertModel
from tests.test_finetune import tiny_config, tiny_tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny pre-trained-looking folder: config.json, model.safetensors, vocab.txt (as pretrain-bert saves)."""
    path = tmp_path_factory.mktemp("tiny_bert")
    tok = tiny_tokenizer(["the", "was", "in", "born", "and", "of", "good", "bad"])
    BertModel(tiny_config(tok)).save_pretrained(path, tokenizer=tok)
    return path


def _args(task, folder, out, *extra):
    return ["finetune", "--task", task, "--from", str(folder), "--max-steps", "2", "--batch-size", "4",
            "--train-limit", "8", "--test-limit", "4", "--no-progress", "--out", str(out), *extra]


@pytest.mark.parametrize("task", ["sentiment", "ner", "qa"])
def test_finetune_command_smoke(task, folder, tmp_path, capsys):
    assert main(_args(task, folder, tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"fine-tuning for {task}" in out and "trained 2 steps" in out and "held-out:" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["settings"]["steps"] == 2
    assert metrics["history"]["steps"] == [1, 2] and len(metrics["load_average"]) == 3
    assert metrics["settings"]["train_examples"] == 8 and metrics["settings"]["test_examples"] == 4
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["finetuning_task"] == task
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "vocab.txt").is_file()
    if task == "qa":
        assert metrics["settings"]["max_length"] == 192 and "exact_match" in metrics["metrics"]


def test_finetune_command_random_init_and_options(folder, tmp_path, capsys):
    args = _args("ner", folder, tmp_path, "--random-init", "--optimizer", "adam", "--freeze-word-embeddings",
                 "--epochs", "2", "--eval-each-epoch", "--seed", "3", "--max-length", "32")
    assert main(args) == 0
    assert "(random weights)" in capsys.readouterr().out
    s = json.loads((tmp_path / "metrics.json").read_text())["settings"]
    assert (s["init"], s["optimizer"], s["freeze_word_embeddings"], s["seed"], s["max_length"]) == \
        ("random", "adam", True, 3, 32)
    model = BertForTokenClassification.from_pretrained(tmp_path)
    assert model.classifier.W.shape == (16, 9)


def test_finetune_command_from_minilm(tmp_path, capsys):
    assert main(["finetune", "--task", "sentiment", "--max-steps", "1", "--batch-size", "2", "--train-limit", "4",
                 "--test-limit", "4", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "from minilm" in capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["hidden_size"] == 384 and config["id2label"] == {"0": "negative", "1": "positive"}


def test_finetune_command_errors(folder, tmp_path, capsys):
    assert main(_args("ner", tmp_path / "missing", tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot fine-tune from" in err and "no model folder" in err
    with pytest.raises(SystemExit) as e:
        main(_args("ner", folder, tmp_path / "out", "--warmup", "1.5"))
    assert e.value.code == 2 and "--warmup" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(_args("pos", folder, tmp_path / "out"))
    assert e.value.code == 2 and "invalid choice: 'pos'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--from", "random", "--random-init", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "--random-init needs" in capsys.readouterr().err


def test_finetune_help_lists_the_tasks(capsys):
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert all(word in text for word in ("sentiment", "ner", "qa", "--from", "metrics.json", "exit status"))


def test_limits_take_evenly_spaced_examples():
    from minitransformer.cli.finetune import _spread
    from minitransformer.data.finetune_sets import load_sentiment

    assert _spread(list(range(10)), 3) == [0, 3, 6]
    assert _spread([1, 2], 5) == [1, 2] and _spread([1, 2], None) == [1, 2]
    assert {y for _, y in _spread(load_sentiment("test"), 4)} == {0, 1}  # the file lists positives first
