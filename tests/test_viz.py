import os
import subprocess
import sys

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.data import get_task
from minitransformer.generate import attention_maps
from minitransformer.models import Transformer, TransformerConfig
from minitransformer.optim import noam
from minitransformer.seq2seq import Seq2SeqRun
from minitransformer.train import History
from minitransformer.viz import (
    moving_average,
    plot_attention,
    plot_loss_curve,
    plot_lr_schedule,
    plot_translation_attention,
    save_figure,
    show_token,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _softmax_weights(rng, *shape):
    s = rng.standard_normal(shape) * 2.0
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _panels(fig):
    """The heatmap axes (the colorbar axis has no image)."""
    return [a for a in fig.axes if a.images]


def _ticks(labels):
    return [t.get_text() for t in labels]


# -- plot_attention ---------------------------------------------------------------


def test_attention_one_panel_per_head_plus_mean_with_token_labels(rng):
    w = _softmax_weights(rng, 3, 4, 5)  # n_heads=3, T=4, S=5
    fig = plot_attention(backend.asarray(w, dtype="float32"), "ab cd", ["<bos>", "x", "y", "z"], title="pair")
    panels = _panels(fig)
    assert len(panels) == 4
    assert len(fig.axes) == 5  # + one colorbar shared by all panels
    assert [a.get_title() for a in panels] == ["head 0", "head 1", "head 2", "mean of 3 heads"]
    for a in panels:
        assert _ticks(a.get_xticklabels()) == ["a", "b", "\u2423", "c", "d"]  # the space shows as ␣
        assert _ticks(a.get_yticklabels()) == ["<bos>", "x", "y", "z"]
        assert a.images[0].get_clim() == (0.0, 1.0)
    for h in range(3):
        np.testing.assert_allclose(panels[h].images[0].get_array(), w[h], rtol=1e-6)
    np.testing.assert_allclose(panels[3].images[0].get_array(), w.mean(axis=0), rtol=1e-6)
    assert fig._suptitle.get_text() == "pair"


def test_attention_head_selection(rng):
    w = _softmax_weights(rng, 3, 2, 4)
    mean = _panels(plot_attention(w, "abcd", "xy", heads="mean"))
    assert [a.get_title() for a in mean] == ["mean of 3 heads"]
    one = _panels(plot_attention(w, "abcd", "xy", heads=1))
    assert [a.get_title() for a in one] == ["head 1"]
    np.testing.assert_allclose(one[0].images[0].get_array(), w[1])
    last = _panels(plot_attention(w, "abcd", "xy", heads=-1))
    assert [a.get_title() for a in last] == ["head 2"]
    single = _panels(plot_attention(w[:1], "abcd", "xy"))  # one head: no separate mean panel
    assert [a.get_title() for a in single] == ["head 0"]
    with pytest.raises(ValueError, match="head 3 out of range for 3 heads"):
        plot_attention(w, "abcd", "xy", heads=3)
    with pytest.raises(ValueError, match="heads must be 'all', 'mean' or a head index, got 'avg'"):
        plot_attention(w, "abcd", "xy", heads="avg")


def test_attention_into_given_axes(rng):
    from matplotlib.figure import Figure

    w = _softmax_weights(rng, 2, 3, 3)
    fig = Figure()
    ax = fig.subplots()
    assert plot_attention(w, "abc", "xyz", heads="mean", ax=ax) is fig
    assert ax.images and _ticks(ax.get_xticklabels()) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="ax= holds one panel but heads='all' makes 3"):
        plot_attention(w, "abc", "xyz", ax=fig.subplots())
    other = Figure(figsize=(8, 3))
    assert plot_attention(w, "abc", "xyz", fig=other) is other
    assert len(_panels(other)) == 3
    left, right = Figure(figsize=(10, 3)).subfigures(1, 2)  # notebooks compose figures from SubFigures
    plot_attention(w, "abc", "xyz", fig=right, heads=0)
    assert len(_panels(right)) == 1 and not _panels(left)


def test_attention_bad_input_names_shapes(rng):
    w = _softmax_weights(rng, 2, 3, 4)
    with pytest.raises(ValueError, match=r"expected weights of shape \(n_heads, T, S\), got shape \(1, 2, 3, 4\); "
                                         r"for attention_maps output"):
        plot_attention(w[None], "abcd", "xyz")
    with pytest.raises(ValueError, match=r"expected weights of shape \(n_heads, T, S\), got shape \(3, 4\)"):
        plot_attention(w[0], "abcd", "xyz")
    with pytest.raises(ValueError, match=r"\(n_heads, T, S\) = \(2, 3, 4\) need T = 3 tgt_tokens and S = 4 "
                                         r"src_tokens, got 2 and 4"):
        plot_attention(w, "abcd", "xy")
    with pytest.raises(ValueError, match=r"need T = 3 tgt_tokens and S = 4 src_tokens, got 3 and 5"):
        plot_attention(w, ["a", "b", "c", "d", "e"], "xyz")
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\], got values in"):
        plot_attention(w * 3.0, "abcd", "xyz")
    nan = w.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        plot_attention(nan, "abcd", "xyz")
    with pytest.raises(ValueError, match=r"are empty"):
        plot_attention(w[:, :0], "abcd", "")
    with pytest.raises(TypeError, match="src_tokens must be a string or a sequence of tokens, got int"):
        plot_attention(w, 4, "xyz")


def test_show_token_makes_whitespace_visible():
    assert [show_token(t) for t in [" ", "a b", "\t", "\n", "", 7, "<eos>"]] == \
        ["\u2423", "a\u2423b", "\u21e5", "\u23ce", "\u2205", "7", "<eos>"]


def _tiny_model(src_vocab_size, tgt_vocab_size, max_len=32):
    backend.manual_seed(0)
    cfg = TransformerConfig(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=8, n_heads=2,
                            d_ff=16, n_encoder_layers=1, n_decoder_layers=2, dropout=0.0, max_len=max_len)
    return Transformer(cfg)


def test_attention_of_a_real_model_with_padding():
    model = _tiny_model(7, 7)
    src = backend.asarray(np.array([[4, 5, 6, 4], [6, 5, 0, 0]]), dtype="int64")  # (B, S)
    kpm = backend.asarray(np.array([[0, 0, 0, 0], [0, 0, 1, 1]], dtype=bool))  # (B, S)
    tgt_in = backend.asarray(np.array([[1, 4, 5], [1, 6, 6]]), dtype="int64")  # (B, T)
    maps = attention_maps(model, src, tgt_in, kpm)
    w = maps["cross"][-1][1, :, :, :2]  # example 1, its 2 real source tokens: (n_heads, T, S_b)
    fig = plot_attention(w, ["c", "b"], ["<bos>", "c", "c"])
    panels = _panels(fig)
    assert len(panels) == 3  # 2 heads + mean
    np.testing.assert_allclose(panels[2].images[0].get_array().sum(axis=-1), 1.0, rtol=1e-5)
    assert _ticks(panels[0].get_xticklabels()) == ["c", "b"]
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 3, 4\); for attention_maps output"):
        plot_attention(maps["cross"][-1], "abcd", "xyz")  # forgot to pick an example


def _tiny_run(eos_bias):
    src_vocab, tgt_vocab = get_task("dates").build_vocabs()
    model = _tiny_model(len(src_vocab), len(tgt_vocab), max_len=12)
    model.out_proj.b.data[tgt_vocab.eos_id] = eos_bias  # force (or forbid) <eos> at every step
    return Seq2SeqRun(model, src_vocab, tgt_vocab, "dates")


def test_translation_attention_stopping_at_eos():
    run = _tiny_run(eos_bias=100.0)  # <eos> first: an empty translation, one decoder row
    fig = plot_translation_attention(run, "11/28/26")
    panels = _panels(fig)
    assert len(panels) == 3
    assert _ticks(panels[0].get_xticklabels()) == list("11/28/26")
    assert _ticks(panels[0].get_yticklabels()) == ["<eos>"]
    assert panels[0].get_xlabel() == "source (key)"
    assert "'11/28/26' \u2192 ''" in fig._suptitle.get_text()


def test_translation_attention_running_out_of_room_and_other_kinds():
    run = _tiny_run(eos_bias=-100.0)  # never <eos>: max_len - 1 = 11 rows, all real predictions
    fig = plot_translation_attention(run, "May 1 2020", heads="mean")
    (panel,) = _panels(fig)
    rows = _ticks(panel.get_yticklabels())
    assert len(rows) == 11 and "<eos>" not in rows
    assert _ticks(panel.get_xticklabels()) == ["M", "a", "y", "\u2423", "1", "\u2423", "2", "0", "2", "0"]
    (enc,) = _panels(plot_translation_attention(run, "May 1", kind="encoder", layer=0, heads=0))
    assert _ticks(enc.get_yticklabels()) == _ticks(enc.get_xticklabels()) == ["M", "a", "y", "\u2423", "1"]
    (dec,) = _panels(plot_translation_attention(run, "May 1", kind="decoder_self", heads="mean"))
    assert _ticks(dec.get_xticklabels())[0] == "<bos>"
    assert _ticks(dec.get_xticklabels())[1:] == _ticks(dec.get_yticklabels())[:-1]  # input t+1 = prediction t
    with pytest.raises(ValueError, match="kind must be one of"):
        plot_translation_attention(run, "May 1", kind="self")
    with pytest.raises(ValueError, match="layer 2 out of range for 2 cross layers"):
        plot_translation_attention(run, "May 1", layer=2)
    with pytest.raises(ValueError, match="exceeds max_len=12"):
        plot_translation_attention(run, "Saturday, 28th of November 2026")


# -- loss curve and schedules --------------------------------------------------------


def _history(n=100, evals=True, lr=True):
    r = backend.host_rng(3)
    h = History()
    h.steps = list(range(1, n + 1))
    h.loss = [3.0 / (1 + 0.05 * s) + 0.2 * float(r.random()) for s in h.steps]
    h.lr = [noam(64, 20)(s) for s in h.steps] if lr else []
    if evals:
        h.evals = [{"step": 50, "exact_match": 0.25, "token_accuracy": 0.7},
                   {"step": 100, "exact_match": 0.75, "token_accuracy": 0.9}]
    return h


def test_moving_average_by_hand():
    assert moving_average([1, 2, 3, 4], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([1, 2, 3, 4], 3) == [1.0, 1.5, 2.0, 3.0]
    assert moving_average([5.0], 10) == [5.0]
    with pytest.raises(ValueError, match="window must be an int >= 1, got 0"):
        moving_average([1.0], 0)


def test_loss_curve_with_lr_and_evals():
    h = _history()
    fig = plot_loss_curve(h, smooth=10, title="run")
    assert len(fig.axes) == 3  # loss, its learning-rate twin, evaluations
    loss_ax, eval_ax, lr_ax = fig.axes
    raw, smooth = loss_ax.get_lines()
    assert list(raw.get_ydata()) == h.loss
    np.testing.assert_allclose(smooth.get_ydata(), moving_average(h.loss, 10))
    assert raw.get_alpha() < 0.5 and smooth.get_alpha() in (None, 1.0)  # raw faint, average solid
    assert loss_ax.get_ylabel() == "training loss" and lr_ax.get_ylabel() == "learning rate"
    np.testing.assert_allclose(lr_ax.get_lines()[0].get_ydata(), h.lr)
    legend = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert legend == ["loss", "loss, mean of 10 steps", "learning rate"]
    assert [list(line.get_xdata()) for line in eval_ax.get_lines()] == [[50, 100], [50, 100]]
    assert [t.get_text() for t in eval_ax.get_legend().get_texts()] == \
        ["exact_match (last 0.750)", "token_accuracy (last 0.900)"]
    assert eval_ax.get_xlabel() == "step"
    assert fig._suptitle.get_text() == "run"


def test_loss_curve_variants():
    assert len(plot_loss_curve(_history(evals=False)).axes) == 2
    assert len(plot_loss_curve(_history(evals=False, lr=False)).axes) == 1
    fig = plot_loss_curve(_history(n=30).to_dict(), smooth=1)  # as stored in a checkpoint
    assert len(fig.axes) == 3
    assert len(fig.axes[0].get_lines()) == 1  # no smoothing: the raw loss only
    auto = plot_loss_curve(_history(n=100, evals=False))
    assert auto.axes[0].get_lines()[1].get_label() == "loss, mean of 4 steps"  # ~1/25 of the run


def test_loss_curve_into_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax, eval_ax = fig.subplots(1, 2)
    assert plot_loss_curve(_history(), ax=ax, eval_ax=eval_ax) is fig
    assert len(eval_ax.get_lines()) == 2
    alone = Figure()
    ax = alone.subplots()
    plot_loss_curve(_history(), ax=ax)  # no eval_ax: the loss panel alone
    assert len(alone.axes) == 2
    with pytest.raises(ValueError, match="eval_ax= needs ax="):
        plot_loss_curve(_history(), eval_ax=eval_ax)


def test_loss_curve_bad_input():
    with pytest.raises(ValueError, match="history has no steps"):
        plot_loss_curve(History())
    h = _history()
    h.loss = h.loss[:-1]
    with pytest.raises(ValueError, match=r"expected one loss per step \(100\), got 99"):
        plot_loss_curve(h)
    h = _history()
    h.lr = h.lr[:5]
    with pytest.raises(ValueError, match=r"one learning rate per step \(100\), got 5"):
        plot_loss_curve(h)
    with pytest.raises(ValueError, match="smooth must be None or an int >= 1, got 0"):
        plot_loss_curve(_history(), smooth=0)


def test_lr_schedule_plot():
    schedule = noam(64, 10)
    fig = plot_lr_schedule(schedule, 50)
    (ax,) = fig.axes
    curve, peak = ax.get_lines()
    assert list(curve.get_xdata()) == list(range(1, 51))
    np.testing.assert_allclose(curve.get_ydata(), [schedule(s) for s in range(1, 51)], rtol=1e-12)
    assert list(peak.get_xdata()) == [10]  # noam peaks at the end of warmup
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "learning rate"
    assert ax.texts[0].get_text() == f"peak {schedule(10):.2e} at step 10"
    plot_lr_schedule(noam(64, 20), [1, 5, 10, 20, 40], ax=ax, label="warmup 20")
    assert len(ax.get_lines()) == 4
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        plot_lr_schedule(schedule, 0)
    with pytest.raises(ValueError, match="non-empty sequence of ints >= 1"):
        plot_lr_schedule(schedule, [0, 1])


# -- saving ----------------------------------------------------------------------


def test_save_figure_writes_a_png_atomically(tmp_path, rng):
    fig = plot_attention(_softmax_weights(rng, 2, 4, 6), "abc de", "wxyz", title="sample")
    target = tmp_path / "new" / "dir" / "attention.png"
    out = save_figure(fig, target)
    assert out == str(target)
    data = target.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # a real picture, not an empty canvas
    assert os.listdir(target.parent) == ["attention.png"]  # no temporary file left behind
    save_figure(plot_lr_schedule(noam(8, 4), 20), target)  # overwrite in place
    assert target.read_bytes()[:8] == PNG_SIGNATURE and target.read_bytes() != data


def test_save_figure_failures_leave_nothing(tmp_path):
    class Broken:
        def savefig(self, f, **kwargs):
            f.write(b"half an image")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(Broken(), tmp_path / "x.png")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="expected a path ending in .png, got"):
        save_figure(Broken(), tmp_path / "x.jpg")


def test_import_is_cheap_and_plots_never_touch_pyplot(tmp_path):
    code = (
        "import sys, matplotlib\n"
        "import minitransformer.viz as viz\n"
        "from minitransformer.optim import noam\n"
        f"viz.save_figure(viz.plot_lr_schedule(noam(8, 4), 10), {str(tmp_path / 'lr.png')!r})\n"
        "print('pyplot' if 'matplotlib.pyplot' in sys.modules else 'no-pyplot')\n"
    )
    lazy = "import sys, minitransformer.viz\nprint('matplotlib' in sys.modules)\n"
    env = {**os.environ, "MPLBACKEND": "module://nonexistent_backend"}  # any backend switch would fail
    r = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "no-pyplot"
    assert (tmp_path / "lr.png").read_bytes()[:8] == PNG_SIGNATURE
