"""The linear layers' matrix products of one step, ours against torch's, product by product.

``bench_vs_torch.py`` times whole steps. This script asks how much of the difference between the two
libraries is the matrix multiply itself, which neither library writes: ours calls OpenBLAS through
NumPy, torch calls MKL / oneDNN. It

1. runs one step of our model for each configuration (the model and batch of ``bench_vs_torch.py``;
   (a) and (b) a training step, (c) an inference forward) with ``backend.matmul`` wrapped, so that it
   records every product the linear layers compute: the shapes, the memory layout of each operand
   (C: C-ordered; T: the transpose of a C-ordered array; S: other strides, replayed C-ordered), whether a
   bias is added, and which line computes it (``linear_forward``, or ``linear_backward``'s dx or dW);
2. times each distinct product three ways, interleaved, with a pause before every call (idle BLAS and
   OpenMP workers spin ~0.1-0.2 s after their last call):
   - ours: ``backend.matmul(a, b, add)``, the rows split over ``--threads`` threads, one BLAS thread each;
   - numpy: ``numpy.matmul(a, b)`` (+ the bias) with OpenBLAS's own ``--threads`` threads;
   - torch: ``torch.mm`` / ``torch.addmm`` on the same arrays (``torch.from_numpy``: same memory, same
     strides) with ``torch.set_num_threads(--threads)``;
3. adds up calls x median time: the linear layers' matmuls of one step, in each library;
4. times whole steps of both models, interleaved (as ``bench_vs_torch.py`` does: same weights), so that
   step = linear matmuls + everything else, for ours and for torch; ``--plot`` draws that split.
   "Everything else" is the step minus the matmuls timed alone: an estimate (in a step the operands
   come from memory another op just wrote).

The products are random float32 arrays of the recorded shapes and layouts (the values do not change a
matmul's speed). Ratio = ours / torch, the median of the per-repeat ratios.

    python benchmarks/matmul_vs_torch.py                 # configs a, b, c -> benchmarks/results/matmul_vs_torch.*
    python benchmarks/matmul_vs_torch.py --config c --repeats 15
    python benchmarks/matmul_vs_torch.py --quick         # tiny sizes, seconds, writes nothing
    python benchmarks/matmul_vs_torch.py --plot          # also benchmarks/results/matmul_vs_torch.png

Needs torch (``pip install -e ".[parity]"``). No number here is asserted anywhere; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_vs_torch as bench  # noqa: E402

from minitransformer import backend  # noqa: E402

CALLERS = {"linear_forward": "forward y = x W", "dx": "backward dx = dy W^T", "dW": "backward dW = x^T dy"}


def layout(a) -> str:
    """'C' for a C-ordered array, 'T' for the transpose of one, 'S' for any other strides."""
    if a.flags.c_contiguous:
        return "C"
    return "T" if a.T.flags.c_contiguous else "S"


def record_products(spec: dict) -> tuple[str, list[dict]]:
    """Run one step of our model with ``backend.matmul`` wrapped; the distinct products with their counts."""
    mode = "train" if "train" in spec["modes"] else "forward"
    model, batch = bench.build_ours(spec), bench.make_batch(spec)
    step = bench.ours_steps(spec, model, batch)[mode]
    seen: dict[tuple, int] = {}
    original = backend.matmul

    def counting(a, b, add=None):
        caller = sys._getframe(1).f_code.co_name  # linear_forward or linear_backward
        if caller == "linear_backward":  # dx = dy2 @ W.T, then dW = x2.T @ dy2 (a is a transpose)
            caller = "dW" if layout(a) == "T" else "dx"
        key = (CALLERS.get(caller, caller), a.shape[0], a.shape[1], b.shape[1], layout(a), layout(b), add is not None)
        seen[key] = seen.get(key, 0) + 1
        return original(a, b, add=add)

    backend.matmul = counting
    try:
        step()
    finally:
        backend.matmul = original
    order = list(CALLERS.values())
    products = [dict(kind=kind, m=m, k=k, n=n, a_layout=la, b_layout=lb, bias=bias, calls=calls)
                for (kind, m, k, n, la, lb, bias), calls in
                sorted(seen.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 3, kv[0][1:4]))]
    return mode, products


def operands(p: dict, rng):
    """Random float32 operands with the product's shapes and layouts, and its bias (or None)."""
    def make(rows, cols, lay):
        if lay == "T":
            return rng.standard_normal((cols, rows), dtype=np.float32).T  # (rows, cols) a transposed view
        return rng.standard_normal((rows, cols), dtype=np.float32)  # (rows, cols)
    a = make(p["m"], p["k"], p["a_layout"])  # (m, k)
    b = make(p["k"], p["n"], p["b_layout"])  # (k, n)
    add = rng.standard_normal(p["n"], dtype=np.float32) if p["bias"] else None  # (n,)
    return a, b, add


def time_product(p: dict, repeats: int, pause: float, rng) -> dict:
    """Interleaved medians (seconds) of ours, numpy and torch for one product, and the ratio ours / torch."""
    import torch

    a, b, add = operands(p, rng)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)  # the same memory and strides
    tadd = None if add is None else torch.from_numpy(add)

    def ours():  # inside run_config's threadpool_limits(threads): host_threads() == threads
        backend.matmul(a, b, add=add)

    def numpy_blas():
        y = np.matmul(a, b)  # (m, n)
        if add is not None:
            y += add

    def torch_mm():
        torch.mm(ta, tb) if tadd is None else torch.addmm(tadd, ta, tb)

    fns = {"ours": ours, "numpy": numpy_blas, "torch": torch_mm}
    for fn in fns.values():  # warm-up: packing buffers, thread pools
        fn()
    times = {name: [] for name in fns}
    for i in range(repeats):
        names = list(fns)
        for name in names[i % 3:] + names[:i % 3]:  # rotate the order
            time.sleep(pause)
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    flop = 2.0 * p["m"] * p["k"] * p["n"]
    med = {name: statistics.median(t) for name, t in times.items()}
    return dict(p, **{f"{name}_s": s for name, s in med.items()},
                **{f"{name}_gflops": flop / s / 1e9 for name, s in med.items()},
                ratio=statistics.median(o / t for o, t in zip(times["ours"], times["torch"], strict=True)),
                ratio_numpy=statistics.median(o / t for o, t in zip(times["ours"], times["numpy"], strict=True)))


def time_steps(spec: dict, mode: str, args) -> tuple[float, float]:
    """Medians (seconds) of whole steps of our model and torch's: ``bench_vs_torch.run_config`` for one mode."""
    row = bench.run_config(dict(spec, modes=(mode,)), args.step_warmup, args.step_repeats, args.pause)[0]
    return row["ours_s"], row["torch_s"]


def run_config(key: str, args, rng) -> dict:
    spec = bench.spec_for(key, args.quick)
    if spec["kind"] == "gpt" and not bench.gpt_available():
        return dict(config=key, skipped="minitransformer.models.gpt is not there yet")
    rows = []
    with threadpool_limits(args.threads, user_api="blas"):  # NumPy's BLAS: OpenBLAS's threads, host_threads()
        mode, products = record_products(spec)
        for p in products:
            rows.append(time_product(p, args.repeats, args.pause, rng))
            print(f"  {key} {p['m']}x{p['k']}x{p['n']} {p['kind']:24s} x{p['calls']:<3d} ours/torch "
                  f"{rows[-1]['ratio']:.2f}", flush=True)
        step_ours, step_torch = time_steps(spec, mode, args)
    totals = {name: sum(r["calls"] * r[f"{name}_s"] for r in rows) for name in ("ours", "numpy", "torch")}
    print(f"  {key} whole {mode} step: ours {1e3 * step_ours:.0f} ms, torch {1e3 * step_torch:.0f} ms", flush=True)
    return dict(config=key, title=spec["title"], mode=mode, products=rows,
                **{f"total_{name}_s": s for name, s in totals.items()},
                total_ratio=totals["ours"] / totals["torch"], total_ratio_numpy=totals["ours"] / totals["numpy"],
                step_ours_s=step_ours, step_torch_s=step_torch, step_ratio=step_ours / step_torch,
                rest_ours_s=step_ours - totals["ours"], rest_torch_s=step_torch - totals["torch"])


def markdown(record: dict) -> str:
    env = record["environment"]
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
                     for b in env["blas"] if b.get("user_api") == "blas")
    lines = [f"# The linear layers' matmuls, ours vs torch ({env['date']})", "",
             f"{env['threads']} threads; {env['platform']}; numpy {env['numpy']}, torch {env['torch']}; "
             f"BLAS: {blas}; "
             f"load average {record['loadavg_before'][0]:.2f} before, {record['loadavg_after'][0]:.2f} after; "
             f"{record['repeats']} interleaved repeats, {record['pause']} s pauses.", ""]
    for c in record["configs"]:
        if "skipped" in c:
            lines += [f"## ({c['config']}) skipped: {c['skipped']}", ""]
            continue
        lines += [f"## ({c['config']}) {c['title']}: one {c['mode']} step", "",
                  "| product (m x k x n) | what | layouts a, b | bias | calls | ours ms | numpy ms | torch ms | "
                  "ours GFLOP/s | numpy GFLOP/s | torch GFLOP/s | ours / torch |", "|" + "---|" * 12]
        for r in c["products"]:
            lines.append(f"| {r['m']} x {r['k']} x {r['n']} | {r['kind']} | {r['a_layout']}, {r['b_layout']} | "
                         f"{'yes' if r['bias'] else 'no'} | "
                         f"{r['calls']} | {1e3 * r['ours_s']:.2f} | {1e3 * r['numpy_s']:.2f} | "
                         f"{1e3 * r['torch_s']:.2f} | {r['ours_gflops']:.0f} | {r['numpy_gflops']:.0f} | "
                         f"{r['torch_gflops']:.0f} | {r['ratio']:.2f} |")
        lines += ["", f"One step's linear matmuls (calls x median): ours **{1e3 * c['total_ours_s']:.0f} ms**, "
                      f"numpy with OpenBLAS's threads {1e3 * c['total_numpy_s']:.0f} ms, torch "
                      f"**{1e3 * c['total_torch_s']:.0f} ms**: ours / torch **{c['total_ratio']:.2f}**, "
                      f"ours / numpy {c['total_ratio_numpy']:.2f}.", "",
                  f"The whole {c['mode']} step, interleaved: ours {1e3 * c['step_ours_s']:.0f} ms, torch "
                  f"{1e3 * c['step_torch_s']:.0f} ms (ratio {c['step_ratio']:.2f}). Everything but the linear "
                  f"matmuls (step minus the sum above): ours **{1e3 * c['rest_ours_s']:.0f} ms**, torch "
                  f"**{1e3 * c['rest_torch_s']:.0f} ms**.", ""]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time the matrix products of our linear layers (recorded from one step of each benchmark "
                    "model) in ours (backend.matmul), in numpy with OpenBLAS's threads, and in torch, interleaved; "
                    "how much of the step-time gap to torch is the BLAS.")
    p.add_argument("--config", default="a,b,c", help="comma-separated configurations among a, b, c (default all)")
    p.add_argument("--threads", type=int, default=2, help="threads for all three (default 2, issue 9's setting)")
    p.add_argument("--repeats", type=int, default=9, help="timed repeats of each product and library (median)")
    p.add_argument("--pause", type=float, default=0.25, help="seconds of sleep before each timed call")
    p.add_argument("--step-repeats", type=int, default=7, help="timed repeats of the whole steps (median)")
    p.add_argument("--step-warmup", type=int, default=2, help="untimed whole steps first")
    p.add_argument("--plot", nargs="?", const="", default=None, metavar="PNG",
                   help="draw each step split into linear matmuls and the rest (default: matmul_vs_torch.png "
                        "next to the results)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats, no pauses, writes nothing")
    p.add_argument("--out-dir", default=None, help="where to write matmul_vs_torch.json/.md "
                                                   "(default benchmarks/results; --quick: nothing)")
    args = p.parse_args(argv)
    if min(args.threads, args.repeats, args.step_repeats) < 1 or args.pause < 0 or args.step_warmup < 0:
        p.error("--threads, --repeats and --step-repeats must be >= 1, --pause and --step-warmup >= 0")
    if args.quick:
        args.repeats, args.pause, args.step_repeats, args.step_warmup = 2, 0.0, 2, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    bench.THREADS = args.threads  # bench_vs_torch's torch models check the thread count
    rng = np.random.default_rng(0)
    env = bench.environment()
    env["threads"] = args.threads
    record = dict(environment=env, loadavg_before=os.getloadavg(), repeats=args.repeats, pause=args.pause,
                  configs=[run_config(k, args, rng) for k in args.config.split(",") if k])
    record["loadavg_after"] = os.getloadavg()
    md = markdown(record)
    print("\n" + md)
    out_dir = args.out_dir or (None if args.quick else str(ROOT / "benchmarks" / "results"))
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        stem = "matmul_vs_torch" if args.threads == 2 else f"matmul_vs_torch_threads{args.threads}"
        (Path(out_dir) / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        (Path(out_dir) / f"{stem}.md").write_text(md + "\n", encoding="utf-8")
        print(f"written: {out_dir}/{stem}.json, {stem}.md")
    if args.plot is not None:
        png = Path(args.plot) if args.plot else Path(out_dir or ".") / (
            "matmul_vs_torch.png" if args.threads == 2 else f"matmul_vs_torch_threads{args.threads}.png")
        plot(record, png)
        print(f"plot: {png}")
    return 0


def plot(record: dict, png: Path) -> None:
    """One pair of bars per configuration (ours, torch), each step split into its linear matmuls and the rest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in record["configs"] if "skipped" not in c]
    widest = max(1e3 * c[f"step_{name}_s"] for c in configs for name in ("ours", "torch"))
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.9 * len(configs)))
    labels, ticks, y = [], [], 0.0
    for c in configs:
        for name in ("ours", "torch"):
            mm, rest = 1e3 * c[f"total_{name}_s"], 1e3 * c[f"rest_{name}_s"]
            ax.barh(y, mm, color="#3b6ea5", label="the linear layers' matmuls, timed alone" if not ticks else None)
            ax.barh(y, rest, left=mm, color="#f0a35e", label="everything else: step minus those" if not ticks else None)
            ax.text(mm + max(rest, 0.0) + 0.01 * widest, y, f"{mm:.0f} + {rest:.0f} ms", va="center", fontsize=8)
            labels.append(f"({c['config']}) {c['mode']}, {name}")
            ticks.append(y)
            y += 1
        y += 0.5
    ax.set_yticks(ticks, labels)
    ax.set_xlim(0, 1.25 * widest)
    ax.invert_yaxis()
    ax.set_xlabel("ms per step (medians)")
    env = record["environment"]
    ax.set_title(f"Ours vs torch, one step split in two ({env['threads']} threads, {env['date'][:10]})", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
