"""Plots for notebooks and the CLI: attention heatmaps, loss curves, learning-rate schedules.

Every function draws on a ``matplotlib.figure.Figure`` built directly, never
through ``pyplot``: no global figure state, no GUI backend is touched, and the
same code works in a script, a test or a notebook. Each returns the Figure;
``save_figure`` writes one to a PNG atomically (matplotlib's Agg renderer is
picked for the PNG by ``savefig`` itself, so nothing calls
``matplotlib.use``).

In a notebook a returned Figure shows as a cell's value once the inline
backend is active (``%matplotlib inline``, or any ``import matplotlib.pyplot``);
otherwise ``display(fig)``. To draw into your own layout, pass ``fig=`` or
``ax=``.

matplotlib is imported inside the functions, so ``import minitransformer.viz``
costs nothing until a plot is made. Arrays arrive through
``backend.to_numpy`` (CuPy arrays are copied to the host first).
"""

from __future__ import annotations

import math
import os

from . import backend
from .fileio import atomic_write

__all__ = [
    "moving_average",
    "plot_attention",
    "plot_loss_curve",
    "plot_lr_schedule",
    "plot_translation_attention",
    "save_figure",
    "show_token",
]

_VISIBLE = str.maketrans({" ": "\u2423", "\t": "\u21e5", "\n": "\u23ce"})  # space -> ␣, tab -> ⇥, newline -> ⏎
_CELL = 0.24  # inches per heatmap cell: room for one 8-pt character label


def show_token(token) -> str:
    """A token as a tick label: whitespace made visible (' ' -> '␣'), the empty string as '∅'."""
    text = str(token)
    return text.translate(_VISIBLE) if text else "\u2205"


def _labels(tokens, what: str) -> list[str]:
    """Tick labels from a string (one token per character) or a sequence of tokens."""
    if isinstance(tokens, str):
        return [show_token(c) for c in tokens]
    try:
        return [show_token(t) for t in tokens]
    except TypeError:
        raise TypeError(f"{what} must be a string or a sequence of tokens, got {type(tokens).__name__}") from None


def _attention_panels(w, heads) -> list[tuple[str, object]]:
    """(panel title, (T, S) host array) for each panel the ``heads`` option asks for."""
    n_heads = w.shape[0]
    mean = (f"mean of {n_heads} heads", w.mean(axis=0))  # (T, S)
    if heads == "all":
        per_head = [(f"head {h}", w[h]) for h in range(n_heads)]  # (T, S) each
        return per_head + [mean] if n_heads > 1 else per_head
    if heads == "mean":
        return [mean]
    if isinstance(heads, int) and not isinstance(heads, bool):
        if not -n_heads <= heads < n_heads:
            raise ValueError(f"plot_attention: head {heads} out of range for {n_heads} heads")
        return [(f"head {heads % n_heads}", w[heads])]  # (T, S)
    raise ValueError(f"plot_attention: heads must be 'all', 'mean' or a head index, got {heads!r}")


def _grid(n_panels: int, T: int, S: int) -> tuple[int, int, float, float, float]:
    """(nrows, ncols, cell, width, height): a grid of panels near 3:2 landscape, at most ~16 inches wide.

    Cells shrink from 0.24 to 0.12 inches to fit more columns; the cost adds
    penalties for small cells (labels stay readable) and for empty slots.
    """
    best = None
    for ncols in range(1, n_panels + 1):
        nrows = math.ceil(n_panels / ncols)
        if (nrows - 1) * ncols >= n_panels:
            continue  # a whole empty row
        cell = min(_CELL, (16.0 - 1.2 - 0.7 * ncols) / (ncols * S))
        if cell < 0.12 and ncols > 1:
            break
        panel_w = max(1.6, cell * S) + 0.7  # cells + y tick labels
        panel_h = max(1.2, cell * T) + 0.9  # cells + title + x tick labels
        width, height = ncols * panel_w + 1.2, nrows * panel_h + 0.5  # + colorbar, + suptitle
        empty = nrows * ncols - n_panels
        cost = abs(math.log(width / height / 1.5)) + 2.0 * (_CELL - cell) / _CELL + 0.15 * empty
        if best is None or cost < best[0]:
            best = (cost, nrows, ncols, cell, width, height)
    return best[1:]


def plot_attention(weights, src_tokens, tgt_tokens, title=None, heads="all", fig=None, ax=None,
                   xlabel="key (source)", ylabel="query (target)", cmap="viridis"):
    """Heatmaps of one example's attention weights: one panel per head plus their mean.

    Args:
        weights: (n_heads, T, S) attention probabilities of ONE example, NumPy or
            CuPy. From ``attention_maps(model, src_ids, tgt_in)``, whose entries are
            lists (one per layer) of (B, n_heads, T, S) arrays, take
            ``maps["cross"][layer][b, :, :T_b, :S_b]`` (drop the padding of
            sequence b); ``"encoder"`` gives (S, S) maps, ``"decoder_self"`` (T, T).
            A single (T, S) map is ``w[None]``.
        src_tokens: S key labels (x axis): a string (one per character) or a sequence.
        tgt_tokens: T query labels (y axis), likewise.
        title: figure title (suptitle), optional.
        heads: "all" (n_heads panels, then the mean; one panel when n_heads == 1),
            "mean" (the head average only) or an int (that head only).
        fig: an empty Figure or SubFigure to draw the panels into.
        ax: an Axes for a single panel (heads="mean" or an int).
        xlabel, ylabel, cmap: axis labels and colour map.
    Returns:
        the Figure: the panels (query tokens on y, key tokens on x, whitespace shown
        as '␣'), and one colorbar for all of them on the fixed scale [0, 1].

    Math:
        mean[t, s] = (1 / n_heads) * sum_h weights[h, t, s]
    """
    from matplotlib.figure import Figure

    w = backend.to_numpy(weights)
    if w.ndim != 3:
        hint = "; for attention_maps output (B, n_heads, T, S) take [b]" if w.ndim == 4 else ""
        raise ValueError(f"plot_attention: expected weights of shape (n_heads, T, S), got shape {tuple(w.shape)}"
                         + hint)
    n_heads, T, S = w.shape
    if min(n_heads, T, S) == 0:
        raise ValueError(f"plot_attention: weights of shape (n_heads, T, S) = {tuple(w.shape)} are empty")
    xs, ys = _labels(src_tokens, "src_tokens"), _labels(tgt_tokens, "tgt_tokens")
    if len(xs) != S or len(ys) != T:
        raise ValueError(f"plot_attention: weights of shape (n_heads, T, S) = {tuple(w.shape)} need "
                         f"T = {T} tgt_tokens and S = {S} src_tokens, got {len(ys)} and {len(xs)}")
    if not bool(((w >= -1e-6) & (w <= 1.0 + 1e-6)).all()):  # also catches NaN
        raise ValueError(f"plot_attention: attention weights are probabilities in [0, 1], got values in "
                         f"[{float(w.min())}, {float(w.max())}] (scores before the softmax?)")
    panels = _attention_panels(w, heads)

    cell = None  # inches per heatmap cell, for the font size
    if ax is not None:
        if len(panels) != 1:
            raise ValueError(f"plot_attention: ax= holds one panel but heads={heads!r} makes {len(panels)}; "
                             "pass fig= instead, or heads='mean' or a head index")
        fig, axes = ax.figure, [ax]
    else:
        nrows, ncols, cell, width, height = _grid(len(panels), T, S)
        if fig is None:
            fig = Figure(figsize=(width, height), layout="constrained")
        else:
            cell = None  # someone else's figure: measure below
        grid = fig.subplots(nrows, ncols, squeeze=False)
        axes = [a for row in grid for a in row]
        for extra in axes[len(panels):]:
            fig.delaxes(extra)
        axes = axes[:len(panels)]

    if cell is None:
        box = axes[0].get_window_extent()  # the panel in pixels (before layout: roughly)
        cell = min(box.width / S, box.height / T) / fig.dpi
    fontsize = 8 if cell >= 0.2 else 7 if cell >= 0.15 else 6
    rotate = 90 if any(len(x) > 1 for x in xs) else 0  # multi-character tokens: vertical key labels
    image = None
    for a, (name, data) in zip(axes, panels, strict=True):
        image = a.imshow(data, vmin=0.0, vmax=1.0, cmap=cmap, interpolation="nearest", aspect="equal")
        a.set_xticks(range(S), labels=xs, fontsize=fontsize, rotation=rotate)
        a.set_yticks(range(T), labels=ys, fontsize=fontsize)
        a.tick_params(length=0)
        a.set_title(name, fontsize=10)
        a.set_xlabel(xlabel, fontsize=9)
        a.set_ylabel(ylabel, fontsize=9)
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.6 if len(axes) > 1 else 0.9, aspect=25)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_translation_attention(run, text: str, kind: str = "cross", layer: int = -1, heads="all", title=None):
    """Translate ``text`` greedily and plot the attention of one layer for that pair.

    Args:
        run: a ``seq2seq.Seq2SeqRun`` (anything with ``model``, ``src_vocab``, ``tgt_vocab``).
        text: the source string.
        kind: "cross" (output x source), "encoder" (source x source) or
            "decoder_self" (output x decoder input).
        layer: which layer of that stack (Python indexing: -1 is the last).
        heads, title: as for ``plot_attention`` (a title naming the pair by default).
    Returns:
        the Figure. Decoder rows are labelled by the token each position
        predicted (row t reads the prefix <bos> y_1 .. y_t-1 and writes y_t), so
        the cross-attention shows which source characters were read to write
        each output character.
    """
    from .data import make_batch
    from .generate import attention_maps, greedy_decode

    kinds = ("cross", "encoder", "decoder_self")
    if kind not in kinds:
        raise ValueError(f"plot_translation_attention: kind must be one of {kinds}, got {kind!r}")
    model, src_vocab, tgt_vocab = run.model, run.src_vocab, run.tgt_vocab
    batch = make_batch([(text, "")], src_vocab, tgt_vocab)  # unknown characters raise here
    max_len = model.config.max_len
    if batch.src_ids.shape[1] > max_len:
        raise ValueError(f"input of {batch.src_ids.shape[1]} characters exceeds max_len={max_len}")
    tokens = greedy_decode(model, batch.src_ids, batch.src_key_padding_mask, max_len=max_len - 1,
                           bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id, pad_id=tgt_vocab.pad_id).tokens[0]
    if len(tokens) < max_len - 1:  # stopped at <eos>: the last row predicted it
        inputs, predicted = [tgt_vocab.bos_id] + tokens, tokens + [tgt_vocab.eos_id]
    else:  # ran out of room: the last token was never fed back
        inputs, predicted = [tgt_vocab.bos_id] + tokens[:-1], tokens
    tgt_in = backend.asarray([inputs], dtype="int64")  # (1, T)
    maps = attention_maps(model, batch.src_ids, tgt_in, batch.src_key_padding_mask)
    stack = maps[kind]
    if not -len(stack) <= layer < len(stack):
        raise ValueError(f"plot_translation_attention: layer {layer} out of range for {len(stack)} {kind} layers")
    src = [src_vocab.tokens[i] for i in backend.to_numpy(batch.src_ids[0]).tolist()]
    out = [tgt_vocab.tokens[i] for i in predicted]
    keys, queries, labels = {
        "cross": (src, out, ("source (key)", "output (query)")),
        "encoder": (src, src, ("source (key)", "source (query)")),
        "decoder_self": ([tgt_vocab.tokens[i] for i in inputs], out, ("decoder input (key)", "output (query)")),
    }[kind]
    if title is None:
        title = f"{kind} attention, layer {layer % len(stack)}: {text!r} \u2192 {tgt_vocab.decode(tokens)!r}"
    return plot_attention(stack[layer][0], keys, queries, title=title, heads=heads, xlabel=labels[0],
                          ylabel=labels[1])


def moving_average(values, window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start), as a list.

    Math:
        out[i] = mean(values[max(0, i - window + 1) : i + 1])
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"moving_average: window must be an int >= 1, got {window!r}")
    values = [float(v) for v in values]
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _history_fields(history) -> tuple[list, list, list, list]:
    """(steps, loss, lr, evals) of a ``train.History`` or its ``to_dict()``."""
    get = history.get if isinstance(history, dict) else (lambda k, d=None: getattr(history, k, d))
    steps, loss = list(get("steps", None) or []), list(get("loss", None) or [])
    lr, evals = list(get("lr", None) or []), list(get("evals", None) or [])
    if not steps:
        raise ValueError("plot_loss_curve: the history has no steps (train first)")
    if len(loss) != len(steps):
        raise ValueError(f"plot_loss_curve: expected one loss per step ({len(steps)}), got {len(loss)}")
    if lr and len(lr) != len(steps):
        raise ValueError(f"plot_loss_curve: expected one learning rate per step ({len(steps)}), got {len(lr)}")
    return steps, loss, lr, evals


def plot_loss_curve(history, smooth=None, ax=None, eval_ax=None, title=None):
    """Training loss against step (raw and smoothed), the learning rate, and evaluations.

    Args:
        history: a ``train.History`` or its ``to_dict()`` (as stored in a checkpoint).
        smooth: moving-average window in steps; None picks ~1/25 of the run;
            1 draws the raw loss only.
        ax: an Axes for the loss panel (the learning rate goes on a twin axis).
        eval_ax: an Axes for the evaluation panel (only with ``ax``); without
            it, a given ``ax`` gets the loss panel alone.
        title: figure title, optional.
    Returns:
        the Figure: top panel loss (faint raw, solid moving average) with the
        learning rate on a right-hand twin axis; below it, when
        ``history.evals`` holds metrics, each metric (every numeric key but
        "step") against step as markers.
    """
    from matplotlib.figure import Figure

    steps, loss, lr, evals = _history_fields(history)
    if smooth is None:
        smooth = max(1, len(steps) // 25)
    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise ValueError(f"plot_loss_curve: smooth must be None or an int >= 1, got {smooth!r}")
    if eval_ax is not None and ax is None:
        raise ValueError("plot_loss_curve: eval_ax= needs ax= for the loss panel")
    metrics = sorted({k for e in evals for k, v in e.items()
                      if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)})

    if ax is not None:
        fig = ax.figure
    elif metrics:
        fig = Figure(figsize=(7.5, 5.5), layout="constrained")
        ax, eval_ax = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    else:
        fig = Figure(figsize=(7.5, 3.8), layout="constrained")
        ax = fig.subplots()

    handles = []
    if smooth > 1:
        handles += ax.plot(steps, loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss")
        handles += ax.plot(steps, moving_average(loss, smooth), color="tab:blue", linewidth=1.8,
                           label=f"loss, mean of {smooth} steps")
    else:
        handles += ax.plot(steps, loss, color="tab:blue", linewidth=1.2, label="loss")
    ax.set_ylabel("training loss")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if lr:
        lr_ax = ax.twinx()
        handles += lr_ax.plot(steps, lr, color="tab:orange", linestyle="--", linewidth=1.2, label="learning rate")
        lr_ax.set_ylabel("learning rate", color="tab:orange")
        lr_ax.tick_params(axis="y", colors="tab:orange")
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        lr_ax.set_ylim(bottom=0.0)
    ax.legend(handles=handles, loc="upper right", fontsize=8)

    if metrics and eval_ax is not None:
        ax.set_xlabel("")
        for k in metrics:
            points = [(e["step"], e[k]) for e in evals if k in e and "step" in e]
            xs, ys = [p[0] for p in points], [float(p[1]) for p in points]
            eval_ax.plot(xs, ys, marker="o", markersize=4, linewidth=1.0, label=f"{k} (last {ys[-1]:.3f})")
        values = [float(e[k]) for e in evals for k in metrics if k in e]
        if min(values) >= 0.0 and max(values) <= 1.0:
            eval_ax.set_ylim(-0.03, 1.03)
        eval_ax.set_xlabel("step")
        eval_ax.set_ylabel("held-out")
        eval_ax.grid(alpha=0.3)
        eval_ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_lr_schedule(schedule, steps, ax=None, label=None, title="learning-rate schedule"):
    """A learning-rate schedule against step, with its peak marked.

    Args:
        schedule: ``schedule(step) -> lr`` for step >= 1 (``optim.noam`` and friends).
        steps: an int N (steps 1..N) or a sequence of step numbers >= 1.
        ax: an Axes to draw into (several schedules can share one; give each a ``label``).
        label: legend entry for this curve, optional.
        title: axes title (None for none).
    Returns:
        the Figure.
    """
    from matplotlib.figure import Figure

    if isinstance(steps, int) and not isinstance(steps, bool):
        if steps < 1:
            raise ValueError(f"plot_lr_schedule: steps must be >= 1, got {steps}")
        xs = list(range(1, steps + 1))
    else:
        xs = [int(s) for s in steps]
        if not xs or min(xs) < 1:
            raise ValueError(f"plot_lr_schedule: steps must be a non-empty sequence of ints >= 1, got {steps!r}")
    ys = [float(schedule(s)) for s in xs]
    if ax is None:
        fig = Figure(figsize=(6.5, 3.6), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    (line,) = ax.plot(xs, ys, linewidth=1.6, label=label)
    peak = max(range(len(ys)), key=ys.__getitem__)
    ax.plot([xs[peak]], [ys[peak]], "o", color=line.get_color(), markersize=5)
    ax.annotate(f"peak {ys[peak]:.2e} at step {xs[peak]}", (xs[peak], ys[peak]), xytext=(8, 4),
                textcoords="offset points", fontsize=8, color=line.get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax.set_ylim(bottom=0.0, top=max(ys) * 1.15 if max(ys) > 0 else None)
    ax.grid(alpha=0.3)
    if label is not None:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def save_figure(fig, path, dpi: int = 150) -> str:
    """Write ``fig`` to the PNG file ``path`` atomically; returns the path as a string.

    Parent directories are created. The image goes to a temporary file in the
    same directory, which is then renamed over ``path`` (``os.replace``), so a
    reader never sees half an image and a failed save leaves no debris.
    """
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"save_figure writes PNG files: expected a path ending in .png, got {path!r}")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path
