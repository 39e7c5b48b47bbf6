# SPDX-License-Identifier: MIT
"""Binary kernels at every layer shape, per Cortex-M core (issue 11).

* Dense: all-binary random MLPs W-W-W-10 (input W packed bits, hidden layers `bnn_dense_vbits`
  (column-sliced) where the code generator picks it and the core has BNN_DENSE_VCOLS, else
  `bnn_dense_bits`; last layer `bnn_dense_acc`) at every W in WIDTHS, every core; instructions per
  binary MAC.  `--no-conv` runs the dense part only (with `--cmsis-nn DIR`: and its CMSIS-NN rows).
* CMSIS-NN int8 reference: the same shapes with `arm_fully_connected_s8` + `arm_relu_q7` on
  Cortex-M4 (built from a local copy of CMSIS-NN's sources, never committed: pass its folder
  with --cmsis-nn DIR, e.g. a `git archive` of github.com/ARM-software/CMSIS-NN), and the ratio.
* Conv: 3x3 binary convs (`bnn_conv_bits`), stride 1 and 2, with and without padding,
  16 to 256 channels, maps 32x32 down to 4x4; instructions per binary MAC.
* First layer: 8-bit input 3x3 convs (`bnn_conv_u8_bits`), instructions per 8-bit MAC, beside
  CMSIS-NN's `arm_convolve_s8` on the same shape.

Instruction counts are exact QEMU counts of one `bnn_infer()` call
(bnn2hw.mcu.qemu.count_instructions); every binary build is first checked against numpy on
3 inputs.  Writes benchmarks/results/mcu_kernels.md and mcu_kernels_width.png.

    nice -n 10 python benchmarks/bench_mcu_kernels.py [--cmsis-nn DIR] [--quick]

The dense worst case (both hidden layers fed exactly W / 2 ones) and the all-ones input, printed:

    nice -n 10 python benchmarks/bench_mcu_kernels.py --worst-case --cores cortex-m4 [--widths 128 1024]

Where one dense inference goes (instructions per function, first of --cores):

    nice -n 10 python benchmarks/bench_mcu_kernels.py --profile 128 --cores cortex-m4

Conv shapes alone (plus the awkward-cin shapes 12x12x48, 7x7x40, 9x9x33 s2) on the row kernel
(`bnn_conv_bits`), the row kernel with its weight side prepared at generation time
(`bnn_conv_bits_prep`, `prep`) and / or the column-sliced one (`bnn_conv_vc_bits`), a table to a
scratch file (mcu_kernels.md is written only by the full run):

    nice -n 10 python benchmarks/bench_mcu_kernels.py --conv-only OUT.md --cores cortex-m4 \
        [--conv-kernels rows prep vc few] [--conv-shapes 0 4 ...]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware" / "tests"))

import mlp_model  # noqa: E402

from bnn2hw.errors import Bnn2hwError  # noqa: E402
from bnn2hw.mcu import qemu, toolchain  # noqa: E402
from bnn2hw.mcu.targets import get_target

SEED = 2024
WIDTHS = [64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 512, 768, 1024]
CORES = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
# (map size, cin, cout, stride, pad)
CONV_SHAPES = [(32, 16, 16, 1, 1), (32, 16, 16, 2, 0), (16, 32, 32, 1, 1), (16, 32, 32, 2, 1), (16, 64, 64, 1, 0),
               (8, 64, 64, 1, 1), (8, 128, 128, 2, 1), (8, 128, 128, 1, 0), (4, 256, 256, 1, 1),
               (4, 256, 256, 1, 0)]
CONV_CORES = ["cortex-m0", "cortex-m4", "cortex-m7", "cortex-m55"]
# cores whose builds enable the column-sliced conv (BNN_CONV_VCOLS, bnn_conv_vc.h) among CONV_CORES
VC_CONV_CORES = ["cortex-m4", "cortex-m7"]
# (map size, cin, cout, stride, pad) of the 8-bit first layer
FIRST_SHAPES = [(32, 3, 32, 1, 1), (28, 1, 32, 1, 1), (8, 1, 16, 1, 1)]
# the last `--worst-case --cores cortex-m4` run (printed by that option; the full run does not repeat it)
WORST_CASE_NOTE = ("2026-12-01: W = 128: 0.170, 160: 0.157, 256: 0.137, 1024: 0.118 per binary MAC; all-ones input: "
                   "W = 128: 0.111, 1024: 0.062.")
CMSIS_NN_256_ISSUE = 276_855  # issue 11's figure for 256-256-256-10 (issue 4 measured 276,981)
TARGET_M4_DENSE = 0.25
TARGET_M4_CONV = 0.30


# ---------------------------------------------------------------- binary models (hand-written model.c)


def conv_reference(x, w, stride, pad):
    """x [H, W, C] (+-1 or uint8), w [O, 3, 3, C] +-1; a padded tap contributes 0."""
    h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    xp = np.zeros((h + 2 * pad, wd + 2 * pad, c), dtype=np.int64)
    xp[pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    cols = np.stack([xp[ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
                     for ky in range(kh) for kx in range(kw)], axis=2)  # [oh, ow, taps, c]
    return np.einsum("yxtc,otc->yxo", cols, w.reshape(o, kh * kw, c).astype(np.int64))


def _c_words(name: str, words: np.ndarray, ctype: str = "bnn_word_t") -> str:
    vals = [f"0x{int(v) & 0xFFFFFFFF:08x}u" if ctype == "bnn_word_t" else str(int(v)) for v in words.ravel()]
    lines = [", ".join(vals[i:i + 8]) for i in range(0, len(vals), 8)]
    return f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n    " + ",\n    ".join(lines or ["0"]) + "\n};\n"


def _model_h(input_len: int, num_logits: int) -> str:
    return ("/* SPDX-License-Identifier: MIT */\n#ifndef MODEL_H\n#define MODEL_H\n#include <stddef.h>\n"
            f"#include <stdint.h>\n#define BNN_INPUT_LEN {input_len}\n#define BNN_NUM_LOGITS {num_logits}\n"
            "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len);\n#endif\n")


def write_conv(out: Path, hw: int, cin: int, cout: int, stride: int, pad: int, u8: bool, seed: int) -> dict:
    """model.c running one 3x3 conv (+ threshold) on the input; logits = the output words."""
    rng = np.random.default_rng(seed)
    w = rng.choice(np.array([-1, 1]), size=(cout, 3, 3, cin))
    oh = (hw + 2 * pad - 3) // stride + 1
    cw, ow = (cin + 31) // 32, (cout + 31) // 32
    k = 9 * cin
    thr = rng.integers(-k // 8, k // 8 + 1, size=cout) if not u8 else rng.integers(-2000, 2000, size=cout)
    in_len = hw * hw * cin if u8 else hw * hw * cw * 4
    n_out = oh * oh * ow
    fn = "bnn_conv_u8_bits" if u8 else "bnn_conv_bits"
    src = "input" if u8 else "in_words"
    buf = "" if u8 else f"static bnn_word_t in_words[{hw * hw * cw}];\n"
    copy = "" if u8 else "    memcpy(in_words, input, BNN_INPUT_LEN);\n"
    text = ("/* SPDX-License-Identifier: MIT */\n#include <string.h>\n#include \"model.h\"\n#include \"bnn_conv.h\"\n"
            + _c_words("w", mlp_model._pack_rows(w.reshape(cout * 9, cin)))
            + _c_words("thr", thr.astype(np.int32), "int32_t") + buf
            + f"static bnn_word_t out_words[{n_out}];\n"
            + f"static const bnn_conv_params_t p = {{{hw}u, {hw}u, {cin}u, {oh}u, {oh}u, {cout}u, 3u, 3u, "
              f"{stride}u, {stride}u, {pad}u, {pad}u}};\n"
            + "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n"
              "    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {\n        return -1;\n    }\n"
            + copy + f"    {fn}(&p, {src}, w, thr, out_words);\n"
              "    memcpy(logits, out_words, sizeof out_words);\n    return 0;\n}\n")
    (out / "model.c").write_text(text)
    (out / "model.h").write_text(_model_h(in_len, n_out))
    return {"w": w, "thr": thr, "oh": oh, "in_len": in_len, "n_out": n_out}


def conv_inputs(hw: int, cin: int, u8: bool, seed: int, n: int = 3) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed + 1)
    xs, raw = [], []
    for _ in range(n):
        if u8:
            x = rng.integers(0, 256, size=(hw, hw, cin))
            xs.append(x.astype(np.uint8).ravel())
        else:
            x = rng.choice(np.array([-1, 1]), size=(hw, hw, cin))
            xs.append(mlp_model._pack_rows(x.reshape(hw * hw, cin)).view(np.uint8).ravel())
        raw.append(x)
    return np.stack(xs), raw


def conv_expected(m: dict, raw: list, stride: int, pad: int) -> np.ndarray:
    rows = []
    for x in raw:
        acc = conv_reference(x, m["w"], stride, pad)
        bits = np.where(acc >= m["thr"], 1, -1)
        rows.append(mlp_model._pack_rows(bits.reshape(-1, bits.shape[-1])).view(np.int32).ravel())
    return np.stack(rows)


def count(build_dir: Path, core: str, inputs: np.ndarray, expect: np.ndarray | None, num_logits: int,
          extra_cflags: str = "") -> int | None:
    """Build, check the logits (when expect is given), count one inference; None if it does not fit."""
    try:
        elf = toolchain.build(build_dir, core, extra_cflags=extra_cflags)
    except Bnn2hwError as exc:
        if "overflow" in str(exc) or "will not fit" in str(exc):
            return None
        raise
    got = qemu.run(elf, core, inputs, num_logits, timeout=900)
    if expect is not None and not np.array_equal(got, expect):
        raise AssertionError(f"{build_dir}/{core}: {(got != expect).sum()} output words differ from numpy")
    return qemu.count_instructions(elf, core, inputs[0], timeout=1800)


# The harness-only build of conv_count: bnn_infer with the kernel call's arguments passed to an empty
# function.
HARNESS_NOP = ("static void __attribute__((noinline)) bench_nop(const void *a, ...)\n{\n"
               "    __asm__ volatile(\"\" : : \"r\"(a) : \"memory\");\n}\n")


def conv_count(build_dir: Path, core: str, inputs: np.ndarray, expect: np.ndarray,
               num_logits: int) -> dict | None:
    """A binary conv model's count (count(), outputs checked first) split into the kernel call and the
    harness: {"total", "harness", "kernel"}.  harness = count() of the same model.c with the kernel call
    (its one ``bnn_conv_*`` call) replaced by a call of an empty function on the same arguments: bnn_infer's
    checks and its input and output copies (memcpy of the packed input: 64 instructions on 4x4x16,
    215 on 8x8x16), which a layer of a real network does not do.  kernel = total - harness."""
    import re

    total = count(build_dir, core, inputs, expect, num_logits)
    if total is None:
        return None
    text = (build_dir / "model.c").read_text()
    calls = re.findall(r"^    (bnn_conv_\w+)\(", text, re.M)
    assert len(calls) == 1, f"{build_dir}/model.c: kernel calls {calls}"
    nop = text.replace(f"    {calls[0]}(", "    bench_nop(", 1)
    nop = nop.replace("int bnn_infer(", HARNESS_NOP + "int bnn_infer(", 1)
    with tempfile.TemporaryDirectory() as h:
        (Path(h) / "model.h").write_text((build_dir / "model.h").read_text())
        (Path(h) / "model.c").write_text(nop)
        harness = count(Path(h), core, inputs, None, num_logits)
    return {"total": total, "harness": harness, "kernel": total - harness}


# ---------------------------------------------------------------- CMSIS-NN int8 references


CMSIS_FC_SOURCES = ["FullyConnectedFunctions/arm_fully_connected_s8.c", "NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c",
                    "ActivationFunctions/arm_relu_q7.c"]
CMSIS_CONV_SOURCES = ["ConvolutionFunctions/arm_convolve_s8.c",
                      "ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c",
                      "ConvolutionFunctions/arm_nn_mat_mult_kernel_row_offset_s8_s16.c",
                      "NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c", "NNSupportFunctions/arm_q7_to_q15_with_offset.c",
                      "NNSupportFunctions/arm_s8_to_s16_unordered_with_offset.c"]


def _cmsis_includes(cmsis: Path, files: list[str]) -> str:
    return "".join(f'#include "{cmsis / "Source" / f}"\n' for f in files)


def write_cmsis_mlp(out: Path, cmsis: Path, sizes: list[int], seed: int) -> None:
    """int8 MLP of the same shapes: arm_fully_connected_s8 per layer, arm_relu_q7 on hidden outputs."""
    rng = np.random.default_rng(seed)
    parts = ["/* SPDX-License-Identifier: MIT */\n#include \"model.h\"\n#include \"arm_nnfunctions.h\"\n",
             _cmsis_includes(cmsis, CMSIS_FC_SOURCES)]
    body = ["int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n",
            "    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {\n        return -1;\n    }\n",
            "    const cmsis_nn_context ctx = {0, 0};\n"
            "    const cmsis_nn_fc_params fc = {0, 0, 0, {-128, 127}};\n"
            "    const cmsis_nn_per_tensor_quant_params q = {1 << 30, -6};\n"
            "    const int8_t *src = (const int8_t *)input;\n"]
    mx = max(sizes)
    parts.append(f"static int8_t act_a[{mx}], act_b[{mx}];\n")
    bufs = ["act_a", "act_b"]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-127, 128, size=(b, a))
        parts.append(_c_words(f"w{i}", w.astype(np.int8), "int8_t"))
        parts.append(f"static const int32_t b{i}[{b}] = {{0}};\n")
        dst = bufs[i % 2]
        body.append(f"    {{\n        const cmsis_nn_dims in_d = {{1, 1, 1, {a}}}, f_d = {{{a}, 1, 1, {b}}}, "
                    f"b_d = {{1, 1, 1, {b}}}, o_d = {{1, 1, 1, {b}}};\n"
                    f"        arm_fully_connected_s8(&ctx, &fc, &q, &in_d, src, &f_d, w{i}, &b_d, b{i}, &o_d, {dst});\n")
        if i < len(sizes) - 2:
            body.append(f"        arm_relu_q7({dst}, {b});\n")
        body.append(f"        src = {dst};\n    }}\n")
    body.append(f"    for (int o = 0; o < {sizes[-1]}; ++o) {{\n        logits[o] = src[o];\n    }}\n    return 0;\n}}\n")
    (out / "model.c").write_text("".join(parts + body))
    (out / "model.h").write_text(_model_h(sizes[0], sizes[-1]))


def write_cmsis_conv(out: Path, cmsis: Path, hw: int, cin: int, cout: int, stride: int, pad: int, seed: int) -> int:
    """arm_convolve_s8 (3x3, int8 in/out, per-channel requantisation) on the same shape."""
    rng = np.random.default_rng(seed)
    oh = (hw + 2 * pad - 3) // stride + 1
    w = rng.integers(-127, 128, size=(cout, 3, 3, cin))
    buf_words = (2 * 9 * cin * 2 + 3) // 4 + 16  # arm_convolve_s8_get_buffer_size: 2 columns of int16 (DSP)
    text = ("/* SPDX-License-Identifier: MIT */\n#include \"model.h\"\n#include \"arm_nnfunctions.h\"\n"
            + _cmsis_includes(cmsis, CMSIS_CONV_SOURCES) + _c_words("w", w.astype(np.int8), "int8_t")
            + f"static const int32_t bias[{cout}] = {{0}};\nstatic int32_t mult[{cout}], shift[{cout}];\n"
            + f"static int32_t scratch[{buf_words}];\nstatic int8_t outb[{oh * oh * cout}];\n"
            + "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n"
              "    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {\n        return -1;\n    }\n"
            + f"    for (int c = 0; c < {cout}; ++c) {{\n        mult[c] = 1 << 30;\n        shift[c] = -8;\n    }}\n"
            + f"    const cmsis_nn_context ctx = {{scratch, sizeof scratch}};\n"
              f"    const cmsis_nn_conv_params cp = {{0, 0, {{{stride}, {stride}}}, {{{pad}, {pad}}}, {{1, 1}}, "
              "{-128, 127}};\n"
              "    const cmsis_nn_per_channel_quant_params q = {mult, shift};\n"
              f"    const cmsis_nn_dims in_d = {{1, {hw}, {hw}, {cin}}}, f_d = {{{cout}, 3, 3, {cin}}}, "
              f"b_d = {{1, 1, 1, {cout}}}, o_d = {{1, {oh}, {oh}, {cout}}};\n"
              "    if (arm_convolve_s8(&ctx, &cp, &q, &in_d, (const int8_t *)input, &f_d, w, &b_d, bias, NULL, &o_d, "
              "outb) != ARM_CMSIS_NN_SUCCESS) {\n        return -2;\n    }\n"
              "    logits[0] = outb[0];\n    return 0;\n}\n")
    (out / "model.c").write_text(text)
    (out / "model.h").write_text(_model_h(hw * hw * cin, 1))
    return oh * oh * cout * 9 * cin


def cmsis_flags(cmsis: Path) -> str:
    return f"-I{cmsis / 'Include'} -Wno-error -Wno-unused-parameter"


# ---------------------------------------------------------------- sweeps


def dense_sweep(cores: list[str], widths: list[int]) -> dict:
    res = {}
    for w in widths:
        sizes = [w, w, w, 10]
        model = mlp_model.random_binary_mlp(sizes, SEED)
        inputs = np.random.default_rng(SEED).integers(0, 256, size=(3, (w + 7) // 8), dtype=np.uint8)
        ref = mlp_model.binary_mlp_reference(model, inputs)
        for core in cores:
            with tempfile.TemporaryDirectory() as d:
                mlp_model.write_binary_mlp(Path(d), model)
                res[(core, w)] = count(Path(d), core, inputs, ref, 10)
            print("dense", core, w, res[(core, w)], flush=True)
    return res


def dense_worst_case(core: str, widths: list[int]) -> dict:
    """The column-sliced layers' worst and an easy input: the W-W-W-10 model of dense_sweep with half
    the first hidden layer's outputs always firing and half never (max mismatch K / -1), so both hidden
    layers see exactly W / 2 ones on an input of W / 2 ones (the most counted columns: K / 2 listed and the
    parity column added to the start values); and the all-ones input (no column listed, the parity column
    in the start values).  Returns {W: (half, all_ones)} instructions."""
    res = {}
    for w in widths:
        model = mlp_model.random_binary_mlp([w, w, w, 10], SEED)
        rng = np.random.default_rng(SEED + 1)
        mm = np.full(w, w, dtype=np.int32)
        mm[rng.permutation(w)[:w // 2]] = -1
        model["layers"][0]["max_mismatch"] = mm
        x = np.zeros(w, np.uint8)
        x[rng.permutation(w)[:w // 2]] = 1
        ones = np.ones(w, np.uint8)
        inputs = np.stack([np.packbits(x, bitorder="little"), np.packbits(ones, bitorder="little")])
        ref = mlp_model.binary_mlp_reference(model, inputs)
        with tempfile.TemporaryDirectory() as d:
            mlp_model.write_binary_mlp(Path(d), model)
            half = count(Path(d), core, inputs, ref, 10)
            elf = Path(d) / "fw.elf"
            res[w] = (half, qemu.count_instructions(elf, core, inputs[1], timeout=1800))
        print("worst case", core, w, res[w], flush=True)
    return res


def dense_profile(core: str, w: int) -> list[tuple[str, int]]:
    """Where one inference of the dense sweep's W-W-W-10 model goes: executed instructions per function
    between the second pair of markers (the counted call), from QEMU's one-instruction-per-block exec
    log written to a file and read line by line (never held whole), PCs mapped to `nm` symbols."""
    import bisect
    import os
    import re

    model = mlp_model.random_binary_mlp([w, w, w, 10], SEED)
    inputs = np.random.default_rng(SEED).integers(0, 256, size=(3, (w + 7) // 8), dtype=np.uint8)
    ref = mlp_model.binary_mlp_reference(model, inputs)
    t = get_target(core)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        mlp_model.write_binary_mlp(d, model)
        total = count(d, core, inputs, ref, 10)
        elf = d / "fw.elf"
        syms = []
        for line in subprocess.run([toolchain.find_tool("arm-none-eabi-nm"), "-S", str(elf)], capture_output=True,
                                   text=True, check=True).stdout.splitlines():
            f = line.split()
            if len(f) == 4 and f[2] in "tTwW":
                syms.append((int(f[0], 16) & ~1, int(f[1], 16), f[3]))
        syms.sort()
        starts = [a for a, _, _ in syms]
        marks = {(a, n) for a, _, n in syms if n in ("bnn_marker_begin", "bnn_marker_end")}
        begin = next(a for a, n in marks if n == "bnn_marker_begin")
        end = next(a for a, n in marks if n == "bnn_marker_end")
        inputs[:1].tofile(d / "inputs.bin")
        step = qemu.one_insn_per_tb_args(qemu._qemu_version(toolchain.find_tool("qemu-system-arm")))
        cmd = qemu._qemu_cmd(elf, t.qemu_machine, [*step, "-d", "exec,nochain", "-D", str(d / "exec.log")])
        subprocess.run(cmd, cwd=d, check=True, timeout=1800, stdout=subprocess.DEVNULL)
        trace = re.compile(rb"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
        seen = {begin: 0, end: 0}
        per: dict[str, int] = {}
        with open(d / "exec.log", "rb") as log:
            for line in log:
                m = trace.match(line)
                if m is None:
                    continue
                pc = int(m.group(1), 16)
                if pc in seen:
                    seen[pc] += 1
                    if pc == end and seen[end] == 2:
                        break
                if seen[begin] == 2:
                    i = bisect.bisect_right(starts, pc) - 1
                    name = syms[i][2] if i >= 0 and pc < syms[i][0] + max(syms[i][1], 2) else "?"
                    per[name] = per.get(name, 0) + 1
        os.remove(d / "exec.log")
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    print(f"{core} W = {w}: {total:,} instructions (calibrated count); per function (marker call included):")
    for name, n in rows:
        print(f"  {n:9,d}  {name}")
    return rows


def cmsis_dense_sweep(cmsis: Path, widths: list[int]) -> dict:
    res = {}
    for w in widths:
        with tempfile.TemporaryDirectory() as d:
            write_cmsis_mlp(Path(d), cmsis, [w, w, w, 10], SEED)
            x = np.random.default_rng(SEED).integers(0, 256, size=(1, w), dtype=np.uint8)
            res[w] = count(Path(d), "cortex-m4", x, None, 10, cmsis_flags(cmsis))
        print("cmsis dense", w, res[w], flush=True)
    return res


def conv_sweep(cores: list[str], shapes: list[tuple], u8: bool) -> dict:
    """The row kernel (bnn_conv_bits; u8: the first layer's bnn_conv_u8_bits) on the shapes:
    res[(core, i)]."""
    res = {}
    for i, (hw, cin, cout, s, pad) in enumerate(shapes):
        seed = SEED + 17 * i + (1000 if u8 else 0)
        for core in cores:
            with tempfile.TemporaryDirectory() as d:
                m = write_conv(Path(d), hw, cin, cout, s, pad, u8, seed)
                x, raw = conv_inputs(hw, cin, u8, seed)
                want = conv_expected(m, raw, s, pad)
                # binary input: the kernel call (the harness's input copy subtracted, conv_count); 8-bit
                # input: the whole bnn_infer, as CMSIS-NN's on the same shape (no input copy in either)
                res[(core, i)] = (count(Path(d), core, x, want, m["n_out"]) if u8
                                  else (conv_count(Path(d), core, x, want, m["n_out"]) or {}).get("kernel"))
            print("conv u8" if u8 else "conv", core, shapes[i], res[(core, i)], flush=True)
    return res


def write_conv_vc(out: Path, hw: int, cin: int, cout: int, stride: int, pad: int, seed: int) -> dict:
    """write_conv's conv (same weights, thresholds and inputs) on the column-sliced kernel
    (``bnn_conv_vc_bits``, bnn_conv_vc.h): columns, per-tap counts and its work memory."""
    from bnn2hw.mcu import conv_vcols as vc

    m = write_conv(out, hw, cin, cout, stride, pad, False, seed)
    w, thr, oh = m["w"], m["thr"], m["oh"]
    from bnn2hw.mcu.codegen import pack_bits

    npos = vc.layer_npos(cin, cout, 3, stride)
    rows_tail = vc.tail_on_rows(cin, cout, 3, 3, stride)
    cw = (cin + 31) // 32
    table = vc.use_class_table(hw, hw, cin, cout, 3, 3, stride, pad)
    # as the code generator emits it (emitters._emit_conv_vc_data): a class table is complete
    # (table_complete, no per-tap counts, no class cache in the work memory)
    cls = vc.class_table(w, thr, hw, hw, stride, pad, npos, False, not rows_tail) if table else None
    text = ("/* SPDX-License-Identifier: MIT */\n#include <string.h>\n#include \"model.h\"\n"
            "#include \"bnn_conv_vc.h\"\n"
            + _c_words("cols", vc.pack_columns(w, stride, npos))
            + _c_words("thr", thr.astype(np.int32), "int32_t")
            + (_c_words("classes", cls) if table else _c_words("ctap", vc.tap_counts(w), "int16_t"))
            + (_c_words("tail_rows", pack_bits(w[32 * (cout // 32):])) if rows_tail else "")
            + f"static bnn_word_t in_words[{hw * hw * cw}];\n"
            + f"static bnn_word_t out_words[{m['n_out']}];\n"
            + f"static uint32_t work[{vc.work_words(hw, cin, cout, 3, 3, stride, npos, table)}];\n"
            + f"static const bnn_conv_vc_t L = {{{{{hw}u, {hw}u, {cin}u, {oh}u, {oh}u, {cout}u, 3u, 3u, "
              f"{stride}u, {stride}u, {pad}u, {pad}u}}, 0u, {npos}u, cols, thr, "
              + (f"NULL, {cls.shape[0]}u, classes, " if table else "ctap, 0u, NULL, ")
              + ("tail_rows, " if rows_tail else "NULL, ") + f"{int(table)}u}};\n"
            + "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n"
              "    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {\n        return -1;\n    }\n"
              "    memcpy(in_words, input, BNN_INPUT_LEN);\n"
              "    bnn_conv_vc_bits(&L, in_words, work, out_words);\n"
              "    memcpy(logits, out_words, sizeof out_words);\n    return 0;\n}\n")
    (out / "model.c").write_text(text)
    m["npos"] = npos
    return m


def write_conv_prep(out: Path, hw: int, cin: int, cout: int, stride: int, pad: int, seed: int,
                    dsp: bool = True, pad_minus1: bool = False, entry: str = "prep") -> dict:
    """write_conv's conv (same weights, thresholds and inputs) on ``bnn_conv_bits_prep`` with the
    weight side prepared at generation time (bnn2hw/mcu/conv_m4_prep.py): the emit-c data layout on
    a hand-written model.c.  pad_minus1: -1 padding (the expected output is then the caller's).
    entry "few": the same data on ``bnn_conv_bits_few`` (few output positions); "tile": on
    ``bnn_conv_bits_tile`` with the tile specialised at generation time (conv_tile.py, one-tile shapes)."""
    from bnn2hw.mcu import conv_m4_prep as mp
    from bnn2hw.mcu.codegen import c_array

    m = write_conv(out, hw, cin, cout, stride, pad, False, seed)
    w, thr, oh = m["w"], m["thr"], m["oh"]
    q = mp.prepare(w, thr, (hw, hw), (oh, oh), stride, pad, pad_minus1, dsp=dsp)
    text = (out / "model.c").read_text()
    data = (c_array("bnn_word_t", "prep_w", q["rows"]) + c_array("int32_t", "prep_m", q["m"])
            + c_array("uint8_t", "prep_x", q["xcls"]) + c_array("uint8_t", "prep_y", q["ycls"])
            + f"static const bnn_conv_prep_t q = {{{int(pad_minus1)}u, {q['nx']}u, {q['m'].shape[1]}u, "
              f"{q['nw']}u, "
              f"{q['pairs']}u, prep_w, prep_m, prep_x, prep_y, w, thr}};\n")
    if entry == "tile":  # the layer's tile specialised at generation time (conv_tile.py)
        from bnn2hw.mcu import conv_tile

        data += conv_tile.tile_c("L", "prep_m", cin, q, (hw, hw), (oh, oh), stride, pad)
    text = text.replace("int bnn_infer(", data + "int bnn_infer(", 1)
    args = "&p, &q, &L_tile" if entry == "tile" else "&p, &q"
    text = text.replace("    bnn_conv_bits(&p, in_words, w, thr, out_words);",
                        f"    bnn_conv_bits_{entry}({args}, in_words, out_words);")
    assert f"bnn_conv_bits_{entry}({args}," in text
    (out / "model.c").write_text(text)
    m["prep"] = q
    return m


def write_conv_ps(out: Path, hw: int, cin: int, cout: int, stride: int, pad: int, seed: int,
                  pad_minus1: bool = False) -> dict:
    """write_conv's conv (same weights, thresholds and inputs) on the position-sliced kernel
    (``bnn_conv_ps_bits``, bnn_conv_ps.h) with its generation-time lists and compare values
    (bnn2hw/mcu/conv_ps.py) and its work memory."""
    from bnn2hw.mcu import conv_ps
    from bnn2hw.mcu.codegen import c_array

    m = write_conv(out, hw, cin, cout, stride, pad, False, seed)
    w, thr, oh = m["w"], m["thr"], m["oh"]
    q = conv_ps.prepare(w, thr, (hw, hw), (oh, oh), stride, pad, pad_minus1)
    it = "uint8_t" if q["idx8"] else "uint16_t"
    i8, i16 = ("ps_idx", "NULL") if q["idx8"] else ("NULL", "ps_idx")
    text = (out / "model.c").read_text()
    data = (c_array(it, "ps_idx", q["idx"]) + c_array("uint16_t", "ps_len", q["len"])
            + c_array("uint32_t", "ps_neg", q["neg"]) + c_array("int32_t", "ps_v", q["v"])
            + c_array("uint8_t", "ps_x", q["xcls"]) + c_array("uint8_t", "ps_y", q["ycls"])
            + f"static const bnn_conv_ps_t L = {{{{{hw}u, {hw}u, {cin}u, {oh}u, {oh}u, {cout}u, 3u, 3u, "
              f"{stride}u, {stride}u, {pad}u, {pad}u}}, {int(pad_minus1)}u, {q['nx']}u, {q['m']}u, {i8}, {i16}, "
              "ps_len, ps_neg, ps_v, ps_x, ps_y, w, thr};\n"
            + f"static uint32_t ps_work[{conv_ps.work_words(hw, hw, cin, cout, 3, 3, stride, pad)}];\n")
    text = text.replace('#include "bnn_conv.h"', '#include "bnn_conv_ps.h"', 1)
    text = text.replace("int bnn_infer(", data + "int bnn_infer(", 1)
    text = text.replace("    bnn_conv_bits(&p, in_words, w, thr, out_words);",
                        "    (void)p;\n    bnn_conv_ps_bits(&L, in_words, ps_work, out_words);")
    assert "bnn_conv_ps_bits(&L" in text
    (out / "model.c").write_text(text)
    m["ps"] = q
    return m


# awkward input-channel shapes (mcu_kernels_m55.md's extra rows)
CONV_EXTRA_SHAPES = [(12, 48, 48, 1, 1), (7, 40, 40, 1, 1), (9, 33, 33, 2, 1)]


def generated_kernel(hw: int, cin: int, cout: int, s: int, p: int) -> str:
    """The kernel emit-c picks for a 3x3 binary conv on an hw x hw map on Cortex-M3/M4/M7/M33 (zero padding,
    --optimize speed): "ps", "vc", "tile", "few", "prep" or "rows" (the kernel names of conv_vc_sweep)."""
    from bnn2hw.mcu import conv_m4_prep, conv_ps, conv_tile, conv_vcols

    vc = conv_vcols.use_vc(hw, hw, cin, cout, 3, 3, s, p, False)
    if conv_ps.use_ps(hw, hw, cin, cout, 3, 3, s, p, False, "speed", vc):
        return "ps"
    if vc:
        return "vc"
    oh = (hw + 2 * p - 3) // s + 1
    few = conv_m4_prep.use_few(cin, 3, 3, (hw, hw), (oh, oh), s, p)
    if not (conv_m4_prep.fits(cin, 3, 3) and conv_m4_prep.worth(cin, 3, 3, oh, oh, p, False, few)):
        return "rows"
    if conv_tile.applies(cin, 3, 3, (oh, oh)):
        return "tile"
    return "few" if few else "prep"


def conv_vc_sweep(cores: list[str], shapes: list[tuple], kernels: list[str]) -> dict:
    """Instructions of the kernel call (conv_count: the harness subtracted) of the conv shapes on each of
    ``kernels``: the row kernel (``rows``, bnn_conv_bits), the prepared entry (``prep``), its few-position
    entry (``few``), the generation-time tile (``tile``, one-tile shapes), the column-sliced (``vc``) and
    the position-sliced kernel (``ps``), every output checked against numpy on 3 inputs first;
    res[(kernel, core, i)], and res[(kernel + " harness", core, i)] the harness's count."""
    from bnn2hw.mcu import conv_tile

    res = {}
    for i, (hw, cin, cout, s, pad) in enumerate(shapes):
        seed = SEED + 17 * i
        oh = (hw + 2 * pad - 3) // s + 1
        for core in cores:
            for kern in kernels:
                if kern == "tile" and not conv_tile.applies(cin, 3, 3, (oh, oh)):
                    continue  # (a generation-time tile is written for one-tile layers only)
                with tempfile.TemporaryDirectory() as d:
                    writer = {"vc": write_conv_vc, "prep": write_conv_prep, "ps": write_conv_ps,
                              "few": lambda *a: write_conv_prep(*a, entry="few"),
                              "tile": lambda *a: write_conv_prep(*a, entry="tile")}.get(
                        kern, lambda *a: write_conv(*a[:6], False, a[6]))
                    m = writer(Path(d), hw, cin, cout, s, pad, seed)
                    x, raw = conv_inputs(hw, cin, False, seed)
                    r = conv_count(Path(d), core, x, conv_expected(m, raw, s, pad), m["n_out"])
                res[(kern, core, i)] = r and r["kernel"]
                res[(f"{kern} harness", core, i)] = r and r["harness"]
                print("conv", kern, core, shapes[i], r, flush=True)
    return res


def conv_only_main(args) -> None:
    """--conv-only OUT: the conv shapes (CONV_SHAPES + CONV_EXTRA_SHAPES) on --conv-kernels, a
    markdown table to OUT (a scratch file; the full benchmark writes mcu_kernels.md)."""
    t0 = time.time()
    shapes = CONV_SHAPES + CONV_EXTRA_SHAPES
    if args.conv_shapes:
        shapes = [shapes[i] for i in args.conv_shapes]
    cores = [c for c in args.cores if c != "cortex-m0" and c != "cortex-m55"] if args.cores == CORES else args.cores
    res = conv_vc_sweep(cores, shapes, args.conv_kernels)
    head = "| map | cin | cout | stride | pad | binary MACs | " + " | ".join(
        f"{k} {c}" for c in cores for k in args.conv_kernels) + " |"
    lines = [f"# Conv kernels, instructions per binary MAC ({datetime.date.today()}, {time.time() - t0:.0f} s)", "",
             f"Command: `{' '.join(sys.argv)}`", "", head, "|" + "---:|" * (6 + len(cores) * len(args.conv_kernels))]
    for i, sh in enumerate(shapes):
        cells = [fmt_ratio(res.get((k, c, i)), conv_macs(*sh)) for c in cores for k in args.conv_kernels]
        lines.append(f"| {sh[0]}x{sh[0]} | {sh[1]} | {sh[2]} | {sh[3]} | {sh[4]} | {conv_macs(*sh):,} | "
                     + " | ".join(cells) + " |")
    args.conv_only.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cmsis_conv_sweep(cmsis: Path, shapes: list[tuple]) -> dict:
    res = {}
    for i, (hw, cin, cout, s, pad) in enumerate(shapes):
        with tempfile.TemporaryDirectory() as d:
            write_cmsis_conv(Path(d), cmsis, hw, cin, cout, s, pad, SEED + i)
            x = np.random.default_rng(SEED).integers(0, 256, size=(1, hw * hw * cin), dtype=np.uint8)
            res[i] = count(Path(d), "cortex-m4", x, None, 1, cmsis_flags(cmsis))
        print("cmsis conv", shapes[i], res[i], flush=True)
    return res


# ---------------------------------------------------------------- report


def dense_macs(w: int) -> int:
    return 2 * w * w + 10 * w


def conv_macs(hw, cin, cout, s, pad) -> int:
    oh = (hw + 2 * pad - 3) // s + 1
    return oh * oh * cout * 9 * cin


def plot(dense: dict, cores: list[str], widths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for core in cores:
        pts = [(w, dense[(core, w)] / dense_macs(w)) for w in widths if dense.get((core, w))]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=core)
    ax.axhline(TARGET_M4_DENSE, color="grey", ls="--", lw=1, label="M4 target 0.25")
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths], rotation=45)
    ax.set_xlabel("hidden width W (W-W-W-10 all-binary MLP)")
    ax.set_ylabel("instructions per binary MAC")
    ax.set_title("bnn2hw binary dense kernels (QEMU instruction counts, -O2)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_results(args, dense, cmsis_dense, conv, first, cmsis_first, seconds: float) -> None:
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qv = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    cores, widths = args.cores, args.widths
    lines = ["# MCU kernel benchmark: binary kernels at every layer shape", "",
             f"Date {datetime.date.today().isoformat()}; `{gcc}`; `{qv}`; run time {seconds / 60:.1f} min.  "
             "Command: `nice -n 10 python benchmarks/bench_mcu_kernels.py --cmsis-nn DIR` (DIR: a local "
             "`git archive` of github.com/ARM-software/CMSIS-NN `Include Source`, never committed).", "",
             "Instructions = exact QEMU count of one `bnn_infer()` call (`qemu -singlestep -d exec,nochain`, marker "
             "calibration subtracted), harness `firmware/harness`, `-O2`, on the first of the checked inputs "
             "(the row kernels take the same count on every input; the column-sliced dense layers do not, see "
             "Dense).  Every binary "
             "build first ran 3 random inputs in QEMU and all its outputs equal numpy's.  A count of instructions "
             "is not a count of cycles (see the cycle-estimate work of issue 11 on branch `cycles`).", "",
             "## Dense: W-W-W-10 all-binary MLPs, instructions per binary MAC", "",
             "Random +-1 weights and thresholds (seed 2024); input W packed bits; binary MACs = 2 W^2 + 10 W.  "
             "Hidden layers: the column-sliced kernel `bnn_dense_vbits` (`bnn_dense.h`, `bnn_vcols.h`: weights "
             "stored by columns, 32 outputs per word; one index list per call of the smaller of the input's "
             "ones and zeros, at most K/2 + 1 columns; per group of 32 outputs a Harley-Seal carry-save count "
             "of those columns, started at per-output values that carry the thresholds, then one compare with "
             "a constant that yields the packed output word) on Cortex-M0 (portable C), M3, M4, M7, M33 "
             "(Thumb-2 assembly in `bnn_vcols.c`: `bnn_vc_groups` loads the start values, counts and compares "
             "every group of a layer in one call with the planes 1, 2, 4, 8, 16 in registers throughout; 16 "
             "columns per block: 4 LDM + 16 LDR + 15 x 5 ALU + the ripple of the thirty-twos, ~6.6 "
             "instructions per column and group = ~0.10 per binary MAC at large W, plus ~5 per listed index "
             "(two per RBIT / CLZ round) and ~65 per group of 32 outputs for the start values, the compare "
             "and the group loop; when the bias is even the parity column goes into the start values "
             "(~12 instructions per group) where listing it would cost a block of 16).  Logits: the "
             "row kernels (`bnn_dense_acc`: Thumb-2 assembly in `bnn_bits.c`, two weight rows per pass on "
             "cores with the DSP extension; Thumb-1 assembly on Cortex-M0).  Cortex-M55: Helium (MVE) row "
             "kernels in `bnn_dense_mve.c` for every layer (BNN_DENSE_VCOLS = 0 there).  — = weights do not "
             "fit the board (micro:bit: 256 KiB flash).  Cortex-M7 runs the M4 code (its instruction count is "
             "the M4's; QEMU does not model its dual issue).  Why the per-MAC figure falls with W: the index "
             "list, the per-group start values and compare, the logits layer and the call overheads are fixed "
             "or grow with W, not W^2 (W = 128: ~41% of the instructions; W = 1024: ~6%).  The column-sliced "
             "count depends on the input: a layer counts min(n1, K - n1) columns (+1 when that bias is even), "
             "rounded up to 16, the most at n1 = K / 2 (K / 2 listed + the parity column in the start "
             "values).  Worst case on the Cortex-M4 (both hidden layers fed exactly K / 2 ones: the same "
             "random model with half the first hidden layer's outputs always and half never firing, on an "
             "input of W / 2 ones; `--worst-case`): " + WORST_CASE_NOTE, "",
             "The row kernels' floor (before the column-sliced kernel; it is why they could not reach 0.25 "
             "at W = 128): per pass of 2 rows of nw = 3 g + R words, 45 instructions per group of 3 words "
             "(7 ALU per word and row), 0.240 per binary MAC at large W, 0.301 at nw = 4 (W = 128).  With "
             "`BNN_DENSE_SHARED_ROWS` (logits rows of a hidden layer's row class, no conv) the logits run the "
             "bits-mode row kernel's popcount mode (modes 2 / 3 of `bnn__dbt2_pick`), as the code generator "
             "emits them.", "",
             "| W | binary MACs | " + " | ".join(cores) + " | CMSIS-NN int8 M4 | M4: CMSIS / bnn2hw |",
             "|---:|---:|" + "---:|" * len(cores) + "---:|---:|"]
    for w in widths:
        cells = []
        for core in cores:
            n = dense.get((core, w))
            cells.append("—" if n is None else f"{n / dense_macs(w):.3f}")
        cm = cmsis_dense.get(w)
        m4 = dense.get(("cortex-m4", w))
        ratio = f"{cm / m4:.1f}x" if cm and m4 else ""
        lines.append(f"| {w} | {dense_macs(w):,} | " + " | ".join(cells) + f" | {fmt(cm)} | {ratio} |")
    lines += ["", "Instructions per inference (same runs):", "",
              "| W | " + " | ".join(cores) + " |", "|---:|" + "---:|" * len(cores)]
    for w in widths:
        lines.append(f"| {w} | " + " | ".join(fmt(dense.get((c, w))) for c in cores) + " |")
    if "cortex-m4" in cores:
        m4 = {w: dense[("cortex-m4", w)] / dense_macs(w) for w in widths if dense.get(("cortex-m4", w))}
        big = {w: v for w, v in m4.items() if w >= 128}
        if big:
            best = min(big.values())
            worst_w = max(big, key=big.get)
            lines += ["", "### Targets (issue 11), Cortex-M4, widths >= 128", "",
                      f"* <= {TARGET_M4_DENSE} instructions per binary MAC at every width: worst {big[worst_w]:.3f} "
                      f"at W = {worst_w}: {'met' if big[worst_w] <= TARGET_M4_DENSE else 'NOT met'} "
                      f"(met at {sum(v <= TARGET_M4_DENSE for v in big.values())} of {len(big)} widths).",
                      f"* no width more than 10% above the best ({best:.3f}): worst is "
                      f"{big[worst_w] / best - 1:+.0%}: {'met' if big[worst_w] <= 1.1 * best else 'NOT met'}."]
        if dense.get(("cortex-m0", 128)) is not None:
            m0 = {w: dense[("cortex-m0", w)] / dense_macs(w) for w in widths
                  if w >= 128 and dense.get(("cortex-m0", w))}
            lines.append(f"* Cortex-M0 <= 0.60 at widths >= 128: worst {max(m0.values()):.3f}: "
                         f"{'met' if max(m0.values()) <= 0.6 else 'NOT met'}.")
        if dense.get(("cortex-m55", 256)) is not None:
            m55 = {w: dense[("cortex-m55", w)] / dense_macs(w) for w in widths
                   if w >= 256 and dense.get(("cortex-m55", w))}
            lines.append(f"* Cortex-M55 <= 0.10 at widths >= 256: worst {max(m55.values()):.3f}: "
                         f"{'met' if max(m55.values()) <= 0.10 else 'NOT met'}.")
    lines += ["", "![instructions per MAC against width](mcu_kernels_width.png)", ""]
    if conv:
        ccores = [c for c in CONV_CORES if c in cores]
        cols = []  # (key, heading)
        for c in ccores:
            if c in VC_CONV_CORES:
                cols += [(c, f"{c} rows"), (f"{c} prep", f"{c} rows, prepared"), (f"{c} few", f"{c} few / tiled"),
                         (f"{c} vc", f"{c} column-sliced"), (f"{c} ps", f"{c} position-sliced"),
                         (f"{c} gen", f"{c} generated")]
            else:
                cols.append((c, c))
        shapes = CONV_SHAPES + CONV_EXTRA_SHAPES
        lines += ["## Conv: 3x3 binary convs, instructions per binary MAC", "",
                  "Counts of the kernel call: one `bnn_infer()` less the same `bnn_infer()` with the conv call "
                  "replaced by an empty function's (`conv_count`: the harness's copies of the packed input and the "
                  "output, which a layer in a network does not make, are left out; 66 instructions on a 4x4x16 map, "
                  "4,146 on 32x32x16).  "
                  "Two kernels, both bit-exact (every build first ran 3 random inputs in QEMU against numpy): "
                  "**rows** = `bnn_conv_bits`, the conv as a dense layer over gathered patches with the dense row "
                  "kernel (padded taps as zero words plus a per-position popcount-threshold correction, "
                  "`bnn_conv.c`); **column-sliced** = `bnn_conv_vc_bits` (`bnn_conv_vc.h`: 32 output channels per "
                  "word, 16-channel convs as 2 output positions per word, per-row index lists of each pixel's "
                  "set/clear channels, the smaller set counted per position by `bnn_vcols.h`'s Harley-Seal count, "
                  "a bit-sliced compare against per-border-class start-value planes (precomputed at generation "
                  "time and stored in flash when the table costs <= max(4 KB, a quarter of the columns)); a few "
                  "tail channels (cout % 32, e.g. cout 33) on the row kernel or counted straight from their rows; "
                  "enabled on M3/M4/M7/M33).  **rows, prepared** = `bnn_conv_bits_prep`: the rows kernel with "
                  "its weight side (packed rows or 3x3x16 pair records, popcount bounds per window class) made at "
                  "generation time (`bnn2hw/mcu/conv_m4_prep.py`), what emit-c calls on cores without Helium.  "
                  "**position-sliced** = `bnn_conv_ps_bits` (`bnn_conv_ps.h`: 32 output positions per word, per "
                  "channel the shorter of its +1 / -1 weight sets summed bit-sliced; M3/M4/M7/M33).  "
                  "**few / tiled** = `bnn_conv_bits_few` on the same prepared data: the output in tiles of <= 16 "
                  "positions, each tile's patches packed once, then one assembly loop per 32-channel chunk over all "
                  "the tile's positions with the patch in registers (3x3x16 pair records, 3x3x24 tail-spread rows).  "
                  "**generated** = the kernel the code generator emits for that layer (`generated_kernel`: "
                  "`conv_ps.use_ps`, then `conv_vcols.use_vc`, then `conv_m4_prep.use_few` / `worth`; count models "
                  "fitted to M4 counts): what a user gets.  "
                  "Random +-1 weights and inputs, thresholds near 0; counts include copying the packed input in "
                  "and the output words out.  The last three shapes have awkward channel counts.", "",
                  "| map | cin | cout | stride | pad | binary MACs | " + " | ".join(h for _, h in cols) + " |",
                  "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(cols)]
        gen_m4 = []
        for i, sh in enumerate(shapes):
            hw, cin, cout, st, pad = sh
            pick = generated_kernel(hw, cin, cout, st, pad)
            for c in ccores:
                if c in VC_CONV_CORES:
                    conv[(f"{c} gen", i)] = conv.get((c if pick == "rows" else f"{c} {pick}", i))
            cells = [fmt_ratio(conv.get((k, i)), conv_macs(*sh)) for k, _ in cols]
            lines.append(f"| {hw}x{hw} | {cin} | {cout} | {st} | {pad} | {conv_macs(*sh):,} | "
                         + " | ".join(cells) + " |")
            if conv.get(("cortex-m4 gen", i)):
                gen_m4.append((conv[("cortex-m4 gen", i)] / conv_macs(*sh), sh))
        if gen_m4:
            bad = [sh for v, sh in gen_m4 if v > TARGET_M4_CONV]
            worst = max(v for v, _ in gen_m4)
            lines += ["", f"Target (issue 11): <= {TARGET_M4_CONV} on Cortex-M4 (generated kernel) for every shape: "
                      f"worst {worst:.3f}: {'met' if not bad else 'NOT met'} ({len(gen_m4) - len(bad)} of "
                      f"{len(gen_m4)} shapes; missed at " + (", ".join(
                          f"{h}x{h}x{ci}->{co} s{st} p{pd}" for h, ci, co, st, pd in bad) or "none") + ").", ""]
    if first:
        lines += ["## First layer: 8-bit input, 3x3 binary-weight conv, instructions per 8-bit MAC (Cortex-M4)", "",
                  "`bnn_conv_u8_bits` (uint8 HWC input, +-1 weights) beside CMSIS-NN `arm_convolve_s8` (int8 input "
                  "and weights, per-channel requantisation, same shape, -O2, built from a local copy of CMSIS-NN).",
                  "", "| map | cin | cout | stride | pad | 8-bit MACs | bnn2hw | CMSIS-NN int8 | CMSIS / bnn2hw |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for i, sh in enumerate(FIRST_SHAPES):
            n, cm = first.get(("cortex-m4", i)), cmsis_first.get(i)
            macs = conv_macs(*sh)
            lines.append(f"| {sh[0]}x{sh[0]} | {sh[1]} | {sh[2]} | {sh[3]} | {sh[4]} | {macs:,} | "
                         f"{fmt_ratio(n, macs)} | {fmt_ratio(cm, macs)} | "
                         f"{'' if not (n and cm) else f'{cm / n:.1f}x'} |")
        lines.append("")
    lines += ["Reproduce: `nice -n 10 python benchmarks/bench_mcu_kernels.py --cmsis-nn DIR`.", ""]
    out = ROOT / "benchmarks" / "results" / "mcu_kernels.md"
    out.write_text("\n".join(lines))
    print(out)


def fmt(v) -> str:
    return "—" if v is None else f"{v:,}"


def fmt_ratio(n, macs) -> str:
    return "—" if n is None else f"{n / macs:.3f} ({n:,})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmsis-nn", type=Path, help="folder with CMSIS-NN's Include/ and Source/")
    ap.add_argument("--cores", nargs="+", default=CORES)
    ap.add_argument("--widths", nargs="+", type=int, default=WIDTHS)
    ap.add_argument("--no-conv", action="store_true")
    ap.add_argument("--profile", type=int, metavar="W",
                    help="dense only: instructions per function of the W-W-W-10 model on the first of --cores "
                         "(printed; mcu_kernels.md is not written)")
    ap.add_argument("--worst-case", action="store_true",
                    help="dense only: the W / 2-ones worst case and the all-ones input per width on the first of "
                         "--cores (printed; mcu_kernels.md is not written)")
    ap.add_argument("--conv-only", type=Path, metavar="OUT",
                    help="run only the binary conv shapes (plus awkward cin) and write their table to OUT")
    ap.add_argument("--conv-kernels", nargs="+", default=["rows", "prep", "vc", "ps"],
                    choices=["rows", "vc", "prep", "few", "ps"])
    ap.add_argument("--conv-shapes", nargs="+", type=int, help="--conv-only: indices of the shapes to run")
    args = ap.parse_args()
    if args.conv_only:
        conv_only_main(args)
        return
    if args.profile:
        dense_profile(args.cores[0], args.profile)
        return
    if args.worst_case:
        for w, (half, ones) in dense_worst_case(args.cores[0], args.widths).items():
            print(f"{args.cores[0]} W = {w}: W/2 ones {half:,} ({half / dense_macs(w):.3f} per binary MAC), "
                  f"all ones {ones:,} ({ones / dense_macs(w):.3f})")
        return
    t0 = time.time()
    dense = dense_sweep(args.cores, args.widths)
    cmsis_dense = cmsis_dense_sweep(args.cmsis_nn, args.widths) if args.cmsis_nn else {}
    conv = first = cmsis_first = {}
    if not args.no_conv:
        conv = conv_sweep([c for c in CONV_CORES if c in args.cores], CONV_SHAPES + CONV_EXTRA_SHAPES, u8=False)
        vc_cores = [c for c in VC_CONV_CORES if c in args.cores]
        for (kern, core, i), n in conv_vc_sweep(vc_cores, CONV_SHAPES + CONV_EXTRA_SHAPES,
                                               ["vc", "prep", "few", "ps"]).items():
            conv[(f"{core} {kern}", i)] = n
        first = conv_sweep(["cortex-m4"], FIRST_SHAPES, u8=True)
        cmsis_first = cmsis_conv_sweep(args.cmsis_nn, FIRST_SHAPES) if args.cmsis_nn else {}
    plot(dense, args.cores, args.widths, ROOT / "benchmarks" / "results" / "mcu_kernels_width.png")
    write_results(args, dense, cmsis_dense, conv, first, cmsis_first, time.time() - t0)


if __name__ == "__main__":
    main()
