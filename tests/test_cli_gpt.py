"""The train-gpt, generate and score commands: files written, output format, one-line errors.

Everything runs in-process on the "tiny" GPT for a few steps (the text it writes is
nonsense; the tests check the plumbing and that the numbers printed are the library's).
"""

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from minitransformer.cli import COMMAND_MODULES, main
from minitransformer.lm import generate, score
from minitransformer.lm_train import load_gpt_run

TINY = ["--size", "tiny", "--steps", "6", "--batch-size", "4", "--block-size", "32", "--warmup", "2",
        "--no-progress"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(argv, capsys):
    """main(argv) -> (exit status, stdout, stderr); a SystemExit from argparse counts as a return."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _train(argv) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    """``train-gpt`` on the built-in corpus with a char tokenizer: (run directory, stdout)."""
    out_dir = tmp_path_factory.mktemp("gpt") / "run"
    code, out, err = _train(["train-gpt", "--documents", "80", "--val-documents", "4", "--tokenizer", "char",
                             "--out", str(out_dir), *TINY])
    assert code == 0, err
    return out_dir, out


def test_gpt_commands_are_registered():
    assert "gpt" in COMMAND_MODULES
    for cmd in ("train-gpt", "generate", "score"):
        with pytest.raises(SystemExit) as e, contextlib.redirect_stdout(io.StringIO()) as out:
            main([cmd, "--help"])
        assert e.value.code == 0
        text = out.getvalue()
        assert "examples:" in text and "exit status:" in text and f"minitransformer {cmd}" in text


def test_train_gpt_writes_checkpoint_tokenizer_plot_and_metrics(char_run):
    out_dir, stdout = char_run
    for name in ("checkpoint.npz", "char_tokenizer.json", "lm_run.json", "loss.png", "metrics.json"):
        assert (out_dir / name).is_file(), name
    assert (out_dir / "loss.png").read_bytes()[:8] == PNG_MAGIC
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for key in ("val_loss", "val_perplexity", "true_entropy", "ratio_to_entropy", "steps", "train_seconds",
                "tokens_per_second", "parameters", "settings", "config"):
        assert key in metrics, key
    assert metrics["steps"] == 6 and metrics["settings"]["tokenizer"] == "char"
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]))
    assert metrics["ratio_to_entropy"] == pytest.approx(metrics["val_loss"] / metrics["true_entropy"])
    assert "true entropy of the same text" in stdout and f"{metrics['val_loss']:.4f}" in stdout
    run = load_gpt_run(out_dir)
    assert run.tokenizer_kind == "char" and run.model.config.max_len == 32
    assert run.metrics["val_loss"] == pytest.approx(metrics["val_loss"])


def test_train_gpt_on_text_files_with_bpe(tmp_path):
    text = "\n\n".join(f"The cat number {i} sat on the mat. It was a good cat and it liked fish." for i in range(40))
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    code, out, err = _train(["train-gpt", "--text", str(tmp_path / "a.txt"), "--tokenizer", "bpe", "--vocab-size",
                             "300", "--out", str(tmp_path / "run"), *TINY])
    assert code == 0, err
    assert "40 documents of 1 file(s)" in out and "true entropy" not in out
    run = load_gpt_run(tmp_path / "run")
    assert run.tokenizer_kind == "bpe" and run.tokenizer.vocab_size <= 300
    assert (tmp_path / "run" / "vocab.json").is_file() and (tmp_path / "run" / "merges.txt").is_file()


def test_train_gpt_errors(tmp_path, capsys):
    code, _, err = _run(["train-gpt", "--text", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o"),
                         *TINY], capsys)
    assert code == 1 and err.count("\n") == 1 and "no such file" in err
    (tmp_path / "one.txt").write_text("Only one document here.", encoding="utf-8")
    code, _, err = _run(["train-gpt", "--text", str(tmp_path / "one.txt"), "--out", str(tmp_path / "o"), *TINY],
                        capsys)
    assert code == 1 and "need at least 2" in err and err.count("\n") == 1
    code, _, err = _run(["train-gpt", "--size", "huge", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "invalid choice" in err
    code, _, err = _run(["train-gpt", "--vocab-size", "100", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "expected an integer >= 257" in err
    (tmp_path / "f").write_text("x")
    code, _, err = _run(["train-gpt", "--out", str(tmp_path / "f"), *TINY], capsys)
    assert code == 2 and "not a directory" in err


def test_generate_prints_prompt_and_continuation(char_run, capsys):
    out_dir, _ = char_run
    run = load_gpt_run(out_dir)
    expected = generate(run.model, run.tokenizer, "Anna", max_new_tokens=15, temperature=0.8, top_k=5, seed=3)
    code, out, err = _run(["generate", "--checkpoint", str(out_dir), "--prompt", "Anna", "--max-new-tokens", "15",
                           "--temperature", "0.8", "--top-k", "5", "--seed", "3"], capsys)
    assert code == 0, err
    assert out == "Anna" + expected.text + "\n"
    assert f"[{len(expected.ids)} tokens, stopped by" in err and "seed 3" in err
    code2, out2, _ = _run(["generate", "--checkpoint", str(out_dir), "--prompt", "Anna", "--max-new-tokens", "15",
                           "--temperature", "0.8", "--top-k", "5", "--seed", "3", "--no-cache"], capsys)
    assert code2 == 0 and out2 == out  # the same text without the KV cache
    greedy = generate(run.model, run.tokenizer, "Anna", max_new_tokens=10, greedy=True)
    code, out, _ = _run(["generate", "--checkpoint", str(out_dir), "--prompt", "Anna", "--greedy",
                         "--max-new-tokens", "10"], capsys)
    assert code == 0 and out == "Anna" + greedy.text + "\n"
    code, out, err = _run(["generate", "--checkpoint", str(out_dir), "--prompt", "", "--num-samples", "2",
                           "--top-p", "0.9", "--max-new-tokens", "8"], capsys)
    assert code == 0 and err.count("tokens, stopped by") == 2


def test_generate_stop_string(char_run, capsys):
    out_dir, _ = char_run
    run = load_gpt_run(out_dir)
    full = generate(run.model, run.tokenizer, "The", max_new_tokens=30, greedy=True)
    assert len(full.text) == 30  # no <|endoftext|>: training never asks the model to predict it
    stop = full.text[3:5]
    code, out, err = _run(["generate", "--checkpoint", str(out_dir), "--prompt", "The", "--greedy",
                           "--max-new-tokens", "30", "--stop", stop], capsys)
    assert code == 0 and out == "The" + full.text[:full.text.find(stop)] + "\n" and "stop string" in err


@pytest.mark.parametrize("argv,status,match", [
    (["--prompt", "Anna", "--top-p", "0"], 2, r"expected a number in \(0, 1\]"),
    (["--prompt", "Anna", "--top-p", "1.5"], 2, r"expected a number in \(0, 1\]"),
    (["--prompt", "Anna", "--temperature", "0"], 2, "expected a number > 0"),
    (["--prompt", "Anna", "--top-k", "0"], 2, "expected an integer >= 1"),
    (["--prompt", "Anna", "--greedy", "--temperature", "0.5"], 2, "cannot be combined"),
    (["--prompt", "Anna", "--stop", ""], 2, "--stop needs a non-empty TEXT"),
    (["--prompt", "Anna\u00e9"], 1, "prompt 'Anna\u00e9': character '\u00e9'"),
    (["--prompt", "Anna " * 10], 1, "context window is max_len=32"),
])
def test_generate_errors(char_run, capsys, argv, status, match):
    out_dir, _ = char_run
    code, _, err = _run(["generate", "--checkpoint", str(out_dir), *argv], capsys)
    assert code == status and err.count("\n") == 1
    assert err.startswith("minitransformer: error: ")
    import re

    assert re.search(match, err), err


def test_score_prints_table_total_and_perplexity(char_run, capsys):
    out_dir, _ = char_run
    run = load_gpt_run(out_dir)
    texts = ["Anna waited.", "waited Anna."]
    expected = [score(run.model, run.tokenizer, t) for t in texts]
    code, out, err = _run(["score", "--checkpoint", str(out_dir), *texts], capsys)
    assert code == 0, err
    for t, s in zip(texts, expected, strict=True):
        assert f"text: {t!r}" in out
        assert f"total log-probability {s.total_log_prob:.4f} nats over {s.n_tokens} tokens" in out
        assert f"perplexity {s.perplexity:.4f}" in out
        assert f"{s.log_probs[0]:9.4f}" in out
    rows = [ln for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == sum(s.n_tokens for s in expected)
    code, out, _ = _run(["score", "--checkpoint", str(out_dir), "--summary", *texts], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    assert f"log p = {expected[1].total_log_prob:9.3f}" in out.splitlines()[1]


def test_score_errors(char_run, tmp_path, capsys):
    out_dir, _ = char_run
    code, _, err = _run(["score", "--checkpoint", str(out_dir), "Anna", ""], capsys)
    assert code == 2 and "empty TEXT" in err
    code, _, err = _run(["score", "--checkpoint", str(out_dir), "ok", "caf\u00e9"], capsys)
    assert code == 1 and "text 2 'caf\u00e9'" in err and err.count("\n") == 1
    code, _, err = _run(["score", "--checkpoint", str(tmp_path / "nothing"), "Anna"], capsys)
    assert code == 1 and "cannot load the checkpoint" in err and err.count("\n") == 1
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.npz").write_bytes(b"not a zip")
    code, _, err = _run(["score", "--checkpoint", str(tmp_path / "bad"), "Anna"], capsys)
    assert code == 1 and "cannot load the checkpoint" in err and err.count("\n") == 1


def test_score_reads_stdin(char_run, capsys, monkeypatch):
    out_dir, _ = char_run
    monkeypatch.setattr("sys.stdin", io.StringIO("Anna waited.\n\nBen sat.\n"))
    code, out, _ = _run(["score", "--checkpoint", str(out_dir), "--summary"], capsys)
    assert code == 0 and len(out.splitlines()) == 2


def test_seq2seq_checkpoint_is_refused(tmp_path, capsys):
    from minitransformer import checkpoint
    from minitransformer.nn.linear import Linear

    checkpoint.save(tmp_path / "other", Linear(2, 2), extra={"task": "dates"})
    code, _, err = _run(["generate", "--checkpoint", str(tmp_path / "other"), "--prompt", "x"], capsys)
    assert code == 1 and "is not a GPT run" in err
    assert Path(tmp_path / "other" / "checkpoint.npz").is_file()
