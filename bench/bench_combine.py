#!/usr/bin/env python
"""How should a fit combine the statistics of its 65,536-row blocks? (issue 7: measure the candidates)

Every fit sums each fixed block in float64 around the block's own mean (one Polars ``select``:
count, mean m, Σ(x − m), Σ(x − m)²); the question is how to combine the blocks' sums into the
column's mean and standard deviation. Candidates, each fed the same block sums:

  chan      Chan et al.'s pairwise update in float64, block after block (what a streaming engine
            or Dask does): cheap, but the result depends on the order of the blocks
  fsum      math.fsum of the blocks' float terms (n·m, Σ(x − m), Σ(x − m)² + n(m − mean)²):
            order-independent (fsum is correctly rounded), but the terms are rounded first
  fixed     integer fixed-point: every float as an integer multiple of 2^-1074, the cross terms
            multiplied out exactly in Python integers (big: ~2,200-bit squares)
  dyadic    normcli (normcli.scaling.exact.Moments): each block's sums as integer × 2^k, moved
            exactly to a common shift, added exactly, rounded once at the end

For each: microseconds per block to combine (median of repeats), the relative error of the
standard deviation against the exact value of the data (Python integers over every value), and
whether shuffling the blocks changes a bit of the result. Columns: 1e12 + N(0, 1) (large offset),
N(5, 1e-3) and a lognormal.

    python bench/bench_combine.py [--rows 2000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the working tree's normcli

BLOCK_ROWS = 65_536


def block_sums(x):  # noqa: ANN001, ANN201 - numpy array
    """(n, m, s1, s2) per block, as the fit's Polars select computes them (float64)."""
    out = []
    for start in range(0, len(x), BLOCK_ROWS):
        b = x[start : start + BLOCK_ROWS]
        m = float(b.mean())
        d = b - m
        out.append((len(b), m, float(d.sum()), float((d * d).sum())))
    return out


def exact_std(x) -> Fraction:  # noqa: ANN001
    """The population variance of the values, exactly (every float64 is an integer × 2^e)."""
    num, den = 0, 0
    values = [Fraction(v) for v in x.tolist()]
    den = math.lcm(*{v.denominator for v in values})
    ints = [v.numerator * (den // v.denominator) for v in values]
    n = len(ints)
    s1 = sum(ints)
    s2 = sum(i * i for i in ints)
    num = s2 * n - s1 * s1
    return Fraction(num, n * n * den * den)


def chan(blocks) -> tuple[float, float]:  # noqa: ANN001
    n, mean, m2 = 0, 0.0, 0.0
    for bn, bm, s1, s2 in blocks:
        bmean = bm + s1 / bn
        bm2 = s2 - s1 * s1 / bn
        total = n + bn
        delta = bmean - mean
        mean += delta * bn / total
        m2 += bm2 + delta * delta * n * bn / total
        n = total
    return mean, math.sqrt(m2 / n)


def fsum(blocks) -> tuple[float, float]:  # noqa: ANN001
    n = sum(b[0] for b in blocks)
    mean = math.fsum([bn * bm for bn, bm, _, _ in blocks] + [s1 for _, _, s1, _ in blocks]) / n
    m2 = math.fsum([s2 - s1 * s1 / bn for bn, _, s1, s2 in blocks] + [bn * (bm + s1 / bn - mean) ** 2 for bn, bm, s1, _ in blocks])
    return mean, math.sqrt(m2 / n)


def fixed(blocks) -> tuple[float, float]:  # noqa: ANN001
    """Σx and Σx² as integers at the scale 2^-1074 (squares at 2^-2148), exactly."""
    scale = 1074
    n, t1, t2 = 0, 0, 0
    for bn, bm, s1, s2 in blocks:
        m = int(Fraction(bm) * (1 << scale))
        a = int(Fraction(s1) * (1 << scale))
        b = int(Fraction(s2) * (1 << (2 * scale)))
        # Σx = n·m + Σd;  Σx² = Σd² + 2m·Σd + n·m²  (d = x − m)
        t1 += bn * m + a
        t2 += b + 2 * m * a + bn * m * m
        n += bn
    mean = Fraction(t1, n << scale)
    m2 = Fraction(t2 * n - t1 * t1, n << (2 * scale))
    from normcli.scaling.exact import sqrt_correctly_rounded

    return float(mean), sqrt_correctly_rounded(m2 / n)


def dyadic(blocks) -> tuple[float, float]:  # noqa: ANN001
    from normcli.scaling.exact import Moments

    total = Moments.empty()
    for bn, bm, s1, s2 in blocks:
        total = total.combine(Moments.of_block(bn, bm, s1, s2))
    rounded = total.rounded(0)
    return float(rounded.mean), rounded.std


CANDIDATES = {"chan": chan, "fsum": fsum, "fixed": fixed, "dyadic": dyadic}


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(7)
    columns = {
        "1e12+N(0,1)": 1e12 + rng.standard_normal(args.rows),
        "N(5,1e-3)": 5 + 1e-3 * rng.standard_normal(args.rows),
        "lognormal": rng.lognormal(size=args.rows),
    }
    print(f"{args.rows:,} rows, {math.ceil(args.rows / BLOCK_ROWS)} blocks of {BLOCK_ROWS:,}; {args.repeats} repeats, medians\n")
    print(f"{'column':14s} {'candidate':9s} {'µs/block':>9s} {'std rel. error':>15s} {'order-independent':>18s}")
    for name, x in columns.items():
        blocks = block_sums(x)
        exact = math.sqrt(exact_std(x))  # float sqrt of the exact variance: within an ulp
        shuffled = blocks[:]
        random.Random(1).shuffle(shuffled)
        for label, combine in CANDIDATES.items():
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                result = combine(blocks)
                times.append((time.perf_counter() - t) / len(blocks) * 1e6)
            same = combine(shuffled) == result
            error = abs(result[1] - exact) / exact
            print(f"{name:14s} {label:9s} {statistics.median(times):9.1f} {error:15.2e} {'yes' if same else 'NO':>18s}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
