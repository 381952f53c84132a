"""One run on a GPU machine: versions, the test suite on CuPy, CPU-vs-GPU parity, the float64 gradient
checks on the GPU, and a GPT training step against PyTorch eager CUDA. Writes a log and a JSON of the numbers.

    python3 scripts/gpu_check.py --out $OUT            # on the GPU machine (see scripts/gpu_check.sh)
    python3 scripts/gpu_check.py --out /tmp/g --dry-run  # here, without a GPU: NumPy plays the GPU's part

Each section has its own time limit and writes ``gpu_check.json`` as soon as it finishes, so a run that is
stopped early still brings back what it measured. Nothing is installed: the GPU machine has CuPy, NumPy,
PyTorch, pytest and the project's other dependencies already, and the project runs from the checkout
(``PYTHONPATH=.``). The numbers go into docs/gpu.md.

Parity (section 3): every model is built once on the host, run on NumPy, then moved with ``model.to("cupy")``
(the same weights) and run again on the same batch; its loss and every parameter's gradient are compared
normwise, ``max|gpu - cpu| / max|cpu|``, against 1e-4 in float32 and 1e-10 in float64. TF32 is off
(``CUPY_TF32=0``, CuPy's default), so float32 products are true float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "sections": {}}
TOL = {"float32": 1e-4, "float64": 1e-10}
GPT_BENCH = dict(d_model=512, n_heads=8, d_ff=2048, n_layers=6, T=256, B=32, vocab_size=8192)


def log(*args) -> None:
    print(*args, flush=True)


def save(out: Path) -> None:
    (out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=2, default=str) + "\n")


def section(name: str, out: Path):
    """Decorator: run a section, time it, record its result or its error, save the JSON."""

    def wrap(fn):
        def run(*args, **kwargs):
            log(f"\n=== {name} ===")
            t0 = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
                status = "ok"
            except Exception as e:  # a section's failure is a result too; the next section still runs
                result, status = {"error": f"{type(e).__name__}: {e}"}, "error"
                log(f"[{name}] {type(e).__name__}: {e}")
            result = {"status": status, "seconds": round(time.perf_counter() - t0, 1), **(result or {})}
            RESULTS["sections"][name] = result
            save(out)
            return result

        return run

    return wrap


# -- 1. versions ----------------------------------------------------------------------------------------


def versions(gpu: str) -> dict:
    import numpy

    info = {"python": platform.python_version(), "numpy": numpy.__version__, "machine": platform.machine()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"unavailable: {e}"
    if gpu == "cupy":
        import cupy

        info["cupy"] = cupy.__version__
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["device"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["torch_sees_gpu"] = torch.cuda.is_available()
    except ImportError:
        info["torch"] = None
    for k, v in info.items():
        log(f"  {k}: {v}")
    return info


# -- 2. the test suite on CuPy ----------------------------------------------------------------------------


def test_suite(gpu: str, timeout: int, dry_run: bool) -> dict:
    env = {**os.environ, "MINITRANSFORMER_BACKEND": gpu, "CUPY_TF32": "0", "PYTHONPATH": str(ROOT)}
    env.pop("CI", None)  # optional packages missing there (the packaged MiniLM weights) skip instead of failing
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not notebooks", "-rfE"]
    if dry_run:
        cmd += ["tests/test_backend.py", "tests/test_linear.py"]
    else:
        try:
            import xdist  # noqa: F401 - pytest-xdist is on the GPU machine: spread over its 16 cores

            cmd += ["-n", "8"]
        except ImportError:
            pass
    log("  " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    tail = text.strip().splitlines()[-40:]
    log("\n".join(tail))
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|deselected)", text)}
    failed = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"returncode": rc, "counts": counts, "failed": failed[:60], "tail": tail}


# -- 3. CPU vs GPU parity ---------------------------------------------------------------------------------


def _models():
    """(name, build(dtype) -> (model, loss_fn(model, xp) -> scalar)) for every model; batch > 1, padding."""
    from minitransformer import backend
    from minitransformer.models import bert_heads
    from minitransformer.models.bert import BertConfig
    from minitransformer.models.transformer import Transformer, TransformerConfig

    rng = backend.host_rng(7)

    def transformer(dtype):
        config = TransformerConfig(src_vocab_size=50, tgt_vocab_size=60, d_model=64, n_heads=4, d_ff=128,
                                   n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, max_len=32)
        model = Transformer(config).to(dtype=dtype)
        src = rng.integers(1, 50, (3, 12))  # (B, S)
        src[2, 8:] = 0
        tgt_in = rng.integers(1, 60, (3, 10))  # (B, T)
        tgt_in[1, 7:] = 0
        tgt_out = rng.integers(1, 60, (3, 10))  # (B, T)
        tgt_out[1, 7:] = -100

        def loss(m, xp):
            s, ti, to = xp.asarray(src), xp.asarray(tgt_in), xp.asarray(tgt_out)
            return m.loss(s, ti, to, s == 0, ti == 0)

        return model, loss

    def bert_head(cls_name, labels):
        def build(dtype):
            config = BertConfig(vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0, num_labels=3)
            model = getattr(bert_heads, cls_name)(config).to(dtype=dtype)
            ids = rng.integers(5, 120, (3, 16))  # (B, T)
            mask = (rng.random((3, 16)) < 2).astype("int64")  # (B, T) 1 = token
            mask[2, 11:] = 0
            types = (rng.random((3, 16)) < 0.5).astype("int64")  # (B, T)
            lab = labels(rng)

            def loss(m, xp):
                return m(xp.asarray(ids), xp.asarray(mask), xp.asarray(types),
                         **{k: xp.asarray(v) for k, v in lab.items()}).loss

            return model, loss

        return build

    def mlm_labels(r):
        y = r.integers(0, 120, (3, 16))
        y[r.random((3, 16)) > 0.3] = -100
        return {"labels": y}

    cases = [
        ("Transformer", transformer),
        ("BertForPreTraining", bert_head("BertForPreTraining",
                                         lambda r: {**mlm_labels(r), "next_sentence_label": r.integers(0, 2, (3,))})),
        ("BertForSequenceClassification", bert_head("BertForSequenceClassification",
                                                    lambda r: {"labels": r.integers(0, 3, (3,))})),
        ("BertForTokenClassification", bert_head("BertForTokenClassification",
                                                 lambda r: {"labels": r.integers(0, 3, (3, 16))})),
        ("BertForQuestionAnswering", bert_head("BertForQuestionAnswering",
                                               lambda r: {"start_positions": r.integers(0, 16, (3,)),
                                                          "end_positions": r.integers(0, 16, (3,))})),
    ]
    try:
        from minitransformer.models.gpt import GPT, GPTConfig

        def gpt(dtype):
            config = GPTConfig(vocab_size=100, max_len=32, d_model=64, n_heads=4, n_layers=2, d_ff=256, dropout=0.0)
            model = GPT(config).to(dtype=dtype)
            ids = rng.integers(0, 100, (3, 20))  # (B, T)
            targets = rng.integers(0, 100, (3, 20))  # (B, T)
            targets[0, 15:] = -100
            return model, lambda m, xp: m.loss(xp.asarray(ids), xp.asarray(targets))

        cases.append(("GPT", gpt))
    except ImportError:
        log("  (models/gpt.py not importable: GPT left out of the parity check)")
    return cases


def _run(model, loss_fn, xp):
    from minitransformer import backend

    model.zero_grad()
    loss = loss_fn(model, xp)
    model.backward()
    grads = {name: backend.to_numpy(p.grad) for name, p in model.named_parameters()}
    return float(backend.to_numpy(loss)), grads


def parity(gpu: str) -> dict:
    import numpy

    from minitransformer import backend

    rows, worst = [], {}
    for dtype in ("float32", "float64"):
        for name, build in _models():
            backend.use("numpy")
            backend.manual_seed(0)
            model, loss_fn = build(dtype)
            model.eval()
            loss_cpu, g_cpu = _run(model, loss_fn, numpy)
            backend.use(gpu)
            model.to(gpu)
            loss_gpu, g_gpu = _run(model, loss_fn, backend.xp())
            backend.use("numpy")
            errs = {k: float(numpy.max(numpy.abs(g_gpu[k] - g_cpu[k])) / max(float(numpy.max(numpy.abs(g_cpu[k]))),
                                                                             1e-30)) for k in g_cpu}
            worst_name = max(errs, key=errs.get)
            loss_err = abs(loss_gpu - loss_cpu) / max(abs(loss_cpu), 1e-30)
            ok = max(errs[worst_name], loss_err) < TOL[dtype]
            rows.append({"model": name, "dtype": dtype, "loss_rel_err": loss_err, "worst_grad": worst_name,
                         "worst_grad_rel_err": errs[worst_name], "params": len(errs), "pass": ok})
            log(f"  {name:<32} {dtype}  loss {loss_err:.1e}  worst grad {errs[worst_name]:.1e} ({worst_name})  "
                f"{'PASS' if ok else 'FAIL'}")
            worst[dtype] = max(worst.get(dtype, 0.0), errs[worst_name], loss_err)
    return {"rows": rows, "worst": worst, "passed": all(r["pass"] for r in rows)}


# -- 4. gradient checks on the GPU in float64 -------------------------------------------------------------


def gradcheck(gpu: str, timeout: int) -> dict:
    env = {**os.environ, "MINITRANSFORMER_BACKEND": gpu, "CUPY_TF32": "0", "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, "-m", "minitransformer", "gradcheck", "-q"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
        text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired:
        text, rc = "", "timeout"
    log(text[-6000:])
    rows = re.findall(r"^\s*(\S+)\s.*\b(PASS\*?|FAIL)\b", text, re.M)
    return {"returncode": rc, "checks": len(rows), "failed": [n for n, s in rows if s == "FAIL"]}


# -- 5. a GPT training step: CuPy against PyTorch eager CUDA ----------------------------------------------


def gpt_step(gpu: str, repeats: int, dry_run: bool) -> dict:
    """Median ms per AdamW training step, with device synchronisation, ours (CuPy) vs torch (CUDA)."""
    import numpy

    from minitransformer import backend, optim
    from minitransformer.models.gpt import GPT, GPTConfig

    c = dict(GPT_BENCH)
    if dry_run:
        c.update(d_model=64, n_heads=4, d_ff=256, n_layers=2, T=32, B=4, vocab_size=500)
    config = GPTConfig(vocab_size=c["vocab_size"], max_len=c["T"], d_model=c["d_model"], n_heads=c["n_heads"],
                       n_layers=c["n_layers"], d_ff=c["d_ff"], dropout=0.0)
    backend.use("numpy")
    backend.manual_seed(0)
    model = GPT(config)  # built on the host; torch's copy is made from these weights, then ours moves
    torch_step = _torch_gpt_step(model, c, gpu)
    backend.use(gpu)
    model.to(gpu)
    xp = backend.xp()
    sync = (lambda: xp.cuda.Device().synchronize()) if gpu == "cupy" else (lambda: None)
    opt = optim.AdamW(model.parameters(), lr=1e-4)
    rng = backend.host_rng(0)
    ids = xp.asarray(rng.integers(0, c["vocab_size"], (c["B"], c["T"])))  # (B, T)
    targets = xp.asarray(rng.integers(0, c["vocab_size"], (c["B"], c["T"])))  # (B, T)

    def ours():
        opt.zero_grad()
        model.loss(ids, targets)
        model.backward()
        opt.step()

    times = {"ours": [], "torch": []}
    if torch_step:
        torch_step = torch_step(backend.to_numpy(ids), backend.to_numpy(targets))
    for _ in range(3):  # warm-up: kernels compiled, memory pools filled
        ours()
        if torch_step:
            torch_step()
    sync()
    for _ in range(repeats):  # interleaved, so machine noise hits both
        t0 = time.perf_counter()
        ours()
        sync()
        times["ours"].append(time.perf_counter() - t0)
        if torch_step:
            t0 = time.perf_counter()
            torch_step()
            times["torch"].append(time.perf_counter() - t0)
    backend.use("numpy")
    med = {k: float(numpy.median(v)) * 1e3 for k, v in times.items() if v}
    tokens = c["B"] * c["T"]
    result = {"config": c, "ours_ms": med.get("ours"), "torch_ms": med.get("torch"),
              "ours_tokens_per_s": tokens / med["ours"] * 1e3}
    if "torch" in med:
        result["ratio_ours_over_torch"] = med["ours"] / med["torch"]
    log(f"  {result}")
    return result


def _torch_gpt_step(model, c, gpu):
    """A torch GPT with our model's weights (benchmarks/bench_vs_torch.py builds and fills it), as a function
    of the host batch returning one AdamW step; None without torch."""
    try:
        import torch

        from benchmarks.bench_vs_torch import build_torch, copy_gpt_to_torch
    except ImportError as e:
        log(f"  no torch reference GPT ({e}): ours only")
        return None
    device = "cuda" if gpu == "cupy" and torch.cuda.is_available() else "cpu"
    net = build_torch({**c, "kind": "gpt", "dropout": 0.0})
    copy_gpt_to_torch(model, net)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    log(f"  torch reference GPT on {device}")

    def bind(ids, targets):
        tid = torch.as_tensor(ids, device=device)
        ttg = torch.as_tensor(targets, device=device)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = net(tid)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ttg.reshape(-1))
            loss.backward()
            opt.step()
            sync()

        return step

    return bind


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for gpu_check.json and the log")
    p.add_argument("--dry-run", action="store_true", help="no GPU: NumPy plays the GPU's part (tries the plumbing)")
    p.add_argument("--tests-timeout", type=int, default=240, help="seconds for the test suite (default 240)")
    p.add_argument("--gradcheck-timeout", type=int, default=90, help="seconds for the gradient checks (default 90)")
    p.add_argument("--repeats", type=int, default=10, help="timed GPT steps per implementation (default 10)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: tests,parity,gradcheck,gpt")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = "numpy" if args.dry_run else "cupy"
    RESULTS["dry_run"] = args.dry_run
    skip = set(filter(None, args.skip.split(",")))
    section("versions", out)(versions)(gpu)
    if "parity" not in skip:
        section("parity", out)(parity)(gpu)
    if "gradcheck" not in skip:
        section("gradcheck", out)(gradcheck)(gpu, args.gradcheck_timeout)
    if "gpt" not in skip:
        section("gpt_step", out)(gpt_step)(gpu, args.repeats, args.dry_run)
    if "tests" not in skip:
        section("tests", out)(test_suite)(gpu, args.tests_timeout, args.dry_run)
    bad = [n for n, s in RESULTS["sections"].items() if s["status"] != "ok"]
    log(f"\nsections with errors: {bad or 'none'}; results in {out / 'gpu_check.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
