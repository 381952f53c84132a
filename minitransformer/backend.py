"""The array backend: the only file in the package that imports numpy or cupy.

Everything else asks this module for its array library:

- inside compute functions, ``xp = get_array_module(x)`` picks NumPy or CuPy
  from the arrays it was given, so a function never moves data by itself;
- when creating new arrays (weights, masks), ``xp()`` is the active backend.

NumPy is the default. CuPy is used only when asked, with
``minitransformer.use("cupy")`` or the environment variable
``MINITRANSFORMER_BACKEND=cupy``; having CuPy installed switches nothing.

Random numbers. Weights are drawn on the host with NumPy's generator
(``host_rng()``) and then moved to the device, so one seed gives the same model
on CPU and GPU. Dropout masks come from ``dropout_keep_mask(shape, p)``, which
draws from ``device_rng()``, a generator of the active backend.
``manual_seed(seed)`` reseeds both.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import threading

import numpy

__all__ = [
    "asarray",
    "backend_name",
    "decode_text",
    "device_rng",
    "dropout_keep_mask",
    "encode_text",
    "erf",
    "errstate",
    "flat_blocks",
    "for_each_block",
    "host_threads",
    "row_blocks",
    "blas_threads",
    "get_array_module",
    "host_rng",
    "is_array",
    "load_npz",
    "manual_seed",
    "matmul",
    "rng_state",
    "save_npz",
    "scatter_add",
    "set_rng_state",
    "to_numpy",
    "use",
    "xp",
]

_SUPPORTED = ("numpy", "cupy")
_INSTALL_HINT = (
    "CuPy backend requested but {why}. Install the extra matching your CUDA "
    "toolkit, e.g. `pip install 'minitransformer[cuda12]'` or "
    "`pip install 'minitransformer[cuda13]'`, on a machine with an NVIDIA GPU; "
    "or use the default NumPy backend (`minitransformer.use('numpy')`)."
)


class _State:
    """Mutable backend state: the active library and the two generators."""

    name: str = "numpy"
    xp = numpy
    seed: int = 0
    host: numpy.random.Generator = numpy.random.default_rng(0)
    device = numpy.random.default_rng(0)


_state = _State()


def _import_cupy():
    """Import CuPy and check that a GPU is visible; one clear error otherwise."""
    try:
        import cupy  # the only cupy import in the package
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(_INSTALL_HINT.format(why=f"CuPy is not installed ({e})")) from e
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(_INSTALL_HINT.format(why=f"no usable CUDA device was found ({e})")) from e
    if n < 1:  # pragma: no cover - depends on the machine
        raise RuntimeError(_INSTALL_HINT.format(why="no CUDA device is visible"))
    return cupy


def use(name: str) -> None:
    """Switch the active backend: ``"numpy"`` (default) or ``"cupy"``.

    Arrays that already exist stay where they are; move a model with
    ``model.to("cupy")``. The device generator is reseeded with the current
    seed so dropout masks start from the same state after a switch.
    """
    if name not in _SUPPORTED:
        raise ValueError(f"unknown backend {name!r}: expected one of {_SUPPORTED}")
    if name == "cupy":
        _state.xp = _import_cupy()
    else:
        _state.xp = numpy
    _state.name = name
    _state.device = _state.xp.random.default_rng(_state.seed)


def backend_name() -> str:
    """Name of the active backend: ``"numpy"`` or ``"cupy"``."""
    return _state.name


def xp():
    """The active array module (``numpy`` or ``cupy``), for creating arrays."""
    return _state.xp


def get_array_module(*arrays):
    """The array module that owns ``arrays``: ``cupy`` if any is a CuPy array, else ``numpy``.

    Non-array arguments (None, Python numbers) are ignored, so a function can
    pass its optional inputs straight through.
    """
    for a in arrays:
        if a is not None and type(a).__module__.startswith("cupy"):
            return _import_cupy()
    return numpy


def is_array(x) -> bool:
    """True for a NumPy or CuPy ndarray."""
    return isinstance(x, numpy.ndarray) or type(x).__module__.startswith("cupy")


def to_numpy(x):
    """Copy ``x`` to a host NumPy array (a no-op for NumPy arrays)."""
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return numpy.asarray(x)


def asarray(x, dtype=None):
    """Put ``x`` (list, NumPy or CuPy array) on the active backend, optionally cast."""
    if _state.name == "numpy":
        return numpy.asarray(to_numpy(x), dtype=dtype)
    return _state.xp.asarray(x, dtype=dtype)


def dtype(name):
    """A dtype object from a name or dtype (``"float32"``, ``"float64"``, ...)."""
    return numpy.dtype(name)


def manual_seed(seed: int) -> None:
    """Reseed the host generator (weight init) and the device generator (dropout)."""
    _state.seed = int(seed)
    _state.host = numpy.random.default_rng(_state.seed)
    _state.device = _state.xp.random.default_rng(_state.seed)


def host_rng(seed: int | None = None) -> numpy.random.Generator:
    """NumPy generator for weight initialisation (always on the host).

    Without ``seed``: the shared generator that ``manual_seed`` resets.
    With ``seed``: a fresh, independent generator (for tests and examples).
    """
    if seed is not None:
        return numpy.random.default_rng(seed)
    return _state.host


def device_rng():
    """Generator of the active backend, for dropout masks.

    Use only ``random(size, dtype=...)`` on it: that call exists in both
    NumPy's and CuPy's ``Generator``.
    """
    return _state.device


def dropout_keep_mask(shape, p: float):
    """Boolean dropout mask of ``shape`` from ``device_rng()``: each entry True (keep) with probability 1 - p.

    Math:
        keep = (u >= p),  u ~ Uniform[0, 1)
    On the host u is drawn as r / 2^32 with r 32 random bits, so keep = (r >= ceil(p 2^32)):
    the generator's raw 64-bit outputs, viewed as twice as many 32-bit integers, are
    compared with an integer threshold. That is 1.8x faster than ``random(shape, float32) >= p``
    (which converts every draw to a float first; measured on (32, 4, 64, 64): 1.2 vs 2.2 ms)
    and resolves p to 2^-32 instead of float32's 2^-24. On CuPy: ``random(shape, float32) >= p``.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must satisfy 0 <= p < 1, got p={p}")
    rng = _state.device
    if _state.name != "numpy":
        return rng.random(shape, dtype=_state.xp.float32) >= p  # (shape) bool
    n = math.prod(shape)
    threshold = math.ceil(p * 2.0**32)  # keep iff r >= threshold: P(keep) = 1 - threshold / 2^32
    if threshold >= 2**32:  # p within 2^-32 of 1: nothing is kept
        return numpy.zeros(shape, dtype=bool)  # (shape)
    draws = (n + 1) // 2  # raw 64-bit draws: two 32-bit integers each
    bitgen = rng.bit_generator
    runs = min(host_threads(), draws // _HOST_BLOCK)  # a thread gets at least a block of draws
    if runs <= 1 or not hasattr(bitgen, "advance"):
        r = bitgen.random_raw(draws).view(numpy.uint32)[:n]  # (n,) uniform 32-bit integers
        return (r >= threshold).reshape(shape)  # (shape) bool
    # The same draws on several threads: run k takes draws [lo, hi) from a copy of the generator moved
    # ahead by lo draws (PCG64's advance(lo) is as if lo draws had been made), block by block.
    keep = numpy.empty(2 * draws, dtype=bool)  # (2 draws,)
    start = bitgen.state

    def run(lo, hi):
        g = type(bitgen)(0)
        g.state = start
        g.advance(lo)
        for a in range(lo, hi, _HOST_BLOCK):
            b = min(a + _HOST_BLOCK, hi)
            numpy.greater_equal(g.random_raw(b - a).view(numpy.uint32), threshold, out=keep[2 * a:2 * b])

    for_each_block(run, [(draws * k // runs, draws * (k + 1) // runs) for k in range(runs)])
    bitgen.advance(draws)  # the generator ends where the draws in one go leave it; advance clears the
    end = bitgen.state  # buffered 32-bit half-draw, which raw draws never touch: put it back
    end["has_uint32"], end["uinteger"] = start["has_uint32"], start["uinteger"]
    bitgen.state = end
    return keep[:n].reshape(shape)  # (shape) bool


def rng_state() -> dict:
    """The state of both generators, JSON-able, so a checkpoint can resume bit for bit.

    NumPy only: CuPy's generator state cannot be read back portably, so on
    the GPU a resumed run draws different dropout masks (and says so).
    """
    if _state.name != "numpy":
        raise NotImplementedError("saving the device RNG state is supported on the NumPy backend only")
    return {"seed": _state.seed, "host": _state.host.bit_generator.state,
            "device": _state.device.bit_generator.state}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state()`` returned."""
    if _state.name != "numpy":
        raise NotImplementedError("restoring the device RNG state is supported on the NumPy backend only")
    _state.seed = int(state["seed"])
    _state.host.bit_generator.state = state["host"]
    _state.device.bit_generator.state = state["device"]


_HOST_BLOCK = 65536  # float32 entries per block: a few such arrays stay in one core's L2 cache


_BLAS_CONTROLLER = None  # threadpoolctl's controllers of the loaded BLAS libraries, found once (~50 ms)


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (found once, ~50 ms; then ~1 us a call)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _malloc_settings()  # the first host computation: before any helper thread allocates

        _BLAS_CONTROLLER = ThreadpoolController().select(user_api="blas").lib_controllers
    return _BLAS_CONTROLLER


@contextlib.contextmanager
def blas_threads(n: int):
    """Within the block, the BLAS libraries use at most ``n`` threads; afterwards each has its count back.

    The same as threadpoolctl's ``threadpool_limits(n, user_api="blas")``, at ~2 us instead of ~15 us
    (it talks to the libraries found once): it runs around every ``for_each_block``, every small
    ``matmul`` and attention's one-call path (``nn/batch_split.py``).
    """
    libraries = _blas_libraries()
    before = [lib.get_num_threads() for lib in libraries]
    for lib, count in zip(libraries, before, strict=True):
        if count > n:
            lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib, count in zip(libraries, before, strict=True):
            if count > n:
                lib.set_num_threads(count)


def host_threads() -> int:
    """How many threads ``for_each_block`` spreads host work over: the BLAS library's thread count now.

    One setting governs both the matmuls and the elementwise passes: ``OPENBLAS_NUM_THREADS``
    (or ``OMP_NUM_THREADS``) at start-up, or threadpoolctl's ``threadpool_limits(n, user_api="blas")``
    around a region, as ``benchmarks/bench_vs_torch.py --threads`` does. ~1 us per call.
    """
    counts = [lib.get_num_threads() for lib in _blas_libraries()]
    return max(1, min(counts)) if counts else 1


_POOL = None  # (pid, ThreadPoolExecutor) of for_each_block's helper threads, made on first use
_POOL_LOCK = threading.Lock()


# glibc's mallopt parameters (malloc.h), each left alone when the user set its environment variable
_MALLOC_SETTINGS = (
    ("MALLOC_ARENA_MAX", -8, 1),  # M_ARENA_MAX: one arena for all threads
    ("MALLOC_MMAP_THRESHOLD_", -3, 32 << 20),  # M_MMAP_THRESHOLD: blocks under 32 MiB come from the heap
    ("MALLOC_TRIM_THRESHOLD_", -1, 256 << 20),  # M_TRIM_THRESHOLD: up to 256 MiB freed at its top is kept
)


def _malloc_settings() -> None:
    """Three ``mallopt`` calls to glibc's allocator, made once, at the library's first host computation
    (``_blas_libraries``); each is skipped if the user set its environment variable, and all of them
    on another C library.

    - One arena for all threads. glibc gives each new thread an arena of its own, and memory freed in
      one arena is not reused by another: a helper's freed blocks (attention's scores for its run of
      examples) stayed in its arena while the main thread allocated anew. BERT-MiniLM inference
      (config c) peaked 16-18 MB higher with two threads than with one (74-77 vs 58 MB); with one
      arena, 61 MB, at the same speed.
    - Arrays come from the heap and stay there. By default glibc maps every large block (~128 KiB and
      more, a threshold it raises as blocks are freed) fresh from the kernel and trims the heap's free
      top, so a layer's outputs, allocated anew every step, meet fresh pages: the kernel zeroes each
      4 KiB page on its first touch. Config (c) took 25K such page faults (99 MB) per forward and spent
      ~0.1 s of a ~0.5 s forward in the kernel. With blocks under 32 MiB (glibc's largest threshold)
      from the heap and up to 256 MiB of freed memory kept at its top: 8 faults per forward, and the
      forward 535-542 -> 471-485 ms (2 threads); a (b) training step 7-9K -> 1.1K faults. Peak RSS
      +3 MB for (c), +12 MB for (b). The cost: up to 256 MiB of freed memory stays with the process.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # pragma: no cover - another C library (musl): leave it be
        return
    for variable, param, value in _MALLOC_SETTINGS:
        if variable not in os.environ:
            mallopt(param, value)


def _helper_pool():
    """The helper threads, remade in a forked child (a fork copies no threads, only the pool object)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                                     thread_name_prefix="minitransformer-block"))
        return _POOL[1]


def for_each_block(body, blocks) -> None:
    """Call ``body(*block)`` for every block of ``blocks`` (from ``flat_blocks`` or ``row_blocks``), on
    ``host_threads()`` threads at once.

    NumPy runs each elementwise pass on one core, and lets go of Python's global lock while it
    loops over the entries. So the blocks are cut into ``host_threads()`` runs of consecutive blocks;
    the calling thread works through the first run and helper threads through the others, each block
    as it would on its own. The result is the same, bit for bit, for any number of threads: each
    block is computed by the same lines. ``body`` must write only into its own blocks.

    While the threads run, the BLAS library is held to one thread per caller (a ``body`` may call
    matmuls, as attention does), and a ``for_each_block`` inside a ``body`` runs its blocks in turn.
    On a GPU, or with one thread, or with one block: a plain loop in the calling thread.
    """
    blocks = list(blocks)
    n = min(len(blocks), host_threads()) if len(blocks) > 1 and _state.name == "numpy" else 1
    if n <= 1:
        for block in blocks:
            body(*block)
        return
    bounds = [len(blocks) * k // n for k in range(n + 1)]  # n runs of consecutive blocks

    def run(k):
        for block in blocks[bounds[k]:bounds[k + 1]]:
            body(*block)

    with blas_threads(1):  # host_threads() is 1 inside: no nesting
        # each helper runs in a copy of the caller's context: numpy.errstate (a context variable) holds there too
        futures = [_helper_pool().submit(contextvars.copy_context().run, run, k) for k in range(1, n)]
        try:
            run(0)
        finally:
            errors = [f.exception() for f in futures]  # waits for every helper before anything returns
    for e in errors:
        if e is not None:
            raise e


_SPLIT_MATMUL_MIN = 1 << 22  # m * k * n below this: one thread (~40 us of work; a split costs ~30 us)


def matmul(a, b, add=None):
    """``a @ b`` for 2-D arrays, plus ``add`` (a row, broadcast over the product's rows) if given; on the
    host, the rows of ``a`` (and of the product) are split over ``host_threads()`` threads, each with one
    BLAS thread (``for_each_block``).

    Why not leave the threads to BLAS: its idle worker threads spin for ~0.1 s after each matmul
    and hold a core, so the elementwise passes that ``for_each_block`` spreads over the cores right
    after a matmul found no free core and gained nothing. With the matmuls split by our own threads
    (which sleep when idle), one pool does all the parallel work and BLAS's workers never wake.
    Each thread adds ``add`` to its own rows right after its matmul (a linear layer's bias), so that
    pass is spread over the threads too. Each row of the result is computed as in one whole-array
    call. On a GPU: ``a @ b (+ add)``.
    """
    if not on_host(a) or a.ndim != 2 or b.ndim != 2:
        return a @ b if add is None else a @ b + add  # (..., n_cols)
    m = a.shape[0]
    n = min(host_threads(), m)
    out = numpy.empty((m, b.shape[1]), dtype=numpy.result_type(a, b))  # (m, n_cols)

    def run(rows):
        numpy.matmul(a[rows], b, out=out[rows])  # (r, n_cols) its rows of the product
        if add is not None:
            out[rows] += add  # (r, n_cols) on the same core, right after

    if n <= 1 or m * a.shape[1] * b.shape[1] < _SPLIT_MATMUL_MIN:
        with blas_threads(1):  # small: one thread, and BLAS's workers stay asleep
            run(slice(None))
    else:
        for_each_block(run, [(slice(m * i // n, m * (i + 1) // n),) for i in range(n)])  # n runs of rows
    return out


def on_host(x) -> bool:
    """True for a NumPy (host) array, False for a CuPy (GPU) one: for host-only fast paths."""
    return not type(x).__module__.startswith("cupy")


def block_size(x) -> int:
    """How many entries of ``x`` a chain of elementwise passes should handle at a time.

    On the host, NumPy makes one pass over memory per operation; running a chain of them
    block by block keeps the block in the CPU's cache between the passes. On a GPU the
    whole array is one block (every extra block is another kernel launch). At least 1.
    """
    return _HOST_BLOCK if on_host(x) else max(1, x.size)


def flat_blocks(*arrays):
    """Matching blocks of same-shape arrays, for a chain of in-place elementwise passes (see ``block_size``).

    Yields tuples of 1-D views ``(x[i:i + n], y[i:i + n], ...)`` of the flattened arrays, so that
    writing into a block writes into the array. If any array is not C-contiguous (its flattening
    would be a copy), or on a GPU, yields the whole arrays once instead.
    """
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"flat_blocks: the arrays must have one shape, got {[tuple(a.shape) for a in arrays]}")
    if not all(a.flags.c_contiguous for a in arrays):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]  # (n,) views
    step = block_size(flat[0])
    for i in range(0, flat[0].shape[0], step):
        yield tuple(a[i:i + step] for a in flat)  # (b,) views


def row_blocks(*arrays):
    """Matching blocks of rows of 2-D arrays ``(N, d_i)``, for per-row formulas (see ``block_size``).

    Yields tuples of views ``(a[i:i + r], b[i:i + r], ...)``, each block about ``block_size``
    entries of the widest array (at least one row), so that a chain of per-row passes
    (LayerNorm's means, centring, scaling) stays in the CPU's cache. Writing into a block
    writes into the array. On a GPU yields the whole arrays once.
    """
    if any(a.ndim != 2 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"row_blocks: expected 2-D arrays with one number of rows, got "
                         f"{[tuple(a.shape) for a in arrays]}")
    n_rows = arrays[0].shape[0]
    rows = max(1, block_size(arrays[0]) // max(1, max(a.shape[1] for a in arrays)))
    if rows >= n_rows:
        yield arrays
        return
    for i in range(0, n_rows, rows):
        yield tuple(a[i:i + rows] for a in arrays)  # (r, d_i) views


def scatter_add(target, indices, values) -> None:
    """``target[indices] += values`` with repeated indices accumulating (in place).

    Plain fancy-index ``+=`` keeps only one of repeated writes; ``add.at`` sums
    them, on NumPy and on CuPy >= 14.
    """
    get_array_module(target).add.at(target, indices, values)


def errstate(**kwargs):
    """``numpy.errstate`` on the CPU; a no-op context on CuPy (which never warns)."""
    if _state.name == "numpy":
        return numpy.errstate(**kwargs)
    return contextlib.nullcontext()


def erf(x, out=None):
    """The error function, elementwise, on the array's own backend (into ``out`` if given; may be ``x``).

    ``cupyx.scipy.special.erf`` on the GPU; on the host ``scipy.special.erf`` for
    float64 (accurate to float64 rounding) and ``_erf_float32`` for float32 NumPy
    arrays. float32 stays float32.
    """
    if type(x).__module__.startswith("cupy"):
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x, out=out)
    if isinstance(x, numpy.ndarray) and x.dtype == numpy.float32 and (out is None or out.dtype == numpy.float32):
        return _erf_float32(x, out)
    import scipy.special

    return scipy.special.erf(x, out=out)


# erf(z) ~= tanh(x h(x^2)), x = clip(z, -5, 5), h a polynomial of degree 6 (coefficients of x^12, ..., x^0).
# Fitted by scripts/fit_erf.py on [0, 4]; the constant term is 2/sqrt(pi), erf's own slope at 0.
_ERF_TANH = (1.481820072917127e-07, -5.779762368173067e-06, 8.830642347253219e-05, -6.214371573742929e-04,
             -1.9030040820244493e-04, 0.10276880683064349, 1.1283791670955126)
_ERF_CLIP = 5.0  # there x h(x^2) = 40 and tanh rounds to exactly 1, as erf does in float32 from z = 3.92 on
_ERF_BLOCK = 65536  # entries per block: the scratch arrays stay in the CPU's cache


def _erf_float32(z, out=None):
    """erf of a float32 NumPy array (into ``out``): tanh of an odd polynomial, evaluated in cache-sized blocks.

    NumPy has no erf, and SciPy's runs a scalar routine per element, 50-100x slower
    than a NumPy ufunc. NumPy's tanh is one vectorised pass, and erf has the shape
    of a tanh: both are odd and go to +-1. So erf = tanh(g) with g = atanh(erf z),
    an odd function that ``scripts/fit_erf.py`` fits as z h(z^2) on [0, 4]. Errors
    in g near the tails are shrunk by tanh's slope 1 - erf^2, so a degree-6 h is
    enough: measured max |error| 1.8e-7 against float64 erf over [-9, 9] (float32
    spacing near 1 is 6e-8; the rational form used before had 4.4e-7), and 16
    passes over a block where that form took 25. GPT-2's tanh GELU is the same
    formula cut to two terms (0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) is
    Phi(x) to 1.8e-4).

    Math:
        x = clip(z, -5, 5)                 (erf(5) = 1 - 1.5e-12: +-1 in float32)
        erf(z) ~= tanh(x h(x^2))           (h of degree 6, Horner's rule; h(0) = 2 / sqrt(pi))
    """
    if out is None:
        out = numpy.empty(z.shape, dtype=numpy.float32)  # (...) C-contiguous: reshape(-1) is a view
    elif not out.flags.c_contiguous or (out is not z and numpy.may_share_memory(out, z)):
        out[...] = _erf_float32(z)  # (...) other layouts go through a fresh array
        return out
    z_flat, out_flat = z.reshape(-1), out.reshape(-1)  # (n,)  out may be z itself: each block reads, then writes
    n = min(z_flat.shape[0], _ERF_BLOCK)
    x2_all, g_all = numpy.empty(n, dtype=numpy.float32), numpy.empty(n, dtype=numpy.float32)  # (block,) scratch
    for start in range(0, z_flat.shape[0], _ERF_BLOCK):
        x = out_flat[start:start + _ERF_BLOCK]  # (b,) a view of the output: x first, erf at the end
        b = x.shape[0]
        # the views are made once per block: `g[:b] *= ...` would also copy the block back onto itself
        x2, g = (x2_all, g_all) if b == n else (x2_all[:b], g_all[:b])  # (b,)
        numpy.clip(z_flat[start:start + _ERF_BLOCK], -_ERF_CLIP, _ERF_CLIP, out=x)  # (b,)
        numpy.multiply(x, x, out=x2)  # (b,)
        # Horner's rule, started at h0 x^2 instead of a fill: h = (..((h0 x2 + h1) x2 + h2) ..) x2 + h6
        numpy.multiply(x2, _ERF_TANH[0], out=g)  # (b,)
        for c in _ERF_TANH[1:-1]:
            g += c
            g *= x2
        g += _ERF_TANH[-1]
        g *= x  # (b,) g = x h(x^2)
        numpy.tanh(g, out=x)  # (b,) erf = tanh(g)
    return out


def finfo(dtype):
    """Machine limits of a float dtype (same on both backends)."""
    return numpy.finfo(dtype)


# -- files: .npz without pickle (used by checkpoint.py) -------------------------


def save_npz(file, arrays: dict) -> None:
    """Write ``arrays`` (name -> NumPy or CuPy array) to an uncompressed ``.npz``, never pickling.

    ``file`` is a path or an open binary file; a path is used as given (no
    ``.npz`` is appended). An object array is refused with ValueError.
    """
    host = {name: to_numpy(a) for name, a in arrays.items()}
    numpy.savez(file, allow_pickle=False, **host)


def load_npz(path) -> dict:
    """Read every array of an ``.npz`` file into host NumPy arrays, never unpickling.

    Object arrays (which would need pickle) raise ValueError, as do files
    that do not start with the zip signature (a lone ``.npy``, random bytes,
    or a pickle, which NumPy would otherwise try to read as one); a damaged
    archive raises whatever the zip reader raises (callers turn that into one
    clear error).
    """
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # an .npz is a zip; anything else numpy would take for a pickle
            raise ValueError("not an .npz archive (no zip signature at the start)")
        f.seek(0)
        with numpy.load(f, allow_pickle=False) as loaded:  # an NpzFile: a zip is never read as .npy
            _check_npz_sizes(loaded.zip, os.fstat(f.fileno()).st_size)
            return {name: loaded[name] for name in loaded.files}


def _check_npz_sizes(zf, file_size: int) -> None:
    """Refuse an archive whose members declare more bytes than the file holds, before anything is allocated.

    NumPy allocates an array from the shape in a member's ``.npy`` header before reading its data, so a
    hostile 1 KB file declaring shape (10**6, 10**6) would reserve terabytes. Each member's declared array
    size must fit in its (uncompressed) zip size, which must fit in its stored bytes (at most deflate's
    1032:1 ratio), and the stored bytes of all members must fit in the file (no overlapping entries).
    """
    import zipfile

    infos = zf.infolist()
    if sum(i.compress_size for i in infos) > file_size:
        raise ValueError(f"zip entries claim {sum(i.compress_size for i in infos)} bytes; the file has {file_size}")
    for info in infos:
        limit = {zipfile.ZIP_STORED: info.compress_size, zipfile.ZIP_DEFLATED: 1032 * info.compress_size + 1024}
        if info.compress_type not in limit:
            raise ValueError(f"member {info.filename!r}: unsupported zip compression {info.compress_type}")
        if info.file_size > limit[info.compress_type]:
            raise ValueError(f"member {info.filename!r} claims {info.file_size} bytes from {info.compress_size} stored")
        with zf.open(info) as fp:
            magic = fp.read(8)
            if magic[:6] != b"\x93NUMPY":
                continue  # not an array: numpy.load returns its bytes (at most file_size of them)
            version = tuple(magic[6:8])
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"member {info.filename!r}: unsupported .npy format version {version}")
            fmt = numpy.lib.format
            shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fp)
            count = 1
            for d in shape:  # Python ints: no overflow, nothing allocated
                count *= d
            if count * dtype.itemsize > info.file_size - fp.tell():
                raise ValueError(f"member {info.filename!r} declares shape {shape} of {dtype} = "
                                 f"{count * dtype.itemsize} bytes but holds {info.file_size - fp.tell()}")


def encode_text(text: str):
    """A string as a host uint8 array of its UTF-8 bytes (stores JSON in an ``.npz`` without pickle)."""
    return numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8).copy()


def decode_text(a) -> str:
    """Inverse of ``encode_text``: a 1-D uint8 array back to a string."""
    a = to_numpy(a)
    if a.dtype != numpy.uint8 or a.ndim != 1:
        raise ValueError(f"expected a 1-D uint8 array of UTF-8 bytes, got dtype {a.dtype} and shape {a.shape}")
    return a.tobytes().decode("utf-8")


# Honour MINITRANSFORMER_BACKEND at import time.
_env = os.environ.get("MINITRANSFORMER_BACKEND", "").strip().lower()
if _env:
    use(_env)
