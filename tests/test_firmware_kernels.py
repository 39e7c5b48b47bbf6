# SPDX-License-Identifier: MIT
"""Firmware kernels (firmware/src/bnn_*.c): every optimized variant equals its _ref loop
nest and a numpy reference, bit-exactly, on awkward sizes (1, 31, 32, 33, 63, 65, 255, 257,
1000 inputs / outputs / channels, and every row length class of the Thumb-2 dense kernel:
nw % 3 tail words x group count 0, 1, even, odd); packed outputs have zero padding bits.

One firmware image per target runs every case: the C driver (firmware/tests/kernel_driver.c)
reads a batch of cases and writes all outputs, so each target costs one build and one run
(Cortex-M0: a few runs, its 16 KiB RAM holds a smaller batch).  Targets: host gcc under
-Wall -Wextra -Werror -fsanitize=address,undefined for every popcount strategy, and QEMU for
Cortex-M0, M3, M4, M7, M33 and M55 (Thumb-2 assembly paths on M3 and up)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from bnn2hw.mcu import periodic_tables as pt
from bnn2hw.mcu.targets import get_target

FW = Path(__file__).resolve().parents[1] / "firmware"
STRATEGIES = {"builtin": 1, "swar": 2, "table": 3, "multi": 4}
ARM_TARGETS = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
BUF_WORDS = {"cortex-m0": 1024, "cortex-m55": 1 << 15}  # others: 1 << 17 (driver buffers in RAM)


# ---------------------------------------------------------------- numpy references


def pack_bits(pm1: np.ndarray) -> np.ndarray:
    """[..., n] in {-1,+1} -> uint32 [..., words], bit 1 = +1, padding 0."""
    n = pm1.shape[-1]
    words = (n + 31) // 32
    bits = np.zeros(pm1.shape[:-1] + (words * 32,), dtype=np.uint8)
    bits[..., :n] = pm1 > 0
    b = np.packbits(bits.reshape(pm1.shape[:-1] + (words, 4, 8)), axis=-1, bitorder="little")
    return b.reshape(pm1.shape[:-1] + (words * 4,)).view("<u4").astype(np.uint32)


def pad_words(a: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(a).view(np.uint8).ravel()
    return np.concatenate([b, np.zeros((-b.size) % 4, np.uint8)]).view(np.uint32)


def check_padding(packed: np.ndarray, n: int, what: str) -> None:
    if n % 32:
        assert np.all(packed.reshape(-1, (n + 31) // 32)[:, -1] >> np.uint32(n % 32) == 0), f"{what}: padding bits set"


def split(out: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    assert out.size == sum(sizes)
    return np.split(out, np.cumsum(sizes)[:-1])


def rand_pm1(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int64), size=shape)



def conv_reference(x, w, stride, pad):
    """x [H, W, C] (+-1 or uint8), w [O, KH, KW, C] +-1; zero padding contributes 0."""
    h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    xp = np.zeros((h + 2 * pad[0], wd + 2 * pad[1], c), dtype=np.int64)
    xp[pad[0] : pad[0] + h, pad[1] : pad[1] + wd] = x
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    acc = np.zeros((oh, ow, o), dtype=np.int64)
    for y in range(oh):
        for xx in range(ow):
            win = xp[y * stride[0] : y * stride[0] + kh, xx * stride[1] : xx * stride[1] + kw]
            acc[y, xx] = np.tensordot(w, win, axes=([1, 2, 3], [0, 1, 2]))
    return acc


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    words: np.ndarray  # the case as uint32 words (kind first)
    out_words: int  # words the driver writes for it
    check: Callable[[np.ndarray, str], None]  # asserts on the driver's output (and the target name)


CASES: dict[str, Case] = {}


def add(name: str, arrays: list[np.ndarray], out_words: int, check) -> None:
    words = np.concatenate([np.ascontiguousarray(w).view(np.uint32).ravel() for w in arrays]).astype(np.uint32)
    assert name not in CASES
    CASES[name] = Case(words, out_words, check)


def dense_case(n_in: int, n_out: int, extreme: bool = False, saturate: bool = False) -> None:
    seed = 1000 + n_in * 100 + n_out + (7 if extreme else 0) + (11 if saturate else 0)
    rng = np.random.default_rng(seed)
    x, w = rand_pm1(rng, n_in), rand_pm1(rng, (n_out, n_in))
    if extreme:  # all agree (row 1) / all disagree (row 0)
        w[0], w[-1] = -x, x
    if saturate:  # every row disagrees everywhere: every SWAR field and both rows of a pass at their maximum
        w[:] = -x
    acc = w @ x
    p = (n_in - acc) // 2
    mm = p + rng.integers(-1, 2, size=n_out)  # ties (p == M) included
    mm[0] = -1 if not extreme else p[0]
    if n_out > 2:
        mm[1] = n_in
    mm = np.clip(mm, -1, n_in).astype(np.int32)
    ow = (n_out + 31) // 32

    def check(out, target):
        bref, bopt, aref, aopt, pop1, bits3, pop2 = split(out, [ow, ow, n_out, n_out + 1, n_out, ow, n_out + 1])
        assert pop2[-1] == 0x5A5A5A5A, f"mode-2 popcount rows wrote past {n_out} outputs (seed {seed}, {target})"
        assert aopt[-1] == 0x5A5A5A5A, f"dense acc opt wrote past its {n_out} outputs (seed {seed}, {target})"
        aopt = aopt[:-1]
        expect_bits = pack_bits(np.where(p <= mm, 1, -1))
        assert np.array_equal(bref, expect_bits), f"dense bits ref vs numpy (seed {seed})"
        assert np.array_equal(bopt, bref), f"dense bits opt vs ref (seed {seed}, {target})"
        assert np.array_equal(aref.view(np.int32), acc), f"dense acc ref (seed {seed})"
        assert np.array_equal(aopt.view(np.int32), acc), f"dense acc opt (seed {seed}, {target})"
        assert np.array_equal(pop1.view(np.int32), p), f"mode-1 popcount rows (seed {seed}, {target})"
        assert np.array_equal(bits3, expect_bits), f"mode-3 bits rows (seed {seed}, {target})"
        assert np.array_equal(pop2[:-1].view(np.int32), p), f"mode-2 popcount rows (seed {seed}, {target})"
        check_padding(bopt, n_out, f"dense (seed {seed})")

    add(f"dense-{n_in}x{n_out}{'-extreme' if extreme else ''}{'-saturate' if saturate else ''}",
        [np.array([1, n_in, n_out], np.uint32), pack_bits(x), pack_bits(w), mm], 3 * ow + 4 * n_out + 2, check)


# every row length 1..12 words and beyond (tail nw % 3 x group-count class), awkward widths
DENSE_WIDTHS = [1, 31, 32, 33, 63, 64, 65, 95, 96, 97, 128, 129, 160, 161, 192, 224, 255, 256, 257, 288, 320,
                352, 384, 1000]
for _n in DENSE_WIDTHS:
    for _o in (1, 33):
        dense_case(_n, _o)
for _n, _o in [(33, 1000), (257, 257), (1000, 65), (65, 31), (255, 63), (96, 32)]:
    dense_case(_n, _o)
for _n in (512, 257, 1000, 96, 4):
    dense_case(_n, 45, extreme=True)
# the Helium rows (bnn_dense_mve.c) take 4 rows per input vector, then 1..3 one by one, and
# tail-predicate the last 1..3 words: output counts of every residue mod 4 (per 32-row call),
# row lengths of every residue mod 4 words, 127/128/129 inputs and outputs
for _n, _o in [(127, 127), (128, 128), (129, 129), (127, 2), (129, 3), (1, 130), (31, 6), (1000, 127)]:
    dense_case(_n, _o)
# the Helium lanes path (bnn_dense_mve.c, rows in vector lanes, 8 rows per group): row lengths
# nw <= 31 words (MVE_LANE_WORDS), whole groups only (8, 16, 24, 32 rows
# per 32-row call) and groups plus a 4-row-core tail of 1..7 rows (9, 15, 31, 33, 47 outputs); the
# byte accumulators at their maximum (nw = 31, every input bit disagreeing: 248 per byte; nw = 7: a
# lane sums to 224, the limit of the one-multiply fold)
MVE_LANE_WORDS = list(range(1, 32))
for _k, _nw in enumerate(MVE_LANE_WORDS):  # awkward input counts (32 nw - 0..4), 8..33 outputs
    dense_case(32 * _nw - _nw % 5, [8, 9, 16, 15, 24, 31, 32, 47][_k % 8] + (_k >= 8))
for _n, _o in [(992, 8), (992, 13), (961, 16), (288, 24), (224, 16), (200, 9)]:
    dense_case(_n, _o, saturate=True)
# two rows per pass (Thumb-2 DSP) and an odd row count (row 0 run twice): 2 and 3 rows, saturated
for _n in (32, 64, 96, 128, 160, 1000):
    for _o in (2, 3):
        dense_case(_n, _o, saturate=True)


def first_case(n_in: int, kind: int, n_out: int = 33, fill=None) -> None:
    seed = 2000 + kind * 1000 + n_in + 17 * n_out + (0 if fill is None else 5 + fill)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=n_in).astype(np.uint8) if fill is None else np.full(n_in, fill, np.uint8)
    x[0] = 255
    if kind == 2:
        w = rand_pm1(rng, (n_out, n_in))
        w[0] = 1
        wdata = pack_bits(w)
    else:
        w = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
        wdata = pad_words(w)
    acc = w.astype(np.int64) @ x.astype(np.int64)
    thr = (acc + rng.integers(-1, 2, size=n_out)).astype(np.int32)
    ow = (n_out + 31) // 32

    def check(out, target):
        aref, aopt, bref, bopt = split(out, [n_out, n_out, ow, ow])
        assert np.array_equal(aref.view(np.int32), acc), f"first kind {kind} ref (seed {seed})"
        assert np.array_equal(aopt.view(np.int32), acc), f"first kind {kind} opt (seed {seed}, {target})"
        expect = pack_bits(np.where(acc >= thr, 1, -1))
        assert np.array_equal(bref, expect) and np.array_equal(bopt, expect), f"first bits (seed {seed}, {target})"
        check_padding(bopt, n_out, f"first (seed {seed})")

    add(f"first{kind}-{n_in}x{n_out}-{fill}", [np.array([kind, n_in, n_out], np.uint32), pad_words(x), wdata, thr],
        2 * n_out + 2 * ow, check)


for _n in [1, 31, 32, 33, 63, 64, 65, 256, 257]:
    first_case(_n, 2)
    first_case(_n, 3)
# the byte-table path of bnn_first_u8_bin_*: digits shape, two-word fast path, inputs past the
# 64 tabulated ones, extreme inputs
for _n, _o, _f in [(64, 256, None), (64, 70, 255), (40, 31, 0), (96, 40, None), (8, 3, 255), (1000, 5, None)]:
    first_case(_n, 2, _o, _f)


def last_case(n_in: int) -> None:
    n_out = 5
    seed = 5000 + n_in
    rng = np.random.default_rng(seed)
    x = rand_pm1(rng, n_in)
    w = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
    acc = w.astype(np.int64) @ x

    def check(out, target):
        aref, aopt = split(out, [n_out, n_out])
        assert np.array_equal(aref.view(np.int32), acc), f"last ref (seed {seed})"
        assert np.array_equal(aopt.view(np.int32), acc), f"last opt (seed {seed}, {target})"

    add(f"last-{n_in}", [np.array([4, n_in, n_out], np.uint32), pack_bits(x), pad_words(w)], 2 * n_out, check)


for _n in [1, 31, 32, 33, 63, 64, 65, 256, 257, 1000]:
    last_case(_n)


def conv_case(cin, cout, k, stride, pad, u8, h=5, wd=4, fill=None) -> None:
    """fill: every input +1 or -1 (bits input only) instead of random."""
    seed = 6000 + cin * 10 + cout + 3 * k + 5 * stride + 11 * pad + (7 if u8 else 0) + h * 1000 + wd * 100
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(h, wd, cin)).astype(np.uint8) if u8 else rand_pm1(rng, (h, wd, cin))
    if fill is not None:
        x = np.full((h, wd, cin), fill, np.int64)
    w = rand_pm1(rng, (cout, k, k, cin))
    acc = conv_reference(x, w, (stride, stride), (pad, pad))
    oh, ow = acc.shape[:2]
    accm = None  # bits input: the same conv with -1 padding (bnn_conv_bits_m1)
    if not u8:
        xm = -np.ones((h + 2 * pad, wd + 2 * pad, cin), np.int64)
        xm[pad:pad + h, pad:pad + wd] = x
        accm = conv_reference(xm, w, (stride, stride), (0, 0))
    # thresholds near an interior and a border accumulator: ties on both kinds of position (and
    # at -1 padding's border)
    thr = (acc[oh // 2, ow // 2] + rng.integers(-1, 2, size=cout)).astype(np.int64)
    thr[::3] = acc[0, 0, ::3]
    if accm is not None:
        thr[2::3] = accm[-1, -1, 2::3]
    thr[0] = np.iinfo(np.int32).min  # always +1
    if cout > 1:
        thr[1] = np.iinfo(np.int32).max  # never +1
    thr = thr.astype(np.int32)
    params = np.array([6 if u8 else 5, h, wd, cin, oh, ow, cout, k, k, stride, stride, pad, pad], np.uint32)
    xdata = pad_words(x) if u8 else pack_bits(x)
    nb = oh * ow * ((cout + 31) // 32)

    nm = 0 if u8 else 2 * nb

    def check(out, target):
        bref, bopt, aref, aopt, mref, mopt = split(out, [nb, nb, acc.size, acc.size, nm // 2, nm // 2])
        assert np.array_equal(aref.view(np.int32), acc.ravel()), f"conv acc ref (seed {seed})"
        assert np.array_equal(aopt.view(np.int32), acc.ravel()), f"conv acc opt (seed {seed}, {target})"
        expect = pack_bits(np.where(acc >= thr, 1, -1)).ravel()
        assert np.array_equal(bref, expect), f"conv bits ref (seed {seed})"
        assert np.array_equal(bopt, expect), f"conv bits opt (seed {seed}, {target})"
        check_padding(bopt, cout, f"conv (seed {seed})")
        if accm is not None:
            expect = pack_bits(np.where(accm >= thr, 1, -1)).ravel()
            assert np.array_equal(mref, expect), f"conv bits pad -1 ref (seed {seed})"
            assert np.array_equal(mopt, expect), f"conv bits pad -1 opt (seed {seed}, {target})"
            check_padding(mopt, cout, f"conv pad -1 (seed {seed})")

    add(f"conv{'u8' if u8 else ''}-{h}x{wd}x{cin}-{cout}-k{k}s{stride}p{pad}" + ("" if fill is None else f"-fill{fill}"),
        [params, xdata, pack_bits(w), thr],
        2 * nb + 2 * acc.size + nm, check)


CONV_SHAPES = [(1, 1, 3, 1, 1), (31, 3, 3, 1, 1), (33, 37, 3, 2, 1), (64, 5, 2, 2, 0), (65, 33, 3, 1, 2),
               (32, 64, 3, 1, 0), (1, 33, 3, 1, 0), (3, 5, 2, 1, 1), (32, 33, 2, 2, 1), (256, 3, 1, 1, 0),
               (16, 16, 3, 1, 1), (16, 31, 3, 2, 1), (5, 65, 3, 1, 1), (28, 32, 3, 2, 0), (63, 2, 3, 1, 1),
               (255, 2, 3, 2, 1), (257, 2, 3, 1, 1), (1000, 2, 1, 1, 0), (8, 1000, 3, 1, 1), (1, 257, 3, 2, 1)]
for _sh in CONV_SHAPES:
    conv_case(*_sh, u8=False)
    conv_case(*_sh, u8=True)
conv_case(16, 33, 3, 1, 1, False, h=1, wd=1)  # the window is all padding but the centre
conv_case(16, 33, 3, 1, 2, False, h=2, wd=7)  # windows clipped on both sides
conv_case(32, 40, 3, 1, 1, False, h=9, wd=9)  # every border class, 2 chunks of channels
# interior runs of several positions between the border classes: dense 3x3x16 patches (two taps a
# word), the dense bit-stream packing (cin 5), uint8 byte spreading (cin 1..4), the bit-stream masks
# (cin 5, nb 12 > 8: the generic dot loop), several mask chunks, stride 2, pad 2
conv_case(16, 16, 3, 1, 1, False, h=9, wd=9)
conv_case(16, 40, 3, 2, 1, False, h=9, wd=8)
conv_case(5, 33, 3, 1, 2, False, h=8, wd=9)
conv_case(3, 16, 3, 1, 1, True, h=9, wd=9)
conv_case(4, 33, 3, 2, 1, True, h=8, wd=7)
conv_case(2, 5, 3, 1, 2, True, h=6, wd=5)
conv_case(1, 65, 3, 2, 0, True, h=7, wd=9)
conv_case(5, 65, 3, 1, 1, True, h=7, wd=6)
# the Helium lanes path through the conv kernels (bits and popcount mode, 9-, 18-, 27- and dense
# 5-word rows, channel counts of whole 8-row groups and with 1..7 rows left), every border class
# (pad 1 and 2 on a 9x9 map, stride 1 and 2)
conv_case(32, 8, 3, 1, 1, False, h=9, wd=9)
conv_case(32, 47, 3, 2, 1, False, h=9, wd=9)
conv_case(33, 24, 3, 1, 2, False, h=9, wd=8)
conv_case(64, 17, 3, 2, 2, False, h=9, wd=9)
conv_case(65, 31, 3, 1, 1, False, h=7, wd=9)
conv_case(16, 40, 3, 1, 2, False, h=9, wd=9)
conv_case(40, 16, 3, 1, 1, False, h=8, wd=8)
conv_case(3, 31, 5, 1, 2, True, h=9, wd=8)
# issue 11: taps packed densely at cin % 32 != 0 and cin > 32 (multi-word taps as a bit stream,
# bnn__conv_row_words: 3x3 cin 33 -> 10 words instead of 18, 40 -> 12, 48 -> 14, 65 -> 19 instead
# of 27; 63 and 104 stay word-aligned (no saving / over the stack buffer)): interior runs, every
# border class (pad 1, 2), stride 1 and 2, two channel chunks, the tap stream crossing word
# boundaries at every offset, bits, -1 padding and accumulator modes
conv_case(33, 40, 3, 1, 1, False, h=9, wd=9)
conv_case(40, 33, 3, 2, 1, False, h=9, wd=8)
conv_case(48, 37, 3, 1, 1, False, h=8, wd=9)
conv_case(48, 5, 3, 2, 2, False, h=9, wd=9)
conv_case(63, 33, 3, 1, 2, False, h=7, wd=8)
conv_case(65, 40, 3, 2, 1, False, h=9, wd=9)
conv_case(104, 9, 3, 1, 1, False, h=6, wd=7)
conv_case(33, 3, 2, 1, 0, False, h=5, wd=6)
conv_case(47, 3, 5, 1, 2, False, h=7, wd=7)
# issue 11, the Helium column-image conv (bnn_conv.c conv_bits_mve: row-dense taps, kw cw - kw full
# words then the kw tails as a bit stream): 3x3 at every tail class of the cw = 2 packer (tail 1,
# 8, 10 -> one word; 12, 15 -> two words, c crossing; 16, 20 -> b crossing; 27, 31 -> three
# words), cw = 3 (cin 65, 95), cin 1 and 31 (one word per tap), cout 1, 31, 33 and 65 (a 1-row
# chunk, 4-row-core tails, two channel groups), stride 1 and 2, pad 0, 1, 2 and -1 (each case
# also runs bnn_conv_bits_m1), non-square maps, 2x2, 1x3 and 5x5 kernels (generic packer); ties on
# interior and border positions (conv_case thresholds)
for _sh in [(33, 33, 3, 2, 1, 9, 9), (40, 40, 3, 1, 1, 7, 7), (42, 1, 3, 1, 1, 6, 5), (44, 31, 3, 2, 0, 8, 7),
            (47, 33, 3, 1, 2, 5, 6), (48, 65, 3, 1, 1, 6, 6), (52, 9, 3, 2, 1, 7, 9), (59, 17, 3, 1, 0, 5, 5),
            (63, 8, 3, 2, 2, 6, 7), (65, 33, 3, 1, 1, 5, 5), (95, 7, 3, 2, 1, 6, 5), (1, 31, 3, 1, 1, 6, 5),
            (31, 33, 3, 2, 1, 7, 6), (40, 3, 2, 2, 1, 7, 7), (33, 5, 5, 1, 2, 7, 6), (36, 6, 1, 1, 0, 4, 5)]:
    conv_case(*_sh[:5], False, h=_sh[5], wd=_sh[6])
# issue 11, 3x3 convs at cin 16 on DSP cores (conv16_rows_bits in bnn_conv.c: two weight rows
# share the half-filled fifth patch word): even / odd / single / two-chunk channel counts (an odd
# count's last pair record repeats its row), stride 1 and 2, pad 0 and 1 (and -1 padding), ties,
# all-ones and all-zeros (-1) inputs; host-conv16 runs the portable twin of the record kernel
conv_case(16, 16, 3, 1, 1, False, h=8, wd=9)
conv_case(16, 15, 3, 2, 0, False, h=9, wd=8)
conv_case(16, 17, 3, 1, 0, False, h=7, wd=6)
conv_case(16, 1, 3, 2, 1, False, h=6, wd=7)
conv_case(16, 33, 3, 1, 1, False, h=5, wd=6)
conv_case(16, 16, 3, 1, 1, False, h=5, wd=5, fill=1)
conv_case(16, 15, 3, 2, 1, False, h=5, wd=5, fill=-1)
# 3x3 convs at cin 24 (pack_taps_3x3x24: four taps in three words, weight rows and patches, the
# bits, accumulator and popcount-row paths): cout 24 / 1 / 33, stride 1 and 2, pad 0 / 1 / 2
conv_case(24, 24, 3, 1, 1, False, h=6, wd=7)
conv_case(24, 1, 3, 2, 0, False, h=7, wd=5)
conv_case(24, 33, 3, 2, 2, False, h=5, wd=6)
conv_case(24, 5, 3, 1, 1, False, h=4, wd=4, fill=1)
# small enough for the Cortex-M0 driver buffers (1024 words; ARMv6-M keeps the padded layout at
# these cin, BNN_CONV_DENSE_WORDS 160 there, so these check it against the dense one elsewhere)
conv_case(40, 3, 3, 1, 1, False, h=5, wd=5)
conv_case(33, 5, 3, 2, 2, False, h=6, wd=6)
conv_case(65, 2, 3, 1, 1, False, h=4, wd=5)
# the RGB stem's row path (bnn__conv_u8_row: K <= 28, cout <= 32, patches of interior 3x3x3 windows
# built from three 9-byte rows): odd / single / full-word channel counts, stride 2, no padding
conv_case(3, 31, 3, 2, 1, True, h=9, wd=8)
conv_case(3, 32, 3, 1, 0, True, h=6, wd=7)
conv_case(3, 1, 3, 1, 1, True, h=5, wd=6)
conv_case(3, 33, 3, 1, 1, True, h=4, wd=5)
conv_case(2, 7, 3, 2, 1, True, h=7, wd=6)


def conv_rows_case(cin, cout, k, stride, pad, h, wd) -> None:
    """bnn_conv_acc_rows, one output row per call as bnn_conv_requant runs it: -1 padding (a padded
    tap is the activation -1, FINN's FMPadding) per row and all rows at once, zero padding per row."""
    seed = 7000 + cin * 10 + cout + 3 * k + 5 * stride + 11 * pad + h * 1000 + wd * 100
    rng = np.random.default_rng(seed)
    x = rand_pm1(rng, (h, wd, cin))
    w = rand_pm1(rng, (cout, k, k, cin))
    acc0 = conv_reference(x, w, (stride, stride), (pad, pad))
    xm = -np.ones((h + 2 * pad, wd + 2 * pad, cin), np.int64)  # the map padded with -1
    xm[pad:pad + h, pad:pad + wd] = x
    accm = conv_reference(xm, w, (stride, stride), (0, 0))
    oh, ow = acc0.shape[:2]
    params = np.array([10, h, wd, cin, oh, ow, cout, k, k, stride, stride, pad, pad], np.uint32)

    def check(out, target):
        rows, whole, zero, pop = split(out, [accm.size, accm.size, acc0.size, accm.size])
        assert np.array_equal(rows.view(np.int32), accm.ravel()), f"conv rows pad -1 (seed {seed}, {target})"
        assert np.array_equal(whole.view(np.int32), accm.ravel()), f"conv all rows pad -1 (seed {seed}, {target})"
        assert np.array_equal(zero.view(np.int32), acc0.ravel()), f"conv rows pad 0 (seed {seed}, {target})"
        popcounts = (k * k * cin - accm.ravel()) // 2  # bnn_conv_pop_rows: acc = K - 2 pop
        assert np.array_equal(pop.view(np.int32), popcounts), f"conv popcount rows pad -1 (seed {seed}, {target})"

    add(f"convrows-{h}x{wd}x{cin}-{cout}-k{k}s{stride}p{pad}", [params, pack_bits(x), pack_bits(w)],
        3 * accm.size + acc0.size, check)


for _sh in [(16, 16, 3, 1, 1, 9, 9), (16, 32, 3, 2, 1, 9, 8), (1, 31, 3, 1, 1, 5, 6), (31, 33, 3, 2, 2, 7, 5),
            (32, 65, 3, 1, 1, 6, 7), (33, 3, 3, 2, 1, 5, 5), (63, 64, 3, 1, 1, 4, 4), (65, 1, 3, 1, 2, 3, 4),
            (5, 37, 3, 2, 0, 7, 7), (32, 64, 1, 2, 0, 8, 8), (16, 33, 3, 1, 1, 1, 1),
            # issue 11: dense multi-word taps in the row / popcount-mode paths (cin 40, 48, 65)
            (40, 33, 3, 1, 1, 6, 6), (48, 7, 3, 2, 2, 7, 7), (65, 5, 3, 1, 1, 5, 5),
            # 3x3 cin 24: pack_taps_3x3x24 in the popcount-mode paths
            (24, 24, 3, 1, 1, 6, 6), (24, 33, 3, 2, 1, 7, 5)]:
    conv_rows_case(*_sh)


def maxpool_case(c, k, stride) -> None:
    seed = 8000 + c * 10 + k + stride
    rng = np.random.default_rng(seed)
    h, wd = 7, 6
    x = rand_pm1(rng, (h, wd, c))
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    ref = np.array([[x[y * stride:y * stride + k, xx * stride:xx * stride + k].max(axis=(0, 1))
                     for xx in range(ow)] for y in range(oh)])
    n = oh * ow * ((c + 31) // 32)

    def check(out, target):
        r, o = split(out, [n, n])
        expect = pack_bits(ref).ravel()
        assert np.array_equal(r, expect) and np.array_equal(o, expect), f"maxpool (seed {seed}, {target})"
        check_padding(o, c, f"maxpool (seed {seed})")

    add(f"maxpool-{c}-k{k}s{stride}", [np.array([7, h, wd, c, oh, ow, k, k, stride, stride], np.uint32),
                                       pack_bits(x)], 2 * n, check)


for _c in [1, 31, 33, 64, 65, 257]:
    for _k, _s in [(2, 2), (3, 2), (2, 1)]:
        maxpool_case(_c, _k, _s)


def threshold_case(channels) -> None:
    seed = 9000 + channels
    rng = np.random.default_rng(seed)
    pos = 3
    thr = rng.integers(-50, 50, size=channels).astype(np.int32)
    thr[0] = np.iinfo(np.int32).min
    acc = (thr[None, :] + rng.integers(-1, 2, size=(pos, channels))).astype(np.int32)  # ties
    acc[0, 0] = np.iinfo(np.int32).max
    direction = rng.choice(np.array([-1, 1], np.int8), size=channels)
    expect_pm = np.where(direction >= 0, acc.astype(np.int64) >= thr, acc.astype(np.int64) <= thr)
    n = pos * ((channels + 31) // 32)

    def check(out, target):
        r, o = split(out, [n, n])
        expect = pack_bits(np.where(expect_pm, 1, -1)).ravel()
        assert np.array_equal(r, expect) and np.array_equal(o, expect), f"threshold (seed {seed}, {target})"
        check_padding(o, channels, f"threshold (seed {seed})")

    add(f"threshold-{channels}", [np.array([8, pos, channels], np.uint32), acc, thr, pad_words(direction)], 2 * n,
        check)


for _c in [1, 31, 32, 33, 65, 257, 1000]:
    threshold_case(_c)


def periodic_case(w0, in_frac, out_frac, table_bits) -> None:
    seed = int(abs(w0) * 10) + in_frac
    rng = np.random.default_rng(seed)
    p = pt.make_params(w0, in_frac, out_frac, table_bits)
    x = rng.integers(-(2**31), 2**31, size=300, dtype=np.int64)
    x[:100] = rng.integers(-(4 << in_frac), 4 << in_frac, size=100)
    x[:4] = [0, 1, -1, -(2**31)]
    x = x.astype(np.int32)
    table = pt.table("sine", table_bits, out_frac)
    head = np.array([9, out_frac, p.phase_mul & 0xFFFFFFFF, p.phase_shift, table_bits, p.lin_a & 0xFFFFFFFF,
                     p.lin_n, x.size], np.uint32)

    def check(out, target):
        lut, tay, lin = split(out.view(np.int32), [x.size] * 3)
        assert np.array_equal(lut, pt.lut_eval(p, table, x)), f"periodic lut (seed {seed}, {target})"
        assert np.array_equal(tay, pt.taylor_eval(p, x)), f"periodic taylor (seed {seed}, {target})"
        assert np.array_equal(lin, pt.linear_eval(p, x)), f"periodic linear (seed {seed}, {target})"

    add(f"periodic-{w0}-{in_frac}-{out_frac}-{table_bits}", [head, table, x], 3 * x.size, check)


for _args in [(20.0, 16, 15, 8), (1.0, 12, 14, 10), (-3.5, 20, 29, 4)]:
    periodic_case(*_args)


# ---------------------------------------------------------------- build and run (one image per target)


def _sources() -> list[str]:
    return [str(FW / "tests" / "kernel_driver.c"), *map(str, sorted((FW / "src").glob("bnn_*.c")))]


def _build(tmp: Path, target: str) -> list[str]:
    if target.startswith("host-"):
        if shutil.which("gcc") is None:
            pytest.fail("gcc not found: apt-get install gcc")
        exe = tmp / "kd"
        # host-conv16: the multi strategy with the 3x3x16 pair-record conv kernel forced on (its portable twin)
        strategy = [f"-DBNN_POPCOUNT={STRATEGIES['multi']}", "-DBNN_CONV16_PAIRS=1"] if target == "host-conv16" \
            else [f"-DBNN_POPCOUNT={STRATEGIES[target[5:]]}"]
        subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-g", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", "-DBNN_HOST", *strategy,
                        f"-I{FW / 'include'}", f"-I{FW / 'harness'}", *_sources(), "-o", str(exe)], check=True)
        return [str(exe)]
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    t = get_target(target)
    elf = tmp / "kd.elf"
    subprocess.run(["arm-none-eabi-gcc", *t.cpu_flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                    "-fno-tree-loop-distribute-patterns", f"-DBUF_WORDS={BUF_WORDS.get(target, 1 << 17)}",
                    f"-I{FW / 'include'}", f"-I{FW / 'harness'}", *_sources(), str(FW / "harness" / "startup.c"),
                    str(FW / "harness" / "semihost.c"), "-nostartfiles", "-specs=nano.specs", "-specs=nosys.specs",
                    f"-L{FW / 'harness'}", "-T", str(FW / "harness" / f"mem_{target}.ld"), "-o", str(elf)],
                   check=True)
    return ["qemu-system-arm", "-M", t.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]


def _run_batch(cmd: list[str], names: list[str], tmp: Path) -> dict[str, np.ndarray]:
    words = [np.array([len(names)], np.uint32)]
    for n in names:
        words += [np.array([CASES[n].words.size], np.uint32), CASES[n].words]
    np.concatenate(words).astype("<u4").tofile(tmp / "case.bin")
    proc = subprocess.run(cmd, cwd=tmp, timeout=300)
    assert proc.returncode == 0, f"kernel driver {cmd[0]} exited with {proc.returncode} on cases {names}"
    out = np.fromfile(tmp / "out.bin", dtype="<u4")
    res, i = {}, 0
    for n in names:
        size = int(out[i])
        assert size == CASES[n].out_words, f"{n}: driver wrote {size} words, expected {CASES[n].out_words}"
        res[n] = out[i + 1:i + 1 + size]
        i += 1 + size
    assert i == out.size
    return res


@pytest.fixture(scope="module", params=[*[f"host-{s}" for s in STRATEGIES], "host-conv16", *ARM_TARGETS])
def results(request, tmp_path_factory):
    """Every case's output on one target: one build, batches as large as the driver buffers."""
    target = request.param
    tmp = tmp_path_factory.mktemp(target)
    cmd = _build(tmp, target)
    cap = BUF_WORDS.get(target, 1 << 17) - 1 if target.startswith("cortex") else 1 << 17
    res: dict[str, np.ndarray | str] = {}
    batch, used_in, used_out = [], 1, 0
    for name, c in CASES.items():
        if c.words.size + 2 > cap or c.out_words + 1 > cap:
            res[name] = f"case larger than the {target} driver buffers ({cap + 1} words; 16 KiB RAM on the micro:bit)"
            continue
        if used_in + c.words.size + 1 > cap or used_out + c.out_words + 1 > cap:
            res.update(_run_batch(cmd, batch, tmp))
            batch, used_in, used_out = [], 1, 0
        batch.append(name)
        used_in += c.words.size + 1
        used_out += c.out_words + 1
    if batch:
        res.update(_run_batch(cmd, batch, tmp))
    res["__target__"] = target
    return res


@pytest.mark.parametrize("name", list(CASES))
def test_kernel(results, name):
    out = results[name]
    if isinstance(out, str):
        pytest.skip(out)
    CASES[name].check(out, results["__target__"])


def test_case_coverage():
    """The cases reach every variant of the Thumb-2 dense kernel (tail words x group class) and
    every awkward size the issue names, as inputs, outputs and channels."""
    classes = {((n + 31) // 32 % 3, min((n + 31) // 32 // 3, 2) + ((n + 31) // 32 // 3 >= 3 and (n + 31) // 32 // 3 % 2))
               for n in DENSE_WIDTHS}
    assert len(classes) == 11, classes
    names = " ".join(CASES)
    for size in (1, 31, 32, 33, 63, 65, 255, 257, 1000):
        assert f"dense-{size}x" in names and (f"x{size} " in names + " " or f"x{size}-" in names), size


def _mve_lane_groups(nw: int, cnt: int) -> int:
    """Groups of 8 rows bnn_dense_mve.c runs in vector lanes for cnt <= 32 rows of nw words (lane_groups)."""
    return cnt // 8 if nw <= 31 else 0


def test_mve_lane_coverage():
    """The dense cases reach the Helium lanes path at every row length it takes (1..31 words), with
    whole groups only and with a 4-row-core tail, and with saturated
    byte accumulators at the longest row (31 words)."""
    calls = set()
    for name in CASES:
        if name.startswith("dense-"):
            n_in, n_out = (int(v) for v in name.split("-")[1].split("x"))
            nw = (n_in + 31) // 32
            for c0 in range(0, n_out, 32):
                cnt = min(32, n_out - c0)
                g = _mve_lane_groups(nw, cnt)
                if g:
                    calls.add((nw, cnt - 8 * g == 0, "saturate" in name))
    assert {nw for nw, _, _ in calls} == set(MVE_LANE_WORDS)
    assert any(whole for _, whole, _ in calls) and any(not whole for _, whole, _ in calls)
    assert (31, True, True) in calls and (31, False, True) in calls


def test_periodic_error_bounds():
    """The numpy models are accurate: Taylor (eq. 10) within 0.005 everywhere, the LUT
    within half a table step plus rounding, eq. 11 only near 0."""
    assert pt.max_abs_error("taylor", 20.0, 16, 15, -1.0, 1.0) < 0.0048
    assert pt.max_abs_error("lut", 20.0, 16, 15, -1.0, 1.0) < np.pi / 256 + 2**-15 + 1e-4
    assert pt.max_abs_error("linear", 20.0, 16, 15, -0.01, 0.01) < 0.002
