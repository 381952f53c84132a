"""How much a second thread speeds up NumPy's elementwise passes, against a second process.

NumPy lets go of Python's global lock (the GIL) inside each ufunc's loop, so the library's thread
pool (``backend.for_each_block``) runs the blocks of a chain of passes side by side. But every call
takes the lock back at its end: a thread that finishes its loop while the other thread holds the lock
sleeps until it is handed over, and on a VM that wake-up costs about as much as a short pass. This
script measures that cost, in two parts:

1. An in-place multiply ``x *= 1.0001`` on a private float32 array per worker, for several array
   sizes: one worker alone, two threads, two processes (forked; no shared lock), each worker making
   the same number of calls. Speedup = 2 x (one worker's time) / (the pair's time): 2.0 is perfect,
   1.0 is no gain. Also the voluntary context switches per call of the two threads.
2. The library's GELU (erf form) forward on (2048, 1536) float32 with 1 and 2 threads, for blocks of
   16K, 64K (the library's) and 128K entries.

    python benchmarks/thread_scaling.py            # -> benchmarks/results/thread_scaling.{json,md}
    python benchmarks/thread_scaling.py --quick    # small sizes, seconds, writes nothing

No number here is asserted anywhere; run it on a quiet machine (load average < 1), as it times wall
clocks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minitransformer import backend  # noqa: E402
from minitransformer.nn.activations import gelu_forward  # noqa: E402

SIZES = (4096, 16384, 65536, 262144, 1048576, 4194304)  # float32 entries per array
WORK = 400_000_000  # entries each worker multiplies per measurement (~0.1 s)
BLOCKS = (16384, 65536, 131072)


def _passes(a, calls: int) -> None:
    for _ in range(calls):
        np.multiply(a, 1.0001, out=a)  # (n,) in place


def _one_worker(n: int, calls: int) -> float:
    a = np.ones(n, dtype=np.float32)  # (n,)
    _passes(a, 5)
    start = time.perf_counter()
    _passes(a, calls)
    return time.perf_counter() - start


def _two_threads(n: int, calls: int, pool) -> tuple[float, float]:
    """Wall time of two threads making `calls` passes each, and their voluntary context switches per call."""
    a, b = np.ones(n, dtype=np.float32), np.ones(n, dtype=np.float32)  # (n,) each
    _passes(a, 5)
    _passes(b, 5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    start = time.perf_counter()
    helper = pool.submit(_passes, b, calls)
    _passes(a, calls)
    helper.result()
    wall = time.perf_counter() - start
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before
    return wall, switches / (2 * calls)


def _process_worker(n: int, calls: int, barrier, results) -> None:
    a = np.ones(n, dtype=np.float32)  # (n,)
    _passes(a, 5)
    barrier.wait()
    start = time.perf_counter()
    _passes(a, calls)
    results.put(time.perf_counter() - start)


def _two_processes(n: int, calls: int) -> float:
    """The longer of two forked processes' times for `calls` passes each, started together."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_process_worker, args=(n, calls, barrier, results)) for _ in range(2)]
    for w in workers:
        w.start()
    times = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    return max(times)


def elementwise_rows(sizes, work: int, repeats: int) -> list[dict]:
    rows = []
    with ThreadPoolExecutor(1) as pool:
        for n in sizes:
            calls = max(20, work // n)
            one, threads, procs, switches = [], [], [], []
            for _ in range(repeats):
                one.append(_one_worker(n, calls))
                wall, per_call = _two_threads(n, calls, pool)
                threads.append(wall)
                switches.append(per_call)
                procs.append(_two_processes(n, calls))
            t1 = statistics.median(one)
            rows.append({"entries": n, "calls": calls, "one_us_per_call": 1e6 * t1 / calls,
                         "threads_speedup": 2 * t1 / statistics.median(threads),
                         "processes_speedup": 2 * t1 / statistics.median(procs),
                         "switches_per_call": statistics.median(switches)})
            print(f"{n:>9,} entries: 1 worker {rows[-1]['one_us_per_call']:8.2f} us/call; speedup of 2 threads "
                  f"{rows[-1]['threads_speedup']:.2f}, of 2 processes {rows[-1]['processes_speedup']:.2f}; "
                  f"{rows[-1]['switches_per_call']:.2f} context switches per call", flush=True)
    return rows


def gelu_rows(shape, blocks, repeats: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)  # (N, d_ff)
    saved = backend._HOST_BLOCK  # the library's block size, put back below
    rows = []
    try:
        for block in blocks:
            backend._HOST_BLOCK = block
            ms = {}
            for threads in (1, 2):
                with threadpool_limits(threads, user_api="blas"):  # backend.host_threads() follows BLAS's count
                    gelu_forward(x, "none", keep_t=False)
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        gelu_forward(x, "none", keep_t=False)
                        times.append(time.perf_counter() - start)
                ms[threads] = 1e3 * statistics.median(times)
            rows.append({"block": block, "ms_1_thread": ms[1], "ms_2_threads": ms[2]})
            print(f"GELU {shape}, blocks of {block:,}: 1 thread {ms[1]:.1f} ms, 2 threads {ms[2]:.1f} ms", flush=True)
    finally:
        backend._HOST_BLOCK = saved
    return rows


def markdown(result: dict) -> str:
    lines = ["# thread_scaling results", "",
             f"Written by `benchmarks/thread_scaling.py`, {result['date']}, {result['cpus']} CPUs, "
             f"numpy {result['numpy']}, Python {result['python']}, load average before {result['loadavg_before']}.",
             "", "## An in-place multiply per worker (speedup 2.0 = perfect)", "",
             "| entries | us per call, 1 worker | speedup, 2 threads | speedup, 2 processes "
             "| context switches per call |",
             "|---|---|---|---|---|"]
    for r in result["elementwise"]:
        lines.append(f"| {r['entries']:,} | {r['one_us_per_call']:.2f} | {r['threads_speedup']:.2f} | "
                     f"{r['processes_speedup']:.2f} | {r['switches_per_call']:.2f} |")
    lines += ["", f"## GELU (erf) forward on {tuple(result['gelu_shape'])}, float32", "",
              "| block (entries) | 1 thread ms | 2 threads ms |", "|---|---|---|"]
    for r in result["gelu"]:
        lines.append(f"| {r['block']:,} | {r['ms_1_thread']:.1f} | {r['ms_2_threads']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each measurement (median reported)")
    parser.add_argument("--out-dir", default=None,
                        help="where to write thread_scaling.json/.md (default benchmarks/results; --quick: nothing)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    sizes, work, shape, repeats = SIZES, WORK, (2048, 1536), args.repeats
    if args.quick:
        sizes, work, shape, repeats = (4096, 65536), 400_000, (64, 256), min(repeats, 2)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "numpy": np.__version__,
              "python": platform.python_version(), "loadavg_before": [round(v, 2) for v in os.getloadavg()],
              "elementwise": elementwise_rows(sizes, work, repeats), "gelu_shape": list(shape),
              "gelu": gelu_rows(shape, BLOCKS, repeats)}
    print(markdown(result))
    out_dir = args.out_dir or (None if args.quick else str(ROOT / "benchmarks" / "results"))
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "thread_scaling.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        (out / "thread_scaling.md").write_text(markdown(result), encoding="utf-8")
        print(f"written: {out / 'thread_scaling.json'}, thread_scaling.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
