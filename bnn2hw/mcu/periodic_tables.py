# SPDX-License-Identifier: MIT
"""Parameters, tables and bit-exact numpy models of the fixed-point periodic activations
in firmware/src/bnn_periodic.c (M-BiPer: lookup table, Taylor series eq. 10, fixed-point
scaling eq. 11).

Each ``*_eval`` function runs the same integer arithmetic as the C kernel of the same
name; ``max_abs_error`` compares it with the float function ``f(w0 * x)``.

Functions (M-BiPer sec. 4.1; the smooth members, the ones ``PeriodicActivation`` offers): the
lookup table holds one period of any of them (``TABLE_FUNCTIONS``), so ``lut`` serves all four.
The Taylor series (eq. 10) and the fixed-point scaling (eq. 11) are sine's, so ``taylor`` and
``fixed`` serve ``sine`` only (:func:`check_method`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bnn2hw.errors import Bnn2hwError

Q29_ONE = 1 << 29
Q29_INV6 = 89478485  # round(2^29 / 6)
Q29_INV20 = 26843546  # round(2^29 / 20)
Q32_TWO_PI = 3373259426  # round(2 pi 2^29)


@dataclass(frozen=True)
class PeriodicParams:
    """Mirror of bnn_periodic_params_t (the table is passed separately)."""

    phase_mul: int
    phase_shift: int
    out_frac: int
    table_bits: int = 8
    lin_a: int = 0
    lin_n: int = 15


def phase_params(w0: float, in_frac: int) -> tuple[int, int]:
    """(phase_mul, phase_shift) with phase = (x * mul) >> shift ~ w0 x / (2 pi) * 2^32
    for x in Q(in_frac); the largest shift <= 32 that keeps |mul| < 2^31."""
    if w0 == 0:
        raise Bnn2hwError("periodic activation: w0 must be non-zero")
    for shift in range(32, -1, -1):
        mul = round(w0 / (2 * math.pi) * 2.0 ** (32 - in_frac + shift))
        if abs(mul) < 2**31:
            return int(mul), shift
    raise Bnn2hwError(f"periodic activation: w0={w0} with in_frac={in_frac} is out of range")


def linear_params(w0: float, in_frac: int, out_frac: int, n: int = 15) -> tuple[int, int]:
    """(a, n) of eq. 11, y = a x / 2^n with a = round(w0 2^(n + out_frac - in_frac))."""
    a = round(w0 * 2.0 ** (n + out_frac - in_frac))
    if abs(a) >= 2**31:
        raise Bnn2hwError(f"periodic activation: linear scale a={a} does not fit int32; lower n")
    return int(a), n


def make_params(w0: float, in_frac: int, out_frac: int, table_bits: int = 8, lin_n: int = 15) -> PeriodicParams:
    """All parameters of bnn_periodic_params_t for one activation."""
    if not 0 <= out_frac <= 29:
        raise Bnn2hwError(f"periodic activation: out_frac={out_frac} must be in 0..29")
    if not 1 <= table_bits <= 16:
        raise Bnn2hwError(f"periodic activation: table_bits={table_bits} must be in 1..16")
    mul, shift = phase_params(w0, in_frac)
    a, n = linear_params(w0, in_frac, out_frac, lin_n)
    return PeriodicParams(mul, shift, out_frac, table_bits, a, n)


def _triangle(t: np.ndarray) -> np.ndarray:
    """(2/pi) asin(sin t): the same piecewise-linear wave as ``surrogates.triangle_wave``."""
    u = np.mod(t - np.pi / 2 + np.pi, 2 * np.pi) - np.pi
    return 1 - (2 / np.pi) * np.abs(u)


TABLE_FUNCTIONS = {
    "sine": np.sin,
    "cosine": np.cos,
    "triangle": _triangle,
    "arctan-sine": lambda t: np.arctan(np.sin(t)),
}
"""f(t) in float64 for t in radians; the same functions as ``layers.PERIODIC_FUNCTIONS``."""


def check_method(func: str, method: str) -> None:
    """Refuse an approximation that does not exist for ``func`` (with the reason)."""
    if func not in TABLE_FUNCTIONS:
        raise Bnn2hwError(f"periodic function {func!r} has no fixed-point form; "
                          f"valid: {', '.join(TABLE_FUNCTIONS)}")
    if method not in ("lut", "taylor", "linear"):
        raise Bnn2hwError(f"unknown periodic method {method!r}; use lut, taylor or linear")
    if method != "lut" and func != "sine":
        name = {"linear": "fixed"}.get(method, method)
        raise Bnn2hwError(f"periodic function {func!r}: approximation {name!r} exists for sine only "
                          "(Taylor series M-BiPer eq. 10, scaling eq. 11); use --act-approx lut")


def table(func: str, table_bits: int, out_frac: int) -> np.ndarray:
    """table[i] = round(f(2 pi i / 2^table_bits) * 2^out_frac), int32, one period of ``func``."""
    check_method(func, "lut")
    i = np.arange(1 << table_bits, dtype=np.float64)
    return np.round(TABLE_FUNCTIONS[func](2 * np.pi * i / (1 << table_bits))
                    * (1 << out_frac)).astype(np.int32)


def _phase(p: PeriodicParams, x: np.ndarray) -> np.ndarray:
    prod = np.asarray(x, dtype=np.int64) * np.int64(p.phase_mul)
    return (prod >> np.int64(p.phase_shift)) & np.int64(0xFFFFFFFF)


def lut_eval(p: PeriodicParams, table: np.ndarray, x: np.ndarray) -> np.ndarray:
    drop = 32 - p.table_bits
    idx = ((_phase(p, x) + (1 << (drop - 1))) >> drop) & ((1 << p.table_bits) - 1)
    return np.asarray(table, dtype=np.int32)[idx]


def taylor_eval(p: PeriodicParams, x: np.ndarray) -> np.ndarray:
    t = _phase(p, x)
    t = np.where(t >= 2**31, t - 2**32, t)
    t = np.where(t > 2**30, 2**31 - t, np.where(t < -(2**30), -(2**31) - t, t))
    r = (t * Q32_TWO_PI) >> 32
    r2 = (r * r) >> 29
    u = Q29_ONE - ((r2 * Q29_INV20) >> 29)
    u = (u * r2) >> 29
    u = Q29_ONE - ((u * Q29_INV6) >> 29)
    y = (r * u) >> 29
    s = 29 - p.out_frac
    if s:
        y = (y + (1 << (s - 1))) >> s
    return y.astype(np.int32)


def linear_eval(p: PeriodicParams, x: np.ndarray) -> np.ndarray:
    v = (np.int64(p.lin_a) * np.asarray(x, dtype=np.int64)) >> np.int64(p.lin_n)
    one = 1 << p.out_frac
    return np.clip(v, -one, one).astype(np.int32)


def evaluate(method: str, p: PeriodicParams, x: np.ndarray, func: str = "sine") -> np.ndarray:
    """Integer output (Q(out_frac)) of method 'lut', 'taylor' or 'linear' for ``func``."""
    check_method(func, method)
    if method == "lut":
        return lut_eval(p, table(func, p.table_bits, p.out_frac), x)
    if method == "taylor":
        return taylor_eval(p, x)
    return linear_eval(p, x)


def max_abs_error(
    method: str,
    w0: float,
    in_frac: int,
    out_frac: int,
    x_min: float,
    x_max: float,
    table_bits: int = 8,
    lin_n: int = 15,
    max_points: int = 1 << 18,
    func: str = "sine",
) -> float:
    """max |y/2^out_frac - f(w0 x)| over inputs x in [x_min, x_max] (real units),
    every representable Q(in_frac) input if there are at most max_points, else an even grid."""
    p = make_params(w0, in_frac, out_frac, table_bits, lin_n)
    lo, hi = math.ceil(x_min * 2**in_frac), math.floor(x_max * 2**in_frac)
    if hi < lo:
        raise Bnn2hwError(f"empty input range [{x_min}, {x_max}]")
    if hi - lo + 1 <= max_points:
        xq = np.arange(lo, hi + 1, dtype=np.int64)
    else:
        xq = np.unique(np.linspace(lo, hi, max_points).round().astype(np.int64))
    y = evaluate(method, p, xq, func).astype(np.float64) / 2**out_frac
    ref = TABLE_FUNCTIONS[func](w0 * xq.astype(np.float64) / 2**in_frac)
    return float(np.max(np.abs(y - ref)))
