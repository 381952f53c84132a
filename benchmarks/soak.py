"""Soak test: train the seq2seq "small" Transformer on dates for a wall-clock time and watch memory.

    python benchmarks/soak.py                                  # 30 minutes, eval + checkpoint every 3
    nice -n 19 python benchmarks/soak.py --minutes 30 --out /tmp/soak
    python benchmarks/soak.py --minutes 2 --every-minutes 0.5 --tracemalloc

What runs: the same pieces as ``seq2seq.train_task`` (char vocabularies, the
"small" Transformer, AdamW with weight decay groups, gradient clipping 1.0,
fresh training batches forever), stepped by ``Trainer.train_step`` until
``--minutes`` of wall-clock time have passed. The learning rate follows the
paper's Noam schedule (warmup, then 1/sqrt(step) decay), which needs no
total step count. Every ``--every-minutes`` the run decodes 200 held-out
dates (``seq2seq.evaluate``, exact match) and writes a checkpoint with
``seq2seq.save_run`` into ``--out`` (overwritten each time).

Recorded every ``--record-every`` steps: step, elapsed seconds, training loss,
resident memory of the process (VmRSS from /proc/self/status on Linux,
else the peak from ``resource.getrusage``), and with ``--tracemalloc`` the
Python heap currently traced (this slows training several times).

Written into ``--out``: ``soak.json`` (settings, samples, evals, summary)
and ``soak_memory.png`` (RSS over time above, loss below). The summary
printed at the end: RSS at start, after warm-up (the end of the first
eval + checkpoint cycle, when every code path has run once) and at the end;
the least-squares slope of RSS over the last two thirds of the run in MB per
10 minutes (flat memory: near 0); loss drift (mean loss of the middle third
vs the last third, and its slope); the exact-match trajectory.

BLAS is limited to one thread (``threadpoolctl``), as the CLI does. This is
not a test and is not run by CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import time
import tracemalloc

from threadpoolctl import threadpool_limits

from minitransformer import backend
from minitransformer.data import get_task
from minitransformer.models import Transformer, TransformerConfig
from minitransformer.optim import AdamW, decay_groups, noam
from minitransformer.seq2seq import SIZES, Seq2SeqRun, evaluate, save_run, seq2seq_loss, train_batches
from minitransformer.train import Trainer

MB = 1024.0 * 1024.0


def rss_mb() -> tuple[float, str]:
    """Resident memory of this process in MB, and where it was read from."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / MB, "VmRSS"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (peak if sys.platform == "darwin" else peak * 1024) / MB, "ru_maxrss (peak)"


def slope_per_10min(t: list[float], y: list[float]) -> float:
    """Least-squares slope of y against t (seconds), scaled to units per 10 minutes; nan under 2 points."""
    n = len(t)
    if n < 2:
        return float("nan")
    mt, my = sum(t) / n, sum(y) / n
    var = sum((a - mt) ** 2 for a in t)
    if var == 0:
        return float("nan")
    return sum((a - mt) * (b - my) for a, b in zip(t, y, strict=True)) / var * 600.0


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def summarize(samples: list[dict], evals: list[dict], warm_rss: float | None) -> dict:
    """Start/warm-up/end RSS, RSS slope over the last two thirds, loss drift, exact-match trajectory."""
    if not samples:
        return {}
    end_t = samples[-1]["elapsed_s"]
    tail = [s for s in samples if s["elapsed_s"] >= end_t / 3]
    middle = [s for s in tail if s["elapsed_s"] < 2 * end_t / 3 and s["loss"] is not None]
    last = [s for s in tail if s["elapsed_s"] >= 2 * end_t / 3 and s["loss"] is not None]
    with_loss = [s for s in tail if s["loss"] is not None]
    rss_tail = [s["rss_mb"] for s in tail]
    out = {
        "steps": samples[-1]["step"],
        "elapsed_s": round(end_t, 1),
        "rss_start_mb": round(samples[0]["rss_mb"], 2),
        "rss_after_warmup_mb": round(warm_rss, 2) if warm_rss is not None else None,
        "rss_end_mb": round(samples[-1]["rss_mb"], 2),
        "rss_min_last_two_thirds_mb": round(min(rss_tail), 2) if rss_tail else None,
        "rss_max_last_two_thirds_mb": round(max(rss_tail), 2) if rss_tail else None,
        "rss_slope_mb_per_10min": round(slope_per_10min([s["elapsed_s"] for s in tail], rss_tail), 3),
        "loss_mean_middle_third": round(_mean(s["loss"] for s in middle), 4),
        "loss_mean_last_third": round(_mean(s["loss"] for s in last), 4),
        "loss_slope_per_10min_last_two_thirds": round(
            slope_per_10min([s["elapsed_s"] for s in with_loss], [s["loss"] for s in with_loss]), 4),
        "exact_match": [round(e["exact_match"], 3) for e in evals],
    }
    if samples[0].get("traced_mb") is not None:
        out["traced_slope_mb_per_10min"] = round(
            slope_per_10min([s["elapsed_s"] for s in tail], [s["traced_mb"] for s in tail]), 3)
        out["traced_end_mb"] = round(samples[-1]["traced_mb"], 2)
    return out


def plot(samples: list[dict], evals: list[dict], path: str) -> str:
    """RSS (and traced heap) over time above, training loss below, eval times marked; a PNG at ``path``."""
    from matplotlib.figure import Figure

    from minitransformer.viz import save_figure

    fig = Figure(figsize=(7, 4.5))
    ax_mem, ax_loss = fig.subplots(2, 1, sharex=True)
    minutes = [s["elapsed_s"] / 60 for s in samples]
    trained = [s for s in samples if s["loss"] is not None]
    ax_mem.plot(minutes, [s["rss_mb"] for s in samples], lw=1, label="RSS")
    if samples and samples[0].get("traced_mb") is not None:
        ax_mem.plot(minutes, [s["traced_mb"] for s in samples], lw=1, label="tracemalloc current")
    ax_mem.set_ylabel("MB")
    ax_mem.set_title("soak: seq2seq small on dates", fontsize=10)
    ax_loss.plot([s["elapsed_s"] / 60 for s in trained], [s["loss"] for s in trained], lw=0.8, color="C2",
                 label="train loss")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.set_xlabel("minutes")
    for e in evals:
        for ax in (ax_mem, ax_loss):
            ax.axvline(e["elapsed_s"] / 60, color="0.8", lw=0.6, zorder=0)
    ax_mem.legend(fontsize=8, loc="lower right")
    ax_loss.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock training time (default 30)")
    parser.add_argument("--every-minutes", type=float, default=3.0,
                        help="evaluate and checkpoint every this many minutes (default 3)")
    parser.add_argument("--out", default="soak_out", help="directory for checkpoint, soak.json, soak_memory.png")
    parser.add_argument("--record-every", type=int, default=20, help="record a sample every N steps (default 20)")
    parser.add_argument("--eval-size", type=int, default=200, help="held-out dates decoded per eval (default 200)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=200, help="Noam warmup steps (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", action="store_true", help="also record the traced Python heap (slow)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.every_minutes <= 0 or args.record_every < 1:
        parser.error("--minutes and --every-minutes must be > 0 and --record-every >= 1")
    os.makedirs(args.out, exist_ok=True)

    with threadpool_limits(limits=1, user_api="blas"):
        backend.manual_seed(args.seed)
        task = get_task("dates")
        src_vocab, tgt_vocab = task.build_vocabs()
        cfg = TransformerConfig(src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab),
                                **{"dropout": 0.1, "max_len": 128, **SIZES["small"]})
        model = Transformer(cfg)
        opt = AdamW(decay_groups(model, weight_decay=0.01), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
        run = Seq2SeqRun(model, src_vocab, tgt_vocab, "dates", optimizer=opt)
        held_out = task.sample(args.eval_size, seed=args.seed + 7, split="test", unique=True)
        trainer = Trainer(model, opt, seq2seq_loss, schedule=noam(cfg.d_model, args.warmup), clip_norm=1.0)
        run.history = trainer.history
        data = train_batches(task, src_vocab, tgt_vocab, args.batch_size, args.seed)

        if args.tracemalloc:
            tracemalloc.start()
        samples, evals = [], []
        warm_rss = None
        rss_source = rss_mb()[1]
        t0 = time.perf_counter()
        deadline, period = t0 + args.minutes * 60, args.every_minutes * 60
        next_eval = t0 + period

        def record(loss: float | None) -> None:
            s = {"step": trainer.step_count, "elapsed_s": round(time.perf_counter() - t0, 2),
                 "loss": None if loss is None else round(loss, 5), "rss_mb": round(rss_mb()[0], 2)}
            if args.tracemalloc:
                s["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / MB, 3)
            samples.append(s)

        def eval_and_save() -> None:
            metrics = evaluate(run, held_out)
            save_run(run, args.out)
            e = {"step": trainer.step_count, "elapsed_s": round(time.perf_counter() - t0, 2),
                 "rss_mb": round(rss_mb()[0], 2), **metrics}
            evals.append(e)
            print(f"[{e['elapsed_s'] / 60:6.2f} min] step {e['step']:6d}  exact match {e['exact_match']:.3f}  "
                  f"token acc {e['token_accuracy']:.4f}  RSS {e['rss_mb']:.1f} MB", flush=True)

        record(None)  # before the first step: no loss yet
        loss = None
        while True:
            now = time.perf_counter()
            if now >= deadline:
                break
            loss, _ = trainer.train_step(next(data))
            if trainer.step_count % args.record_every == 0:
                record(loss)
            if time.perf_counter() >= next_eval:
                eval_and_save()
                if warm_rss is None:
                    warm_rss = rss_mb()[0]
                next_eval += period
        record(loss)
        eval_and_save()
        if warm_rss is None:
            warm_rss = rss_mb()[0]
        if args.tracemalloc:
            tracemalloc.stop()

    summary = summarize(samples, evals, warm_rss)
    record_out = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "settings": {**vars(args), "task": "dates", "size": "small", "config": cfg.to_dict(),
                     "schedule": f"noam(d_model={cfg.d_model}, warmup={args.warmup})", "blas_threads": 1,
                     "rss_source": rss_source},
        "summary": summary, "evals": evals, "samples": samples,
    }
    json_path = os.path.join(args.out, "soak.json")
    with open(json_path, "w") as f:
        json.dump(record_out, f, indent=1)
    png_path = plot(samples, evals, os.path.join(args.out, "soak_memory.png"))

    s = summary
    print(f"steps {s['steps']} in {s['elapsed_s'] / 60:.1f} min")
    print(f"RSS ({rss_source}): start {s['rss_start_mb']:.1f} MB, after warm-up {s['rss_after_warmup_mb']:.1f} MB, "
          f"end {s['rss_end_mb']:.1f} MB")
    print(f"RSS over the last two thirds: {s['rss_min_last_two_thirds_mb']:.1f}..{s['rss_max_last_two_thirds_mb']:.1f}"
          f" MB, slope {s['rss_slope_mb_per_10min']:+.3f} MB per 10 min")
    if "traced_slope_mb_per_10min" in s:
        print(f"tracemalloc: end {s['traced_end_mb']:.2f} MB, slope {s['traced_slope_mb_per_10min']:+.3f} MB/10 min")
    print(f"loss: middle third {s['loss_mean_middle_third']:.4f}, last third {s['loss_mean_last_third']:.4f}, "
          f"slope {s['loss_slope_per_10min_last_two_thirds']:+.4f} per 10 min")
    print("exact match at evals: " + ", ".join(f"{x:.3f}" for x in s["exact_match"]))
    print(f"written {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
