"""A checkpoint save killed mid-write (SIGKILL: no cleanup runs) leaves the previous checkpoint intact."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minitransformer import checkpoint
from minitransformer.nn.linear import Linear

D = 1024  # Linear(D, D): 4 MB of float32 weights per save

WRITER = textwrap.dedent(f"""
    import sys
    from minitransformer import checkpoint
    from minitransformer.nn.linear import Linear
    model = Linear({D}, {D})
    for i in range(1, 10**6):  # every save writes W == i everywhere, so a loaded file shows which save it was
        model.W.data[...] = float(i)
        model.b.data[...] = float(i)
        checkpoint.save(sys.argv[1], model, extra={{"i": i}})
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_killed_save_leaves_the_previous_checkpoint_intact(tmp_path, delay):
    path = tmp_path / "ckpt.npz"
    model = Linear(D, D)
    model.W.data[...] = 0.0
    model.b.data[...] = 0.0
    checkpoint.save(path, model, extra={"i": 0})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir()):  # a save is under way
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the writer never started a save"
        time.sleep(delay)
        mid_write = any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert delay > 0 or mid_write  # with no delay the kill lands during a write
    ckpt = checkpoint.load(path)  # whole, never half: the old file or a complete new one
    i = ckpt.extra["i"]
    W, b = ckpt.model_state["W"], ckpt.model_state["b"]
    assert W.shape == (D, D) and b.shape == (D,)
    np.testing.assert_array_equal(W, np.full((D, D), float(i), dtype=np.float32))
    np.testing.assert_array_equal(b, np.full((D,), float(i), dtype=np.float32))
    strays = [p.name for p in tmp_path.iterdir() if p.name != "ckpt.npz"]
    assert all(name.startswith(".tmp-") and name.endswith(".npz") for name in strays), strays
    assert len(strays) <= 1  # at most the one save that was killed
    os.utime(path)  # the target is a plain, readable file
    assert os.stat(path).st_mode & 0o644 == 0o644
