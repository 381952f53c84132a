import itertools
import json
import math

import numpy as np
import pytest

from minitransformer import backend, checkpoint
from minitransformer.data import get_task
from minitransformer.models import Transformer, TransformerConfig
from minitransformer.optim import AdamW, decay_groups, warmup_cosine
from minitransformer.seq2seq import seq2seq_loss, train_batches
from minitransformer.train import Trainer, TrainingDivergedError


def _setup(seed=0, dropout=0.1):
    backend.manual_seed(seed)
    task = get_task("copy", alphabet="abcde", min_len=2, max_len=5)
    src_vocab, tgt_vocab = task.build_vocabs()
    cfg = TransformerConfig(len(src_vocab), len(tgt_vocab), d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1,
                            n_decoder_layers=1, dropout=dropout, max_len=16)
    model = Transformer(cfg)
    opt = AdamW(decay_groups(model, 0.01), lr=1.0)
    trainer = Trainer(model, opt, seq2seq_loss, schedule=warmup_cosine(1e-2, warmup=10, total=300), clip_norm=1.0)
    data = train_batches(task, src_vocab, tgt_vocab, batch_size=16, seed=seed)
    return model, opt, trainer, data


def test_training_reduces_the_loss():
    model, opt, trainer, data = _setup()
    h = trainer.fit(data, 120, progress=False)
    assert len(h.loss) == 120 and h.steps[-1] == 120
    assert np.mean(h.loss[-10:]) < 0.6 * np.mean(h.loss[:10]), (h.loss[:10], h.loss[-10:])
    assert h.tokens > 0 and all(math.isfinite(n) for n in h.grad_norm)


def test_resume_from_checkpoint_equals_straight_run(tmp_path):
    """50 steps, save, load into a fresh model, 50 more == 100 straight (dropout on, same seed)."""
    model, _, trainer, data = _setup()
    trainer.fit(data, 100, progress=False)
    straight = model.state_dict()

    model, opt, trainer, data = _setup()
    trainer.fit(data, 50, progress=False)
    path = checkpoint.save(tmp_path / "run", model, opt, config=model.config.to_dict(),
                           extra={"step": 50, "rng": backend.rng_state()})

    model2, opt2, trainer2, data2 = _setup(seed=123)  # a different model: everything must come from the file
    data2 = itertools.islice(_setup()[3], 50, None)  # the data stream, 50 batches on
    ckpt = checkpoint.load_into(model2, opt2, path)
    backend.set_rng_state(json.loads(json.dumps(ckpt.extra["rng"])))  # dropout masks continue where they were
    trainer2.step_count = ckpt.extra["step"]
    trainer2.fit(data2, 50, progress=False)
    resumed = model2.state_dict()
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)


def test_divergence_names_step_and_first_bad_parameter():
    model, opt, trainer, data = _setup(dropout=0.0)
    trainer.fit(data, 3, progress=False)
    model.encoder.layers[0].self_attn.W_q.data[0, 0] = np.nan  # poison one weight
    with pytest.raises(TrainingDivergedError, match=r"step 4: loss is nan; first non-finite gradient: src_embed.W; "
                                                    r"first non-finite parameter: encoder.layers.0.self_attn.W_q"):
        trainer.fit(data, 1, progress=False)


def test_divergence_on_gradient_names_the_parameter():
    model, opt, trainer, data = _setup(dropout=0.0)

    def loss_with_bad_grad(m, batch):
        loss, n = seq2seq_loss(m, batch)
        original = m.backward

        def backward():
            original()
            m.decoder.layers[0].ff.linear2.W.grad[0, 0] = np.inf
            m.backward = original
        m.backward = backward
        return loss, n

    trainer.loss_fn = loss_with_bad_grad
    with pytest.raises(TrainingDivergedError, match="step 1: gradient norm is inf; first non-finite gradient: "
                                               "decoder.layers.0.ff.linear2.W"):
        trainer.fit(data, 1, progress=False)


def test_eval_and_callback_hooks():
    model, opt, trainer, data = _setup()
    seen = []
    trainer.eval_fn = lambda m: {"answer": 42.0}
    trainer.eval_every = 5
    trainer.callback = lambda step, h: seen.append(step)
    h = trainer.fit(data, 10, progress=False)
    assert [e["step"] for e in h.evals] == [5, 10]
    assert seen == list(range(1, 11))
    assert h.to_dict()["evals"][0]["answer"] == 42.0
