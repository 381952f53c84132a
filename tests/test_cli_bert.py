"""The pretrain-bert command: a seconds-long smoke run, the files it writes, one-line errors."""

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.cli import main
from minitransformer.models import BertForPreTraining, BertForSequenceClassification
from minitransformer.tokenizers import WordPieceTokenizer

SMOKE = ["--size", "tiny", "--steps", "6", "--batch-size", "8", "--documents", "60", "--vocab-size", "300",
         "--eval-pairs", "40", "--max-len", "32", "--no-progress"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = {"mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy", "unigram_mlm_accuracy", "n_masked", "n_pairs",
               "size", "steps", "batch_size", "max_len", "lr", "warmup", "dropout", "seed", "vocab_size",
               "parameters", "train_documents", "held_out_documents", "seconds", "config", "corpus", "documents",
               "corpus_seed", "corpus_files", "threads", "final_train_loss", "final_train_mlm_loss",
               "final_train_nsp_loss", "max_steps", "max_seconds", "weight_decay", "prepare_seconds",
               "final_eval_seconds", "total_seconds", "spans", "decay_fraction", "nsp_weight"}


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("cli_bert") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["pretrain-bert", *SMOKE, "--eval-every", "3", "--out", str(out_dir)])
    assert code == 0, stderr.getvalue()
    return out_dir, stdout.getvalue()


def test_smoke_run_writes_model_vocab_metrics_and_plot(smoke):
    out_dir, stdout = smoke
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "metrics.json",
                 "pretraining.png"):
        assert (out_dir / name).is_file(), name
    assert (out_dir / "pretraining.png").read_bytes()[:8] == PNG_MAGIC
    m = json.loads((out_dir / "metrics.json").read_text())
    assert set(m) == METRIC_KEYS
    assert m["steps"] == 6 and m["size"] == "tiny" and m["corpus"] == "builtin" and m["documents"] == 60
    assert m["n_pairs"] == 40 and 0.0 <= m["mlm_accuracy"] <= 1.0 and 0.0 <= m["nsp_accuracy"] <= 1.0
    assert 0.0 < m["unigram_mlm_accuracy"] < 1.0
    assert "held-out (40 pairs" in stdout and "unigram baseline" in stdout and "NSP accuracy" in stdout
    assert str(out_dir / "metrics.json") in stdout


def test_smoke_run_loads_for_fine_tuning(smoke):
    out_dir, _ = smoke
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # new classifier, unused pre-training heads
        clf = BertForSequenceClassification.from_pretrained(out_dir)
    pre = BertForPreTraining.from_pretrained(out_dir, strict=True)  # every weight is there
    tok = WordPieceTokenizer.from_pretrained(out_dir)
    assert tok.vocab_size == clf.config.vocab_size == json.loads((out_dir / "metrics.json").read_text())["vocab_size"]
    np.testing.assert_array_equal(backend.to_numpy(clf.bert.embeddings.word_embeddings.W.data),
                                  backend.to_numpy(pre.bert.embeddings.word_embeddings.W.data))


def test_text_files_as_corpus(tmp_path, capsys):
    text = "\n\n".join(
        f"{name} saw a {thing}. Then {name} took the {thing}. The {thing} was {adj}."
        for name in ("Anna", "Boris", "Clara", "Dmitri") for thing in ("boat", "cow", "lamp")
        for adj in ("red", "old"))
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    (tmp_path / "b.txt").write_text(text.replace("saw", "found"), encoding="utf-8")
    code, out, err = _run(["pretrain-bert", *SMOKE, "--vocab-size", "120", "--text", str(tmp_path / "a.txt"),
                           str(tmp_path / "b.txt"), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["corpus"] == "text" and m["documents"] == 48 and m["corpus_seed"] is None
    assert "48 documents from 2 file(s)" in out


def test_minutes_limit_the_training_time(tmp_path, capsys):
    code, out, err = _run(["pretrain-bert", *SMOKE, "--steps", "1000", "--minutes", "0.0001",
                           "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # Training stops at the first step that ends past the budget: a tiny model on a quiet machine may fit
    # a few steps into 6 ms, never the 1000 asked for, and never stops before the budget is spent.
    assert m["max_steps"] == 1000 and m["max_seconds"] == pytest.approx(0.006)
    assert 1 <= m["steps"] < 1000 and m["seconds"] >= 0.006
    assert f"trained {m['steps']} steps" in out


def test_errors_are_one_line(tmp_path, capsys):
    code, _, err = _run(["pretrain-bert", *SMOKE, "--text", str(tmp_path / "missing.txt"),
                         "--out", str(tmp_path / "r")], capsys)
    assert code == 1 and err.count("\n") == 1 and "minitransformer: error: cannot read --text" in err
    (tmp_path / "one.txt").write_text("Just one sentence here.\n\nAnd one more.", encoding="utf-8")
    code, _, err = _run(["pretrain-bert", *SMOKE, "--text", str(tmp_path / "one.txt"), "--out", str(tmp_path / "r")],
                        capsys)
    assert code == 1 and err.count("\n") == 1 and "cannot pre-train on this corpus" in err
    code, _, err = _run(["pretrain-bert", *SMOKE, "--size", "huge", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "invalid choice: 'huge'" in err and err.count("\n") == 1
    code, _, err = _run(["pretrain-bert", *SMOKE, "--warmup", "6", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "--warmup 6 must be smaller than --steps 6" in err
    code, _, err = _run(["pretrain-bert", "--corpus", "builtin", "--text", "x.txt"], capsys)
    assert code == 2 and "not allowed with argument" in err
    (tmp_path / "file").write_text("x")
    code, _, err = _run(["pretrain-bert", *SMOKE, "--out", str(tmp_path / "file")], capsys)
    assert code == 2 and "is not a directory" in err


def test_activation_and_initializer_range_reach_the_saved_config(tmp_path, capsys):
    out_dir = tmp_path / "relu"
    code, _, err = _run(["pretrain-bert", *SMOKE, "--hidden-act", "relu", "--initializer-range", "0.05",
                         "--out", str(out_dir)], capsys)
    assert code == 0, err
    config = json.loads((out_dir / "config.json").read_text())
    assert config["hidden_act"] == "relu" and config["initializer_range"] == 0.05
    assert json.loads((out_dir / "metrics.json").read_text())["config"]["hidden_act"] == "relu"
    code, _, err = _run(["pretrain-bert", *SMOKE, "--hidden-act", "swish", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "invalid choice: 'swish'" in err and "relu" in err
    code, _, err = _run(["pretrain-bert", *SMOKE, "--initializer-range", "0", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "--initializer-range" in err


def test_help_lists_the_command(capsys):
    code, out, _ = _run(["--help"], capsys)
    assert code == 0 and "pretrain-bert" in out
    code, out, _ = _run(["pretrain-bert", "--help"], capsys)
    assert code == 0 and "metrics.json" in out and "pretraining.png" in out and "exit status" in out
