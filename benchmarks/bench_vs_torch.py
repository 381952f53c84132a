"""Ours vs PyTorch eager on the CPU: the same model, the same weights, timed side by side.

    python benchmarks/bench_vs_torch.py                      # configs a, b, c; writes benchmarks/results/
    python benchmarks/bench_vs_torch.py --config a --repeats 5
    python benchmarks/bench_vs_torch.py --quick --config a   # tiny sizes, seconds (the smoke test)

Configurations (issue 9):

    a  encoder-decoder Transformer  d_model=256, n_heads=4, d_ff=1024, 3+3 layers, T=S=64, B=32, vocab 1000
       forward (inference) and training step (forward + backward + AdamW), dropout 0.1, label smoothing 0.1
    b  GPT (pre-LN, causal, tied head)  d_model=512, n_heads=8, d_ff=2048, 6 layers, T=128, B=16, vocab 4096
       forward (inference) and training step, dropout 0.1
    c  BERT, MiniLM size  hidden 384, 12 heads, intermediate 1536, 6 layers, T=128, B=16, vocab 30522
       inference (forward, eval mode; a quarter of the rows padded to random lengths >= 64)

The torch side: (a) nn.TransformerEncoder/Decoder + embeddings + sinusoidal table + Linear head, weights
copied with ``minitransformer.interop.torch``; (b) a small hand module of nn.TransformerEncoderLayer
(norm_first=True, GELU tanh, causal mask) with token/position embeddings and a tied head, weights copied
by name; (c) transformers' ``BertModel`` from the same config, weights through our Hugging Face mapping
(``minitransformer.pretrained.ours_to_hf``). Before timing, the eval-mode outputs are compared (``max|diff|``
in the JSON), so both really compute the same function.

Measurement: both libraries limited to 2 threads (threadpoolctl for NumPy's BLAS, ``torch.set_num_threads``),
float32. Each repeat runs ours and torch one after the other (the order alternates) with a short pause
between calls, plus one measurement of the ``numpy.matmul`` float32 peak at the model's own matmul shapes
(the best GFLOP/s over those shapes), so machine noise hits all three alike; medians after warm-up.
GFLOP/s counts matmul FLOPs analytically (2 m k n per product; a training step is 3x the forward: dX and dW).
Peak memory: each implementation and mode runs in a fresh subprocess (ours never imports torch): imports, one
step of the tiny --quick model (so each library's one-time set-up, ~85 MB for torch's autograd and thread
pools, is not charged to the model), the model is built, freed heap pages are returned (malloc_trim), the peak
RSS is reset (/proc/self/clear_refs) and --memory-steps steps run; reported: peak RSS (VmHWM) minus the RSS
before the steps. It covers gradients, optimizer state, activations and temporaries; the weights (the same
on both sides) are not in it. Ours runs inference under ``no_grad()``, torch under ``inference_mode()``.
tracemalloc would miss torch's allocator, hence RSS.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: OpenBLAS reads them when it loads, so the benchmark runs as found and
then re-executes itself in a subprocess with both removed from the environment (when either is set; with
``--env-variants both`` always), and reports both tables. It never changes them for anything else.

Other processes share the CPU: ``os.getloadavg()`` before and after is recorded; ratios are fairer than
absolute times. Not a test: the smoke test runs ``--quick`` and checks only the table's columns.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREADS = 2
MB = 1024.0 * 1024.0

CONFIGS = {
    "a": dict(kind="seq2seq", title="enc-dec 256/4h/1024, 3+3 layers, T=64, B=32", d_model=256, n_heads=4,
              d_ff=1024, n_layers=3, T=64, B=32, vocab_size=1000, dropout=0.1, modes=("forward", "train")),
    "b": dict(kind="gpt", title="GPT 512/8h/2048, 6 layers, T=128, B=16", d_model=512, n_heads=8, d_ff=2048,
              n_layers=6, T=128, B=16, vocab_size=4096, dropout=0.1, modes=("forward", "train")),
    "c": dict(kind="bert", title="BERT MiniLM 384/12h/1536, 6 layers, T=128, B=16", d_model=384, n_heads=12,
              d_ff=1536, n_layers=6, T=128, B=16, vocab_size=30522, dropout=0.1, modes=("forward",)),
}
QUICK = dict(d_model=32, n_heads=4, d_ff=64, n_layers=1, T=8, B=2, vocab_size=50)


def spec_for(key: str, quick: bool) -> dict:
    spec = dict(CONFIGS[key], key=key)
    if quick:
        spec.update(QUICK, title=spec["title"].split(" ")[0] + " (quick: tiny sizes)")
    return spec


def gpt_available() -> bool:
    try:
        from minitransformer.models import gpt  # noqa: F401
    except ImportError:
        return False
    return True


# -- FLOPs ---------------------------------------------------------------------------------------------------


def matmul_flops(spec: dict) -> float:
    """Matmul FLOPs of one forward pass (2 m k n per product); a training step does 3x (dX and dW)."""
    d, d_ff, L, T, B, V = (spec[k] for k in ("d_model", "d_ff", "n_layers", "T", "B", "vocab_size"))
    N = B * T

    def attention(Tq, Tk):  # 4 projections (Q, O on Tq; K, V on Tk) + Q K^T + P V
        return 2.0 * B * (2 * Tq + 2 * Tk) * d * d + 2.0 * 2.0 * B * Tq * Tk * d

    ffn = 2.0 * 2.0 * N * d * d_ff
    if spec["kind"] == "seq2seq":
        enc = L * (attention(T, T) + ffn)
        dec = L * (attention(T, T) + attention(T, T) + ffn)
        return enc + dec + 2.0 * N * d * V
    if spec["kind"] == "gpt":
        return L * (attention(T, T) + ffn) + 2.0 * N * d * V
    return L * (attention(T, T) + ffn) + 2.0 * B * d * d  # bert: + pooler on [CLS]


def matmul_shapes(spec: dict) -> list[tuple[int, int, int]]:
    """(m, k, n) of the model's big matmuls: the projections and the feed-forward."""
    N, d, d_ff = spec["B"] * spec["T"], spec["d_model"], spec["d_ff"]
    return [(N, d, d), (N, d, d_ff), (N, d_ff, d)]


class MatmulPeak:
    """numpy.matmul float32 GFLOP/s at the model's shapes; ``measure()`` returns the best shape's rate."""

    def __init__(self, shapes, seed=0):
        rng = np.random.default_rng(seed)
        self.cases = [(rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32),
                       np.empty((m, n), dtype=np.float32), 2.0 * m * k * n) for m, k, n in shapes]

    def measure(self, inner: int = 3) -> float:
        best = 0.0
        for A, Bm, C, flops in self.cases:
            np.matmul(A, Bm, out=C)  # warm
            times = []
            for _ in range(inner):
                t0 = time.perf_counter()
                np.matmul(A, Bm, out=C)
                times.append(time.perf_counter() - t0)
            best = max(best, flops / min(times) / 1e9)
        return best


# -- data ----------------------------------------------------------------------------------------------------


def make_batch(spec: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    B, T, V = spec["B"], spec["T"], spec["vocab_size"]
    ids = rng.integers(1, V, size=(B, T + 1), dtype=np.int64)
    batch = {"src": rng.integers(1, V, size=(B, T), dtype=np.int64), "tgt_in": ids[:, :-1].copy(),
             "tgt_out": ids[:, 1:].copy()}
    mask = np.ones((B, T), dtype=np.int64)  # bert: 1 = token, 0 = padding
    for b in range(0, B, 4):  # a quarter of the rows padded
        n = int(rng.integers(max(1, T // 2), T + 1))
        mask[b, n:] = 0
    batch["attention_mask"] = mask
    batch["input_ids"] = np.where(mask == 1, batch["src"], 0)
    return batch


# -- ours ------------------------------------------------------------------------------------------------------


def build_ours(spec: dict):
    """Our model for ``spec`` (float32)."""
    from minitransformer import backend

    backend.manual_seed(0)
    if spec["kind"] == "seq2seq":
        from minitransformer.models import Transformer, TransformerConfig

        cfg = TransformerConfig(spec["vocab_size"], spec["vocab_size"], d_model=spec["d_model"],
                                n_heads=spec["n_heads"], d_ff=spec["d_ff"], n_encoder_layers=spec["n_layers"],
                                n_decoder_layers=spec["n_layers"], dropout=spec["dropout"], max_len=spec["T"],
                                label_smoothing=0.1)
        return Transformer(cfg)
    if spec["kind"] == "gpt":
        from minitransformer.models.gpt import GPT, GPTConfig

        cfg = GPTConfig(spec["vocab_size"], max_len=spec["T"], d_model=spec["d_model"], n_heads=spec["n_heads"],
                        n_layers=spec["n_layers"], d_ff=spec["d_ff"], dropout=spec["dropout"])
        return GPT(cfg)
    from minitransformer.models.bert import BertModel

    return BertModel(bert_config(spec)).eval()


def bert_config(spec: dict):
    from minitransformer.models.bert import BertConfig

    return BertConfig(vocab_size=spec["vocab_size"], hidden_size=spec["d_model"],
                      num_hidden_layers=spec["n_layers"], num_attention_heads=spec["n_heads"],
                      intermediate_size=spec["d_ff"], max_position_embeddings=max(512, spec["T"]))


def ours_steps(spec: dict, model, batch: dict) -> dict:
    """{"forward": fn, "train": fn} for our model; each call does one step."""
    from minitransformer.optim import AdamW

    try:
        from minitransformer.nn.module import no_grad
    except ImportError:  # a version before no_grad() (to measure "before" numbers): forward, then clear_cache
        no_grad = contextlib.nullcontext

    kind = spec["kind"]
    opt = AdamW(model.parameters(), lr=1e-4, weight_decay=0.01) if "train" in spec["modes"] else None

    def forward():
        model.eval()
        with no_grad():  # inference: no caches kept (torch: inference_mode)
            if kind == "seq2seq":
                out = model(batch["src"], batch["tgt_in"])  # (B, T, V)
            elif kind == "gpt":
                out = model(batch["tgt_in"])  # (B, T, V)
            else:
                out = model(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        model.clear_cache()  # a no-op after no_grad()
        return out

    def train():
        model.train()
        opt.zero_grad()
        if kind == "seq2seq":
            loss = model.loss(batch["src"], batch["tgt_in"], batch["tgt_out"])
        else:
            loss = model.loss(batch["tgt_in"], batch["tgt_out"])
        model.backward()
        opt.step()
        return float(loss)

    return {"forward": forward, "train": train}


# -- torch -----------------------------------------------------------------------------------------------------


def _torch():
    import torch

    if torch.get_num_threads() != THREADS:
        torch.set_num_threads(THREADS)
    return torch


def build_torch(spec: dict):
    """The torch model for ``spec`` (float32, random init; ``copy_weights`` makes it equal to ours)."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    d, h, d_ff, L, T, V, p = (spec[k] for k in ("d_model", "n_heads", "d_ff", "n_layers", "T", "vocab_size",
                                                "dropout"))
    if spec["kind"] == "bert":
        from transformers import BertConfig as HFBertConfig
        from transformers import BertModel as HFBertModel

        c = bert_config(spec)
        cfg = HFBertConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
                           num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
                           max_position_embeddings=c.max_position_embeddings, layer_norm_eps=c.layer_norm_eps,
                           hidden_act=c.hidden_act, pad_token_id=c.pad_token_id)
        return HFBertModel(cfg).eval()

    if spec["kind"] == "seq2seq":

        class TorchSeq2Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = math.sqrt(d)
                self.src_embed, self.tgt_embed = nn.Embedding(V, d), nn.Embedding(V, d)
                pos = torch.arange(T, dtype=torch.float64)[:, None]
                div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
                pe = torch.zeros(T, d, dtype=torch.float64)
                pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
                self.register_buffer("pe", pe.float())
                self.drop = nn.Dropout(p)
                enc = nn.TransformerEncoderLayer(d, h, d_ff, p, batch_first=True)
                dec = nn.TransformerDecoderLayer(d, h, d_ff, p, batch_first=True)
                self.encoder = nn.TransformerEncoder(enc, L, enable_nested_tensor=False)
                self.decoder = nn.TransformerDecoder(dec, L)
                self.out_proj = nn.Linear(d, V)
                self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(T))

            def forward(self, src, tgt_in):
                e = self.drop(self.src_embed(src) * self.scale + self.pe[: src.shape[1]])
                memory = self.encoder(e)
                t = self.drop(self.tgt_embed(tgt_in) * self.scale + self.pe[: tgt_in.shape[1]])
                hdec = self.decoder(t, memory, tgt_mask=self.causal, tgt_is_causal=True)
                return self.out_proj(hdec)

        return TorchSeq2Seq()

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, d), nn.Embedding(T, d)
            self.drop = nn.Dropout(p)
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(d, h, d_ff, p, activation=nn.GELU(approximate="tanh"), batch_first=True,
                                           norm_first=True) for _ in range(L))
            for layer in self.layers:
                layer.dropout = nn.Identity()  # GPT-2 has no dropout inside the feed-forward (ours: none)
                # torch's fused inference path treats every nn.GELU as the exact (erf) GELU; keep the tanh one
                layer.activation_relu_or_gelu = 0
            self.norm = nn.LayerNorm(d)
            self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(T))

        def forward(self, ids):
            x = self.drop(self.tok(ids) + self.pos.weight[: ids.shape[1]])
            for layer in self.layers:
                x = layer(x, src_mask=self.causal, is_causal=True)
            return self.norm(x) @ self.tok.weight.T  # tied head

    return TorchGPT()


def copy_weights(spec: dict, ours, theirs) -> None:
    """Make the torch model compute our function: ours -> torch, through the interop / the HF mapping."""
    torch = _torch()
    if spec["kind"] == "bert":
        from minitransformer.pretrained import ours_to_hf

        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours_to_hf(ours).items()}
        missing, unexpected = theirs.load_state_dict(state, strict=False)
        if unexpected or any("position_ids" not in k and "token_type_ids" not in k for k in missing):
            raise RuntimeError(f"BERT weight copy: missing {missing}, unexpected {unexpected}")
        return
    from minitransformer.interop.torch import copy_to_torch

    if spec["kind"] == "seq2seq":
        for ours_part, torch_part in ((ours.src_embed, theirs.src_embed), (ours.tgt_embed, theirs.tgt_embed),
                                      (ours.encoder, theirs.encoder), (ours.decoder, theirs.decoder),
                                      (ours.out_proj, theirs.out_proj)):
            copy_to_torch(ours_part, torch_part)
        return
    copy_gpt_to_torch(ours, theirs)


def copy_gpt_to_torch(ours, theirs) -> None:
    """Our GPT's weights into TorchGPT: layers, final norm and token table through the interop, positions by hand."""
    torch = _torch()
    from minitransformer.interop.torch import copy_to_torch

    for ours_layer, torch_layer in zip(ours.layers, theirs.layers, strict=True):
        copy_to_torch(ours_layer, torch_layer)
    copy_to_torch(ours.norm, theirs.norm)
    copy_to_torch(ours.token_embedding, theirs.tok)
    with torch.no_grad():  # LearnedPositionalEmbedding has no interop entry: W (max_len, d_model) = weight
        theirs.pos.weight.copy_(torch.from_numpy(np.asarray(ours.position_embedding.W.data)))


def torch_steps(spec: dict, model, batch: dict) -> dict:
    torch = _torch()
    F = torch.nn.functional
    kind = spec["kind"]
    t = {k: torch.from_numpy(v) for k, v in batch.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01) if "train" in spec["modes"] else None

    def logits_of():
        if kind == "seq2seq":
            return model(t["src"], t["tgt_in"])
        return model(t["tgt_in"])

    def forward():
        model.eval()
        with torch.inference_mode():
            if kind == "bert":
                return model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).last_hidden_state
            return logits_of()

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        logits = logits_of()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t["tgt_out"].reshape(-1),
                               label_smoothing=0.1 if kind == "seq2seq" else 0.0)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return {"forward": forward, "train": train}


# -- timing ----------------------------------------------------------------------------------------------------


def to_host(x):
    from minitransformer import backend

    return x.detach().numpy() if hasattr(x, "detach") else backend.to_numpy(x)


def time_pair(fn_ours, fn_torch, peak: MatmulPeak, warmup: int, repeats: int, pause: float) -> dict:
    """Interleaved medians: each repeat times ours, torch (alternating order) and the matmul peak."""
    for _ in range(warmup):
        fn_ours()
        fn_torch()
    times = {"ours": [], "torch": []}
    peaks = []
    for i in range(repeats):
        order = [("ours", fn_ours), ("torch", fn_torch)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            time.sleep(pause)  # let the other library's (and the matmul peak's) spinning worker threads go idle
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        time.sleep(pause)
        peaks.append(peak.measure())
    return {"ours_s": statistics.median(times["ours"]), "torch_s": statistics.median(times["torch"]),
            "peak_gflops": statistics.median(peaks), "ours_all_s": times["ours"], "torch_all_s": times["torch"]}


def run_config(spec: dict, warmup: int, repeats: int, pause: float) -> list[dict]:
    """Build both models, check they agree, time every mode; one row per mode."""
    torch = _torch()
    batch = make_batch(spec)
    ours = build_ours(spec)
    theirs = build_torch(spec)
    copy_weights(spec, ours, theirs)
    f_ours, f_torch = ours_steps(spec, ours, batch), torch_steps(spec, theirs, batch)
    diff = float(np.max(np.abs(to_host(f_ours["forward"]()).astype(np.float64)
                               - to_host(f_torch["forward"]()).astype(np.float64))))
    peak = MatmulPeak(matmul_shapes(spec))
    rows = []
    for mode in spec["modes"]:
        r = time_pair(f_ours[mode], f_torch[mode], peak, warmup, repeats, pause)
        flops = matmul_flops(spec) * (3.0 if mode == "train" else 1.0)
        tokens = spec["B"] * spec["T"] * (2 if spec["kind"] == "seq2seq" else 1)  # seq2seq: source + target
        row = dict(config=spec["key"], title=spec["title"], mode=mode, **r, ratio=r["ours_s"] / r["torch_s"],
                   tokens=tokens, gflop=flops / 1e9, ours_tokens_per_s=tokens / r["ours_s"],
                   torch_tokens_per_s=tokens / r["torch_s"], ours_gflops=flops / r["ours_s"] / 1e9,
                   torch_gflops=flops / r["torch_s"] / 1e9, forward_max_abs_diff=diff)
        row["ours_peak_fraction"] = row["ours_gflops"] / r["peak_gflops"]
        row["torch_peak_fraction"] = row["torch_gflops"] / r["peak_gflops"]
        rows.append(row)
    del torch
    return rows


# -- memory (fresh subprocesses) -----------------------------------------------------------------------------


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(key: str, mode: str, impl: str, quick: bool, steps: int) -> dict:
    """Runs in a fresh process: peak RSS over ``steps`` steps minus the RSS after building the model (MB)."""
    spec = spec_for(key, quick)
    if impl == "torch":
        _torch()
        if spec["kind"] == "bert":
            import transformers  # noqa: F401
    else:
        import minitransformer.models  # noqa: F401
        import minitransformer.optim  # noqa: F401
        if spec["kind"] == "gpt":
            import minitransformer.models.gpt  # noqa: F401
    batch = make_batch(spec)
    # One step of the tiny (--quick) model first, so that each library's one-time set-up (torch: autograd
    # engine, thread pools, ~85 MB) is not charged to the model; then reset the peak and measure.
    tiny = spec_for(key, True)
    (ours_steps if impl == "ours" else torch_steps)(tiny, (build_ours if impl == "ours" else build_torch)(tiny),
                                                    make_batch(tiny))[mode]()
    model = build_ours(spec) if impl == "ours" else build_torch(spec)
    fn = (ours_steps if impl == "ours" else torch_steps)(spec, model, batch)[mode]
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages (init temporaries) back: they are not the run's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    base = _rss_kb("VmRSS")
    for _ in range(steps):
        fn()
    peak = _rss_kb("VmHWM")
    return {"base_mb": base / 1024.0, "peak_mb": peak / 1024.0, "delta_mb": (peak - base) / 1024.0}


def measure_memory(key: str, mode: str, impl: str, quick: bool, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mem.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", f"{key},{mode},{impl}",
               "--memory-steps", str(steps), "--threads", str(THREADS), "--json-out", str(out)]
        cmd += ["--quick"] if quick else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {key}/{mode}/{impl} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


# -- report ----------------------------------------------------------------------------------------------------

COLUMNS = ["config", "mode", "ours ms", "torch ms", "ratio", "ours tok/s", "torch tok/s", "ours GFLOP/s",
           "torch GFLOP/s", "matmul peak GFLOP/s", "ours % peak", "torch % peak", "ours MB", "torch MB",
           "mem ratio"]


def table(rows: list[dict]) -> str:
    """A markdown table of the rows (memory columns "-" when not measured)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        mem = r.get("memory")
        cells = [f"{r['config']} {r['title']}", r["mode"], f"{1e3 * r['ours_s']:.1f}", f"{1e3 * r['torch_s']:.1f}",
                 f"{r['ratio']:.2f}", f"{r['ours_tokens_per_s']:,.0f}", f"{r['torch_tokens_per_s']:,.0f}",
                 f"{r['ours_gflops']:.1f}", f"{r['torch_gflops']:.1f}", f"{r['peak_gflops']:.1f}",
                 f"{100 * r['ours_peak_fraction']:.0f}%", f"{100 * r['torch_peak_fraction']:.0f}%"]
        if mem:
            cells += [f"{mem['ours']['delta_mb']:.0f}", f"{mem['torch']['delta_mb']:.0f}",
                      f"{mem['ours']['delta_mb'] / max(mem['torch']['delta_mb'], 1e-9):.2f}"]
        else:
            cells += ["-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def blas_info() -> list[dict]:
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads",
            "filepath")
    return [{k: v for k, v in lib.items() if k in keep} for lib in threadpool_info()]


def environment() -> dict:
    import torch

    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "threads": THREADS, "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_VARS},
            "blas": blas_info()}


def run_all(args) -> dict:
    keys = [k for k in args.config.split(",") if k]
    record = {"environment": environment(), "loadavg_before": os.getloadavg(), "rows": [], "skipped": {}}
    with threadpool_limits(THREADS, user_api="blas"):
        record["blas_limited"] = blas_info()
        for key in keys:
            spec = spec_for(key, args.quick)
            if spec["kind"] == "gpt" and not gpt_available():
                record["skipped"][key] = "minitransformer.models.gpt is not there yet"
                continue
            spec["modes"] = tuple(m for m in spec["modes"] if m in args.modes.split(","))
            if spec["modes"]:
                record["rows"] += run_config(spec, args.warmup, args.repeats, args.pause)
    record["loadavg_after"] = os.getloadavg()
    return record


def add_memory(record: dict, args) -> None:
    for row in record["rows"]:
        row["memory"] = {impl: measure_memory(row["config"], row["mode"], impl, args.quick, args.memory_steps)
                         for impl in ("ours", "torch")}


def print_record(record: dict, label: str) -> None:
    env = record["environment"]
    print(f"\n## {label}: OPENBLAS_CORETYPE={env['openblas_env']['OPENBLAS_CORETYPE']!r}, "
          f"OPENBLAS_L2_SIZE={env['openblas_env']['OPENBLAS_L2_SIZE']!r}")
    for lib in record["blas_limited"]:
        print(f"  {lib.get('user_api')}: {lib.get('internal_api')} {lib.get('version')} "
              f"kernel={lib.get('architecture', '-')} threads={lib.get('num_threads')} ({Path(lib['filepath']).name})")
    print(f"  loadavg before {record['loadavg_before']}, after {record['loadavg_after']}, cpus {env['cpu_count']}")
    for key, why in record["skipped"].items():
        print(f"  config {key} skipped: {why}")
    print()
    print(table(record["rows"]))
    for r in record["rows"]:
        print(f"  {r['config']} {r['mode']}: eval forward max|ours - torch| = {r['forward_max_abs_diff']:.2e}; "
              f"ours {['%.0f' % (1e3 * s) for s in r['ours_all_s']]} ms, "
              f"torch {['%.0f' % (1e3 * s) for s in r['torch_all_s']]} ms")


def markdown(records: list[tuple[str, dict]]) -> str:
    parts = ["# bench_vs_torch results", "",
             f"Written by `benchmarks/bench_vs_torch.py`; medians of interleaved repeats, {THREADS} BLAS thread(s), "
             "float32. Memory: peak RSS during the steps minus RSS after building the model (weights excluded), "
             "each in a fresh subprocess after a tiny warm-up step.", ""]
    for label, rec in records:
        env = rec["environment"]
        parts += [f"## {label}", "", f"{env['date']}, numpy {env['numpy']}, torch {env['torch']}, "
                  f"{env['cpu_count']} CPUs, loadavg before {rec['loadavg_before']}, after {rec['loadavg_after']}; "
                  f"OPENBLAS_CORETYPE={env['openblas_env']['OPENBLAS_CORETYPE']!r}, "
                  f"OPENBLAS_L2_SIZE={env['openblas_env']['OPENBLAS_L2_SIZE']!r}; BLAS: "
                  + "; ".join(f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture', '')}"
                              for lib in rec["blas_limited"]), "", table(rec["rows"]), ""]
        parts += [f"Config {k} skipped: {why}" for k, why in rec["skipped"].items()]
    return "\n".join(parts) + "\n"


def parse_args(argv=None):
    global THREADS
    p = argparse.ArgumentParser(description="Ours vs PyTorch eager, same model and weights, interleaved medians.")
    p.add_argument("--config", default="a,b,c", help="comma-separated configurations among a, b, c (default all)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per mode (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    p.add_argument("--threads", type=int, default=THREADS,
                   help="BLAS threads for NumPy and torch.set_num_threads (default 2, the issue's setting)")
    p.add_argument("--pause", type=float, default=0.25,
                   help="seconds of sleep before each timed call and each peak measurement: idle BLAS and OpenMP "
                        "worker threads spin ~0.1-0.2 s after their last call and would hold a core")
    p.add_argument("--modes", default="forward,train", help="comma-separated modes to run (forward, train)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 warm-up, 2 repeats: a smoke test")
    p.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurement")
    p.add_argument("--memory-steps", type=int, default=2, help="steps run in each memory subprocess")
    p.add_argument("--env-variants", choices=("auto", "found", "both"), default="auto",
                   help="auto: also rerun with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset when either is set; "
                        "found: as found only; both: always rerun")
    p.add_argument("--out-dir", default=None,
                   help="where to write bench_vs_torch.json/.md (_threadsN when --threads is not 2; default "
                        "benchmarks/results; --quick: nothing)")
    p.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--variant-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    THREADS = args.threads
    if args.quick:
        args.warmup, args.repeats, args.pause, args.memory_steps = 1, 2, 0.0, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        key, mode, impl = args.memory_child.split(",")
        with threadpool_limits(THREADS, user_api="blas"):
            result = memory_child(key, mode, impl, args.quick, args.memory_steps)
        Path(args.json_out).write_text(json.dumps(result))
        return 0
    record = run_all(args)
    if args.variant_child:  # the OPENBLAS_* unset rerun: timings only
        Path(args.json_out).write_text(json.dumps(record))
        return 0
    if not args.no_memory:
        add_memory(record, args)
    records = [("as found", record)]
    print_record(record, "as found")
    found = {v: os.environ[v] for v in OPENBLAS_VARS if v in os.environ}
    if args.env_variants == "both" or (args.env_variants == "auto" and found):
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "variant.json"
            argv_child = [a for a in (sys.argv[1:] if argv is None else list(argv))]
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv_child, "--variant-child",
                                   "--json-out", str(out)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"the OPENBLAS_* unset rerun failed:\n{proc.stderr[-3000:]}")
            unset = json.loads(out.read_text())
        records.append(("OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset", unset))
        print_record(unset, "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (subprocess; timings only)")
    else:
        print(f"\n(neither {' nor '.join(OPENBLAS_VARS)} is set: the 'unset' run would be the same; "
              "--env-variants both forces it)")
    out_dir = args.out_dir or (None if args.quick else str(ROOT / "benchmarks" / "results"))
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        stem = "bench_vs_torch" if THREADS == 2 else f"bench_vs_torch_threads{THREADS}"
        (Path(out_dir) / f"{stem}.json").write_text(json.dumps({"variants": dict(records)}, indent=1))
        (Path(out_dir) / f"{stem}.md").write_text(markdown(records))
        print(f"\nwritten: {out_dir}/{stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
