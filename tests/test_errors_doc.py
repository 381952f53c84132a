"""docs/errors.md stays true: every row's error is triggered here and its documented message checked.

Each row of the table in docs/errors.md starts with an id in backticks; TRIGGERS below holds, per id, a call
that must fail. The test checks that the exception type (or CLI exit status) and the message fragment written
in the table are what the call really gives, and that the table and TRIGGERS list the same ids.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from minitransformer import checkpoint, cli, pretrained, seq2seq
from minitransformer.data.vocab import Vocab
from minitransformer.models import Transformer, TransformerConfig
from minitransformer.nn.dropout import Dropout
from minitransformer.nn.embedding import Embedding
from minitransformer.nn.feedforward import FeedForward
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.losses import CrossEntropyLoss, cross_entropy_forward
from minitransformer.nn.module import Module
from minitransformer.nn.multihead import MultiHeadAttention
from minitransformer.nn.positional import PositionalEncoding
from minitransformer.optim import SGD, AdamW
from minitransformer.tokenizers.vocab_file import read_vocab
from minitransformer.tokenizers.wordpiece import WordPieceTokenizer

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
f32 = np.float32


def tiny_config(**changes):
    return TransformerConfig(**{**dict(src_vocab_size=10, tgt_vocab_size=10, d_model=8, n_heads=2, d_ff=16,
                                       n_encoder_layers=1, n_decoder_layers=1, max_len=6), **changes})


def mha_mask_error():
    mha = MultiHeadAttention(8, 2)
    x = np.zeros((2, 3, 8), f32)
    mha(x, x, x, key_padding_mask=np.zeros((2, 4), bool))


def transformer_too_long():
    model = Transformer(tiny_config())
    model(np.ones((1, 7), np.int64), np.ones((1, 2), np.int64))


def load_state_mismatch():
    class Two(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(2, 2)

    Two().load_state_dict({"a.W": np.zeros((2, 2), f32)})


def shape_mismatch():
    Linear(2, 2).load_state_dict({"W": np.zeros((3, 2), f32), "b": np.zeros(2, f32)})


def checkpoint_missing(tmp):
    checkpoint.load(tmp / "nothing.npz")


def checkpoint_random(tmp):
    (tmp / "random.npz").write_bytes(b"\x00" * 64)
    checkpoint.load(tmp / "random.npz")


def safetensors_truncated(tmp):
    (tmp / "w.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    pretrained.load_safetensors(tmp / "w.safetensors")


def pickle_refused(tmp):
    (tmp / "pytorch_model.bin").write_bytes(b"\x80\x04")
    pretrained.load_safetensors(tmp / "pytorch_model.bin")


def vocab_not_utf8(tmp):
    (tmp / "vocab.txt").write_bytes(b"\xff\n")
    read_vocab(tmp / "vocab.txt")


def wordpiece_missing_specials():
    WordPieceTokenizer(["a", "b"])


def load_run_missing(tmp):
    seq2seq.load_run(str(tmp / "no-run"))


def cli_error(*argv):
    def run(tmp, capsys):
        status = cli.main(list(argv))
        raise SystemExit(status)
    return run


TRIGGERS = {
    "linear-size": lambda: Linear(0, 3),
    "linear-last-dim": lambda: Linear(4, 3)(np.zeros((2, 5), f32)),
    "linear-dtype": lambda: Linear(4, 3)(np.zeros((2, 4), np.int64)),
    "linear-dtype-match": lambda: Linear(4, 3)(np.zeros((2, 4), np.float64)),
    "linear-not-array": lambda: Linear(4, 3)([[1.0, 2.0, 3.0, 4.0]]),
    "embedding-size": lambda: Embedding(0, 4),
    "embedding-range": lambda: Embedding(5, 4)(np.array([[7]])),
    "embedding-int": lambda: Embedding(5, 4)(np.array([[1.0]])),
    "layernorm-size": lambda: LayerNorm(0),
    "layernorm-eps": lambda: LayerNorm(4, eps=0.0),
    "dropout-p": lambda: Dropout(1.0),
    "feedforward-d_ff": lambda: FeedForward(8, 0),
    "mha-size": lambda: MultiHeadAttention(-1, 2),
    "mha-heads": lambda: MultiHeadAttention(8, 3),
    "mha-rank": lambda: MultiHeadAttention(8, 2)(np.zeros((3, 8), f32), np.zeros((3, 8), f32),
                                                  np.zeros((3, 8), f32)),
    "mha-mask": mha_mask_error,
    "positional-size": lambda: PositionalEncoding(8, max_len=0),
    "config-heads": lambda: tiny_config(d_model=10, n_heads=3),
    "config-size": lambda: tiny_config(d_ff=0),
    "config-dropout": lambda: tiny_config(dropout=1.0),
    "config-smoothing": lambda: tiny_config(label_smoothing=2.0),
    "config-pad": lambda: tiny_config(pad_id=10),
    "config-unknown": lambda: TransformerConfig.from_dict({"src_vocab_size": 5, "tgt_vocab_size": 5, "bogus": 1}),
    "transformer-max-len": transformer_too_long,
    "cross-entropy-targets": lambda: cross_entropy_forward(np.zeros((2, 3), f32), np.array([0.0, 1.0])),
    "cross-entropy-smoothing": lambda: CrossEntropyLoss(label_smoothing=1.5),
    "backward-before-forward": lambda: Linear(2, 2).backward(np.zeros((1, 2), f32)),
    "load-state-keys": load_state_mismatch,
    "load-state-shape": shape_mismatch,
    "optim-lr": lambda: SGD(Linear(2, 2).parameters(), lr=-1.0),
    "optim-betas": lambda: AdamW(Linear(2, 2).parameters(), betas=(1.5, 0.9)),
    "optim-empty": lambda: AdamW([], lr=1e-3),
    "checkpoint-missing": checkpoint_missing,
    "checkpoint-corrupt": checkpoint_random,
    "safetensors-corrupt": safetensors_truncated,
    "safetensors-pickle": pickle_refused,
    "vocab-txt-utf8": vocab_not_utf8,
    "wordpiece-specials": wordpiece_missing_specials,
    "char-vocab-unknown": lambda: Vocab("ab").encode("abc"),
    "char-vocab-json": lambda: Vocab.from_json("{}"),
    "load-run-missing": load_run_missing,
    "cli-steps": cli_error("train", "--steps", "0"),
    "cli-task": cli_error("train", "--task", "nope", "--steps", "1"),
    "cli-dropout": cli_error("train", "--dropout", "1.5"),
    "cli-peak-lr": cli_error("train", "--peak-lr", "-1"),
    "cli-checkpoint": cli_error("translate", "--checkpoint", "/nonexistent/run", "hello"),
}


def doc_rows() -> dict:
    """id -> (exception column, message fragment) from the table of docs/errors.md."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z0-9_-]+`", cells[0]):
            message = re.fullmatch(r"`(.+)`", cells[4])
            assert message, f"row {cells[0]}: the message column must be one `code span`"
            rows[cells[0].strip("`")] = (cells[3].strip("`"), message.group(1).replace("\\|", "|"))
    return rows


def trigger(key, tmp_path, capsys) -> tuple[str, str]:
    """(exception name or 'exit N', message) of the row's call."""
    fn = TRIGGERS[key]
    args = {"tmp": tmp_path, "capsys": capsys}
    names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    try:
        fn(*[args[n] for n in names])
    except SystemExit as e:
        return f"exit {e.code}", capsys.readouterr().err.strip()
    except Exception as e:
        return type(e).__name__, e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    raise AssertionError(f"{key}: no error was raised")


def test_the_table_and_the_triggers_list_the_same_rows():
    rows = doc_rows()
    assert len(rows) >= 40
    assert sorted(rows) == sorted(TRIGGERS)


@pytest.mark.parametrize("key", sorted(TRIGGERS))
def test_each_documented_error_is_what_the_call_raises(key, tmp_path, capsys):
    kind, message = trigger(key, tmp_path, capsys)
    doc_kind, fragment = doc_rows()[key]
    assert kind == doc_kind, f"{key}: documented {doc_kind}, raised {kind}: {message}"
    assert fragment.replace("…", "") in message or all(p in message for p in fragment.split("…")), (key, message)


@pytest.mark.parametrize("make, match", [
    (lambda: Linear(3, 0), "Linear d_out must be a positive int, got 0"),
    (lambda: Linear(2.5, 3), "Linear d_in must be a positive int, got 2.5"),
    (lambda: Linear(True, 3), "Linear d_in must be a positive int, got True"),
    (lambda: Embedding(5, -1), "Embedding d_model must be a positive int, got -1"),
    (lambda: LayerNorm(4, eps=float("nan")), "LayerNorm eps must be > 0"),
    (lambda: MultiHeadAttention(8, 0), "MultiHeadAttention n_heads must be a positive int, got 0"),
    (lambda: __import__("minitransformer.nn.encoder", fromlist=["Encoder"]).Encoder(1, 8, 2, 0),
     "FeedForward d_ff must be a positive int, got 0"),
    (lambda: __import__("minitransformer.nn.positional", fromlist=["x"]).LearnedPositionalEmbedding(0, 8),
     "LearnedPositionalEmbedding max_len must be a positive int, got 0"),
    (lambda: tiny_config(src_vocab_size=0), "TransformerConfig src_vocab_size must be a positive int, got 0"),
    (lambda: tiny_config(dropout=float("nan")), "TransformerConfig: dropout must be in"),
])
def test_sizes_and_options_added_by_the_audit(make, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make()


def test_numpy_int_sizes_are_accepted():
    layer = Linear(np.int64(3), np.int64(2))
    assert layer.W.data.shape == (3, 2)
