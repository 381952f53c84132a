import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minitransformer import backend, checkpoint
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.module import Module
from minitransformer.optim import SGD, AdamW, decay_groups


class Tiny(Module):
    def __init__(self, d_in=4, d_model=3):
        super().__init__()
        self.proj = Linear(d_in, d_model)
        self.norm = LayerNorm(d_model)

    def forward(self, x):
        return self.norm(self.proj(x))

    def backward(self, dy):
        return self.proj.backward(self.norm.backward(dy))


CONFIG = {"d_in": 4, "d_model": 3, "name": "tiny", "eps": 1e-5}


def train(model, opt, seed, steps):
    """A few real AdamW steps on random data (float32)."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = backend.asarray(rng.standard_normal((2, 5, 4)), dtype="float32")
        dy = backend.asarray(rng.standard_normal((2, 5, 3)), dtype="float32")
        opt.zero_grad()
        model(x)
        model.backward(dy)
        opt.step()


def make(seed=0):
    backend.manual_seed(seed)
    model = Tiny()
    return model, AdamW(decay_groups(model, 0.1), lr=0.01)


def params_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_round_trip_is_exact_and_training_resumes_identically(tmp_path):
    model, opt = make(0)
    train(model, opt, seed=1, steps=4)
    path = checkpoint.save(tmp_path / "run", model, opt, config=CONFIG, extra={"step": 4, "losses": [1.5, 0.25]})
    assert path == str(tmp_path / "run" / "checkpoint.npz")

    ckpt = checkpoint.load(tmp_path / "run")  # a directory resolves to <dir>/checkpoint.npz
    assert ckpt.config == CONFIG and ckpt.extra == {"step": 4, "losses": [1.5, 0.25]}
    for k, a in model.state_dict().items():
        assert ckpt.model_state[k].dtype == np.float32
        np.testing.assert_array_equal(ckpt.model_state[k], a)

    model2, opt2 = make(99)  # different initial weights, fresh optimizer
    got = checkpoint.load_into(model2, opt2, path)
    assert got.config == CONFIG
    params_equal(model2, model)
    assert opt2.step_count == 4
    train(model, opt, seed=2, steps=5)  # uninterrupted
    train(model2, opt2, seed=2, steps=5)  # resumed from the file
    params_equal(model2, model)


def test_model_only_and_npz_path(tmp_path):
    model, _ = make(0)
    path = checkpoint.save(tmp_path / "m.npz", model)
    assert path == str(tmp_path / "m.npz")
    ckpt = checkpoint.load(path)
    assert ckpt.optim_state is None and ckpt.config is None and ckpt.extra is None
    model2, opt2 = make(5)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        checkpoint.load_into(model2, opt2, path)
    checkpoint.load_into(model2, None, path)
    params_equal(model2, model)


def test_file_holds_no_pickle_and_json_meta(tmp_path):
    model, opt = make(0)
    train(model, opt, seed=1, steps=1)
    path = checkpoint.save(tmp_path / "c.npz", model, opt, config=CONFIG)
    with np.load(path, allow_pickle=False) as f:  # every entry readable without pickle
        names = set(f.files)
        meta = json.loads(f["meta"].tobytes().decode("utf-8"))
        assert f["meta"].dtype == np.uint8
    assert {"model/proj.W", "model/proj.b", "model/norm.gamma", "model/norm.beta", "meta"} <= names
    assert any(n.startswith("optim/") for n in names)
    assert meta["format_version"] == checkpoint.FORMAT_VERSION and meta["config"] == CONFIG
    assert meta["optim"]["type"] == "AdamW" and meta["optim"]["step_count"] == 1


def test_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch):
    model, opt = make(0)
    path = checkpoint.save(tmp_path, model, opt)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]
    before = Path(path).read_bytes()

    def broken(file, arrays):  # fails half-way through writing
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    train(model, opt, seed=1, steps=1)
    monkeypatch.setattr(backend, "save_npz", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, model, opt)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]  # no temp file left behind
    assert Path(path).read_bytes() == before  # the old checkpoint is intact


def test_strict_load_lists_mismatched_keys(tmp_path):
    model, opt = make(0)
    path = checkpoint.save(tmp_path / "c.npz", model, opt)

    class Other(Module):
        def __init__(self):
            super().__init__()
            self.proj = Linear(4, 3)
            self.head = Linear(3, 2)

    with pytest.raises(KeyError, match=r"c\.npz.*missing keys \['head\.W', 'head\.b'\].*"
                                        r"unexpected keys \['norm\.beta', 'norm\.gamma'\]"):
        checkpoint.load_into(Other(), None, path)
    wide = Tiny(d_model=5)
    before = wide.state_dict()
    with pytest.raises(ValueError, match=r"c\.npz.*shape mismatch for 'proj\.W': model expects \(4, 5\)"):
        checkpoint.load_into(wide, None, path)
    params_equal_dict(wide.state_dict(), before)  # a failed load changes nothing
    # the optimizer is checked before the model is touched
    model2, _ = make(3)
    before = model2.state_dict()
    with pytest.raises(ValueError, match="state is for 'AdamW', this optimizer is 'SGD'"):
        checkpoint.load_into(model2, SGD(model2.parameters(), lr=0.1, momentum=0.9), path)
    params_equal_dict(model2.state_dict(), before)


def params_equal_dict(a, b):
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- damaged and hostile files ---------------------------------------------------------


def _saved(tmp_path):
    model, opt = make(0)
    return checkpoint.save(tmp_path / "good.npz", model, opt, config=CONFIG)


def test_truncated_file_is_a_clear_error(tmp_path):
    data = Path(_saved(tmp_path)).read_bytes()
    for n in (len(data) // 2, len(data) - 10, 30):
        bad = tmp_path / f"cut{n}.npz"
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match=f"cut{n}.npz is not a readable checkpoint"):
            checkpoint.load(bad)


def test_corrupt_member_is_a_clear_error(tmp_path):
    data = bytearray(Path(_saved(tmp_path)).read_bytes())
    data[200:260] = bytes(60)  # zero out bytes inside the first stored array: CRC or header check fails
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.npz"):
        checkpoint.load(bad)


def test_random_bytes_and_other_file_types(tmp_path):
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ValueError, match="noise.npz is not a readable checkpoint.*no zip signature"):
        checkpoint.load(noise)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not a readable checkpoint"):
        checkpoint.load(text)
    npy = tmp_path / "one.npz"
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    npy.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="one.npz is not a readable checkpoint.*no zip signature"):
        checkpoint.load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(ValueError, match="plain.npz is not a minitransformer checkpoint \\(no 'meta'"):
        checkpoint.load(plain)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing")


def test_wrong_format_version_is_refused(tmp_path):
    path = _saved(tmp_path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["format_version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    future = tmp_path / "future.npz"
    np.savez(future, **arrays)
    with pytest.raises(ValueError, match="future.npz has checkpoint format version 99; .* reads version 1"):
        checkpoint.load(future)


UNPICKLED = []


def _record_unpickle():
    UNPICKLED.append(True)
    return "pwned"


class Evil:
    """Unpickling this calls _record_unpickle (a stand-in for arbitrary code)."""

    def __reduce__(self):
        return (_record_unpickle, ())


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    model, _ = make(0)
    path = checkpoint.save(tmp_path / "c.npz", model)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["model/proj.W"] = np.array([Evil()], dtype=object)  # np.savez pickles object arrays
    evil = tmp_path / "evil.npz"
    np.savez(evil, **arrays)
    with zipfile.ZipFile(evil) as z:  # the file really holds a pickle
        assert b"_record_unpickle" in z.read("model/proj.W.npy")
    UNPICKLED.clear()
    with pytest.raises(ValueError, match="evil.npz is not a readable checkpoint.*[Oo]bject arrays"):
        checkpoint.load(evil)
    with pytest.raises(ValueError, match="evil.npz"):
        checkpoint.load_into(Tiny(), None, evil)
    assert UNPICKLED == []
    with np.load(evil, allow_pickle=True) as f:  # control: a pickle-allowing loader WOULD run the code
        f["model/proj.W"]
    assert UNPICKLED == [True]


def test_config_must_be_json(tmp_path):
    model, _ = make(0)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        checkpoint.save(tmp_path / "c.npz", model, config={"f": object()})
    assert os.listdir(tmp_path) == []
