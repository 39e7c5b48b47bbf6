# SPDX-License-Identifier: MIT
"""The Helium conv with generation-time weight prep (issue 11): bnn2hw/mcu/conv_mve_prep.py builds
the row-dense weight rows and the popcount bounds M per window class, emit-c puts them under
``#if BNN_MVE`` and calls ``bnn_conv_bits_mve_prep`` (bnn_conv.c).

* row_dense_weights equals a word-level transcription of bnn_conv.c's mve_segment (awkward cin:
  33, 40, 63, 65, 95, and 64 = the padded layout).
* m_tables: one table per window class, the M formula checked entry by entry, thresholds far beyond
  K clamp to -1 / 32 nw.
* End to end: a generated CNN with a cin-33 stride-2 zero-padded conv (the 9x9x33 s2 p1 shape of
  bench_mcu_conv_m55.py), a -1-padded cin-40 conv, cin 64 and cin 65 convs, thresholds with ties
  and far outside [-K, K]: every integer logit equals the IR executor's in QEMU on the Cortex-M55
  (prepared path) and on the host; and again with -DBNN_CONV_MVE_COL_WORDS=16 (no shape fits: the
  prepared entry falls back to bnn_conv_bits on the plain weights)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bnn2hw.mcu import conv_mve_prep as mp
from bnn2hw.mcu.codegen import pack_bits


def _segment_c(taps_words: np.ndarray, cin: int) -> list[int]:
    """bnn_conv.c mve_segment on one kernel row: taps_words (kw, cw) uint32."""
    kw, cw = taps_words.shape
    tail = cin - 32 * (cw - 1)
    if tail == 32:
        return [int(v) for v in taps_words.ravel()]
    out = [int(taps_words[kx, i]) for kx in range(kw) for i in range(cw - 1)]
    cur, b = 0, 0
    for kx in range(kw):
        v = int(taps_words[kx, cw - 1])
        cur |= (v << b) & 0xFFFFFFFF
        b += tail
        if b >= 32:
            out.append(cur)
            b -= 32
            cur = v >> (tail - b) if b else 0
    if b:
        out.append(cur)
    return out


@pytest.mark.parametrize("cin", [33, 40, 63, 64, 65, 95])
@pytest.mark.parametrize("kw", [1, 3, 5])
def test_row_dense_weights_match_c_segments(cin, kw):
    rng = np.random.default_rng(cin * 10 + kw)
    w = rng.choice([-1, 1], (5, 3, kw, cin)).astype(np.int8)
    w[0] = 1  # all +1: every valid bit set, the padding bits must stay 0
    got = mp.row_dense_weights(w)
    rwd = -(-kw * cin // 32)
    assert got.shape == (5, 3 * rwd)
    words = pack_bits(w)  # (5, 3, kw, cw)
    for o in range(5):
        want = [v for ky in range(3) for v in _segment_c(words[o, ky], cin)]
        assert [int(v) for v in got[o]] == want, (o, cin, kw)


def test_m_tables_classes_and_formula():
    """9x9 s2 p1 (out 5x5): 3 row classes x 3 column classes; M entry by entry, clamps at both ends."""
    rng = np.random.default_rng(5)
    o, c = 33, 33
    w = rng.choice([-1, 1], (o, 3, 3, c)).astype(np.int8)
    thr = rng.integers(-60, 61, o)
    thr[0], thr[1], thr[2], thr[3] = 0, 10 ** 9, -(10 ** 9), 9 * c  # tie at 0, far outside, exactly K
    tab, xcls, ycls, cpad = mp.m_tables(w, thr, (9, 9), (5, 5), 2, 1, False)
    assert cpad == 36 and tab.shape == (9, 36)
    assert list(xcls) == list(ycls) == [2, 1, 1, 1, 0]  # sorted windows: (0, 2) right-clipped, (0, 3), (1, 3)
    nw = 3 * -(-3 * c // 32)
    ones = (w > 0).sum(-1)  # (o, 3, 3)
    for oy in range(5):
        for ox in range(5):
            valid = np.zeros((3, 3), bool)
            y0, x0 = 2 * oy - 1, 2 * ox - 1
            for ky in range(3):
                for kx in range(3):
                    valid[ky, kx] = 0 <= y0 + ky < 9 and 0 <= x0 + kx < 9
            m = tab[ycls[oy] * 3 + xcls[ox]]
            for j in range(o):
                t = min(max(int(thr[j]), -(1 << 29)), 1 << 29)
                want = (int(valid.sum()) * c - t) // 2 + int(ones[j][~valid].sum())
                assert m[j] == min(max(want, -1), 32 * nw), (oy, ox, j)
    assert (tab[:, 1] == -1).all() and (tab[:, 2] == 32 * nw).all()
    assert (tab[:, o:] == -1).all()  # lanes past cout
    one, *_ = mp.m_tables(w, thr, (9, 9), (5, 5), 2, 1, True)  # -1 padding: one table
    assert one.shape == (1, 36)


def test_fits():
    assert mp.fits(9, 33, 3, 3, 2, 5)
    assert not mp.fits(9, 16, 3, 3, 1, 9)  # cin < 32: the patch path
    assert not mp.fits(200, 64, 3, 3, 1, 200)  # 202 rows x 6 words > 512: the column image does not fit


# ---------------------------------------------------------------- generated model (emit-c, QEMU)


def _graph(seed: int):
    from conv_graphs import binary_conv3x3, threshold

    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)

    def conv(name, cin, cout, s, p, kind, pv=0):
        return binary_conv3x3(rng, name, cin, cout, s, p, kind, pv)

    def thr(name, c, k):
        return threshold(rng, name, c, k, extremes=True)

    layers = [conv("stem", 3, 33, 1, 1, "u8"), thr("t0", 33, 27 * 255),
              conv("c1", 33, 33, 2, 1, "bits", 0), thr("t1", 33, 297),  # 9x9x33 s2 p1 -> 5x5
              conv("c2", 33, 40, 1, 1, "bits", -1), thr("t2", 40, 297),  # -1 padding
              conv("c3", 40, 64, 1, 1, "bits", 0), thr("t3", 64, 360),
              conv("c4", 64, 65, 1, 0, "bits", 0), thr("t4", 65, 576),  # 3x3, no padding
              conv("c5", 65, 31, 1, 1, "bits", 0), thr("t5", 31, 585),  # cin 65: 3 words a tap
              Layer("flatten", "flat", "flatten", {}),
              Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
                    {"weight": rng.choice([-1, 1], (7, 3 * 3 * 31)).astype(np.int8)}),
              Layer("affine", "logits", "fc", {}, {"scale": np.ones(7), "bias": np.zeros(7)})]
    return Graph((9, 9, 3), layers, 1.0, {"model_hash": f"m55prep{seed}"})


@pytest.mark.parametrize("small_buffers", [False, True])
def test_emitted_cnn_m55_prep(tmp_path, small_buffers):
    from bnn2hw.ir import execute
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, verify_firmware, write_firmware_dir

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi qemu-system-arm")
    graph = _graph(11)
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m55")
    src = (out / "model.c").read_text()
    assert src.count("bnn_conv_bits_mve_prep(&") == 5, "every cin >= 32 bits conv takes the prepared entry"
    # the #else branches: the row-kernel conv on its own prepared weights (conv_m4_prep.py); c4 and c5 (3x3
    # outputs, cin 64 / 65) as generation-time tiles (conv_tile.py), run by the host check below
    assert src.count("bnn_conv_bits_prep(&") == 3 and src.count("bnn_conv_bits_tile(&") == 2
    assert "c1_wr[" in src and "c4_wr[" not in src  # cin 64: the plain weights are the row-dense rows
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (5, 3, 9, 9)).astype(np.uint8)
    x[0], x[1] = 255, 0
    if not small_buffers:
        res = verify_firmware(graph, out, "cortex-m55", x, echo=lambda *_: None)
        assert res["host"]["int_logits_differing"] == 0 and res["cortex-m55"]["int_logits_differing"] == 0
        return
    elf = toolchain.build(out, "cortex-m55", extra_cflags="-DBNN_CONV_MVE_COL_WORDS=16")
    got = qemu.run(elf, "cortex-m55", to_c_inputs(graph, x), 7)
    assert np.array_equal(got, execute.run(graph, x).int_logits)


# ---------------------------------------------------------------- the prepared entry on awkward shapes


@pytest.mark.parametrize("hw, cin, cout, s, pad", [(5, 33, 1, 1, 1), (6, 63, 31, 2, 2), (7, 95, 33, 2, 1),
                                                   (4, 65, 65, 1, 0), (3, 32, 257, 1, 1), (5, 255, 32, 2, 1)])
def test_prepared_conv_awkward_shapes(tmp_path, hw, cin, cout, s, pad):
    """bench_mcu_conv_m55.write_conv_prep (the emit-c data layout on a hand-written model.c): cout 1, 31,
    33, 65, 257; cin 33, 63, 65, 95, 255 (tails of 1..31 bits) and 32; pad 2 (two clipped rows and
    columns: 5 window classes a side); every output word equals numpy's conv + threshold in QEMU."""
    import sys
    from pathlib import Path

    from bnn2hw.mcu import qemu, toolchain

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi qemu-system-arm")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mcu_conv_m55 as bc

    seed = 1000 + hw * cin + cout
    m = bc.write_conv_prep(tmp_path, hw, cin, cout, s, pad, seed)
    assert m["prep"] is not None and "bnn_conv_bits_mve_prep(&p, &q" in (tmp_path / "model.c").read_text()
    x, raw = bc.bk.conv_inputs(hw, cin, False, seed)
    elf = toolchain.build(tmp_path, "cortex-m55")
    got = qemu.run(elf, "cortex-m55", x, m["n_out"])
    assert np.array_equal(got, bc.bk.conv_expected(m, raw, s, pad)), (hw, cin, cout, s, pad)
