"""Determinism on CPU: a seed gives bit-identical losses over 20 training steps, in fresh processes.

What is and is not deterministic, and why: docs/determinism.md.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

STEPS = 20

SCRIPT = textwrap.dedent(f"""
    import json, sys
    from minitransformer import backend
    from minitransformer.data import get_task
    from minitransformer.models import Transformer, TransformerConfig
    from minitransformer.optim import AdamW, decay_groups, warmup_cosine
    from minitransformer.seq2seq import seq2seq_loss, train_batches
    from minitransformer.train import Trainer

    seed = int(sys.argv[1])
    backend.manual_seed(seed)  # weights (host generator) and dropout masks (device generator)
    task = get_task("dates")
    src_vocab, tgt_vocab = task.build_vocabs()
    cfg = TransformerConfig(len(src_vocab), len(tgt_vocab), d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1,
                            n_decoder_layers=1, dropout=0.1, max_len=64)
    model = Transformer(cfg)
    opt = AdamW(decay_groups(model, weight_decay=0.01), lr=1.0)
    trainer = Trainer(model, opt, seq2seq_loss, schedule=warmup_cosine(5e-3, 5, {STEPS}), clip_norm=1.0)
    history = trainer.fit(train_batches(task, src_vocab, tgt_vocab, batch_size=8, seed=seed), {STEPS},
                          progress=False)
    params = sum(float(abs(p.data).sum()) for p in model.parameters())
    print(json.dumps({{"loss": [x.hex() for x in history.loss], "params": params.hex()}}))
""")


def run(seed: int) -> dict:
    """Train in a fresh interpreter (nothing shared with this process or another run), one BLAS thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MINITRANSFORMER_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(seed)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    return {"a": run(0), "b": run(0), "other": run(1)}


def test_same_seed_gives_bit_identical_losses_in_fresh_processes(runs):
    a, b = runs["a"], runs["b"]
    assert len(a["loss"]) == STEPS
    assert a["loss"] == b["loss"]  # float.hex: every bit
    assert a["params"] == b["params"]
    losses = [float.fromhex(x) for x in a["loss"]]
    assert len(set(losses)) > 1  # the model trains: the losses move


def test_different_seeds_give_different_losses(runs):
    a, other = runs["a"], runs["other"]
    assert sum(x != y for x, y in zip(a["loss"], other["loss"], strict=True)) == STEPS
