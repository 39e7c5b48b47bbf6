# SPDX-License-Identifier: MIT
"""The column-sliced conv kernel (firmware bnn_conv_vc.c, packing bnn2hw/mcu/conv_vcols.py):
``bnn_conv_vc_bits`` and its ``_ref`` twin equal numpy's conv + threshold bit for bit, at zero
padding (bnn_conv_bits' contract) and -1 padding (bnn_conv_bits_m1's), on awkward channel
counts (cin 1..65, cout 1..97, the last group partial), 1 / 2 / 4 / 8 output positions per
group, with and without the generated class table (flash), with the tail channels
column-sliced, on the row kernel or counted straight from their rows, stride 1 and 2, pad
0 / 1 / 2 (every border class, windows clipped on both sides), ties (acc == thr on interior
and border positions), thresholds that are always / never met, and all-ones / all-zeros
inputs (the S0 and S1 lists empty).

One generated C program per target holds every case (inputs, packed columns and the expected
bits) and returns the number of mismatches: host gcc under -Wall -Wextra -Werror
-fsanitize=address,undefined, and QEMU on Cortex-M3, M4, M7 and M33."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from c_driver import run_driver

from bnn2hw.mcu import conv_vcols as vc
from bnn2hw.mcu.codegen import pack_bits

FW = Path(__file__).resolve().parents[1] / "firmware"
I32 = np.iinfo(np.int32)


def conv_acc(x: np.ndarray, w: np.ndarray, stride: int, pad: int, pad_value: int) -> np.ndarray:
    """x [H, W, C] +-1, w [O, KH, KW, C] +-1; a padded tap is pad_value (0 or -1) on every channel."""
    h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    xp = np.full((h + 2 * pad, wd + 2 * pad, c), pad_value, dtype=np.int64)
    xp[pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    acc = np.zeros((oh, ow, o), dtype=np.int64)
    for y in range(oh):
        for xx in range(ow):
            win = xp[y * stride:y * stride + kh, xx * stride:xx * stride + kw]
            acc[y, xx] = np.tensordot(w, win, axes=([1, 2, 3], [0, 1, 2]))
    return acc


CASES: list[dict] = []


def case(cin, cout, k=3, stride=1, pad=1, h=7, wd=8, m1=False, npos=None, inp="random", seed=0):
    rng = np.random.default_rng(seed + 7919 * cin + 104729 * cout + 31 * k + 17 * stride + 5 * pad + h * 13 + wd)
    x = rng.choice(np.array([-1, 1]), size=(h, wd, cin))
    if inp == "ones":
        x[:] = 1
    elif inp == "zeros":
        x[:] = -1
    elif inp == "skewed":  # mostly +1: S0 lists chosen
        x = np.where(rng.random((h, wd, cin)) < 0.85, 1, -1)
    w = rng.choice(np.array([-1, 1]), size=(cout, k, k, cin))
    acc = conv_acc(x, w, stride, pad, -1 if m1 else 0)
    oh, ow = acc.shape[:2]
    # ties on an interior and a border position, one always / never met channel
    thr = (acc[oh // 2, ow // 2] + rng.integers(-1, 2, size=cout)).astype(np.int64)
    thr[::3] = acc[0, 0, ::3]
    thr[2::3] = acc[-1, -1, 2::3]
    thr[0] = I32.min
    if cout > 1:
        thr[1] = I32.max
    if cout > 4:
        thr[4] = -k * k * cin  # acc >= -K: always, with a finite threshold
    if cout > 5:
        thr[5] = k * k * cin + 1  # never, finite
    thr = thr.astype(np.int32)
    if npos is None:
        npos = vc.choose_npos(cout, k, stride, k)
    assert vc.supported(k, k, cin, cout, stride, npos)
    CASES.append(dict(name=f"c{len(CASES)}_{h}x{wd}x{cin}_o{cout}_k{k}s{stride}p{pad}{'m1' if m1 else ''}_P{npos}_{inp}",
                      params=[h, wd, cin, oh, ow, cout, k, k, stride, stride, pad, pad], m1=int(m1), npos=npos,
                      x=pack_bits(x).ravel(), cols=vc.pack_columns(w, stride, npos), thr=thr,
                      ctap=vc.tap_counts(w).ravel(), expect=pack_bits(np.where(acc >= thr, 1, -1)).ravel(),
                      work=vc.work_words(wd, cin, cout, k, k, stride, npos),
                      work_complete=vc.work_words(wd, cin, cout, k, k, stride, npos, table_complete=True),
                      keys=vc.class_keys(h, wd, cout, k, k, stride, pad, npos),
                      classes=vc.class_table(w, thr, h, wd, stride, pad, npos, m1),
                      classes_rows=vc.class_table(w, thr, h, wd, stride, pad, npos, m1, tail_vc=False),
                      tail_rows=pack_bits(w[32 * (cout // 32):]).ravel()))


for _cin in (1, 16, 31, 32, 33, 48, 65):
    for _s, _p in ((1, 1), (2, 1), (1, 0), (2, 2)):
        case(_cin, 40, stride=_s, pad=_p, h=7, wd=9)
for _cout in (1, 8, 16, 17, 31, 32, 33, 65):
    for _s, _p in ((1, 1), (2, 1), (1, 2)):
        case(20, _cout, stride=_s, pad=_p, h=8, wd=7)
        case(20, _cout, stride=_s, pad=_p, h=8, wd=7, m1=True)
for _P in (1, 2):  # 16 channels: one position per group, or two (the precombined columns)
    for _s, _p, _wd in ((1, 1, 9), (2, 1, 9), (1, 0, 8), (2, 1, 8), (1, 1, 1)):
        case(16, 16, stride=_s, pad=_p, h=6, wd=_wd, npos=_P)
        case(16, 16, stride=_s, pad=_p, h=6, wd=_wd, npos=_P, m1=True)
case(16, 8, stride=1, pad=1, h=6, wd=10, npos=4)
case(16, 8, stride=2, pad=1, h=6, wd=11, npos=4, m1=True)
case(7, 5, stride=1, pad=1, h=5, wd=13)  # P = 6, KWe 8
# full groups and a tail group with several positions (cout 33: P 14 / 7, 40: P 4, 48: P 2, 65)
for _cout, _s, _p, _m1 in ((33, 1, 1, False), (33, 2, 1, False), (33, 2, 1, True), (40, 1, 1, False),
                           (40, 2, 2, True), (48, 1, 1, False), (48, 2, 1, True), (65, 1, 1, False),
                           (65, 2, 0, False), (97, 1, 1, True)):
    case(12, _cout, stride=_s, pad=_p, h=6, wd=9, m1=_m1)
    case(12, _cout, stride=_s, pad=_p, h=6, wd=9, m1=_m1, npos=1)  # the tail one position a step
case(3, 1, stride=1, pad=1, h=4, wd=20)  # P capped by KWe <= 16
# branch conv-fast: the interior steps (vc_row3), tails on the row kernel or counted straight from
# their rows (tail_direct: ct cw <= 2; cin 33's one-channel second word), at awkward cin / cout,
# stride 1 / 2, pad 0 / 1 and -1 padding, every border class of a 9x9 map
for _cin in (15, 17, 33, 40):
    for _cout in (15, 17, 33, 34, 65):
        for _s, _p, _m1 in ((1, 1, False), (2, 1, True), (1, 0, False)):
            case(_cin, _cout, stride=_s, pad=_p, h=6, wd=9, m1=_m1)
for _m1 in (False, True):
    case(33, 33, stride=2, pad=1, h=9, wd=9, m1=_m1)  # the benchmark's 9x9x33 s2
    case(16, 16, stride=1, pad=1, h=9, wd=12, m1=_m1)  # 16 channels: 2 positions a step
    case(33, 2, stride=1, pad=1, h=5, wd=6, m1=_m1)  # no full group, two direct tail channels
for _inp in ("ones", "zeros"):
    case(33, 65, stride=2, pad=1, h=7, wd=9, inp=_inp)
for _inp in ("ones", "zeros", "skewed"):
    for _m1 in (False, True):
        case(33, 33, stride=1, pad=1, h=5, wd=6, inp=_inp, m1=_m1)
        case(16, 16, stride=2, pad=1, h=6, wd=7, inp=_inp, m1=_m1)
case(16, 33, pad=1, h=1, wd=1)  # all padding but the centre
case(16, 33, pad=2, h=2, wd=7)  # windows clipped on both sides
case(16, 33, pad=2, h=2, wd=7, m1=True)
case(32, 40, pad=1, h=9, wd=9)  # every border class, 2 groups
# the conv shapes of tests/test_firmware_kernels.py (bits input)
for _cin, _cout, _k, _s, _p in [(1, 1, 3, 1, 1), (31, 3, 3, 1, 1), (33, 37, 3, 2, 1), (64, 5, 2, 2, 0),
                                (65, 33, 3, 1, 2), (32, 64, 3, 1, 0), (1, 33, 3, 1, 0), (3, 5, 2, 1, 1),
                                (32, 33, 2, 2, 1), (256, 3, 1, 1, 0), (16, 16, 3, 1, 1), (16, 31, 3, 2, 1),
                                (5, 65, 3, 1, 1), (28, 32, 3, 2, 0), (63, 2, 3, 1, 1), (255, 2, 3, 2, 1),
                                (257, 2, 3, 1, 1), (8, 100, 3, 1, 1), (1, 257, 3, 2, 1), (47, 3, 5, 1, 2)]:
    case(_cin, _cout, _k, _s, _p, h=5, wd=4)
    if _p:
        case(_cin, _cout, _k, _s, _p, h=5, wd=4, m1=True)
# branch vc-mem (complete tables, no class cache): maps where the border classes differ -- 1xN,
# Nx1, 1x1, 2x2, odd sizes at stride 2 -- at pad 0 / 1 and -1 padding, with and without a tail
for _h, _wd in ((1, 9), (9, 1), (1, 1), (2, 2), (3, 5), (7, 3)):
    for _s, _p, _m1 in ((1, 1, False), (2, 1, True), (1, 0, False), (2, 1, False)):
        if _h + 2 * _p >= 3 and _wd + 2 * _p >= 3:
            case(33, 40, stride=_s, pad=_p, h=_h, wd=_wd, m1=_m1)
            case(20, 64, stride=_s, pad=_p, h=_h, wd=_wd, m1=_m1)


def _c_arr(ctype: str, name: str, a: np.ndarray) -> str:
    vals = ", ".join(str(int(v)) + ("u" if ctype != "int32_t" and ctype != "int16_t" else "") for v in a.ravel())
    if ctype == "int32_t":
        vals = ", ".join(f"(int32_t){int(v)}" if int(v) == I32.min else str(int(v)) for v in a.ravel())
    return f"static const {ctype} {name}[{max(a.size, 1)}] = {{{vals or '0'}}};\n"


def driver_source() -> str:
    lines = ['#include <stdint.h>', '#include "bnn_conv_vc.h"',
             '#if defined(__arm__) && !defined(BNN_HOST)', '#include "bnn_harness.h"',
             '#define SAY(s) bnn_sh_puts(s)', '#else', '#include <stdio.h>',
             '#define SAY(s) fputs(s, stderr)', '#endif']
    maxw = max(c["work"] for c in CASES)
    maxo = max(c["expect"].size for c in CASES)
    maxk = max(len(c["keys"]) for c in CASES)
    lines += [f"#define MAXW {maxw}u", "static uint32_t work[MAXW];", f"static bnn_word_t out[{maxo + 1}];",
              f"static uint32_t keys[{maxk + 1}];"]
    body = []
    for i, c in enumerate(CASES):
        lines.append(_c_arr("bnn_word_t", f"x{i}", c["x"]) + _c_arr("bnn_word_t", f"cols{i}", c["cols"])
                     + _c_arr("int32_t", f"thr{i}", c["thr"]) + _c_arr("int16_t", f"ct{i}", c["ctap"])
                     + _c_arr("bnn_word_t", f"e{i}", c["expect"]))
        pr = ", ".join(f"{v}u" for v in c["params"])
        lines.append(f"static const bnn_conv_vc_t L{i} = {{{{{pr}}}, {c['m1']}u, {c['npos']}u, cols{i}, thr{i}, ct{i}, 0u, NULL, NULL, 0u}};")
        # the same layer with its generated class table (flash), and with the table's first entry
        # only (every other class built per call beside it)
        lines.append(_c_arr("uint32_t", f"cls{i}", c["classes"]))
        # the tail channels (if any) on the row kernel beside the table (bnn_conv_vc_t.tail_rows)
        tr = f"tr{i}" if c["params"][5] % 32 else "NULL"
        if c["params"][5] % 32:
            lines.append(_c_arr("bnn_word_t", f"tr{i}", c["tail_rows"]))
        lines.append(f"static const bnn_conv_vc_t T{i} = {{{{{pr}}}, {c['m1']}u, {c['npos']}u, cols{i}, thr{i}, ct{i}, "
                     f"{c['classes'].shape[0]}u, cls{i}, {tr}, 0u}};")
        lines.append(f"static const bnn_conv_vc_t U{i} = {{{{{pr}}}, {c['m1']}u, {c['npos']}u, cols{i}, thr{i}, ct{i}, "
                     f"1u, cls{i}, NULL, 0u}};")
        # complete tables, no ctap, no class cache (table_complete): the tail column-sliced (C),
        # the tail on rows with a table of the full groups' keys only (R); V claims a one-entry
        # table complete (the kernel must find out and run the reference, no work memory)
        lines.append(_c_arr("uint32_t", f"clr{i}", c["classes_rows"]))
        lines.append(f"static const bnn_conv_vc_t C{i} = {{{{{pr}}}, {c['m1']}u, {c['npos']}u, cols{i}, thr{i}, NULL, "
                     f"{c['classes'].shape[0]}u, cls{i}, NULL, 1u}};")
        lines.append(f"static const bnn_conv_vc_t R{i} = {{{{{pr}}}, {c['m1']}u, {c['npos']}u, cols{i}, thr{i}, NULL, "
                     f"{c['classes_rows'].shape[0]}u, clr{i}, {tr}, 1u}};")
        lines.append(f"static const bnn_conv_vc_t V{i} = {{{{{pr}}}, {c['m1']}u, {c['npos']}u, cols{i}, thr{i}, NULL, "
                     f"1u, cls{i}, NULL, 1u}};")
        lines.append(_c_arr("uint32_t", f"k{i}", np.array(c["keys"], dtype=np.uint64)))
        body.append(f"    fails += run(&L{i}, &T{i}, &U{i}, x{i}, e{i}, {c['expect'].size}u, {c['work']}u, "
                    f"\"{c['name']}\");")
        body.append(f"    fails += run_complete(&C{i}, &R{i}, &V{i}, x{i}, e{i}, {c['expect'].size}u, "
                    f"{c['work_complete']}u, k{i}, {len(c['keys'])}u, {int(len(c['keys']) > 1)}, \"{c['name']}\");")
    lines.append("""
static int run(const bnn_conv_vc_t *L, const bnn_conv_vc_t *T, const bnn_conv_vc_t *U, const bnn_word_t *x,
               const bnn_word_t *e, uint32_t n, uint32_t ww, const char *name)
{
    int bad = 0;
    if (!bnn_conv_vc_ok(L) || bnn_conv_vc_work_words(L) != ww) {
        SAY("precondition / work size mismatch: ");
        SAY(name);
        SAY("\\n");
        return 1;
    }
    for (uint32_t v = 0; v < 4u; ++v) {
        out[n] = 0x5A5A5A5Au;
        for (uint32_t i = 0; i < ww; ++i) {
            work[i] = 0xA5A5A5A5u * (i + 1u); /* no reliance on zeroed work memory */
        }
        if (v == 0u) {
            bnn_conv_vc_bits_ref(L, x, out);
        } else {
            bnn_conv_vc_bits(v == 1u ? L : (v == 2u ? T : U), x, work, out);
        }
        for (uint32_t i = 0; i <= n; ++i) {
            if (out[i] != (i < n ? e[i] : 0x5A5A5A5Au)) {
                SAY(v == 0u ? "FAIL ref " : (v == 1u ? "FAIL fast " : (v == 2u ? "FAIL table+rows-tail " : "FAIL table1 ")));
                SAY(name);
                SAY("\\n");
                bad = 1;
                break;
            }
        }
    }
    return bad;
}

/* Work memory at the end of the static array (ASan: a write past ww words is past the global),
 * everything before it a canary that must survive (QEMU has no ASan). */
static int call_checked(const bnn_conv_vc_t *L, const bnn_word_t *x, const bnn_word_t *e, uint32_t n, uint32_t ww)
{
    for (uint32_t i = 0; i < MAXW; ++i) {
        work[i] = 0xA5A5A5A5u * (i + 1u);
    }
    out[n] = 0x5A5A5A5Au;
    bnn_conv_vc_bits(L, x, work + (MAXW - ww), out);
    for (uint32_t i = 0; i < MAXW - ww; ++i) {
        if (work[i] != 0xA5A5A5A5u * (i + 1u)) {
            return 2;
        }
    }
    for (uint32_t i = 0; i <= n; ++i) {
        if (out[i] != (i < n ? e[i] : 0x5A5A5A5Au)) {
            return 1;
        }
    }
    return 0;
}

/* The complete-table variants: work size, the C's class keys = Python's class_keys (as sets),
 * bit-exact with an exactly sized work buffer, and a false completeness claim caught. */
static int run_complete(const bnn_conv_vc_t *C, const bnn_conv_vc_t *R, const bnn_conv_vc_t *V, const bnn_word_t *x,
                        const bnn_word_t *e, uint32_t n, uint32_t ww, const uint32_t *k, uint32_t nk, int v_false,
                        const char *name)
{
    int bad = 0;
    const uint32_t got = bnn_conv_vc_class_keys(C, keys, nk + 1u);
    if (!bnn_conv_vc_ok(C) || bnn_conv_vc_work_words(C) != ww || bnn_conv_vc_work_words(R) != ww || got != nk ||
        !bnn_conv_vc_table_covers(C) || !bnn_conv_vc_table_covers(R) || bnn_conv_vc_table_covers(V) == v_false) {
        SAY("complete table: precondition / work size / keys count mismatch: ");
        bad = 1;
    }
    for (uint32_t i = 0; i < nk && !bad; ++i) {
        uint32_t a = 0, b = 0;
        for (uint32_t j = 0; j < nk; ++j) {
            a += keys[j] == k[i];
            b += k[j] == keys[i];
        }
        if (a != 1u || b != 1u) {
            SAY("complete table: class keys differ from conv_vcols.class_keys: ");
            bad = 1;
        }
    }
    if (!bad) {
        const bnn_conv_vc_t *const which[3] = {C, R, V};
        for (uint32_t v = 0; v < 3u; ++v) {
            const int r = call_checked(which[v], x, e, n, v == 2u && v_false ? 1u : ww); /* V false: the reference */
            if (r) {
                SAY(r == 2 ? "work memory overrun " : "FAIL ");
                SAY(v == 0u ? "complete " : (v == 1u ? "complete+rows-tail " : "false-claim "));
                bad = 1;
                break;
            }
        }
    }
    if (bad) {
        SAY(name);
        SAY("\\n");
    }
    return bad;
}

int main(void)
{
    int fails = 0;""")
    lines += body
    lines.append("    return fails > 99 ? 99 : fails;\n}\n")
    return "\n".join(lines)


def _sources() -> list[str]:
    # bnn_conv.c and what it calls: the row kernel of tail_rows
    return [str(FW / "src" / f) for f in ("bnn_conv_vc.c", "bnn_vcols.c", "bnn_conv.c", "bnn_bits.c", "bnn_dense.c",
                                           "bnn_threshold.c")]


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("vcconv")
    (d / "drv.c").write_text(driver_source())
    return d


@pytest.mark.parametrize("target", ["host", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33"])
def test_vcols_conv_exact(driver, target):
    proc = run_driver(driver, _sources(), target)
    assert proc.returncode == 0, f"{target}: {proc.returncode} failing cases\n{proc.stdout}{proc.stderr}"


def test_case_coverage():
    """Every awkward cin / cout the issue names, both paddings, stride 2, and P = 1, 2, 4."""
    names = " ".join(c["name"] for c in CASES)
    for cin in (1, 16, 31, 32, 33, 48, 65):
        assert f"x{cin}_o" in names, cin
    for cout in (1, 15, 16, 17, 31, 32, 33, 34, 65):
        assert f"_o{cout}_" in names, cout
    for cin in (15, 17, 40):
        assert f"x{cin}_o" in names, cin
    # tails the C counts straight from their rows (ct cw <= 2), and the cin 33 one-bit word
    direct = [c for c in CASES if c["params"][5] % 32 and (c["params"][5] % 32) * -(-c["params"][2] // 32) <= 2]
    assert any(c["params"][2] == 33 for c in direct) and any(c["m1"] for c in direct)
    assert any(c["params"][5] % 32 == 2 for c in direct)
    for tag in ("s2", "m1", "_P1_", "_P2_", "_P4_", "o33_k3s2p1_P7", "o33_k3s1p1_P14", "o40_k3s1p1_P4", "p0", "p2", "_ones", "_zeros", "_skewed"):
        assert tag in names, tag


def test_columns_layout():
    """pack_columns: lane j cpl + r of extended tap kx' holds channel r's weight at kx' - j stride."""
    rng = np.random.default_rng(5)
    w = rng.choice(np.array([-1, 1]), size=(16, 3, 3, 5))
    cols = vc.pack_columns(w, 2, 2)
    assert cols[-1] == 0
    cols = cols[:-1].reshape(1, 3, 5, 5)
    for kxe in range(5):
        for r in range(16):
            for j in range(2):
                kx = kxe - 2 * j
                bit = (int(cols[0, 1, kxe, 3]) >> (16 * j + r)) & 1
                assert bit == (int(w[r, 1, kx, 3] > 0) if 0 <= kx < 3 else 0), (kxe, r, j)
    # 40 channels: one full group (tap-major, KW = 3), then 8 channels x 4 positions
    w = rng.choice(np.array([-1, 1]), size=(40, 3, 3, 5))
    cols = vc.pack_columns(w, 1, 4)
    full, tail = cols[:45].reshape(3, 3, 5), cols[45:-1].reshape(3, 6, 5)
    assert cols.size == 45 + 90 + 1 and cols[-1] == 0
    for r in range(32):
        assert (int(full[2, 1, 4]) >> r) & 1 == int(w[r, 2, 1, 4] > 0)
    for kxe in range(6):
        for lane in range(32):
            j, r = divmod(lane, 8)
            kx = kxe - j
            want = int(w[32 + r, 0, kx, 2] > 0) if 0 <= kx < 3 else 0
            assert (int(tail[0, kxe, 2]) >> lane) & 1 == want, (kxe, lane)


# ---------------------------------------------------------------- generated models (emit-c)


def _cnn_graph(seed: int):
    """uint8 stem -> threshold -> binary convs on bits (16 -> 16 zero padding, 16 -> 64 stride 2
    at -1 padding, 64 -> 33 zero padding) each with a threshold (random directions, ties) ->
    flatten -> binary dense logits."""
    from conv_graphs import binary_conv3x3, threshold

    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)

    def conv(name, cin, cout, s, p, kind, pv=0):
        return binary_conv3x3(rng, name, cin, cout, s, p, kind, pv)

    def thr(name, c, k):
        return threshold(rng, name, c, k)

    layers = [conv("stem", 3, 16, 1, 1, "u8"), thr("t0", 16, 27 * 255),
              conv("c1", 16, 16, 1, 1, "bits", 0), thr("t1", 16, 144),
              conv("c2", 16, 64, 2, 1, "bits", -1), thr("t2", 64, 144),
              conv("c3", 64, 33, 1, 1, "bits", 0), thr("t3", 33, 576),
              Layer("flatten", "flat", "flatten", {}),
              Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
                    {"weight": rng.choice([-1, 1], (7, 5 * 5 * 33)).astype(np.int8)}),
              Layer("affine", "logits", "fc", {}, {"scale": np.ones(7), "bias": np.zeros(7)})]
    return Graph((10, 10, 3), layers, 1.0, {"model_hash": f"vcconv{seed}"})


@pytest.mark.parametrize("force", [True, False])
def test_emitted_cnn_vcols(tmp_path, monkeypatch, force):
    """emit-c of a CNN with a 16-channel conv: with the choice forced (every supported binary conv
    on bnn_conv_vc_bits, the 16-channel one included) and with the count model's own choice, both
    stored formats are in model.c (BNN_CONV_VCOLS choosing); every integer logit equals the IR
    executor's on the host (sanitizers) and in QEMU on the Cortex-M4 (column-sliced) and M0 (the
    #else branch: row kernels), on all-255, all-0 and random images."""
    from bnn2hw.mcu import conv_vcols as cv
    from bnn2hw.mcu.cli import verify_firmware, write_firmware_dir

    if force:
        from bnn2hw.mcu import conv_ps

        monkeypatch.setattr(cv, "use_vc", lambda h, wd, c, o, kh, kw, s, p, m1, optimize="speed":
                            cv.supported(kh, kw, c, o, s, cv.layer_npos(c, o, kw, s, kh)))
        monkeypatch.setattr(conv_ps, "use_ps", lambda *a, **k: False)  # the position-sliced kernel stays out
    graph = _cnn_graph(3)
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m4")
    src = (out / "model.c").read_text()
    n_vc = src.count("bnn_conv_vc_bits(&")
    assert n_vc == (3 if force else sum(cv.use_vc(*a) for a in [(10, 10, 16, 16, 3, 3, 1, 1, False),
                                                                  (10, 10, 16, 64, 3, 3, 2, 1, True),
                                                                  (5, 5, 64, 33, 3, 3, 1, 1, False)]))
    # the #else branches: the row-kernel conv on its prepared weights (conv_m4_prep.py), the two 3x3x16
    # ones on bnn_conv_bits_few's tiles (conv_m4_prep.use_few)
    assert src.count("bnn_conv_bits_few(&") == 2 and src.count("bnn_conv_bits_prep(&") == 1
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (6, 3, 10, 10)).astype(np.uint8)
    x[0], x[1] = 255, 0
    res = verify_firmware(graph, out, "cortex-m4", x, echo=lambda *_: None)
    assert res["host"]["int_logits_differing"] == 0 and res["cortex-m4"]["int_logits_differing"] == 0
    if force:
        res0 = verify_firmware(graph, out, "cortex-m0", x, host=False, echo=lambda *_: None)
        assert res0["cortex-m0"]["int_logits_differing"] == 0
