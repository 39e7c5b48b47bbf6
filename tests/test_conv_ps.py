# SPDX-License-Identifier: MIT
"""The position-sliced conv (firmware bnn_conv_ps.c, data bnn2hw/mcu/conv_ps.py): ``bnn_conv_ps_bits``
and its ``_ref`` twin equal numpy's conv + threshold bit for bit at zero padding (bnn_conv_bits'
contract), -1 padding (bnn_conv_bits_m1's) and without padding; cin 1 / 16 / 17 / 24 / 33, cout 1 / 15
/ 16 / 17 / 24 / 33, stride 1 / 2, maps 4x4, 5x5, 9x9, 1x7, 7x3, 33x5; ties (acc == thr on interior and
border positions), thresholds always / never met (finite and INT32_MIN / MAX), all-ones and
all-zeros inputs; and a layer outside the preconditions falls back to bnn_conv_bits.

One generated C program per target holds every case and returns the number of mismatches: host gcc
under -Wall -Wextra -Werror -fsanitize=address,undefined, and QEMU on Cortex-M3, M4, M7 and M33.
The compare values are also checked against numpy in Python (tables vs formula)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from c_driver import run_driver

from bnn2hw.mcu import conv_ps
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
    cols = np.stack([xp[ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
                     for ky in range(kh) for kx in range(kw)], axis=2)  # [oh, ow, taps, c]
    return np.einsum("yxtc,otc->yxo", cols, w.reshape(o, kh * kw, c).astype(np.int64))


CASES: list[dict] = []


def case(cin, cout, h, wd, stride=1, pad=1, m1=False, k=3, inp="random", seed=0, fallback=False):
    """One conv: random +-1 weights, thresholds with ties at an interior and a border position and
    channels that always / never fire."""
    rng = np.random.default_rng(seed + 7919 * cin + 104729 * cout + 17 * stride + 5 * pad + 13 * h + wd + 3 * m1)
    x = rng.choice(np.array([-1, 1]), size=(h, wd, cin))
    if inp == "ones":
        x[:] = 1
    elif inp == "zeros":
        x[:] = -1
    w = rng.choice(np.array([-1, 1]), size=(cout, k, k, cin))
    if cout > 2:
        w[2] = 1  # every weight +1: the S0 list is empty
    acc = conv_acc(x, w, stride, pad, -1 if m1 else 0)
    oh, ow = acc.shape[:2]
    kk = k * k * cin
    thr = (acc[oh // 2, ow // 2] + rng.integers(-1, 2, size=cout)).astype(np.int64)
    thr[::3] = acc[0, 0, ::3]  # ties at the corner (zero padding: its own window class)
    thr[2::3] = acc[-1, -1, 2::3]
    thr[0] = I32.min
    if cout > 1:
        thr[1] = I32.max
    if cout > 4:
        thr[4] = -kk  # always, finite
    if cout > 5:
        thr[5] = kk + 1  # never, finite
    if cout > 6:
        thr[6] = kk  # only an all-match window
    thr = thr.astype(np.int32)
    q = conv_ps.prepare(w, thr, (h, wd), (oh, ow), stride, pad, m1)
    CASES.append({"name": f"c{len(CASES)}_{h}x{wd}x{cin}_o{cout}_s{stride}p{pad}{'m1' if m1 else ''}_{inp}"
                      f"{'_fallback' if fallback else ''}",
                      "params": [h, wd, cin, oh, ow, cout, k, k, stride, stride, pad, pad], "m1": int(m1), "q": q,
                      "x": pack_bits(x).ravel(), "w": pack_bits(w).ravel(), "thr": thr, "fallback": fallback,
                      "expect": pack_bits(np.where(acc >= thr, 1, -1)).ravel(),
                      "work": conv_ps.work_words(h, wd, cin, cout, k, k, stride, pad),
                      "acc": acc, "xw": (x, w), "geo": (h, wd, stride, pad)})


for _cin in (16, 24, 17, 33, 1):
    for _cout in (16, 15, 17, 1, 24, 33):
        for _s, _p, _m1 in ((1, 1, False), (2, 1, True), (1, 0, False), (2, 1, False)):
            case(_cin, _cout, 5, 5, stride=_s, pad=_p, m1=_m1)
for _h, _wd in ((4, 4), (9, 9), (1, 7), (7, 3), (33, 5)):
    for _s, _p, _m1 in ((1, 1, False), (1, 1, True), (2, 1, False), (2, 0, False), (2, 1, True)):
        if _h + 2 * _p >= 3 and _wd + 2 * _p >= 3:
            case(16, 16, _h, _wd, stride=_s, pad=_p, m1=_m1)
            case(24, 24, _h, _wd, stride=_s, pad=_p, m1=_m1)
for _inp in ("ones", "zeros"):
    for _m1 in (False, True):
        case(16, 16, 6, 7, pad=1, m1=_m1, inp=_inp)
        case(24, 17, 5, 9, stride=2, pad=1, m1=_m1, inp=_inp)
case(32, 32, 8, 8, stride=1, pad=1)  # K = 288: uint16 lists
case(64, 40, 5, 4, stride=2, pad=1, m1=True)  # two input words, two output groups
case(16, 16, 12, 12, stride=1, pad=2)  # pad 2: 25 window classes
case(16, 16, 6, 6, stride=1, pad=1, k=5)  # 5x5 kernel
case(16, 16, 5, 5, pad=1, fallback=True)  # outside the preconditions: bnn_conv_bits


def test_compare_values_formula():
    """Tables vs formula: for every case, (2 C + 2^m - 1 - Ctot >= v) xor neg = (acc >= thr) at every
    position and channel, with C and Ctot summed in numpy from the lists."""
    for c in CASES:
        x, w = c["xw"]
        h, wd, s, p = c["geo"]
        q = c["q"]
        o, kh, kw, cin = w.shape
        k = kh * kw * cin
        xb = np.zeros((h + 2 * p, wd + 2 * p, cin), dtype=np.int64)  # 0 at padded taps
        xb[p:p + h, p:p + wd] = x > 0
        oh, ow = c["acc"].shape[:2]
        off = np.concatenate([[0], np.cumsum(q["len"].astype(np.int64))])
        for oy in range(oh):
            for ox in range(ow):
                win = xb[oy * s:oy * s + kh, ox * s:ox * s + kw].reshape(k)
                xz = np.concatenate([win, [0]])
                ctot = int(win.sum())
                cls = int(q["ycls"][oy]) * q["nx"] + int(q["xcls"][ox])
                for ch in range(o):
                    lst = q["idx"][off[ch]:off[ch + 1]].astype(np.int64)
                    assert len(lst) % 8 == 0 and len(lst) <= -(-(k // 2) // 8) * 8
                    f = 2 * int(xz[lst].sum()) + (1 << q["m"]) - 1 - ctot
                    neg = (int(q["neg"][ch // 32]) >> (ch % 32)) & 1
                    got = (f >= int(q["v"][cls, ch])) ^ neg
                    assert got == (c["acc"][oy, ox, ch] >= c["thr"][ch]), (c["name"], oy, ox, ch)


def _c_arr(ctype: str, name: str, a: np.ndarray) -> str:
    a = np.asarray(a).ravel()
    if ctype == "int32_t":
        vals = ", ".join(f"(int32_t){int(v)}" if int(v) == I32.min else str(int(v)) for v in a)
    else:
        vals = ", ".join(f"{int(v)}u" for v in a)
    return f"static const {ctype} {name}[{max(a.size, 1)}] = {{{vals or '0'}}};\n"


def driver_source() -> str:
    lines = ['#include <stdint.h>', '#include <stddef.h>', '#include "bnn_conv_ps.h"',
             '#if defined(__arm__) && !defined(BNN_HOST)', '#include "bnn_harness.h"',
             '#define SAY(s) bnn_sh_puts(s)', '#else', '#include <stdio.h>', '#define SAY(s) fputs(s, stderr)',
             '#endif']
    maxw = max(c["work"] for c in CASES)
    maxo = max(c["expect"].size for c in CASES)
    lines += [f"#define MAXW {maxw}u", "static uint32_t work[MAXW];", f"static bnn_word_t out[{maxo + 1}];"]
    body = []
    for i, c in enumerate(CASES):
        q = c["q"]
        it = "uint8_t" if q["idx8"] else "uint16_t"
        lines.append(_c_arr("bnn_word_t", f"x{i}", c["x"]) + _c_arr("bnn_word_t", f"w{i}", c["w"])
                     + _c_arr("int32_t", f"thr{i}", c["thr"]) + _c_arr("bnn_word_t", f"e{i}", c["expect"])
                     + ("" if c["fallback"] else _c_arr(it, f"ix{i}", q["idx"])) + _c_arr("uint16_t", f"ln{i}", q["len"])
                     + _c_arr("uint32_t", f"ng{i}", q["neg"]) + _c_arr("int32_t", f"v{i}", q["v"])
                     + _c_arr("uint8_t", f"xc{i}", q["xcls"]) + _c_arr("uint8_t", f"yc{i}", q["ycls"]))
        pr = ", ".join(f"{v}u" for v in c["params"])
        i8, i16 = (f"ix{i}", "NULL") if q["idx8"] else ("NULL", f"ix{i}")
        if c["fallback"]:
            i8, i16 = "NULL", "NULL"  # no list: bnn_conv_ps_ok fails, the row kernel runs
        lines.append(f"static const bnn_conv_ps_t L{i} = {{{{{pr}}}, {c['m1']}u, {q['nx']}u, {q['m']}u, {i8}, {i16}, "
                     f"ln{i}, ng{i}, v{i}, xc{i}, yc{i}, w{i}, thr{i}}};")
        body.append(f"    fails += run(&L{i}, x{i}, e{i}, {c['expect'].size}u, {c['work']}u, {int(not c['fallback'])}, "
                    f"\"{c['name']}\");")
    lines.append("""
/* Work memory at the end of the static array (ASan: a write past ww words is past the global), the
 * words before it a canary that must survive (QEMU has no ASan); no reliance on zeroed work. */
static int run(const bnn_conv_ps_t *L, const bnn_word_t *x, const bnn_word_t *e, uint32_t n, uint32_t ww, int ok,
               const char *name)
{
    if (bnn_conv_ps_ok(L) != ok || bnn_conv_ps_work_words(&L->p) != ww || ww > MAXW) {
        SAY("precondition / work size mismatch: ");
        SAY(name);
        SAY("\\n");
        return 1;
    }
    for (uint32_t v = 0; v < 2u; ++v) {
        for (uint32_t i = 0; i < MAXW; ++i) {
            work[i] = 0xA5A5A5A5u * (i + 1u);
        }
        out[n] = 0x5A5A5A5Au;
        if (v == 0u) {
            bnn_conv_ps_bits_ref(L, x, out);
        } else {
            bnn_conv_ps_bits(L, x, work + (MAXW - ww), out);
        }
        for (uint32_t i = 0; i < MAXW - ww; ++i) {
            if (work[i] != 0xA5A5A5A5u * (i + 1u)) {
                SAY("work memory overrun ");
                SAY(name);
                SAY("\\n");
                return 1;
            }
        }
        for (uint32_t i = 0; i <= n; ++i) {
            if (out[i] != (i < n ? e[i] : 0x5A5A5A5Au)) {
                SAY(v == 0u ? "FAIL ref " : "FAIL fast ");
                SAY(name);
                SAY("\\n");
                return 1;
            }
        }
    }
    return 0;
}

int main(void)
{
    int fails = 0;""")
    lines += body
    lines.append("    return fails > 99 ? 99 : fails;\n}\n")
    return "\n".join(lines)


def _sources() -> list[str]:
    return [str(FW / "src" / f) for f in ("bnn_conv_ps.c", "bnn_conv.c", "bnn_bits.c", "bnn_dense.c",
                                           "bnn_threshold.c", "bnn_conv_vc.c", "bnn_vcols.c")]


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("psconv")
    (d / "drv.c").write_text(driver_source())
    return d


@pytest.mark.parametrize("target", ["host", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33"])
def test_conv_ps_exact(driver, target):
    proc = run_driver(driver, _sources(), target)
    assert proc.returncode == 0, f"{target}: {proc.returncode} failing cases\n{proc.stdout}{proc.stderr}"


def test_case_coverage():
    """The shapes and hostile cases the brief names are all in CASES."""
    names = " ".join(c["name"] for c in CASES)
    for cin in (1, 16, 17, 24, 33):
        assert f"x{cin}_o" in names, cin
    for cout in (1, 15, 16, 17, 24, 33):
        assert f"_o{cout}_" in names, cout
    for tag in ("4x4x", "5x5x", "9x9x", "1x7x", "7x3x", "33x5x", "s2", "p0", "m1", "_ones", "_zeros", "_fallback"):
        assert tag in names, tag


# ---------------------------------------------------------------- generated models (emit-c --verify)


def _ps_graph(seed: int = 3):
    """uint8 stem 1 -> 16 at 16x16 -> threshold -> 16 -> 24 (-1 padding) -> threshold (ties, never /
    always channels) -> 24 -> 24 pad 0 -> threshold -> flatten -> binary dense logits: both bits convs
    on the position-sliced kernel by the count model."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conv_graphs import binary_conv3x3, threshold

    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)
    layers = [binary_conv3x3(rng, "stem", 1, 16, 1, 1, "u8"), threshold(rng, "t0", 16, 9 * 255),
              binary_conv3x3(rng, "c1", 16, 24, 1, 1, "bits", -1), threshold(rng, "t1", 24, 144, extremes=True),
              binary_conv3x3(rng, "c2", 24, 24, 1, 0, "bits", 0), threshold(rng, "t2", 24, 216, extremes=True),
              Layer("flatten", "flat", "flatten", {}),
              Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
                    {"weight": rng.choice([-1, 1], (5, 14 * 14 * 24)).astype(np.int8)}),
              Layer("affine", "logits", "fc", {}, {"scale": np.ones(5), "bias": np.zeros(5)})]
    return Graph((16, 16, 1), layers, 1.0, {"model_hash": f"ps{seed}"})


def test_emit_c_choice_and_report():
    """emit-c picks the position-sliced kernel for both bits convs (speed), records it with its
    estimate, flash and work memory, puts the work in one static under BNN_CONV_PS (outside the
    arena) and keeps the other kernels' call in the #else; --optimize size emits none of it."""
    from bnn2hw.mcu import codegen
    from bnn2hw.mcu.cli import conv_choice_line

    g = _ps_graph()
    fast, small = codegen.emit(g, optimize="speed"), codegen.emit(g, optimize="size")
    by = {c["layer"]: c for c in fast.conv_choices}
    assert by["c1"]["kernel"] == by["c2"]["kernel"] == "position-sliced"
    for c in by.values():
        est = c["estimated_instructions_m4"]
        assert est["position_sliced"] < conv_ps.PS_MARGIN * est["prepared_rows"]
        assert c["flash_bytes"]["position_sliced"] > c["flash_bytes"]["rows"]
        assert "position-sliced kernel" in conv_choice_line(c)
    work = max(conv_ps.work_words(16, 16, 16, 24, 3, 3, 1, 1), conv_ps.work_words(16, 16, 24, 24, 3, 3, 1, 0))
    assert f"static uint32_t bnn_pswork[{work}];" in fast.source
    assert fast.source.count("bnn_conv_ps_bits(&") == 2 and "#if BNN_CONV_PS" in fast.source
    assert fast.scratch_bytes - small.scratch_bytes == 4 * work
    assert "bnn_conv_ps_bits" not in small.source and "BNN_CONV_PS" not in small.source
    assert all(c["kernel"] == "rows" for c in small.conv_choices)


def test_emit_c_verify_m4(tmp_path):
    """The generated firmware equals the IR executor bit for bit on the host (-Werror, ASan/UBSan)
    and in QEMU on the Cortex-M4, on random, all-255 and all-0 images."""
    for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc gcc-arm-none-eabi qemu-system-arm")
    from bnn2hw.mcu.cli import verify_firmware, write_firmware_dir

    g = _ps_graph()
    x = np.random.default_rng(5).integers(0, 256, (4, 1, 16, 16)).astype(np.uint8)
    x[0], x[1] = 255, 0
    write_firmware_dir(g, tmp_path / "fw", "cortex-m4")
    res = verify_firmware(g, tmp_path / "fw", "cortex-m4", x, echo=lambda *_: None)
    assert res["host"]["int_logits_differing"] == 0 and res["cortex-m4"]["int_logits_differing"] == 0


@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m55", "cortex-m33"])
def test_emit_c_other_cores(tmp_path, target):
    """The same firmware on a core without the position-sliced kernel (M0: rows; M55: Helium) runs
    the #else branch, and on the M33 the kernel: each equals the IR in QEMU."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi qemu-system-arm")
    from bnn2hw.ir import execute
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    g = _ps_graph()
    x = np.random.default_rng(6).integers(0, 256, (3, 1, 16, 16)).astype(np.uint8)
    write_firmware_dir(g, tmp_path / "fw", target)
    elf = toolchain.build(tmp_path / "fw", target)
    got = qemu.run(elf, target, to_c_inputs(g, x), g.num_classes, timeout=300)
    assert np.array_equal(got, execute.run(g, x).int_logits), target


def test_flash_bound_and_choice_rules():
    """flash_bytes bounds every case's prepared tables (lists <= K / 2 rounded up to 8 per channel);
    use_ps is never true with --optimize size or for an unsupported shape, and an unknown
    --optimize is a Bnn2hwError."""
    from bnn2hw.errors import Bnn2hwError

    for c in CASES:
        h, wd, s, p = c["geo"]
        _, _, cin, _, _, cout, k, _, _, _, _, _ = c["params"]
        q = c["q"]
        real = (q["idx"].nbytes + q["len"].nbytes + q["neg"].nbytes + q["v"].nbytes + q["xcls"].nbytes
                + q["ycls"].nbytes)
        assert real <= conv_ps.flash_bytes(h, wd, cin, cout, k, k, s, p, bool(c["m1"])), c["name"]
    assert conv_ps.use_ps(32, 32, 24, 24, 3, 3, 1, 0, False)
    assert not conv_ps.use_ps(32, 32, 24, 24, 3, 3, 1, 0, False, optimize="size")
    assert not conv_ps.use_ps(2, 2, 24, 24, 3, 3, 1, 0, False)  # no output position
    with pytest.raises(Bnn2hwError, match="--optimize"):
        conv_ps.use_ps(32, 32, 24, 24, 3, 3, 1, 0, False, optimize="fast")
