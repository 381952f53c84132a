"""One BERT-MiniLM encoder layer's inference, op by op: ours next to the torch op doing the same work.

    python benchmarks/bert_ops_vs_torch.py                 # config (c)'s shapes, 1 thread, 21 repeats
    python benchmarks/bert_ops_vs_torch.py --repeats 41 --json benchmarks/results/bert_ops_vs_torch.json

Shapes of config (c) of ``bench_vs_torch.py``: B = 16, T = 128, hidden 384, 12 heads, intermediate 1536,
a quarter of the rows padded. Each op runs in both libraries one after the other (the order alternates),
1 BLAS / torch thread, after warm-up; reported: the median and the minimum (the minimum is the better
estimate on a busy machine: other processes only ever add time). Torch runs under ``inference_mode``;
its attention is ``F.scaled_dot_product_attention`` (one fused kernel), its GELU and LayerNorm are the
fused ATen kernels. "layer (sum)" adds the op rows: six of them make the model's forward.
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cases(B=16, T=128, d=384, h=12, d_ff=1536, seed=0):
    """{name: (ours, torch)}: zero-argument callables doing one op of the layer at these shapes."""
    import torch
    F = torch.nn.functional

    from minitransformer.nn.activations import gelu_forward
    from minitransformer.nn.attention import build_attention_mask, scaled_dot_product_attention_forward
    from minitransformer.nn.layernorm import layernorm_forward
    from minitransformer.nn.linear import linear_forward
    from minitransformer.nn.multihead import merge_heads, split_heads

    rng = np.random.default_rng(seed)

    def r(*shape, scale=1.0):  # float32 normal
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x, W_qkv, b_qkv = r(B, T, d), r(d, 3 * d, scale=0.05), r(3 * d)
    W_o, b_o, W_1, b_1 = r(d, d, scale=0.05), r(d), r(d, d_ff, scale=0.05), r(d_ff)
    W_2, b_2 = r(d_ff, d, scale=0.05), r(d)
    gamma, beta, h_ff = r(d), r(d), r(B, T, d_ff)
    pad = np.zeros((B, T), dtype=bool)
    pad[::4, T // 2 + 7:] = True  # a quarter of the rows padded
    mask = build_attention_mask(B, T, T, key_padding_mask=pad)  # (B, 1, T, T)
    QKV = linear_forward(x, W_qkv, b_qkv)[0]  # (B, T, 3d)
    Q, K, V = (split_heads(A, h) for A in np.split(QKV, 3, axis=-1))  # (B, h, T, d_k) views
    H = scaled_dot_product_attention_forward(Q, K, V, mask)[0]  # (B, h, T, d_k)

    t = {k: torch.from_numpy(v) for k, v in dict(x=x, W_qkv=np.ascontiguousarray(W_qkv.T), b_qkv=b_qkv,
                                                     W_o=np.ascontiguousarray(W_o.T), b_o=b_o,
                                                     W_1=np.ascontiguousarray(W_1.T), b_1=b_1,
                                                     W_2=np.ascontiguousarray(W_2.T), b_2=b_2, gamma=gamma,
                                                     beta=beta, h_ff=h_ff).items()}
    tQKV = F.linear(t["x"], t["W_qkv"], t["b_qkv"])
    tQ, tK, tV = (A.view(B, T, h, d // h).transpose(1, 2) for A in tQKV.split(d, dim=-1))
    tmask = torch.from_numpy(np.where(mask, 0.0, -np.inf).astype(np.float32))  # additive, as BertModel's
    tH = F.scaled_dot_product_attention(tQ, tK, tV, attn_mask=tmask)
    H_cat, tH_cat = merge_heads(H), tH.transpose(1, 2).reshape(B, T, d)
    return {
        "QKV projection (+ bias)": (lambda: linear_forward(x, W_qkv, b_qkv),
                                    lambda: F.linear(t["x"], t["W_qkv"], t["b_qkv"])),
        "attention (scores, mask, softmax, P V)": (lambda: scaled_dot_product_attention_forward(Q, K, V, mask),
                                                   lambda: F.scaled_dot_product_attention(tQ, tK, tV, attn_mask=tmask)),
        "merge heads (copy)": (lambda: merge_heads(H), lambda: tH.transpose(1, 2).reshape(B, T, d)),
        "output projection W_o": (lambda: linear_forward(H_cat, W_o, b_o),
                                  lambda: F.linear(tH_cat, t["W_o"], t["b_o"])),
        "residual add + LayerNorm": (lambda: layernorm_forward(x + x, gamma, beta, 1e-12),
                                     lambda: F.layer_norm(t["x"] + t["x"], (d,), t["gamma"], t["beta"], 1e-12)),
        "FFN W_1 (+ bias)": (lambda: linear_forward(x, W_1, b_1), lambda: F.linear(t["x"], t["W_1"], t["b_1"])),
        "GELU (erf), (B*T, d_ff)": (lambda: gelu_forward(h_ff, keep_t=False), lambda: F.gelu(t["h_ff"])),
        "FFN W_2 (+ bias)": (lambda: linear_forward(h_ff, W_2, b_2), lambda: F.linear(t["h_ff"], t["W_2"], t["b_2"])),
        "residual add + LayerNorm (2)": (lambda: layernorm_forward(x + x, gamma, beta, 1e-12),
                                         lambda: F.layer_norm(t["x"] + t["x"], (d,), t["gamma"], t["beta"], 1e-12)),
    }


def measure(ops: dict, repeats: int, warmup: int = 2) -> list[dict]:
    """Interleaved timing of every (ours, torch) pair; medians and minima in ms."""
    rows = []
    for name, (ours, theirs) in ops.items():
        for _ in range(warmup):
            ours()
            theirs()
        times = {"ours": [], "torch": []}
        for i in range(repeats):
            pair = [("ours", ours), ("torch", theirs)]
            for who, fn in pair if i % 2 == 0 else pair[::-1]:
                t0 = time.perf_counter()
                fn()
                times[who].append((time.perf_counter() - t0) * 1e3)
        rows.append({"op": name, **{f"{who}_{stat.__name__}_ms": stat(v) for who, v in times.items()
                                    for stat in (statistics.median, min)}})
    total = {k: sum(r[k] for r in rows) for k in rows[0] if k != "op"}
    rows.append({"op": "layer (sum)", **total})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| op | ours ms (min) | torch ms (min) | ours / torch (medians) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['ours_median_ms']:.2f} ({r['ours_min_ms']:.2f}) | "
                     f"{r['torch_median_ms']:.2f} ({r['torch_min_ms']:.2f}) | "
                     f"{r['ours_median_ms'] / r['torch_median_ms']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the rows and the load average here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with threadpool_limits(args.threads, user_api="blas"), torch.inference_mode():
        rows = measure(cases(), args.repeats)
    load_after = os.getloadavg()
    print(f"threads {args.threads}, repeats {args.repeats}, loadavg {load_before} -> {load_after}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "repeats": args.repeats,
                                               "loadavg_before": load_before, "loadavg_after": load_after,
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
