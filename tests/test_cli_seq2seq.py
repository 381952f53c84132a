"""The train, translate and demo commands: files written, output format, one-line errors.

Everything runs in-process on the "tiny" model for a few dozen steps (the
translations are wrong; the tests check the plumbing), except one subprocess
run that proves the ``python -m minitransformer`` entry point.
"""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minitransformer import checkpoint, seq2seq
from minitransformer.cli import common as cli_common
from minitransformer.cli import main
from minitransformer.cli import seq2seq as cli
from minitransformer.data import get_task
from minitransformer.nn.linear import Linear

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "tiny", "--eval-size", "50", "--no-progress"]
METRIC_KEYS = {"task", "size", "steps", "batch_size", "warmup", "seed", "schedule", "peak_lr",
               "seconds", "tokens_per_second",
               "exact_match", "token_accuracy", "eval_examples", "eval_split", "eval_seed", "parameters",
               "final_loss", "config"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(argv, capsys):
    """main(argv) -> (exit status, stdout, stderr); a SystemExit from argparse counts as a return."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``minitransformer train`` on the tiny model, 30 steps: (run directory, its stdout)."""
    out_dir = tmp_path_factory.mktemp("cli") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--task", "dates", "--steps", "30", "--batch-size", "32", "--seed", "3",
                     "--dropout", "0.0", "--out", str(out_dir), *TINY])
    assert code == 0, stderr.getvalue()
    return out_dir, stdout.getvalue()


# -- train ------------------------------------------------------------------------


def test_train_writes_checkpoint_plot_and_metrics(trained):
    out_dir, stdout = trained
    assert sorted(p.name for p in out_dir.iterdir()) == ["checkpoint.npz", "loss.png", "metrics.json"]
    assert (out_dir / "loss.png").read_bytes()[:8] == PNG_MAGIC
    metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) == METRIC_KEYS
    assert metrics["task"] == "dates" and metrics["size"] == "tiny" and metrics["steps"] == 30
    assert metrics["batch_size"] == 32 and metrics["seed"] == 3 and metrics["eval_examples"] == 50
    assert metrics["seconds"] > 0 and metrics["tokens_per_second"] > 0
    assert 0.0 <= metrics["exact_match"] <= 1.0 and 0.0 < metrics["token_accuracy"] <= 1.0
    assert metrics["config"]["d_model"] == seq2seq.SIZES["tiny"]["d_model"] and metrics["config"]["dropout"] == 0.0
    for name in ("checkpoint.npz", "loss.png", "metrics.json"):  # says where everything went
        assert str(out_dir / name) in stdout
    assert "held-out exact match" in stdout


def test_train_metrics_score_the_saved_model_on_the_test_split(trained):
    out_dir, _ = trained
    metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    run = seq2seq.load_run(str(out_dir))
    assert len(checkpoint.load(out_dir).extra["history"]["steps"]) == 30
    held_out = cli._held_out("dates", 50)
    task = get_task("dates")
    assert all(task.split_of(target) == "test" for _, target in held_out)
    assert held_out == get_task("dates").sample(50, seed=cli.HELD_OUT_SEED, split="test", unique=True)
    scores = seq2seq.evaluate(run, held_out)
    assert scores["exact_match"] == metrics["exact_match"]
    assert scores["token_accuracy"] == pytest.approx(metrics["token_accuracy"], abs=1e-12)


# -- translate ----------------------------------------------------------------------


def test_translate_prints_source_arrow_output_per_input(trained, capsys):
    out_dir, _ = trained
    texts = ["11/28/26", "Saturday, 28th of November 2026", "28.11.2026"]
    code, out, err = _run(["translate", "--checkpoint", str(out_dir), *texts], capsys)
    assert code == 0, err
    lines = out.splitlines()
    expected = seq2seq.translate(seq2seq.load_run(str(out_dir / "checkpoint.npz")), texts)
    assert lines == [f"{src} -> {tgt}" for src, tgt in zip(texts, expected, strict=True)]


def test_translate_beam_and_attention(trained, tmp_path, capsys):
    out_dir, _ = trained
    png = tmp_path / "attn.png"
    texts = ["11/28/26", "Nov 28th, 2026"]
    code, out, err = _run(["translate", "--checkpoint", str(out_dir), "--beam", "3", "--attention", str(png),
                           *texts], capsys)
    assert code == 0, err
    expected = seq2seq.translate(seq2seq.load_run(str(out_dir)), texts, beam_size=3)
    assert out.splitlines() == [f"{s} -> {t}" for s, t in zip(texts, expected, strict=True)]
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert str(png) in err  # the note goes to stderr, stdout keeps only translations


def test_translate_reads_stdin_lines_when_no_text_given(trained, monkeypatch, capsys):
    out_dir, _ = trained
    monkeypatch.setattr(sys, "stdin", io.StringIO("11/28/26\n\n  28.11.2026 \n"))
    code, out, err = _run(["translate", "--checkpoint", str(out_dir)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("11/28/26 -> ") and lines[1].startswith("28.11.2026 -> ")


def test_python_m_translate_from_stdin(trained):
    out_dir, _ = trained
    proc = subprocess.run([sys.executable, "-m", "minitransformer", "translate", "--checkpoint", str(out_dir)],
                          input="11/28/26\nSaturday, 28th of November 2026\n", cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("11/28/26 -> ") and lines[1].startswith("Saturday, 28th of November 2026 -> ")
    assert proc.stderr == ""


# -- demo --------------------------------------------------------------------------


def test_demo_tiny_writes_everything_and_shows_the_table(tmp_path, capsys):
    out_dir = tmp_path / "demo_run"
    code, out, err = _run(["demo", "--steps", "60", "--seed", "1", "--out", str(out_dir), *TINY], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["attention.png", "checkpoint.npz", "loss.png",
                                                         "metrics.json"]
    for name in ("attention.png", "loss.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG_MAGIC
    metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert METRIC_KEYS <= set(metrics)
    assert metrics["steps"] == 60 and metrics["batch_size"] == 64 and metrics["warmup"] == 200
    assert metrics["config"]["dropout"] == 0.0 and metrics["eval_examples"] == 50

    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("source "))
    assert lines[header].split() == ["source", "expected", "greedy", "beam", "4", "split"]
    rows = lines[header + 2:header + 10]
    assert rows[0].startswith("Saturday, 28th of November 2026 ") and rows[1].startswith("11/28/26 ")
    task = get_task("dates")
    assert rows[0].split()[-1] == rows[1].split()[-1] == task.split_of("2026-11-28")
    assert all(row.split()[-1] == "test" for row in rows[2:])
    examples = metrics["examples"]
    assert [e["source"] for e in examples[:2]] == list(cli.DEMO_EXAMPLES)
    assert len(examples) == 8 and all(e["split"] == task.split_of(e["expected"]) for e in examples)
    assert "held-out exact match (greedy)" in out and "of 50 test dates" in out
    assert lines[-1].strip().startswith("minitransformer translate --checkpoint " + str(out_dir))
    run = seq2seq.load_run(str(out_dir))
    assert run.model.config.d_model == seq2seq.SIZES["tiny"]["d_model"]


def test_marks_fall_back_to_ascii(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert cli_common.marks() == ("\u2713", "\u2717")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert cli_common.marks() == ("ok", "x")


# -- errors: one line on stderr, no traceback ------------------------------------------


def _bad_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n", encoding="utf-8")
    rand = tmp_path / "random.npz"
    np.savez(rand, W=np.zeros((2, 3)))
    other = checkpoint.save(tmp_path / "linear.npz", Linear(2, 3), config={"d_in": 2})
    return str(text), str(rand), other


def _assert_one_line_error(code, err, status, fragment):
    assert code == status, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("minitransformer: error: "), err
    assert "Traceback" not in err
    assert fragment in err, err


@pytest.mark.parametrize("argv, status, fragment", [
    (["train", "--task", "dutch"], 2, "unknown task 'dutch'; available tasks: copy"),
    (["train", "--steps", "0"], 2, "--steps: expected an integer >= 1, got '0'"),
    (["train", "--steps", "many"], 2, "--steps: expected an integer >= 1, got 'many'"),
    (["demo", "--steps", "-5"], 2, "--steps: expected an integer >= 1, got '-5'"),
    (["train", "--dropout", "1.5"], 2, "--dropout: expected a number in [0, 1)"),
    (["train", "--seed", "-1"], 2, "--seed: expected an integer >= 0"),
    (["train", "--peak-lr", "0"], 2, "--peak-lr: expected a number > 0, got '0'"),
    (["train", "--schedule", "linear"], 2, "--schedule: invalid choice: 'linear'"),
    (["train", "--out", "run.npz"], 2, "--out is a directory"),
    (["translate", "--checkpoint", "run", "--beam", "0", "x"], 2, "--beam: expected an integer >= 1"),
    (["translate", "x"], 2, "--checkpoint"),
])
def test_usage_errors(argv, status, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(argv, capsys)
    _assert_one_line_error(code, err, status, fragment)
    assert not (tmp_path / "run").exists()  # refused before anything was trained or written


def test_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("", encoding="utf-8")
    code, out, err = _run(["train", "--out", str(target), "--steps", "1", *TINY], capsys)
    _assert_one_line_error(code, err, 2, "exists and is not a directory")
    assert "training" not in out


@pytest.mark.parametrize("which, fragment", [
    ("missing", "no checkpoint at"),
    ("empty_dir", "no checkpoint at"),
    ("text", "is not a readable checkpoint"),
    ("random_npz", "is not a minitransformer checkpoint (no 'meta' entry)"),
    ("other_model", "is not a translation checkpoint"),
])
def test_translate_bad_checkpoint(which, fragment, tmp_path, capsys):
    text, rand, other = _bad_files(tmp_path)
    (tmp_path / "empty").mkdir()
    path = {"missing": str(tmp_path / "nowhere"), "empty_dir": str(tmp_path / "empty"), "text": text,
            "random_npz": rand, "other_model": other}[which]
    code, out, err = _run(["translate", "--checkpoint", path, "11/28/26"], capsys)
    _assert_one_line_error(code, err, 1, fragment)
    assert out == ""


@pytest.mark.parametrize("texts, fragment", [
    (["1" * 129], "has 129 characters; this model reads at most max_len=128"),
    (["11/28/26", "Samedi 28 novembre 2026 \u00e0 midi"], "input 2 'Samedi 28 novembre 2026"),
    (["28 N\u00f6v 2026"], "never saw: '\u00f6'"),
    ([""], "is empty"),
])
def test_translate_bad_input(texts, fragment, trained, capsys):
    out_dir, _ = trained
    code, out, err = _run(["translate", "--checkpoint", str(out_dir), *texts], capsys)
    _assert_one_line_error(code, err, 1, fragment)
    assert out == ""  # checked before any line is translated


def test_translate_without_input_on_a_terminal(trained, monkeypatch, capsys):
    out_dir, _ = trained

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    code, _, err = _run(["translate", "--checkpoint", str(out_dir)], capsys)
    _assert_one_line_error(code, err, 2, "nothing to translate")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    code, _, err = _run(["translate", "--checkpoint", str(out_dir)], capsys)
    _assert_one_line_error(code, err, 2, "stdin held no text")


# -- help ------------------------------------------------------------------------------


@pytest.mark.parametrize("command, words", [
    ("train", ["--task", "--eval-every", "metrics.json", "copy, reverse, sort, dates, numbers"]),
    ("translate", ["--checkpoint", "--beam", "stdin", "->"]),
    ("demo", ["--steps", "attention.png", "Saturday, 28th of November 2026"]),
])
def test_help_has_description_examples_and_exit_status(command, words, capsys):
    code, out, _ = _run([command, "--help"], capsys)
    assert code == 0
    assert "examples:" in out and f"minitransformer {command}" in out.split("examples:")[1]
    assert "exit status" in out
    for word in words:
        assert word in out, word


def test_main_help_lists_every_command(capsys):
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for command in ("demo", "train", "translate", "gradcheck"):
        assert f"    {command}" in out
