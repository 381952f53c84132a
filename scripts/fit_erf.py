"""Fit the coefficients of the float32 erf in ``minitransformer/backend.py`` and check them.

NumPy has no erf ufunc, but it has a vectorised tanh, and erf has the shape of a
tanh (odd, going to +-1). So the library computes

    erf(z) ~= tanh(x h(x^2)),   x = clip(z, -CLIP, CLIP),

where x h(x^2) approximates g(z) = atanh(erf z). This script fits h, a polynomial
of degree 6 in s = z^2 whose constant term is kept at erf's slope at 0,
h(0) = 2 / sqrt(pi):

1. Least squares on a dense grid of [0, 4], each point weighted by
   d erf / d g = 1 - erf(z)^2: an error e in g moves tanh(g) by about
   (1 - erf^2) e, so the fit spends its freedom where erf is not yet +-1.
2. A few reweighting rounds (the weights grow where the error is largest) push
   the least-squares fit toward the smallest maximum error.

Then it evaluates the stored coefficients exactly as the library does (float32,
Horner's rule, NumPy's tanh) on a dense grid of [-9, 9] and prints the largest
error against SciPy's float64 erf, for the old rational form too.

    python scripts/fit_erf.py                   # fit, compare with the stored coefficients, check them
    python scripts/fit_erf.py --plot erf.png    # also plot |error| of both float32 forms
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import scipy.special

FIT_MAX = 4.0  # fit on [0, 4]: beyond it erf(z) > 1 - 2e-8, which float32 rounds to 1
DEGREE = 6  # h(s) = c0 s^6 + ... + c5 s + 2/sqrt(pi)
ROUNDS = 80


def fit(degree: int = DEGREE, fit_max: float = FIT_MAX, rounds: int = ROUNDS) -> np.ndarray:
    """Coefficients of h, highest power of s = z^2 first, the last one 2/sqrt(pi)."""
    slope0 = 2.0 / np.sqrt(np.pi)
    z = np.linspace(1e-3, fit_max, 40_001)  # (n,)
    e = scipy.special.erf(z)  # (n,)
    g = np.arctanh(np.minimum(e, 1.0 - 1e-16))  # (n,)  the function to fit, z h(z^2)
    s = z * z  # (n,)
    w = 1.0 - e * e  # (n,)  how much an error in g shows in erf
    for _ in range(rounds):
        A = np.vander(s, degree + 1)[:, :-1] * (z * w)[:, None]  # (n, degree)  z s^k, k = degree..1, weighted
        q, *_ = np.linalg.lstsq(A, (g - slope0 * z) * w, rcond=None)  # (degree,)
        c = np.append(q, slope0)  # (degree + 1,)
        err = np.abs(np.tanh(z * np.polyval(c, s)) - e)  # (n,)
        w = w * np.sqrt(err / err.max() + 0.3)  # (n,)  more weight where the error is largest
    return c


def max_error(erf32, lo: float = -9.0, hi: float = 9.0, n: int = 4_000_001) -> float:
    """Largest |erf32(z) - erf(z)| over a float32 grid of [lo, hi], against float64 erf."""
    z = np.linspace(lo, hi, n).astype(np.float32)  # (n,)
    return float(np.abs(erf32(z).astype(np.float64) - scipy.special.erf(z.astype(np.float64))).max())


def _rational_erf32(z):
    """The form used before 2026-11-29 (Eigen's and XLA's rational approximation), for comparison."""
    p = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
         -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
    q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
         -1.42647390514189e-02)
    x = np.clip(z, -4.0, 4.0)  # (n,)
    x2 = x * x  # (n,)
    return x * np.polyval(np.float32(p), x2) / np.polyval(np.float32(q), x2)  # (n,)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--plot", metavar="PNG", help="save a plot of |error| of the float32 forms to this file")
    args = parser.parse_args(argv)

    sys.path.insert(0, ".")
    from minitransformer import backend

    c = fit()
    stored = np.array(backend._ERF_TANH)
    print("fitted coefficients of h (s^6 ... s^0):")
    for k, (new, old) in enumerate(zip(c, stored, strict=True)):
        print(f"  s^{DEGREE - k}: {new: .17g}   stored {old: .17g}   rel. diff. {abs(new - old) / abs(old):.1e}")
    ours, rational = max_error(backend._erf_float32), max_error(_rational_erf32)
    print(f"max |error| on [-9, 9], float32, stored coefficients: {ours:.2e}  (rational form before: {rational:.2e})")
    tail = backend._erf_float32(np.float32([-1e30, -backend._ERF_CLIP, backend._ERF_CLIP, 1e30]))
    print(f"erf at -1e30, -{backend._ERF_CLIP}, {backend._ERF_CLIP}, 1e30: {tail.tolist()}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        z = np.linspace(0.0, 5.0, 200_001).astype(np.float32)  # (n,)  erf is odd: z >= 0 shows it all
        ref = scipy.special.erf(z.astype(np.float64))  # (n,)
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.semilogy(z, np.abs(_rational_erf32(z) - ref) + 1e-12, lw=0.6, label="x P(x^2) / Q(x^2) (before)")
        ax.semilogy(z, np.abs(backend._erf_float32(z) - ref) + 1e-12, lw=0.6, label="tanh(x h(x^2)) (now)")
        ax.axhline(2.0 ** -24, color="gray", ls=":", label="float32 spacing below 1 (2^-24)")
        ax.set(xlabel="z", ylabel="|erf32(z) - erf(z)|", title="float32 erf, error against float64", ylim=(1e-10, 1e-5))
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
