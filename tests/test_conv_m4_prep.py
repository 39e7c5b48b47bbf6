# SPDX-License-Identifier: MIT
"""The row-kernel conv with generation-time weight prep (issue 11): bnn2hw/mcu/conv_m4_prep.py builds
the packed weight rows (or, for 3x3 convs with 16 input channels on cores with USADA8, the pair
records of bnn_conv.c's conv16_rows_bits; for 3x3 convs with 24 input channels there, rows with a
tail-spread seventh word for conv24_positions) and the popcount bounds M per window class;
``bnn_conv_bits_prep`` (bnn_conv.c) runs the conv on them.

* Python: prepared_rows / pair_records equal word-level transcriptions of bnn_conv.c's pack_taps /
  conv16_pack_pairs; m_tables equals bnn__conv_bits_rows' per-position clamp_mm formula entry by
  entry (ties, thresholds far outside [-K, K]).
* C: one model.c runs ~30 convs (cin 16 / 24 / 17 / 33 x cout 16, 15, 17, 1, 24, 33; stride 1 / 2;
  pad 0 / 1 / -1; maps 4x4, 5x5, 1x7, 3x9, 7x3, 9x9; thresholds with ties) on the prepared entry and
  on the reference loop nest (bnn_conv_bits_ref / _m1_ref); every output word equals numpy's conv +
  threshold on all-ones, all-zeros (-1) and random inputs: on the host under -Werror and
  ASan/UBSan (plain, with -DBNN_CONV16_PAIRS=1 and with -DBNN_CONV24_ROWS=1, the record kernels'
  portable twins), and in QEMU on the Cortex-M0, M3, M4, M7 and M33.  CASES24 (test_conv24_rows_exact)
  adds cin 24 with cout 1 .. 63, maps 1x1 .. 16x16, stride 3 and INT32-extreme thresholds, cin 23 / 25,
  on both entries and also on the M55.  Some cases carry data made for another build (pairs on a
  core without USADA8, a wrong row length): the entry must fall back to bnn_conv_bits on the plain
  weights, still exact.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bnn2hw.mcu import conv_m4_prep as mp
from bnn2hw.mcu import conv_tile
from bnn2hw.mcu.codegen import c_array, pack_bits

# ---------------------------------------------------------------- layouts and tables (Python)


def _pack_taps_c(taps_words: np.ndarray, cin: int) -> list[int]:
    """bnn_conv.c pack_taps on one row: taps_words (taps, cw) uint32 (3x3x24: pack_taps_3x3x24's
    word order, spelled out; else the bit-stream loop)."""
    if cin == 24 and taps_words.shape[0] == 9:
        t = [int(v) for v in taps_words[:, 0]]
        m = 0xFFFFFFFF
        return [(t[0] | t[3] << 24) & m, (t[1] | (t[3] >> 8) << 24) & m, (t[2] | (t[3] >> 16) << 24) & m,
                (t[4] | t[7] << 24) & m, (t[5] | (t[7] >> 8) << 24) & m, (t[6] | (t[7] >> 16) << 24) & m, t[8]]
    cw = taps_words.shape[1]
    tail = cin - 32 * (cw - 1)
    out, cur, b = [], 0, 0
    for t in range(taps_words.shape[0]):
        for i in range(cw - 1):
            v = int(taps_words[t, i])
            if b == 0:
                out.append(v)
            else:
                out.append((cur | (v << b)) & 0xFFFFFFFF)
                cur = v >> (32 - b)
        v = int(taps_words[t, cw - 1])
        cur = (cur | (v << b)) & 0xFFFFFFFF
        b += tail
        if b >= 32:
            out.append(cur)
            b -= 32
            cur = v >> (tail - b) if b else 0
    if b:
        out.append(cur)
    return out


@pytest.mark.parametrize("cin", [1, 16, 17, 24, 31, 33, 63, 65])
def test_prepared_rows_match_pack_taps(cin):
    rng = np.random.default_rng(cin)
    w = rng.choice([-1, 1], (4, 3, 3, cin)).astype(np.int8)
    w[0] = 1  # all +1: the bits above kh kw cin must stay 0
    got = mp.prepared_rows(w)
    nw = mp.row_words(cin, 3, 3)
    assert got.shape == (4, nw)
    words = pack_bits(w).reshape(4, 9, -1)
    for o in range(4):
        want = _pack_taps_c(words[o], cin) if nw != words.shape[2] * 9 else [int(v) for v in words[o].ravel()]
        assert [int(v) for v in got[o]] == want[:nw], (cin, o)
    # the build's choice (bnn__conv_row_words): packed at cin 16 / 24 / 33, padded at 32, 64 and 72
    # (32 x 21 > 640 words)
    assert [mp.row_words(c, 3, 3) for c in (16, 24, 32, 33, 64, 72)] == [5, 7, 9, 10, 18, 27]
    assert mp.row_words(24, 3, 3, mp.DENSE_WORDS_M0) == 9  # Cortex-M0: 32 x 7 > 160 words


def _spread(h: int) -> int:
    return sum(((h >> i) & 1) << (2 * i) for i in range(16))


@pytest.mark.parametrize("cout", [1, 2, 15, 16, 17, 33, 64, 65])
def test_pair_records(cout):
    rng = np.random.default_rng(cout)
    w = rng.choice([-1, 1], (cout, 3, 3, 16)).astype(np.int8)
    rows = mp.prepared_rows(w)
    rec = mp.pair_records(w).reshape(-1, 9)
    want = []
    for c0 in range(0, cout, 32):
        cnt = min(32, cout - c0)
        for j in range(0, cnt, 2):
            a = [int(v) for v in rows[c0 + j]]
            b = [int(v) for v in rows[c0 + j + 1]] if j + 1 < cnt else a  # odd count: row with itself
            want.append(a[:3] + b[:3] + [a[3], b[3], _spread(a[4]) | _spread(b[4]) << 1])
    assert rec.tolist() == want
    assert len(rec) == 16 * (cout // 32) + -(-(cout % 32) // 2)



@pytest.mark.parametrize("cin, cout, dsp", [(16, 15, True), (16, 1, True), (16, 33, True), (16, 16, True),
                                            (16, 15, False), (24, 15, True), (17, 15, True)])
def test_prepare_pads_odd_pair_counts(cin, cout, dsp):
    """Pair records of an odd cout get one more ~M column, 0 (M = -1: the assembly loops' self-paired last
    record then yields a 0 bit); other layouts and even counts keep cout columns, equal to m_tables'."""
    rng = np.random.default_rng(cout)
    w = rng.choice([-1, 1], (cout, 3, 3, cin)).astype(np.int8)
    thr = rng.integers(-40, 41, cout)
    q = mp.prepare(w, thr, (5, 5), (3, 3), 2, 1, False, dsp=dsp)
    tab, _, _ = mp.m_tables(w, thr, (5, 5), (3, 3), 2, 1, False, q["nw"], negate=bool(q["pairs"]))
    padded = cin == 16 and dsp and cout % 2 == 1
    assert q["m"].shape == (tab.shape[0], cout + padded)
    np.testing.assert_array_equal(q["m"][:, :cout], tab)
    if padded:
        assert (q["m"][:, cout] == 0).all()

def _window(n_in, k, stride, pad, i):
    x0 = i * stride - pad
    return max(0, -x0), max(max(0, -x0), min(k, n_in - x0))


@pytest.mark.parametrize("hw, stride, pad, pm1", [((9, 9), 2, 1, False), ((4, 7), 1, 1, False),
                                                 ((5, 5), 1, 2, False), ((5, 5), 1, 1, True), ((6, 6), 2, 0, False)])
def test_m_tables_formula(hw, stride, pad, pm1):
    """Every position's table entry equals bnn__conv_bits_rows' clamp_mm(K_v + 2 corr - thr, nw)."""
    rng = np.random.default_rng(hw[0] * 7 + stride + pad)
    o, c = 37, 17
    w = rng.choice([-1, 1], (o, 3, 3, c)).astype(np.int8)
    thr = rng.integers(-60, 61, o)
    thr[:4] = [0, 10 ** 9, -(10 ** 9), 9 * c]  # tie at 0, far outside, exactly K
    oh, ow = (hw[0] + 2 * pad - 3) // stride + 1, (hw[1] + 2 * pad - 3) // stride + 1
    nw = mp.row_words(c, 3, 3)
    for neg in (False, True):
        tab, xcls, ycls = mp.m_tables(w, thr, hw, (oh, ow), stride, pad, pm1, nw, negate=neg)
        nx = int(xcls.max()) + 1
        assert tab.shape[0] == nx * (int(ycls.max()) + 1) and tab.shape[1] == o
        ones = (w > 0).sum(-1)
        for oy in range(oh):
            ky0, ky1 = _window(hw[0], 3, stride, pad, oy)
            for ox in range(ow):
                kx0, kx1 = _window(hw[1], 3, stride, pad, ox)
                valid = np.zeros((3, 3), bool)
                valid[ky0:ky1, kx0:kx1] = True
                if pm1:
                    valid[:] = True
                for j in range(o):
                    v = int(valid.sum()) * c + 2 * int(ones[j][~valid].sum()) - int(thr[j])
                    m = min(v // 2, 32 * nw) if v >= 0 else -1
                    got = int(tab[ycls[oy] * nx + xcls[ox], j])
                    assert got == (~m if neg else m), (oy, ox, j)
    if pm1:
        assert tab.shape[0] == 1  # -1 padding: one class


# ---------------------------------------------------------------- the C entry, many shapes in one model


# (cin, cout, h, w, stride, pad); pad -1 = -1 padding of 1 (bnn_conv_bits_m1's semantics)
CASES = [(16, 16, 4, 4, 1, 1), (16, 15, 5, 5, 2, 1), (16, 17, 4, 4, 2, 0), (16, 1, 5, 5, 1, -1), (16, 24, 1, 7, 1, 1),
         (16, 33, 9, 9, 2, 1), (16, 16, 4, 4, 2, -1), (16, 16, 7, 3, 1, 0),
         (24, 16, 5, 5, 1, 1), (24, 15, 4, 4, 2, 1), (24, 17, 4, 4, 1, 0), (24, 1, 3, 9, 2, 1), (24, 24, 5, 5, 1, -1),
         (24, 33, 9, 9, 1, 1),
         (17, 16, 5, 5, 2, 0), (17, 15, 4, 4, 1, 1), (17, 17, 1, 7, 1, 1), (17, 1, 4, 4, 1, -1), (17, 24, 5, 5, 2, 1),
         (17, 33, 7, 3, 2, 1),
         (33, 16, 4, 4, 1, 1), (33, 15, 5, 5, 2, 1), (33, 17, 4, 4, 2, -1), (33, 1, 5, 5, 1, 0), (33, 24, 3, 9, 1, 1),
         (33, 33, 4, 4, 1, 1)]


def _reference(x, w, stride, pad, pm1):
    """x (h, w, c) ±1, w (o, 3, 3, c): acc (oh, ow, o); a padded tap is 0 (zero) or -1 (pm1)."""
    h, wd, c = x.shape
    xp = np.full((h + 2 * pad, wd + 2 * pad, c), -1 if pm1 else 0, dtype=np.int64)
    xp[pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - 3) // stride + 1, (wd + 2 * pad - 3) // stride + 1
    cols = np.stack([xp[ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
                     for ky in range(3) for kx in range(3)], axis=2)
    return np.einsum("yxtc,otc->yxo", cols, w.reshape(w.shape[0], 9, c).astype(np.int64))


def _write_model(out, target_dsp: bool, dense_words: int, cases=CASES, seed: int = 7, entry: str = "prep",
                 extremes: bool = False):
    """model.c running every CASES conv twice (prepared entry bnn_conv_bits_<entry>, then the reference
    loop nest); returns (inputs (3, bytes) uint8, expected logits (3, n) int32).  extremes: the second
    and third thresholds INT32_MIN and INT32_MAX instead of -+10^6."""
    rng = np.random.default_rng(seed)
    data, body, xs, outs = [], [], [[], [], []], [[], [], []]
    in_off = out_off = 0
    for i, (cin, cout, h, wd, s, pad) in enumerate(cases):
        pm1, p = pad < 0, abs(pad)
        w = rng.choice([-1, 1], (cout, 3, 3, cin)).astype(np.int8)
        if cout > 5:  # whole-row agreement / mismatch on the all-ones / all -1 inputs: every field of the
            w[0], w[-1] = 1, -1  # SWAR counts empty or full (nib2_sum's largest nibbles, 12)
        oh, ow = (h + 2 * p - 3) // s + 1, (wd + 2 * p - 3) // s + 1
        k = 9 * cin
        inputs = [np.ones((h, wd, cin), np.int64), -np.ones((h, wd, cin), np.int64),
                  rng.choice([-1, 1], (h, wd, cin))]
        accr = _reference(inputs[2], w, s, p, pm1)
        thr = rng.integers(-k // 4, k // 4 + 1, cout)
        ties = rng.random(cout) < 0.5  # ties: the accumulator of a random position exactly
        thr[ties] = accr[rng.integers(0, oh, cout), rng.integers(0, ow, cout), np.arange(cout)][ties]
        thr[0] = k if cout > 1 else thr[0]
        if cout > 2:
            thr[1], thr[2] = (-2 ** 31, 2 ** 31 - 1) if extremes else (-(10 ** 6), 10 ** 6)
        if extremes and cout > 4:
            thr[3], thr[4] = -(10 ** 6), 10 ** 6  # with INT32 extremes at 1 / 2 (always / never fires)
        if cout > 5:  # row cout - 1 fires up to k - 1 mismatches: the full count (k, all -1 weights) must not
            thr[-1] = -k + 2
        dsp = target_dsp if i % 5 != 4 else not target_dsp  # every 5th: data for another build
        q = mp.prepare(w, thr, (h, wd), (oh, ow), s, p, pm1, dsp=dsp, dense_words=dense_words)
        # entry "tile": the generation-time tile where conv_tile applies (emit-c's rule), else the few entry
        tile = entry == "tile" and conv_tile.applies(cin, 3, 3, (oh, ow))
        tile_text = conv_tile.tile_c(f"L{i}", f"pm{i}", cin, q, (h, wd), (oh, ow), s, p) if tile else ""
        if i % 7 == 6:
            q["nw"] += 1  # a row length no build uses: the fallback
        cw, owd = -(-cin // 32), -(-cout // 32)
        n_out = oh * ow * owd
        data += [c_array("bnn_word_t", f"w{i}", pack_bits(w)), c_array("int32_t", f"t{i}", thr),
                 c_array("bnn_word_t", f"pw{i}", q["rows"]), c_array("int32_t", f"pm{i}", q["m"]),
                 c_array("uint8_t", f"px{i}", q["xcls"]), c_array("uint8_t", f"py{i}", q["ycls"]),
                 (f"static const bnn_conv_params_t p{i} = {{{h}u, {wd}u, {cin}u, {oh}u, {ow}u, {cout}u, 3u, 3u, "
                  f"{s}u, {s}u, {p}u, {p}u}};\n"),
                 (f"static const bnn_conv_prep_t q{i} = {{{int(pm1)}u, {q['nx']}u, {q['m'].shape[1]}u, "
                  f"{q['nw']}u, "
                  f"{q['pairs']}u, pw{i}, pm{i}, px{i}, py{i}, w{i}, t{i}}};\n"), tile_text]
        ref = "bnn_conv_bits_m1_ref" if pm1 else "bnn_conv_bits_ref"
        name = "few" if entry == "tile" else entry
        call = f"tile(&p{i}, &q{i}, &L{i}_tile," if tile else f"{name}(&p{i}, &q{i},"
        body += [f"    bnn_conv_bits_{call} in_words + {in_off}, out_words + {out_off});\n",
                 f"    {ref}(&p{i}, in_words + {in_off}, w{i}, t{i}, out_words + {out_off + n_out});\n"]
        for n, x in enumerate(inputs):
            xs[n].append(pack_bits(x.reshape(h * wd, cin)).ravel())
            acc = _reference(x, w, s, p, pm1)
            bits = np.where(acc >= thr, 1, -1).reshape(oh * ow, cout)
            words = pack_bits(bits).ravel().view(np.int32)
            outs[n] += [words, words]
        in_off += h * wd * cw
        out_off += 2 * n_out
    src = ("/* SPDX-License-Identifier: MIT */\n#include <string.h>\n#include \"model.h\"\n#include \"bnn_conv.h\"\n"
           + "".join(data) + f"static bnn_word_t in_words[{in_off}];\nstatic bnn_word_t out_words[{out_off}];\n"
           + "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n"
             "    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {\n        return -1;\n    }\n"
             "    memcpy(in_words, input, BNN_INPUT_LEN);\n" + "".join(body)
           + "    memcpy(logits, out_words, sizeof out_words);\n    return 0;\n}\n")
    (out / "model.c").write_text(src)
    (out / "model.h").write_text(
        "/* SPDX-License-Identifier: MIT */\n#ifndef MODEL_H\n#define MODEL_H\n#include <stddef.h>\n"
        "#include <stdint.h>\n"
        f"#define BNN_INPUT_LEN {4 * in_off}\n#define BNN_NUM_LOGITS {out_off}\n"
        "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len);\n#endif\n")
    x = np.stack([np.concatenate(v).astype(np.uint32).view(np.uint8) for v in xs])
    return x, np.stack([np.concatenate(v) for v in outs]), out_off


def _build_and_run(tmp_path, target: str, flags: str, cases, **write_kw) -> tuple[np.ndarray, np.ndarray]:
    """Write the test model of ``cases`` (_write_model) for ``target``'s build (pair records where the
    core has USADA8 or the flags force them), build it with the firmware harness and run it on the host
    or in QEMU: (the output words got, the words numpy expects)."""
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.targets import get_target

    tools = ("gcc",) if target == "host" else ("arm-none-eabi-gcc", "qemu-system-arm")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi qemu-system-arm")
    dsp = get_target(target).has_dsp or "BNN_CONV16_PAIRS=1" in flags or "BNN_CONV24_ROWS=1" in flags
    dense = mp.DENSE_WORDS_M0 if target == "cortex-m0" else mp.DENSE_WORDS
    x, want, n = _write_model(tmp_path, dsp, dense, cases, **write_kw)
    elf = toolchain.build(tmp_path, target, extra_cflags=flags)
    return qemu.run(elf, target, x, n), want


@pytest.mark.parametrize("target, flags", [("host", "-Werror"), ("host", "-Werror -DBNN_CONV16_PAIRS=1"),
                                           ("host", "-Werror -DBNN_CONV24_ROWS=1"),
                                           ("cortex-m0", "-Werror"), ("cortex-m3", "-Werror"),
                                           ("cortex-m4", "-Werror"), ("cortex-m7", "-Werror"),
                                           ("cortex-m33", "-Werror")])
def test_prepared_entry_exact(tmp_path, target, flags):
    # Cortex-M0 (16 KB RAM board): the maps up to 5x5
    cases = [c for c in CASES if c[2] * c[3] <= 25] if target == "cortex-m0" else CASES
    got, want = _build_and_run(tmp_path, target, flags, cases)
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{target} {flags}: {len(bad)} output words differ, first at {bad[:3].tolist()}"


# ---------------------------------------------------------------- few output positions (bnn_conv_bits_few)

# (cin, cout, h, w, stride, pad) as CASES: outputs 1x1 .. 4x4 and 1x7 / 4x2 / 5x1 strips, maps 2x2 (the window
# wider than the input) to 8x8; cin 33, 21 or more positions: bnn_conv_bits_few's fallback to the prepared entry
FEW_CASES = [(16, 16, 4, 4, 2, 0), (16, 15, 3, 3, 1, 0), (16, 17, 4, 4, 1, 0), (16, 1, 4, 4, 2, 1), (16, 24, 5, 5, 2, 0),
             (16, 33, 5, 5, 2, 1), (16, 16, 4, 4, 1, 1), (16, 16, 1, 7, 1, 1), (16, 15, 7, 3, 2, -1),
             (16, 16, 8, 8, 2, 1), (16, 16, 2, 2, 1, 1), (16, 63, 4, 4, 2, -1),
             (24, 16, 4, 4, 2, 0), (24, 15, 4, 4, 2, 1), (24, 17, 3, 3, 1, 1), (24, 1, 5, 5, 2, -1), (24, 24, 7, 3, 1, 0),
             (24, 33, 8, 8, 2, 0),
             (17, 16, 3, 3, 1, 0), (17, 15, 4, 4, 2, 1), (17, 17, 5, 5, 2, -1), (17, 1, 1, 7, 2, 1), (17, 24, 4, 4, 1, 0),
             (17, 33, 5, 5, 1, 0),
             (32, 16, 4, 4, 2, 0), (32, 15, 3, 3, 1, 1), (32, 17, 5, 5, 2, 1), (32, 1, 4, 4, 1, -1), (32, 24, 7, 3, 1, 1),
             (32, 33, 4, 4, 1, 0),
             (31, 16, 4, 4, 1, 1), (1, 15, 4, 4, 2, 1), (33, 16, 4, 4, 2, 0), (33, 15, 3, 3, 1, 1), (33, 33, 4, 4, 1, 0),
             # 1 x 16 strips: the bordered image 3 x 48 words (fits BNN_CONV_FEW_IMG), 3 x 63 (two tiles)
             (16, 17, 3, 46, 3, 1), (24, 16, 3, 62, 4, 1)]

# More than one tile (17 to 300 positions): whole-row tiles (out_w <= 16) in place or through one bordered
# image, row runs of <= 16 (out_w > 16) in place with bordered ends or bordered whole (the first / last
# row), a 1 x 25 strip at stride 4 in runs of 13 (the image cap), strides 1 / 2 / 3, pad 0 / 1 / -1;
# cin 24 / 17 / 32 / 1 / 31 through few_rows, cin 33 the prepared entry's fallback
TILE_CASES = [(16, 16, 8, 8, 1, 1), (16, 15, 5, 5, 1, 1), (16, 17, 7, 3, 1, 1), (16, 33, 1, 40, 1, 1),
              (16, 63, 33, 5, 2, 0), (16, 31, 33, 5, 1, 1), (16, 1, 20, 20, 3, 1), (16, 16, 10, 30, 1, -1),
              (16, 16, 9, 35, 2, 1), (16, 16, 6, 40, 3, 0), (16, 15, 18, 18, 3, 1), (16, 16, 3, 100, 4, 1),
              (16, 33, 5, 5, 1, 0), (16, 17, 12, 12, 2, 0), (16, 16, 9, 9, 1, -1),
              (24, 16, 8, 8, 1, 1), (24, 33, 7, 21, 1, 0), (17, 33, 7, 3, 1, 1), (17, 16, 9, 20, 2, -1),
              (32, 17, 9, 9, 1, 0), (32, 15, 5, 18, 1, 1), (1, 15, 8, 8, 1, 1), (31, 16, 10, 10, 2, 1),
              (33, 16, 6, 6, 1, 1)]


@pytest.mark.parametrize("cases", ["one tile", "tiles"])
@pytest.mark.parametrize("target, flags", [("host", "-Werror"), ("host", "-Werror -DBNN_CONV16_PAIRS=1"),
                                           ("host", "-Werror -DBNN_CONV24_ROWS=1"),
                                           ("cortex-m0", "-Werror"), ("cortex-m3", "-Werror"),
                                           ("cortex-m4", "-Werror"), ("cortex-m7", "-Werror"),
                                           ("cortex-m33", "-Werror"), ("cortex-m55", "-Werror")])
def test_few_entry_exact(tmp_path, target, flags, cases):
    """bnn_conv_bits_few on FEW_CASES (one tile) and TILE_CASES (host builds run under ASan/UBSan,
    firmware/harness/Makefile; Helium: the prepared entry's fallback; ties, thresholds at K and +-10^6
    (TILE_CASES: INT32_MIN / INT32_MAX), all-ones / all -1 / random inputs; every 5th case's data made for
    another build, every 7th with a wrong row length): the output words of the prepared-data entry and of
    the reference loop nest both equal numpy's."""
    tiles = cases == "tiles"
    chosen = TILE_CASES if tiles else FEW_CASES
    if tiles and target == "cortex-m0":  # 16 KB RAM board: the maps up to 50 pixels
        chosen = [c for c in chosen if c[2] * c[3] <= 50]
    got, want = _build_and_run(tmp_path, target, flags, chosen, seed=11, entry="few", extremes=tiles)
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{target} {flags}: {len(bad)} output words differ, first at {bad[:3].tolist()}"



# (cin, cout, h, w, stride, pad) as CASES, for bnn_conv_bits_tile (conv_tile.py: one tile, cin 16 / 24 / 32):
# 1 to 16 positions; cout 1, 15, 16, 17, 31, 32, 33, 63 (odd at 16 channels: padded ~M rows; > 32: 2 chunks);
# windows wider than the input (2x2 pad 1), 1xN / Nx3 strips, strides 1 to 4, pad 0 / 1 / -1, a 4x4 output at
# stride 4 pad 1 (its windows' bordered image, 15x15 words, is past bnn_conv_bits_few's one-tile bound);
# cin 1, 8, 11, 17, 20, 31, 33, 40, 48, 65 (pack_taps' bit stream) and 64, 128 (tap words as they are), the
# row kernel per position, up to the 288-word patch buffer (64 x 16 positions); 25 positions, or 65 channels
# x 16 positions (304 words): not a tile
TILE1_CASES = [(16, 16, 4, 4, 2, 0), (16, 15, 3, 3, 1, 0), (16, 17, 4, 4, 1, 0), (16, 33, 4, 4, 2, 1),
               (16, 16, 8, 8, 2, 1), (16, 1, 2, 2, 1, 1), (16, 63, 1, 7, 1, 1), (16, 32, 7, 3, 2, -1),
               (16, 16, 9, 9, 3, 0), (16, 2, 13, 5, 4, 1), (16, 16, 4, 4, 1, -1),
               (24, 24, 4, 4, 2, 0), (24, 1, 3, 3, 1, 1), (24, 33, 4, 4, 2, 1), (24, 31, 5, 5, 2, -1),
               (24, 17, 2, 2, 1, 1), (24, 32, 8, 8, 2, 1), (24, 16, 3, 9, 1, 0), (24, 16, 13, 13, 4, 1),
               (32, 16, 4, 4, 2, 0), (32, 15, 3, 3, 1, 1), (32, 33, 5, 5, 2, 1), (32, 1, 4, 4, 1, -1),
               (32, 63, 1, 5, 1, 1), (17, 16, 4, 4, 2, 0), (20, 15, 4, 4, 1, 1), (1, 33, 3, 3, 1, 1),
               (8, 16, 5, 5, 2, -1), (31, 17, 4, 4, 2, 1), (11, 1, 1, 9, 1, 1),
               (33, 16, 4, 4, 2, 0), (40, 17, 4, 4, 2, 1), (48, 33, 3, 3, 1, 1), (64, 15, 4, 4, 2, -1),
               (65, 16, 3, 3, 1, 0), (128, 9, 3, 3, 1, 0), (40, 16, 7, 7, 2, 1), (64, 16, 4, 4, 1, 1),
               (16, 16, 5, 5, 1, 1), (65, 16, 4, 4, 1, 1)]


@pytest.mark.parametrize("target, flags", [("host", "-Werror"), ("host", "-Werror -DBNN_CONV16_PAIRS=1"),
                                           ("host", "-Werror -DBNN_CONV24_ROWS=1"),
                                           ("cortex-m0", "-Werror"), ("cortex-m3", "-Werror"),
                                           ("cortex-m4", "-Werror"), ("cortex-m7", "-Werror"),
                                           ("cortex-m33", "-Werror"), ("cortex-m55", "-Werror")])
def test_tile_entry_exact(tmp_path, target, flags):
    """bnn_conv_bits_tile with conv_tile's generated patch packers and M-row lists on TILE1_CASES (host
    builds under ASan/UBSan; Helium, a core without the layout and data made for another build (every 5th)
    or with a wrong row length (every 7th): the few entry's fallback; ties, thresholds at K, INT32_MIN /
    INT32_MAX, all-ones / all -1 / random inputs): the output words equal numpy's, as the reference loop
    nest's do."""
    assert sum(conv_tile.applies(c, 3, 3, ((h + 2 * abs(p) - 3) // s + 1, (w + 2 * abs(p) - 3) // s + 1))
               for c, _, h, w, s, p in TILE1_CASES) == len(TILE1_CASES) - 2
    # Cortex-M0 (16 KB RAM board): the cases up to 40 input channels
    cases = [c for c in TILE1_CASES if c[0] <= 40] if target == "cortex-m0" else TILE1_CASES
    got, want = _build_and_run(tmp_path, target, flags, cases, seed=31, entry="tile", extremes=True)
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{target} {flags}: {len(bad)} output words differ, first at {bad[:3].tolist()}"


def test_tile_patch_layouts():
    """conv_tile.patch_exprs against the firmware's packs, in Python: 3x3x16 (taps 2k | 2k+1 << 16, tap 8;
    pair records: spread and doubled), 3x3x24 (pack_3x3x24 / rows24's tail spread), pack_taps' bit stream
    (cin 1, 8, 11, 17, 20, 33, 40, 65: taps and tap words across word boundaries) and the tap words as they
    are (cin 32, 64; cin 16 / 40 in the long rows of a small BNN_CONV_DENSE_WORDS), for every position of a
    padded stride-2 map; a padded tap is 0 (no term); a row length no layout has is refused."""
    rng = np.random.default_rng(5)
    for cin, nw in [(16, 5), (24, 7), (32, 9), (16, 9), (1, 1), (8, 3), (17, 5), (20, 6), (31, 9), (11, 4),
                    (33, 10), (40, 12), (40, 18), (64, 18), (65, 19)]:
        cw = -(-cin // 32)
        pixels = [int(v) for v in rng.integers(0, 2 ** 62, size=30, dtype=np.int64)]
        pixels = [(v << 62 | int(rng.integers(0, 2 ** 62))) % (1 << cin) for v in pixels]
        words = [(v >> (32 * j)) & 0xFFFFFFFF for v in pixels for j in range(cw)]  # cw words a pixel
        for pairs in ([False, True] if (cin, nw) in ((16, 5), (24, 7)) else [False]):
            for oy in range(3):
                for ox in range(3):
                    taps = conv_tile._taps((5, 6), 2, 1, oy, ox, cw)
                    vals = [0 if v is None else pixels[v // cw] for v in taps]
                    got = [_eval_c(e, words) for e in conv_tile.patch_exprs(cin, nw, pairs, taps)]
                    assert got == _firmware_patch(vals, cin, nw, pairs), (cin, nw, pairs, oy, ox)
    with pytest.raises(ValueError, match="cin 17"):
        conv_tile.patch_exprs(17, 6, False, [None] * 9)


def _eval_c(expr: str, words: list[int]) -> int:
    """One of conv_tile's C expressions (in[k], <<, >>, |, 0u, the tail functions) on the input words, as
    uint32 (C's precedence of <<, >> over | is Python's; only left shifts can carry bits past 32, and truncating
    last gives the same bits)."""
    py = (expr.replace("in[", "src[").replace("bnn_conv16_tail", "_tail16").replace("bnn_conv24_tail", "_tail24")
          .replace("0u", "0"))
    return int(eval(py, {"src": words, "_tail16": _tail16, "_tail24": _tail24})) & 0xFFFFFFFF


def _tail16(h: int) -> int:
    return int(mp._spread(np.array([h], dtype=np.uint32))[0]) * 3 & 0xFFFFFFFF


def _tail24(t: int) -> int:
    return int(mp.tail_spread(np.array([t], dtype=np.uint32))[0])


def _firmware_patch(taps: list[int], cin: int, nw: int, pairs: bool) -> list[int]:
    """A patch (the 9 taps' cin-bit values) as bnn_conv.c packs it (pack_taps_3x3x16 / conv_m4_prep.pack_3x3x24 /
    pack_taps' stream / copy_window)."""
    t = [int(v) for v in taps]
    cw = -(-cin // 32)
    if nw == 9 * cw:
        return [(v >> (32 * j)) & 0xFFFFFFFF for v in t for j in range(cw)]
    if cin == 16:
        return [t[0] | t[1] << 16, t[2] | t[3] << 16, t[4] | t[5] << 16, t[6] | t[7] << 16,
                _tail16(t[8]) if pairs else t[8]]
    if cin == 24:
        words = [int(v) for v in mp.pack_3x3x24(np.array([t], dtype=np.uint32)).reshape(-1)]
        if pairs:
            words[6] = _tail24(words[6])
        return words
    stream = sum(v << (i * cin) for i, v in enumerate(t))  # pack_taps: tap i at bit i cin
    return [(stream >> (32 * k)) & 0xFFFFFFFF for k in range(nw)]


def _bits_cnn_graph(seed: int, hw: int, convs: list[tuple], tag: str):
    """uint8 stem hw x hw (3x3, 3 -> convs[0][0] channels, pad 1) -> binary 3x3 convs on bits, one per
    (cin, cout, stride, pad, pad value, INT32-extreme thresholds), each with a threshold over K = 9 cin
    (random directions, ties) -> flatten -> binary dense logits (7 classes)."""
    from conv_graphs import binary_conv3x3, threshold

    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)
    c0 = convs[0][0]
    layers = [binary_conv3x3(rng, "stem", 3, c0, 1, 1, "u8"), threshold(rng, "t0", c0, 27 * 255)]
    h = hw
    for i, (cin, cout, s, p, pad_value, extremes) in enumerate(convs, 1):
        layers += [binary_conv3x3(rng, f"c{i}", cin, cout, s, p, "bits", pad_value),
                   threshold(rng, f"t{i}", cout, 9 * cin, extremes=extremes)]
        h = (h + 2 * p - 3) // s + 1
    cout = convs[-1][1]
    layers += [Layer("flatten", "flat", "flatten", {}),
               Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
                     {"weight": rng.choice([-1, 1], (7, h * h * cout)).astype(np.int8)}),
               Layer("affine", "logits", "fc", {}, {"scale": np.ones(7), "bias": np.zeros(7)})]
    return Graph((hw, hw, 3), layers, 1.0, {"model_hash": f"{tag}{seed}"})


def _emit_and_verify(tmp_path, graph, hw: int, seed: int, n: int, cores: tuple) -> str:
    """emit-c (write_firmware_dir, Cortex-M4) on graph, then emit-c --verify's check: every integer logit equals
    the IR executor's on the host (sanitizers), in QEMU on the Cortex-M4 and on each of cores, for all-255,
    all-0 and n - 2 random hw x hw images.  Returns the model.c written."""
    from bnn2hw.mcu.cli import verify_firmware, write_firmware_dir

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi qemu-system-arm")
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m4")
    x = np.random.default_rng(seed).integers(0, 256, (n, 3, hw, hw)).astype(np.uint8)
    x[0], x[1] = 255, 0
    res = verify_firmware(graph, out, "cortex-m4", x, echo=lambda *_: None)
    assert res["host"]["int_logits_differing"] == 0 and res["cortex-m4"]["int_logits_differing"] == 0
    for core in cores:
        res = verify_firmware(graph, out, core, x, host=False, echo=lambda *_: None)
        assert res[core]["int_logits_differing"] == 0, core
    return (out / "model.c").read_text()


def _few_cnn_graph(seed: int):
    """uint8 stem 8x8 -> binary convs on bits with at most 16 output positions (16 -> 16 stride 2 zero
    padding: 4x4 outputs; 16 -> 24 no padding: 2x2; 24 -> 17 at -1 padding: 2x2; 17 -> 16 zero padding:
    2x2), each with a threshold (random directions, ties) -> flatten -> binary dense logits."""
    return _bits_cnn_graph(seed, 8, [(16, 16, 2, 1, 0, False), (16, 24, 1, 0, 0, False), (24, 17, 1, 1, -1, False),
                                     (17, 16, 1, 1, 0, False)], "fewconv")


def test_emitted_cnn_few(tmp_path):
    """emit-c (write_firmware_dir) calls bnn_conv_bits_tile with generated patch packers for the four bits
    convs with few output positions (conv_tile.applies; 16 / 24 input channels: the assembly record loops,
    17: the row kernel), and every integer logit equals the IR executor's on the host (sanitizers) and in
    QEMU on the Cortex-M4, M3 (no USADA8: the 16-channel data's fallback) and M0, on all-255, all-0 and
    random images (emit-c --verify's check).  bnn_conv_bits_few's tiles: test_emitted_cnn_tiles."""
    from bnn2hw.mcu.cli import write_firmware_dir

    graph = _few_cnn_graph(5)
    src = _emit_and_verify(tmp_path, graph, 8, 4, 6, ("cortex-m3", "cortex-m0"))
    assert src.count("bnn_conv_bits_tile(&") == 4 and "bnn_conv_bits_few(&" not in src
    assert src.count("_patches(const bnn_word_t *in, bnn_word_t *x)") == 4 and "bnn_conv_bits_prep(&" not in src
    small = tmp_path / "fw_size"  # --optimize size: the prepared entry, no few-position or tile code
    write_firmware_dir(graph, small, "cortex-m4", optimize="size")
    src_size = (small / "model.c").read_text()
    assert "bnn_conv_bits_few(&" not in src_size and "_patches(" not in src_size
    assert src_size.count("bnn_conv_bits_prep(&") == 4


def _tiled_cnn_graph(seed: int):
    """uint8 stem 12x12 -> binary convs that bnn_conv_bits_few runs in several tiles: 16 -> 16 stride 1 zero
    padding (144 positions, rows of 12), 16 -> 32 stride 2 no padding (25), 32 -> 17 at -1 padding (25,
    cin 32: few_rows), each with a threshold (random directions, ties, extremes) -> flatten -> binary dense."""
    return _bits_cnn_graph(seed, 12, [(16, 16, 1, 1, 0, True), (16, 32, 2, 0, 0, False), (32, 17, 1, 1, -1, False)],
                           "tiledconv")


def test_emitted_cnn_tiles(tmp_path):
    """emit-c calls bnn_conv_bits_few for the three bits convs of more than 16 output positions (3x3x16 and
    3x3x32: conv_m4_prep.use_few), and emit-c --verify's check holds: every integer logit equals the IR
    executor's on the host (sanitizers) and in QEMU on the Cortex-M4 (tiles on the asm record loop) and
    M3 / M0 (the data's fallback; few_rows), on all-255, all-0 and random images."""
    src = _emit_and_verify(tmp_path, _tiled_cnn_graph(3), 12, 8, 5, ("cortex-m3", "cortex-m0"))
    assert src.count("bnn_conv_bits_few(&") == 3 and "bnn_conv_bits_prep(&" not in src


def test_use_few_and_vc_choice():
    """use_few: bnn__conv_bits_few's one-tile test (3x3, cin <= 32, <= 16 positions, the bordered image
    within FEW_IMG words) or 3x3x16 / 3x3x32 at any size (tiles); use_vc keeps the column-sliced kernel only where it is also estimated to beat
    the prepared entry, so it never picks it where the old rule (against the plain rows) did not, and the
    grid shapes where bnn_conv_bits_prep / _few measured faster than the column-sliced kernel leave it."""
    from bnn2hw.mcu import conv_vcols as cv

    assert mp.use_few(16, 3, 3, (4, 4), (1, 1), 2, 0) and mp.use_few(32, 3, 3, (8, 8), (4, 4), 2, 1)
    assert not mp.use_few(33, 3, 3, (4, 4), (2, 2), 1, 0)  # two words a tap
    assert not mp.use_few(16, 5, 5, (5, 5), (1, 1), 1, 0)
    # more than one tile: 3x3x16 and 3x3x32 (measured faster than bnn_conv_bits_prep on every grid shape),
    # not 3x3x24 (1% slower on the 16x16 maps) nor other cin
    for c in (16, 32):
        assert mp.use_few(c, 3, 3, (5, 5), (5, 5), 1, 1) and mp.use_few(c, 3, 3, (32, 32), (32, 32), 1, 1)
    for c in (24, 17, 31):
        assert not mp.use_few(c, 3, 3, (5, 5), (5, 5), 1, 1) and mp.use_few(c, 3, 3, (4, 4), (4, 4), 1, 1)
    # a 1x16 strip at stride 3 with padding: image 3 x 48 = 144 words fits, stride 4: 3 x 63 does not
    # (one tile: cin 24 only then; cin 16 runs two tiles)
    assert mp.one_tile(16, 3, 3, (1, 46), (1, 16), 3, 1) and not mp.one_tile(16, 3, 3, (1, 62), (1, 16), 4, 1)
    assert mp.use_few(24, 3, 3, (1, 46), (1, 16), 3, 1) and not mp.use_few(24, 3, 3, (1, 62), (1, 16), 4, 1)
    assert mp.use_few(16, 3, 3, (1, 62), (1, 16), 4, 1)
    assert mp.use_few(24, 3, 3, (3, 63), (1, 16), 4, 0)  # no padding, windows inside: no image
    # the tiled entry beats the plain call on 3x3x16 without padding classes over 256 positions, where
    # bnn_conv_bits_prep alone did not (worth)
    assert not mp.worth(16, 3, 3, 30, 30, 0, False) and mp.worth(16, 3, 3, 30, 30, 0, False, few=True)
    old_rule = {}
    for c in (16, 24, 32, 64, 128, 256):
        for hw in (32, 16, 8, 4):
            for s in (1, 2):
                for p in (0, 1):
                    for m1 in (False, True):
                        g = (hw, hw, c, c, 3, 3, s, p, m1)
                        old = cv.vc_estimate(*g) < 0.80 * cv.rows_estimate(*g) and cv.supported(
                            3, 3, c, c, s, cv.layer_npos(c, c, 3, s, 3))
                        old_rule[g] = old
                        assert not cv.use_vc(*g) or old, g
    # measured (mcu_conv_grid_m4.md / this branch): prep or few beat vc by 5% to 32% -> no longer vc
    for g in [(8, 8, 16, 16, 3, 3, 1, 1, False), (4, 4, 16, 16, 3, 3, 1, 1, False),
              (8, 8, 32, 32, 3, 3, 2, 1, False), (4, 4, 32, 32, 3, 3, 2, 1, False)]:
        assert old_rule[g] and not cv.use_vc(*g), g
    # where vc measured >= 25% faster it stays
    for g in [(16, 16, 64, 64, 3, 3, 1, 1, False), (4, 4, 256, 256, 3, 3, 1, 1, False),
              (32, 32, 32, 32, 3, 3, 1, 0, False)]:
        assert cv.use_vc(*g), g
    # the estimate follows the kernel emit-c calls: the plain rows where conv_m4_prep does not prepare
    g = (8, 8, 16, 16, 5, 5, 1, 0, False)  # 25 taps: conv_m4_prep.fits False
    assert cv.prep_estimate(*g) == cv.rows_estimate(*g)
    g = (32, 32, 16, 16, 3, 3, 1, 0, True)  # 3x3x16, -1 padding, > 256 positions: the tiled few entry
    assert cv.prep_estimate(*g) < cv.rows_estimate(*g)


# ---------------------------------------------------------------- 3x3x24 tail-spread rows (conv24_positions)

# (cin, cout, h, w, stride, pad): cin 24 with cout 1 .. 63 (one and two 32-channel chunks), maps 1x1 to
# 16x16, 5x5, 7x3, 1x9, 2x2 (windows past the input), stride 1 / 2 / 3, zero and -1 padding; cin 23 / 25
# (rows of 7 words too, not the 24-channel layout: the generic row kernel)
CASES24 = [(24, 1, 1, 1, 1, 1), (24, 15, 16, 16, 1, 1), (24, 16, 16, 16, 2, 0), (24, 23, 5, 5, 1, 0),
           (24, 24, 7, 3, 2, 1), (24, 25, 9, 9, 3, 1), (24, 31, 8, 8, 1, -1), (24, 32, 6, 6, 2, -1),
           (24, 33, 5, 5, 1, 1), (24, 63, 4, 4, 1, 1), (24, 24, 1, 9, 1, 1), (24, 17, 2, 2, 1, 1),
           (24, 24, 3, 3, 1, 0), (24, 24, 5, 5, 3, 0), (24, 63, 3, 3, 1, -1), (24, 5, 4, 4, 2, 1),
           (23, 24, 5, 5, 1, 1), (25, 24, 5, 5, 2, 0), (23, 16, 4, 4, 1, -1), (25, 33, 7, 3, 1, 1)]


def test_tail_spread_and_rows24():
    """tail_spread moves bit 3 of every nibble of a 24-bit word to nibbles 6 / 7 (bit 3 of each nibble
    then 0, no bit lost: a permutation of the 24 bits); rows24 are prepared_rows with that seventh word."""
    singles = np.array([1 << i for i in range(24)], dtype=np.uint32)
    out = mp.tail_spread(singles)
    assert len({int(v) for v in out}) == 24 and all(bin(int(v)).count("1") == 1 for v in out)
    assert all(int(v) & 0x88888888 == 0 for v in out)
    assert int(mp.tail_spread(np.array([0xFFFFFF], dtype=np.uint32))[0]) == 0x77777777
    assert [int(v) for v in mp.tail_spread(np.array([1 << 3, 1 << 15, 1 << 23], dtype=np.uint32))] == [
        1 << 24, 1 << 29, 1 << 30]
    rng = np.random.default_rng(24)
    w = rng.choice([-1, 1], (33, 3, 3, 24)).astype(np.int8)
    rows, plain = mp.rows24(w), mp.prepared_rows(w)
    assert (rows[:, :6] == plain[:, :6]).all() and (rows[:, 6] == mp.tail_spread(plain[:, 6])).all()
    q = mp.prepare(w, np.zeros(33), (5, 5), (5, 5), 1, 1, False)
    assert q["pairs"] == 1 and q["nw"] == 7 and (q["rows"] == rows.ravel()).all() and (q["m"] < 0).all()
    q = mp.prepare(w, np.zeros(33), (5, 5), (5, 5), 1, 1, False, dsp=False)  # Cortex-M3 data: the same
    assert q["pairs"] == 1 and (q["rows"] == rows.ravel()).all()
    q = mp.prepare(w, np.zeros(33), (5, 5), (5, 5), 1, 1, False, dense_words=mp.DENSE_WORDS_M0)  # M0: 9 words
    assert q["pairs"] == 0 and q["nw"] == 9 and (q["m"] >= -1).all()
    assert not mp.uses_rows24(24, 3, 3, mp.DENSE_WORDS_M0) and not mp.uses_rows24(23, 3, 3)


@pytest.mark.parametrize("entry", ["prep", "few"])
@pytest.mark.parametrize("target, flags", [("host", "-Werror"), ("host", "-Werror -DBNN_CONV24_ROWS=1"),
                                           ("cortex-m0", "-Werror"), ("cortex-m3", "-Werror"),
                                           ("cortex-m4", "-Werror"), ("cortex-m7", "-Werror"),
                                           ("cortex-m33", "-Werror"), ("cortex-m55", "-Werror")])
def test_conv24_rows_exact(tmp_path, target, flags, entry):
    """bnn_conv_bits_prep / _few on CASES24 (host builds under ASan/UBSan; the asm row loop on M4 / M7 /
    M33, the portable twin on the host with -DBNN_CONV24_ROWS=1, the data's fallback on M0 / M3 / M55 and
    the plain host build; ties, thresholds at K, +-10^6 and the INT32 extremes; all-ones / all -1 /
    random inputs; every 5th case's data made for another build, every 7th with a wrong row length):
    the output words of the entry and of the reference loop nest both equal numpy's."""
    cases = [c for c in CASES24 if c[2] * c[3] <= 25] if target == "cortex-m0" else CASES24
    got, want = _build_and_run(tmp_path, target, flags, cases, seed=24, entry=entry, extremes=True)
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{target} {flags} {entry}: {len(bad)} words differ, first at {bad[:3].tolist()}"


def _cnn24_graph(seed: int):
    """uint8 stem 10x10 -> 24 channels -> binary 3x3x24 convs on bits: 24 -> 24 stride 2 zero padding
    (5x5 outputs: bnn_conv_bits_prep), 24 -> 24 no padding (3x3: _tile), 24 -> 17 at -1 padding (3x3:
    _tile), each with a threshold (random directions, ties) -> flatten -> binary dense logits."""
    return _bits_cnn_graph(seed, 10, [(24, 24, 2, 1, 0, True), (24, 24, 1, 0, 0, False), (24, 17, 1, 1, -1, False)],
                           "conv24_")


def test_emitted_cnn24(tmp_path):
    """emit-c (write_firmware_dir) on a 24-channel CNN writes the three bits convs' tail-spread rows and
    calls bnn_conv_bits_prep / _tile; every integer logit equals the IR executor's (emit-c --verify's
    check) on the host (sanitizers), in QEMU on the Cortex-M4 (conv24_few_asm) and on the M3 (no USADA8:
    the generic row kernel on the same rows), on all-255, all-0 and random images."""
    src = _emit_and_verify(tmp_path, _cnn24_graph(6), 10, 5, 6, ("cortex-m3",))
    assert src.count("3x3x24 rows, seventh word tail-spread") == 3
    assert src.count("bnn_conv_bits_prep(&") == 1 and src.count("bnn_conv_bits_tile(&") == 2
