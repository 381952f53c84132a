"""Hostile files: fuzzed checkpoints, safetensors files and vocabularies never crash obscurely.

Property, for every reader (checkpoint.load, pretrained.load_safetensors, read_vocab, Vocab.from_json,
WordPieceTokenizer.from_pretrained, seq2seq.load_run): given any bytes, it either returns a valid result or
raises ValueError naming the file (FileNotFoundError when there is no file). Never another exception type,
never pickle (pickle.load/loads are patched to fail the test if called), never a giant allocation from a
declared size (tracemalloc peak bound). The hand-picked hostile cases live in test_checkpoint.py and
test_pretrained.py; here hypothesis generates them, and the bugs it found have regression tests below.
"""

import contextlib
import io
import json
import os
import pickle
import struct
import tempfile
import tracemalloc
import zipfile
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minitransformer import backend, checkpoint, pretrained, seq2seq
from minitransformer.data.vocab import Vocab
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.module import Module
from minitransformer.optim import AdamW
from minitransformer.tokenizers.vocab_file import read_vocab
from minitransformer.tokenizers.wordpiece import WordPieceTokenizer

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PEAK_BYTES = 64 * 2**20  # no reader may allocate more than this for a file of a few KB


class Tiny(Module):
    def __init__(self):
        super().__init__()
        self.proj = Linear(4, 3)
        self.norm = LayerNorm(3)


def _valid_checkpoint_bytes() -> bytes:
    backend.manual_seed(0)
    model = Tiny()
    opt = AdamW(model.parameters(), lr=0.01)
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    with tempfile.TemporaryDirectory() as d:
        path = checkpoint.save(os.path.join(d, "c.npz"), model, opt, config={"d": 3}, extra={"step": 1})
        with open(path, "rb") as f:
            return f.read()


def _valid_safetensors_bytes() -> bytes:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([7, -8], dtype=np.int64),
              "c": np.zeros((0, 4), dtype=np.float16), "d": np.ones((3,), dtype=np.uint8)}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.safetensors")
        pretrained.save_safetensors(arrays, path)
        with open(path, "rb") as f:
            return f.read()


CKPT = _valid_checkpoint_bytes()
SAFE = _valid_safetensors_bytes()


def _forbidden(*args, **kwargs):
    raise AssertionError("a reader tried to unpickle data from a file")


@contextlib.contextmanager
def hostile_file(data: bytes, name: str):
    """Write ``data`` to a fresh temp file; pickle is forbidden and allocations are measured inside."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        with mock.patch.object(pickle, "load", _forbidden), mock.patch.object(pickle, "loads", _forbidden), \
                mock.patch.object(pickle, "Unpickler", _forbidden):
            tracemalloc.start()
            try:
                yield path
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert peak < PEAK_BYTES, f"reading a {len(data)}-byte file allocated {peak} bytes"


def read_or_clear_error(reader, path, named=None):
    """``reader(path)``'s result, or None after checking the ValueError names the file; anything else propagates."""
    try:
        return reader(path)
    except ValueError as e:
        assert (named or os.path.basename(path)) in str(e), f"error does not name the file: {e}"
        return None


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1,
                                        max_size=6)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    if kind == "truncate":
        return data[:arg % len(data)]
    if kind == "append":
        return data + arg
    out = bytearray(data)
    for pos, xor in arg:
        out[pos % len(out)] ^= xor
    return bytes(out)


# -- checkpoints (.npz) --------------------------------------------------------------------------------------


@FUZZ
@given(mutation=mutations)
def test_fuzzed_checkpoint_loads_or_gives_a_clear_error(mutation):
    with hostile_file(mutate(CKPT, mutation), "fuzzed.npz") as path:
        ckpt = read_or_clear_error(checkpoint.load, path)
    if ckpt is not None:  # a flip the zip CRC cannot see (a name, a header pad byte): still a valid result
        assert all(isinstance(a, np.ndarray) and a.dtype != object for a in ckpt.model_state.values())
        assert isinstance(ckpt.extra, (dict, type(None)))


def _npy(shape, descr="<f4", data=b"") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    header += " " * (117 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data


@FUZZ
@given(shape=st.lists(st.integers(0, 2**40), min_size=1, max_size=3),
       descr=st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|O", "<U10"]),
       data=st.binary(max_size=64), compress=st.booleans())
def test_declared_npy_shapes_are_checked_before_allocation(shape, descr, data, compress):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("meta.npy", _npy([2], "|u1", b"{}"))
        z.writestr("model/W.npy", _npy(shape, descr, data))
    with hostile_file(buf.getvalue(), "huge.npz") as path:
        assert read_or_clear_error(checkpoint.load, path) is None  # the meta "{}" is no checkpoint anyway


def test_regression_huge_npy_shape_is_refused_without_allocating(tmp_path):
    """Found by the fuzzer: numpy allocates from the .npy header's shape before reading (40 GB here)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/W.npy", _npy((100_000, 100_000), data=b"\0" * 16))
    with hostile_file(buf.getvalue(), "huge.npz") as path:
        with pytest.raises(ValueError, match=r"declares shape \(100000, 100000\) of float32 = 40000000000 bytes"):
            checkpoint.load(path)


def test_regression_overlapping_zip_entries_are_refused(tmp_path):
    """A zip bomb's trick: two directory entries sharing one stored payload claim more bytes than the file holds."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", _npy((1000,), data=b"\0" * 4000))
    raw = buf.getvalue()
    cd = raw.index(b"PK\x01\x02")  # the central directory entry of a.npy, then the end record
    end = raw.index(b"PK\x05\x06")
    entry = raw[cd:end]
    twice = raw[:cd] + entry + entry  # the same local header and data, listed twice
    eocd = bytearray(raw[end:])
    struct.pack_into("<HHI", eocd, 8, 2, 2, 2 * len(entry))  # 2 entries, central directory size
    path = tmp_path / "overlap.npz"
    path.write_bytes(twice + bytes(eocd))
    with pytest.raises(ValueError, match="overlap.npz is not a readable checkpoint.*claim .* bytes; the file has"):
        checkpoint.load(path)


def test_regression_deeply_nested_meta_json(tmp_path):
    """Found by the fuzzer: json.loads raised RecursionError (not ValueError) on [[[[...]]]]."""
    path = tmp_path / "deep.npz"
    with open(path, "wb") as f:
        backend.save_npz(f, {"meta": backend.encode_text("[" * 100_000 + "]" * 100_000)})
    with pytest.raises(ValueError, match="deep.npz has an unreadable 'meta' entry"):
        checkpoint.load(path)


@FUZZ
@given(extra=st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.sampled_from(["src_vocab", "tgt_vocab", "task"]),
                                       st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                                 st.just({"format": "minitransformer.char_vocab", "chars": "ab"}),
                                                 st.just({"format": "minitransformer.char_vocab", "chars": "aa",
                                                          "specials": ["<pad>", "<bos>", "<eos>", "<unk>"]})))),
       config=st.one_of(st.none(), st.integers(), st.just({"bogus": 1}), st.just({"d_model": "x"})))
def test_translation_checkpoint_with_hostile_extra_or_config(extra, config):
    with tempfile.TemporaryDirectory() as d:
        path = checkpoint.save(os.path.join(d, "run.npz"), Tiny(), config=config, extra=extra)
        with pytest.raises(ValueError, match="run.npz"):  # no fuzzed file is a whole translation run
            seq2seq.load_run(path)


# -- safetensors ---------------------------------------------------------------------------------------------


def _check_loaded(path, loaded):
    tensors, _ = pretrained.read_safetensors_header(path)
    assert set(loaded) == set(tensors)
    for name, a in loaded.items():
        assert tuple(a.shape) == tensors[name]["shape"]
        assert pretrained.TO_SAFETENSORS_DTYPE[a.dtype.name] == tensors[name]["dtype"]


@FUZZ
@given(mutation=mutations)
def test_fuzzed_safetensors_loads_or_gives_a_clear_error(mutation):
    with hostile_file(mutate(SAFE, mutation), "fuzzed.safetensors") as path:
        loaded = read_or_clear_error(pretrained.load_safetensors, path)
        if loaded is not None:  # a flip inside the tensor bytes: no checksum, the values differ, shapes hold
            _check_loaded(path, loaded)


DTYPES = sorted(pretrained.SAFETENSORS_ITEMSIZE) + ["BF16", "F8_E4M3", "Q4", "", 5, None]
entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(DTYPES),
    "shape": st.one_of(st.lists(st.one_of(st.integers(0, 4), st.integers(-3, 2**62)), max_size=3),
                       st.just("3"), st.just([1.5])),
    "data_offsets": st.one_of(st.lists(st.integers(-2, 80), min_size=2, max_size=2),
                              st.lists(st.integers(0, 2**70), min_size=2, max_size=2),
                              st.lists(st.integers(0, 80), max_size=3)),
})
headers = st.dictionaries(st.text(max_size=4), entries, max_size=4)


@FUZZ
@given(header=headers, data_size=st.integers(0, 96),
       metadata=st.one_of(st.none(), st.just({"format": "pt"}), st.just({"k": 1}), st.just([1])),
       length_delta=st.sampled_from([0, 0, 0, -1, 1, 2**40, 2**63]), junk=st.sampled_from([b"", b"\xff", b"\xc3("]))
def test_synthesized_safetensors_headers(header, data_size, metadata, length_delta, junk):
    if metadata is not None:
        header = dict(header, __metadata__=metadata)
    raw = json.dumps(header).encode("utf-8")
    raw = raw[:1] + junk + raw[1:]  # non-UTF-8 bytes inside the JSON, sometimes
    n = (len(raw) + length_delta) % 2**64
    data = bytes(range(256))[:data_size]
    with hostile_file(struct.pack("<Q", n) + raw + data, "made.safetensors") as path:
        loaded = read_or_clear_error(pretrained.load_safetensors, path)
        if loaded is not None:
            _check_loaded(path, loaded)


def test_regression_deeply_nested_safetensors_header(tmp_path):
    """Found by the fuzzer: json.loads raised RecursionError (not ValueError) on [[[[...]]]]."""
    raw = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(ValueError, match="deep.safetensors is not a valid safetensors file: the header is not valid"):
        pretrained.load_safetensors(path)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_regression_deeply_nested_folder_json(tmp_path, name):
    (tmp_path / name).write_text("[" * 100_000 + "]" * 100_000)
    if name != "config.json":
        (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    reader = pretrained.read_config if name == "config.json" else pretrained.read_weights
    with pytest.raises(ValueError, match=name):
        reader(tmp_path)


# -- tokenizer files -----------------------------------------------------------------------------------------

vocab_bytes = st.lists(st.one_of(st.sampled_from([b"[PAD]", b"[UNK]", b"[CLS]", b"[SEP]", b"[MASK]", b"a", b"##a",
                                                  b"", b"\xff", b"\xc3(", b"\r", b" "]),
                                 st.binary(max_size=6)), max_size=12).map(b"\n".join)


@FUZZ
@given(data=vocab_bytes)
def test_random_vocab_txt(data):
    with hostile_file(data, "vocab.txt") as path:
        tokens = read_or_clear_error(read_vocab, path)
        if tokens is None:
            return
        assert tokens and all(isinstance(t, str) and "\n" not in t for t in tokens)
        folder = os.path.dirname(path)
        tok = read_or_clear_error(WordPieceTokenizer.from_pretrained, folder, named="WordPieceTokenizer")
        if tok is not None:  # a usable vocabulary: every special token present, no duplicates
            assert len(set(tokens)) == len(tokens)
            ids = tok.encode("a a")
            assert all(0 <= i < len(tokens) for i in ids)


def test_regression_non_utf8_vocab_txt_names_the_file(tmp_path):
    """Found by the fuzzer: a bare UnicodeDecodeError that did not say which file."""
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\n\xff\n")
    with pytest.raises(ValueError, match="vocab.txt.* is not UTF-8 text"):
        read_vocab(path)


@pytest.mark.parametrize("text", [b"\xff\xfe{", b"[" * 100_000, b"[1, 2]", b'{"do_lower_case": ['])
def test_regression_hostile_tokenizer_config_json(tmp_path, text):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    (tmp_path / "tokenizer_config.json").write_bytes(text)
    with pytest.raises(ValueError, match="tokenizer_config.json"):
        WordPieceTokenizer.from_pretrained(tmp_path)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
char_vocabs = st.fixed_dictionaries(
    {"format": st.sampled_from(["minitransformer.char_vocab", "other"])},
    optional={"chars": st.one_of(st.text(max_size=6), json_values),
              "specials": st.one_of(st.just(["<pad>", "<bos>", "<eos>", "<unk>"]), json_values)})


@FUZZ
@given(data=st.one_of(st.binary(max_size=40), json_values.map(json.dumps), char_vocabs.map(json.dumps),
                      char_vocabs))
def test_random_char_vocab_json(data):
    try:
        v = Vocab.from_json(data)
    except ValueError as e:
        assert str(e).startswith("Vocab.from_json") or "Vocab:" in str(e)
        return
    assert v.decode(v.encode(v.chars)) == v.chars and len(v) == 4 + len(v.chars)


@pytest.mark.parametrize("data", [b"\xff\xfe\x00", "[" * 100_000,
                                  '{"format": "minitransformer.char_vocab", "chars": "ab", "specials": 5}'])
def test_regression_char_vocab_json(data):
    """Found by the fuzzer: UnicodeDecodeError, RecursionError and TypeError ('int' is not iterable)."""
    with pytest.raises(ValueError, match="Vocab.from_json"):
        Vocab.from_json(data)
