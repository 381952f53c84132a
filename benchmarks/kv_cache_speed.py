"""Generation speed with and without the KV cache (``lm.generate(use_cache=True/False)``).

    python benchmarks/kv_cache_speed.py                       # lengths 32, 128, 256, 480
    python benchmarks/kv_cache_speed.py --lengths 64,256 --repeats 3 --d-model 256 --layers 6

Greedy generation of N new tokens after an 8-token prompt, from a randomly
initialised GPT (speed does not depend on what the weights learned). Without
the cache every step recomputes the whole prefix (cost ~ sum_t t = N^2 / 2
positions); with it, every step feeds one token and attends over the stored
keys and values (~ N positions, plus attention over the cache). Both must give
the same tokens (checked). Reports tokens/s (median of --repeats) and the
speed-up per length, with os.getloadavg() and os.cpu_count(), since other work
may share the CPU; JSON in benchmarks/results/kv_cache_speed.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

from threadpoolctl import threadpool_limits

from minitransformer import backend
from minitransformer.lm import generate
from minitransformer.models.gpt import GPT, GPTConfig


class _IdTokenizer:
    """Token i is the character chr(0x100 + i): enough for generate() on a random model."""

    def __init__(self, vocab_size: int):
        self.vocab_size, self.eos_id = vocab_size, 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) - 0x100 for c in text]

    def decode(self, ids) -> str:
        return "".join(chr(0x100 + i) for i in ids)


def _time(model, tok, prompt: str, n: int, use_cache: bool) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    g = generate(model, tok, prompt, max_new_tokens=n, greedy=True, use_cache=use_cache)
    return time.perf_counter() - t0, g.ids


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="32,128,256,480", help="new tokens per run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the median is kept")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, as the CLI)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "kv_cache_speed.json"))
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    cfg = GPTConfig(vocab_size=args.vocab_size, max_len=args.max_len, d_model=args.d_model, n_heads=args.heads,
                    n_layers=args.layers, d_ff=4 * args.d_model, dropout=0.0)
    backend.manual_seed(0)
    model = GPT(cfg, seed=0)
    # GPT-2's init (std 0.02) makes a near-uniform model whose greedy path is all ties; widen the embedding
    rng = backend.host_rng(1)
    model.token_embedding.W.data[...] = backend.asarray(rng.normal(0.0, 1.0, model.token_embedding.W.shape),
                                                        dtype="float32")
    tok = _IdTokenizer(args.vocab_size)
    prompt = tok.decode(list(range(1, 9)))
    rows = []
    load_before = os.getloadavg()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        _time(model, tok, prompt, 8, True)  # warm-up
        for n in lengths:
            if n + 9 > args.max_len:
                raise SystemExit(f"length {n} + prompt exceeds --max-len {args.max_len}")
            t_cache, t_full = [], []
            for _ in range(args.repeats):  # interleaved, so drifting load hits both alike
                s, ids_cache = _time(model, tok, prompt, n, True)
                t_cache.append(s)
                s, ids_full = _time(model, tok, prompt, n, False)
                t_full.append(s)
                if ids_cache != ids_full:
                    raise SystemExit(f"length {n}: cached and uncached generation differ")
            c, f = statistics.median(t_cache), statistics.median(t_full)
            rows.append({"new_tokens": n, "cached_seconds": round(c, 4), "uncached_seconds": round(f, 4),
                         "cached_tokens_per_s": round(n / c, 1), "uncached_tokens_per_s": round(n / f, 1),
                         "speedup": round(f / c, 2), "same_tokens": True})
            r = rows[-1]
            print(f"{n:5d} tokens: cached {r['cached_tokens_per_s']:8.1f} tok/s, uncached "
                  f"{r['uncached_tokens_per_s']:8.1f} tok/s, speed-up {r['speedup']:.2f}x", flush=True)
    result = {
        "benchmark": "kv_cache_speed", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "model": {**cfg.to_dict(), "parameters": model.num_parameters()}, "threads": args.threads,
        "repeats": args.repeats, "prompt_tokens": 8, "decoding": "greedy", "rows": rows,
        "note": "other processes may share the CPU: see loadavg; the speed-up is a ratio of interleaved runs",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
