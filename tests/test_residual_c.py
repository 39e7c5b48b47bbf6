# SPDX-License-Identifier: MIT
"""Issue 9, the C back end of the residual stream: hand-built residual DAGs (u8 conv stem ->
requant -> [threshold -> binary 3x3 conv (pad_value 0 / -1, stride 1 / 2) -> requant] +
[identity or 1x1 strided binary conv -> requant] -> add(bits) -> avgpool -> dense on the stream)
give every integer logit of :func:`bnn2hw.ir.execute.run` on the host (gcc -Wall -Wextra -Werror,
ASan + UBSan) and in QEMU on Cortex-M0, M4 (mps2-an386), M7 and M55 (mps3-an547). Random weights,
negative multipliers, channel counts 1, 3, 8, 31, 32, 33, inputs that saturate the stream; the
fused stream kernels (bnn_stream_epilogue) directly against numpy."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import need_tool, run_firmware
from residual_graphs import residual_graph, saturating_inputs

from bnn2hw.errors import Bnn2hwError
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import Graph, Layer
from bnn2hw.ir.validate import validate
from bnn2hw.mcu import codegen
from bnn2hw.mcu.emitters import Arena, fold_requant_threshold

# (seed, graph options, image size, input channels): every case covers both ends of saturation
CASES = [
    (1, {"widths": (4, 6), "stride": 2, "pad_value": -1, "shortcut": "conv"}, 8, 3),
    (2, {"widths": (4, 6), "stride": 2, "pad_value": 0, "shortcut": "conv"}, 8, 3),
    (3, {"widths": (5, 5, 5), "stride": 1, "pad_value": -1, "shortcut": "identity"}, 7, 3),
    (4, {"widths": (5, 5), "stride": 1, "pad_value": 0, "shortcut": "identity", "head": "binary"}, 6, 1),
    (5, {"widths": (1, 3), "stride": 2, "pad_value": -1, "shortcut": "conv", "pool": "2x2"}, 9, 1),
    (6, {"widths": (31, 33, 33), "stride": 2, "pad_value": -1, "shortcut": "conv"}, 8, 3),
    (7, {"widths": (33, 31), "stride": 1, "pad_value": 0, "shortcut": "conv", "bits": 16, "frac": 9, "head": "binary"}, 5, 3),
    (8, {"widths": (3, 3), "stride": 1, "pad_value": -1, "shortcut": "conv", "bits": 12, "frac": 2}, 5, 3),
    # 8 and 32 channels: the 4-channels-at-once int8 window sum (SXTAB16 on DSP cores), stream
    # stored and thresholded by the same pass (32 channels = one full word)
    (9, {"widths": (8, 8, 8), "stride": 1, "pad_value": -1, "shortcut": "identity"}, 7, 3),
    (10, {"widths": (32, 32), "stride": 1, "pad_value": 0, "shortcut": "conv", "pool": "2x2"}, 6, 3),
]
IDS = [f"seed{c[0]}" for c in CASES]


@pytest.mark.parametrize("seed,opts,hw,c_in", CASES, ids=IDS)
def test_host_c_equals_ir_on_residual_dags(seed, opts, hw, c_in, tmp_path):
    need_tool("gcc", "gcc")
    rng = np.random.default_rng(seed)
    g = validate(residual_graph(rng, hw=hw, c_in=c_in, **opts))
    x = saturating_inputs(rng, 24, hw, c_in)
    ref = execute.run(g, x)
    bits = opts.get("bits", 8)
    x0 = ref.tensors["x0"]
    assert x0.max() == 2 ** (bits - 1) - 1 and x0.min() == -(2 ** (bits - 1)), f"seed {seed}: no saturation"
    got = run_firmware(g, tmp_path, "host", x)
    np.testing.assert_array_equal(got, ref.int_logits, err_msg=f"seed {seed} {opts}")


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m4", "cortex-m7", "cortex-m55"])
def test_qemu_c_equals_ir_on_residual_dags(target, tmp_path):
    need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    need_tool("qemu-system-arm", "qemu-system-arm")
    for seed, opts, hw, c_in in (CASES[0], CASES[5], CASES[6], CASES[7], CASES[8], CASES[9]):
        rng = np.random.default_rng(seed)
        g = validate(residual_graph(rng, hw=hw, c_in=c_in, **opts))
        x = saturating_inputs(rng, 8, hw, c_in)
        got = run_firmware(g, tmp_path / f"s{seed}", target, x)
        np.testing.assert_array_equal(got, execute.run(g, x).int_logits, err_msg=f"{target} seed {seed}")
    rng = np.random.default_rng(12)  # the unfused kernels (bnn_requant, bnn_stream_add) too
    g = _unfused_graph(rng)
    x = saturating_inputs(rng, 8, 6, 3)
    got = run_firmware(g, tmp_path / "unfused", target, x)
    np.testing.assert_array_equal(got, execute.run(g, x).int_logits, err_msg=f"{target} seed 12 unfused")


def test_liveness_arena_keeps_the_skip_and_reuses_the_rest():
    """The identity skip x0 is live from the stem to the add (so nothing of the block may sit on
    it); the block's conv -> requant -> add runs as one fused pass that writes x1 over its dying
    skip x0 in place; the arena is smaller than the sum of the tensors."""
    g = residual_graph(np.random.default_rng(3), hw=8, widths=(8, 8), stride=1, shortcut="identity")
    em = codegen.emit(g)
    body = em.source[em.source.index("int bnn_infer"):]
    calls = [line.strip() for line in body.splitlines() if line.strip().startswith("bnn_")]
    bufs = [re.findall(r"BNN_BUF\(\d+u\)", c) for c in calls]
    # stem + x0 + s0: (row, x0 stream, s0 bits); c0 + z0 + x1: (s0 bits in, skip x0, row, x1 out)
    assert calls[0].startswith("bnn_conv_stream(&stem_p") and calls[1].startswith("bnn_conv_stream(&c0_p"), calls
    x0_buf, s0_buf = bufs[0][1], bufs[0][2]
    assert bufs[1][0] == s0_buf and bufs[1][1] == x0_buf, calls  # reads s0, adds the skip x0
    assert bufs[1][3] == x0_buf, calls  # x1 written over the dying x0
    assert bufs[1][2] not in (x0_buf, s0_buf), calls  # the row scratch sits elsewhere
    assert calls[2].startswith("bnn_avgpool_sum") and bufs[2][0] == x0_buf, calls
    stream = 8 * 8 * 8  # one int8 stream tensor
    assert em.scratch_bytes < 2 * stream + 8 * 4 + 8 * 8 * 4 + 1, em.scratch_bytes  # x0 + s0 bits + one int32 row
    assert em.scratch_bytes >= stream + 8 * 4 * 8, em.scratch_bytes


def test_arena_blocks_never_overlap():
    rng = np.random.default_rng(0)
    a, live = Arena(), {}
    for step in range(300):
        if live and rng.random() < 0.45:
            bid = list(live)[rng.integers(len(live))]
            a.free(bid)
            del live[bid]
        else:
            bid = a.alloc(int(rng.integers(1, 200)))
            live[bid] = a.live[bid]
        spans = sorted(a.live.values())
        assert all(o1 + s1 <= o2 for (o1, s1), (o2, _) in itertools.pairwise(spans)), f"step {step}"
        assert all(o % 4 == 0 for o, _ in spans) and a.peak >= max((o + s for o, s in spans), default=0)


def test_a_branch_reading_an_earlier_tensor_is_placed(tmp_path):
    """A threshold that reads the stem's stream again (skipping the add): a DAG the old chain-only
    generator refused, now placed by name."""
    need_tool("gcc", "gcc")
    rng = np.random.default_rng(11)
    g = residual_graph(rng, hw=6, widths=(4, 4), stride=1, shortcut="identity")
    names = [l.name for l in g.layers]
    pool = names.index("pool")
    g.layers[pool].inputs = ["x0"]  # pool the stem's stream, not the block's sum: x1 is dead
    validate(g)
    x = saturating_inputs(rng, 8, 6, 3)
    np.testing.assert_array_equal(run_firmware(g, tmp_path, "host", x), execute.run(g, x).int_logits, err_msg="seed 11")


def test_conv_whose_accumulator_has_two_readers_is_refused_by_name():
    rng = np.random.default_rng(5)
    w = rng.choice([-1, 1], (2, 3, 3, 1)).astype(np.int8)
    rq = {"mult": np.ones(2, np.int64), "bias": np.zeros(2, np.int64)}
    g = Graph((4, 4, 1), [
        Layer("conv2d", "c", "features.0", {"in": "u8", "weight_kind": "binary", "stride": 1, "pad": 1}, {"weight": w}),
        Layer("requant", "r1", "bn1", {"shift": 0, "bits": 8, "frac": 0}, dict(rq)),
        Layer("requant", "r2", "bn2", {"shift": 1, "bits": 8, "frac": 0}, dict(rq), ["c"]),
        Layer("add", "a", "res", {"frac": 0, "bits": 8}, {}, ["r1", "r2"]),
        Layer("dense", "fc", "fc", {"in": "fixed", "weight_kind": "int8"}, {"weight": np.ones((2, 32), np.int8)}),
    ])
    validate(g)
    with pytest.raises(Bnn2hwError, match="IR layer c .*features.0.*read by exactly one op"):
        codegen.emit(g)


def test_dense_on_a_16_bit_stream_that_could_overflow_int32_is_refused():
    rng = np.random.default_rng(6)
    g = residual_graph(rng, hw=8, widths=(4, 4), stride=1, shortcut="identity", bits=16)
    fc = next(l for l in g.layers if l.op == "dense")
    g.layers[g.layers.index(fc) - 2].attrs.update(kernel=1, stride=1)  # no pooling: 8x8x4 = 256 values
    fc.arrays["weight"] = np.full((5, 256), 127, np.int8)
    codegen.emit(g)  # 256 * 2^15 * 127 < 2^31: fine
    g.layers[g.layers.index(fc) - 2].attrs.update(kernel=2, stride=1)  # 7x7x4 sums of 4 values, 18 bits
    fc.arrays["weight"] = np.full((5, 196), 127, np.int8)
    with pytest.raises(Bnn2hwError, match="layer fc .*beyond int32"):
        codegen.emit(g)


@pytest.mark.parametrize("pad_value,stride", [(-1, 1), (-1, 2), (0, 2)])
def test_padded_binary_conv_chain_with_thresholds(pad_value, stride, tmp_path):
    """A VGG-style chain (no stream): u8 conv -> threshold -> binary 3x3 conv pad 1 (pad_value
    -1: bnn_conv_bits_m1, the padded taps' zero bits as -1; 0: the zero-padding kernel) -> threshold -> 1x1 conv
    -> threshold -> flatten -> binary dense; 33 and 31 channels, negative directions, ties."""
    need_tool("gcc", "gcc")
    seed = 30 + stride - pad_value
    rng = np.random.default_rng(seed)

    def thr(c, k):
        return {"thr": rng.integers(-k, k + 1, c).astype(np.int64), "direction": rng.choice([-1, 1], c).astype(np.int8)}

    def conv(name, c_in, c_out, k, s, p, kind):
        return Layer("conv2d", name, f"features.{name}", {"in": kind, "weight_kind": "binary", "stride": s, "pad": p,
                                                          "pad_value": pad_value if kind == "bits" else 0},
                     {"weight": rng.choice([-1, 1], (c_out, k, k, c_in)).astype(np.int8)})

    g = Graph((7, 7, 3), [
        conv("c0", 3, 33, 3, 1, 1, "u8"), Layer("threshold", "t0", "bn0", {}, thr(33, 300)),
        conv("c1", 33, 31, 3, stride, 1, "bits"), Layer("threshold", "t1", "bn1", {}, thr(31, 6)),
        conv("c2", 31, 5, 1, 1, 0, "bits"), Layer("threshold", "t2", "bn2", {}, thr(5, 3)),
        Layer("flatten", "f", "flatten", {}),
        Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
              {"weight": rng.choice([-1, 1], (4, 5 * ((7 - 1) // stride + 1) ** 2)).astype(np.int8)}),
    ])
    validate(g)
    x = saturating_inputs(rng, 16, 7, 3)
    src = codegen.emit(g).source
    # -1 padding: packed bits input thresholds inside the conv kernel (bnn_conv_bits_m1, one
    # threshold per channel at every position), no accumulator rows
    # threshold per channel at every position), no accumulator rows; on cores without Helium the
    # prepared entry (bnn_conv_bits_prep) carries the flag in its struct (pad_minus1 = 1u)
    import re
    m1 = "bnn_conv_bits_m1(" in src or re.search(r"bnn_conv_prep_t \w+_q4 = \{1u", src) is not None
    assert m1 == (pad_value == -1)
    assert "bnn_conv_bits_prep(" in src
    assert "bnn_conv_threshold_rows" not in src
    np.testing.assert_array_equal(run_firmware(g, tmp_path, "host", x), execute.run(g, x).int_logits, err_msg=f"seed {seed}")


# ---- the stream kernels' fast paths against their references, directly in C (host, ASan/UBSan) ----

FW_DIR = Path(__file__).resolve().parents[1] / "bnn2hw" / "firmware"


def _c_arr(ctype: str, name: str, a) -> str:
    return f"static const {ctype} {name}[] = {{{', '.join(str(int(v)) + ('LL' if ctype == 'int64_t' else '') for v in np.ravel(a))}}};\n"


def _host_run(tmp_path, src: str) -> list[int]:
    need_tool("gcc", "gcc")
    (tmp_path / "t.c").write_text(src)
    exe = tmp_path / "t"
    cmd = ["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", f"-I{FW_DIR / 'include'}", str(tmp_path / "t.c"),
           str(FW_DIR / "src" / "bnn_stream.c"), str(FW_DIR / "src" / "bnn_conv.c"), str(FW_DIR / "src" / "bnn_bits.c"),
           "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    r = subprocess.run([str(exe)], check=True, capture_output=True, text=True)
    return [int(v) for v in r.stdout.split()]


@pytest.mark.parametrize("channels", [1, 31, 32, 33, 64, 65])
def test_stream_threshold_int8_fast_path_equals_numpy(channels, tmp_path):
    """bnn_stream_threshold on the 8-bit stream (the (v ^ m) - t' path up to 64 channels, the
    generic loop above): every value -128..127 against thresholds at the clamp edges
    (-2^31, -129, -128, -127, 0, 126, 127, 128, 2^31 - 1) and random ones, both directions,
    ties included; padding bits 0."""
    rng = np.random.default_rng(channels)
    edges = np.array([-(2**31), -129, -128, -127, 0, 126, 127, 128, 2**31 - 1])
    thr = np.where(rng.random(channels) < 0.5, rng.choice(edges, channels), rng.integers(-130, 131, channels))
    dirs = rng.choice([-1, 1], channels)
    pos = 256 + 3
    v = np.concatenate([np.repeat(np.arange(-128, 128), 1), rng.integers(-128, 128, 3)])
    x = (v[:, None] + np.arange(channels)[None, :] * 0).astype(np.int64)  # every value in every channel
    x[:, 1::2] = np.roll(x[:, 1::2], 7, axis=0)
    words = (channels + 31) // 32
    src = ("#include <stdio.h>\n#include \"bnn_stream.h\"\n" + _c_arr("int8_t", "x", x) + _c_arr("int32_t", "thr", thr)
           + _c_arr("int8_t", "dir", dirs)
           + f"int main(void) {{ static bnn_word_t out[{pos * words}]; "
           f"const bnn_stream_threshold_params_t p = {{{pos}u, {channels}u, 1u}}; "
           f"bnn_stream_threshold(&p, x, thr, dir, out); "
           f"for (unsigned i = 0; i < {pos * words}u; ++i) printf(\"%lu\\n\", (unsigned long)out[i]); return 0; }}\n")
    got = np.array(_host_run(tmp_path, src), dtype=np.uint64).reshape(pos, words)
    bits = np.where(dirs > 0, x >= thr, x <= thr)
    want = np.zeros((pos, words), np.uint64)
    for c in range(channels):
        want[:, c // 32] |= bits[:, c].astype(np.uint64) << np.uint64(c % 32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("u8", [False, True])
def test_conv_requant_int32_path_equals_the_int64_requant(u8, tmp_path):
    """bnn_conv_requant (int32 requant when the accumulator bound proves it fits, the int64 loop
    otherwise) equals bnn_requant (int64) of bnn_conv_*_acc_ref, per layer with: small
    multipliers of both signs (int32 path), a huge multiplier / shift 40 (int64 path), biases
    that saturate, 8- and 16-bit outputs; 5x7 input, 33 channels, 3x3 pad 1 stride 2."""
    rng = np.random.default_rng(11 + u8)
    cin, cout, h, w = (3 if u8 else 33), 33, 5, 7
    oh, ow = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
    words = (cin + 31) // 32
    wts = rng.integers(0, 2**32, (cout, 9, words), dtype=np.uint64)
    if cin % 32:
        wts[..., -1] &= np.uint64((1 << (cin % 32)) - 1)
    if u8:
        xin, xtype, acc_ref = rng.integers(0, 256, h * w * cin), "uint8_t", "bnn_conv_u8_acc_ref"
    else:
        xw = rng.integers(0, 2**32, (h * w, words), dtype=np.uint64)
        if cin % 32:
            xw[:, -1] &= np.uint64((1 << (cin % 32)) - 1)
        xin, xtype, acc_ref = xw, "bnn_word_t", "bnn_conv_acc_ref"
    cases = [  # (mult, bias, shift, bits)
        (rng.integers(-3000, 3000, cout), rng.integers(-(2**18), 2**18, cout) * 4, 12, 8),
        (rng.integers(-(2**15), 2**15, cout), rng.integers(-(2**24), 2**24, cout), 8, 16),
        (rng.integers(-(2**31) + 1, 2**31 - 1, cout), rng.integers(-(2**40), 2**40, cout), 40, 8),
    ]
    src = "#include <stdio.h>\n#include \"bnn_stream.h\"\n" + _c_arr(xtype, "x", xin) + _c_arr("bnn_word_t", "w", wts)
    body = (f"static int32_t acc[{oh * ow * cout}], row[{ow * cout}]; static int16_t a[{oh * ow * cout}], "
            f"b[{oh * ow * cout}];\n"
            f"const bnn_conv_rows_params_t cp = {{{{{h}u, {w}u, {cin}u, {oh}u, {ow}u, {cout}u, 3u, 3u, 2u, 2u, 1u, 1u}}, "
            f"{int(u8)}u, 0u}};\n{acc_ref}(&cp.conv, x, w, acc);\n")
    for i, (m, b, sh, bits) in enumerate(cases):
        src += _c_arr("int32_t", f"m{i}", m) + _c_arr("int64_t", f"b{i}", b) + _c_arr("uint8_t", f"s{i}", [sh] * cout)
        ob = 1 if bits == 8 else 2
        body += (f"{{ const bnn_requant_params_t rq = {{{cout}u, m{i}, b{i}, s{i}, {-(2 ** (bits - 1))}, "
                 f"{2 ** (bits - 1) - 1}, {ob}u}};\n"
                 f"  bnn_requant(&rq, {oh * ow}u, acc, 4u, a); bnn_conv_requant(&cp, x, w, &rq, row, b);\n"
                 f"  for (unsigned i = 0; i < {oh * ow * cout}u; ++i) printf(\"%d %d\\n\", "
                 f"{'((int8_t *)a)[i], ((int8_t *)b)[i]' if ob == 1 else 'a[i], b[i]'}); }}\n")
    src += f"int main(void) {{\n{body}return 0; }}\n"
    bound = 9 * cin * (255 if u8 else 1)  # |acc| <= K (255 K for uint8)

    def fits32(m, b, sh, bits):  # the condition of requant_fast32 in bnn_stream.c
        b2 = b.astype(object) + 2 ** (bits - 1) * 2**sh
        return sh <= 30 and all(abs(v) < 2**31 and bound * abs(int(mm)) + abs(v) < 2**31 for mm, v in zip(m, b2))

    assert [fits32(*c) for c in cases] == [True, True, False]  # both paths are exercised
    vals = np.array(_host_run(tmp_path, src)).reshape(len(cases), oh * ow * cout, 2)
    for i, (_, _, _, bits) in enumerate(cases):
        np.testing.assert_array_equal(vals[i, :, 1], vals[i, :, 0], err_msg=f"case {i}")
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        assert (vals[i, :, 0] == lo).any() or (vals[i, :, 0] == hi).any() or i == 2, f"case {i}: no saturation"


# ---- the fused stream epilogue (bnn_stream_epilogue / bnn_conv_stream) against numpy ----

EPI_COMBOS = [(0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 1, 0), (1, 1, 1), (1, 0, 1)]  # (add, store, threshold)


def _epi_case(rng, channels: int, bits: int, huge, pos: int = 40):
    """Per-channel requant (mult of both signs, per-channel shifts 0..9), accumulators up to the
    bound, a skip stream over its whole range, thresholds on values that occur (ties), at and just
    beyond the stream's ends and at the int32 ends, both directions. huge "wide": the uint8 first
    layer's shape (bound 6885 = 255 * 27, shifts 20..24, multipliers up to 2^19.5: beyond int32 at
    shift S, inside the shift-32 SMLAL form); huge True: a multiplier 2^31 - 1 (neither form)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if huge == "wide":
        bound = 6885
        shift = rng.integers(20, 25, channels)
        shift[0] = 24
        mult = np.round(rng.uniform(-1, 1, channels) * 2.0 ** shift * 2.3 * (hi + 1) / bound).astype(np.int64)
        mult[0] = -(2**24 * 295 // bound)
    else:
        bound = 300
        shift = rng.integers(0, 10, channels)
        shift[0] = 9
        mult = rng.integers(-(2 ** (bits - 7)), 2 ** (bits - 7), channels) << shift  # |acc mult| >> shift up to 2.3 2^bits
    mult[mult == 0] = 1
    mult[0] = -mult[0] if mult[0] > 0 else mult[0]
    if huge is True:  # beyond int32 and the wide form: the int64 reference loop
        mult[1 % channels] = 2**31 - 1
    bias = (rng.integers(-(2 ** bits), 2 ** bits, channels) << shift) + (1 << shift) // 2
    acc = rng.integers(-bound, bound + 1, (pos, channels))
    acc[0], acc[1] = bound, -bound
    skip = rng.integers(lo, hi + 1, (pos, channels))
    skip[2], skip[3] = lo, hi
    return lo, hi, bound, shift, mult, bias, acc, skip


def _epi_ref(lo, hi, shift, mult, bias, acc, skip, add, thr, dirs):
    r = np.clip((acc.astype(np.int64) * mult + bias) >> shift, lo, hi)  # ops.requant, per-channel shift
    v = ops.add(r, skip, bits=int(np.log2(hi + 1)) + 1) if add else r
    return v, ops.threshold(v, thr, dirs) > 0


def _epi_program(bits: int, pos: int = 40):
    """C declarations and statements running bnn_stream_epilogue on every (add, store, threshold)
    combination, channels 1, 31, 32, 33 (multiplier beyond int32: the int64 loop), 64 (the
    assembly rows of Thumb-2 cores without a threshold, the C rows with one), 65 (past
    BNN_STREAM_FAST_CH: the int64 loop), 16 and 33 with a first layer's range (the shift-32 SMLAL
    form on int8 streams, the int64 loop on wider ones); each result goes through EMIT(int32
    value); and the expected values in EMIT order (stream values, then packed words with padding
    bits 0)."""
    seed = 700 + bits
    rng = np.random.default_rng(seed)
    ctype, ob = ("int8_t", 1) if bits == 8 else ("int16_t", 2)
    decls, body, expect = "#include <string.h>\n#include \"bnn_stream.h\"\n", "", []
    for ci, (channels, huge) in enumerate([(1, False), (31, False), (32, False), (33, True), (64, False),
                                           (65, False), (16, "wide"), (33, "wide")]):
        lo, hi, bound, shift, mult, bias, acc, skip = _epi_case(rng, channels, bits, huge, pos)
        sc = 2 ** (shift.max() - shift)  # the int32 condition of epi_plan in bnn_stream.c (plan_narrow)
        fast = channels <= 64 and all(bound * abs(int(m)) * int(f) + abs(int(b)) * int(f) < 2**31
                                      for m, b, f in zip(mult, bias, sc))
        assert fast == (not huge and channels <= 64), f"seed {seed} channels {channels}: int32 path {fast}"
        wide = all(abs(int(m)) * 2 ** (32 - int(sh)) < 2**31 and abs(int(b)) < 2 ** (30 + int(sh))
                   for m, b, sh in zip(mult, bias, shift))  # plan_wide
        if bits == 8:  # the form is taken on int8 streams only (wider ones: the int64 loop)
            assert wide == (huge == "wide"), f"seed {seed} channels {channels}: shift-32 form {wide}"
        vals = np.clip((acc.astype(np.int64) * mult + bias) >> shift, lo, hi)
        summed = vals + skip
        assert channels == 1 or ((vals == lo).any() and (vals == hi).any() and (summed < lo).any()
                                 and (summed > hi).any()), f"seed {seed} channels {channels}: no saturation at both ends"
        for k, (add, store, th) in enumerate(EPI_COMBOS):
            v_pre = np.clip(vals + skip, lo, hi) if add else vals
            thr = v_pre[rng.integers(0, pos, channels), np.arange(channels)]  # ties
            edge = rng.random(channels) < 0.3
            thr[edge] = rng.choice([-(2**31) + 1, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 2**31 - 1], edge.sum())
            dirs = rng.choice([-1, 1], channels)
            v, on = _epi_ref(lo, hi, shift, mult, bias, acc, skip, add, thr, dirs)
            words = (channels + 31) // 32
            want_bits = np.zeros((pos, words), np.uint64)
            for c in range(channels):
                want_bits[:, c // 32] |= on[:, c].astype(np.uint64) << np.uint64(c % 32)
            n = f"c{ci}_{k}"
            decls += (_c_arr("int32_t", f"{n}_m", mult) + _c_arr("int64_t", f"{n}_b", bias)
                      + _c_arr("uint8_t", f"{n}_s", shift) + _c_arr("int32_t", f"{n}_acc", acc)
                      + _c_arr(ctype, f"{n}_skip", skip) + _c_arr("int32_t", f"{n}_thr", thr)
                      + _c_arr("int8_t", f"{n}_dir", dirs))
            body += (f"{{ static {ctype} out[{pos * channels}]; static bnn_word_t bits[{pos * words}];\n"
                     f"  const bnn_requant_params_t rq = {{{channels}u, {n}_m, {n}_b, {n}_s, {lo}, {hi}, {ob}u}};\n"
                     f"  const bnn_stream_epilogue_t e = {{&rq, {ob * add}u, {lo}, {hi}, {ob * store}u, "
                     f"{f'{n}_thr' if th else 'NULL'}, {f'{n}_dir' if th else 'NULL'}}};\n"
                     f"  memcpy(out, {n}_skip, sizeof out); memset(bits, 0xa5, sizeof bits); (void){n}_thr; (void){n}_dir;\n"
                     # in place when the sum is stored: out is a copy of the skip
                     f"  bnn_stream_epilogue(&e, {pos}u, {n}_acc, {bound}u, {'out' if add and store else f'{n}_skip'}, "
                     f"{'out' if store else 'NULL'}, {'bits' if th else 'NULL'});\n"
                     f"  for (unsigned i = 0; i < {pos * channels}u; ++i) EMIT(out[i]);\n"
                     f"  for (unsigned i = 0; i < {pos * words}u; ++i) EMIT(bits[i]); }}\n")
            want_out = v if store else skip
            expect.append((f"seed {seed} channels {channels} add {add} store {store} thr {th}", want_out.ravel(),
                           want_bits.ravel() if th else np.full(pos * words, 0xA5A5A5A5, np.uint64)))
    return decls, body, expect


def _check_epi(got, expect):
    got = np.asarray(got, dtype=np.int64)
    at = 0
    for what, want_out, want_bits in expect:
        np.testing.assert_array_equal(got[at:at + want_out.size], want_out, err_msg=f"{what}: stream")
        at += want_out.size
        np.testing.assert_array_equal(got[at:at + want_bits.size].astype(np.uint32).astype(np.uint64), want_bits,
                                      err_msg=f"{what}: bits")
        at += want_bits.size
    assert at == got.size


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_stream_epilogue_equals_numpy(bits, tmp_path):
    """Every combination of add / store / threshold, channels 1, 31, 32, 33, 65, the int32 and
    the int64 paths: stored stream values and packed bits (padding bits 0) equal ops.requant ->
    ops.add -> ops.threshold, including the stream written over its own skip (in place); host
    gcc with ASan + UBSan."""
    decls, body, expect = _epi_program(bits)
    src = ("#include <stdio.h>\n" + decls + "#define EMIT(v) printf(\"%ld\\n\", (long)(v))\n"
           f"int main(void) {{\n{body}return 0; }}\n")
    _check_epi(_host_run(tmp_path, src), expect)


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m55"])
def test_stream_epilogue_equals_numpy_in_qemu(target, tmp_path):
    """The same programs on the cores where the fast path uses SSAT (8- and 16-bit streams),
    cross-compiled with the harness: a stand-in model.c whose bnn_infer runs them and returns
    every result as a 'logit'. (Cortex-M0 runs the same portable C as the host; its 16 KiB of
    RAM cannot hold the results.)"""
    need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    need_tool("qemu-system-arm", "qemu-system-arm")
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import write_firmware_dir

    g = validate(residual_graph(np.random.default_rng(1), **CASES[0][1]))
    for bits in (8, 12, 16):
        decls, body, expect = _epi_program(bits, pos=16)
        total = sum(o.size + b.size for _, o, b in expect)
        fw = tmp_path / f"b{bits}"
        write_firmware_dir(g, fw, target)
        (fw / "model.h").write_text("#include <stddef.h>\n#include <stdint.h>\n#define BNN_INPUT_LEN 1u\n"
                                    f"#define BNN_NUM_LOGITS {total}u\n"
                                    "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, "
                                    "size_t logits_len);\n")
        (fw / "model.c").write_text(
            "/* SPDX-License-Identifier: MIT */\n#include \"model.h\"\n" + decls
            + "#define EMIT(v) (logits[k++] = (int32_t)(v))\n"
            "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n"
            "    size_t k = 0;\n    (void)input; (void)input_len; (void)logits_len;\n" + body + "    return 0;\n}\n")
        elf = toolchain.build(fw, target)
        _check_epi(qemu.run(elf, target, np.zeros((1, 1), np.uint8), total)[0], expect)


@pytest.mark.parametrize("bound", [1, 31, 576, 6885])
def test_requant_threshold_fold_is_exact_on_the_whole_accumulator_range(bound):
    """fold_requant_threshold: acc >= thr' (dir +1) or acc <= thr' (dir -1) gives the bits of
    threshold(requant(acc)) for every |acc| <= bound: negative and zero-crossing multipliers,
    thresholds at ties, beyond the stream (always / never) and at the saturation ends."""
    seed = 900 + bound
    rng = np.random.default_rng(seed)
    c = 37
    mult = rng.integers(-50, 51, c)
    mult[:3] = [-7, 0, 1 << 20]  # negative, constant channel, saturating at both ends
    shift = 5
    bias = rng.integers(-(1 << 12), 1 << 12, c)
    rq = Layer("requant", "r", "bn", {"shift": shift, "bits": 8, "frac": 0},
               {"mult": mult.astype(np.int64), "bias": bias.astype(np.int64)})
    acc = np.arange(-bound, bound + 1)
    r = ops.requant(acc[:, None], mult, bias, shift, 8)
    thr = r[rng.integers(0, acc.size, c), np.arange(c)]
    thr[3:8] = [-129, -128, 127, 128, 0]
    dirs = rng.choice([-1, 1], c).astype(np.int8)
    th = Layer("threshold", "t", "sign", {}, {"thr": thr.astype(np.int64), "direction": dirs})
    t2, d2 = fold_requant_threshold(rq, th, bound)
    want = ops.threshold(r, thr, dirs)
    np.testing.assert_array_equal(ops.threshold(np.broadcast_to(acc[:, None], r.shape), t2, d2), want,
                                  err_msg=f"seed {seed}")


def _unfused_graph(rng) -> Graph:
    """A residual block with an identity requant between the block's requant and the add: the
    generator's fallback (stored requant, standalone bnn_requant, bnn_stream_add)."""
    g = residual_graph(rng, hw=6, widths=(5, 5), stride=1, shortcut="identity")
    k = [l.name for l in g.layers].index("z0")
    g.layers.insert(k + 1, Layer("requant", "z0b", "requant again", {"shift": 0, "bits": 8, "frac": 4},
                                 {"mult": np.ones(5, np.int64), "bias": np.zeros(5, np.int64)}))
    g.layers[k + 2].inputs = ["z0b", "x0"]
    return validate(g)


def test_resnet8_lowering_fuses_the_stream_and_falls_back_otherwise(tmp_path):
    """ResNet-8: every conv -> requant -> threshold is one accumulator threshold, every requant ->
    add [-> threshold] one bnn_conv_stream pass (the stream stored only when pooled or a later add
    reads it), no standalone requant / add / stream threshold left. A requant read by an add whose
    other input comes later keeps today's kernels (bnn_conv_requant, bnn_stream_add)."""
    from residual_graphs import resnet8_graph

    em = codegen.emit(resnet8_graph(np.random.default_rng(8)))
    body = em.source[em.source.index("int bnn_infer"):em.source.index("int bnn_predict")]
    # the calls a non-Helium core makes: the `#if BNN_MVE` branch of a conv (its prepared Helium
    # entry, bnn_conv_bits_mve_prep) is checked apart.  No position-sliced conv: conv_ps.PS_MARGIN 0.85
    # keeps c0a / c1a (estimated 0.89 / 0.86 of the tiled few entry at -1 padding) on bnn_conv_bits_few, so
    # the model flash stays under issue 9's 64 KiB (60,160 B against 68,880 B with both on ps)
    assert "bnn_conv_ps_bits" not in body and "#if BNN_CONV_PS" not in body
    scalar, skip = [], False
    for ln in body.splitlines():
        skip = {"#if BNN_MVE": True, "#if BNN_CONV_PS": True, "#else": False, "#endif": False}.get(ln.strip(), skip)
        if not skip:
            scalar.append(ln)
    calls = [ln.strip().split("(")[0] for ln in scalar if ln.strip().startswith("bnn_")]
    assert body.count("bnn_conv_bits_mve_prep(&") == 1  # c2a: cin 32 (cin 16 keeps the rows)
    # bits convs (3x3x16 and 3x3x32): #if BNN_MVE (Helium entry or bnn_conv_bits_m1) #else bnn_conv_bits_few in
    # tiles (conv_m4_prep.use_few; measured on the Cortex-M4 at -1 padding: 4,474,787 -> 4,468,418
    # instructions for the whole net against bnn_conv_bits_m1 / bnn_conv_bits_prep)
    assert body.count("#if BNN_MVE") == body.count("bnn_conv_bits_few(&") == 3
    assert "bnn_conv_bits_prep(&" not in body
    assert calls == ["bnn_conv_stream", "bnn_conv_bits_few", "bnn_conv_stream", "bnn_conv_bits_few",
                     "bnn_conv_requant", "bnn_conv_stream", "bnn_conv_bits_few", "bnn_conv_requant",
                     "bnn_conv_stream", "bnn_avgpool_sum", "bnn_dense_stream_s8"], calls
    assert "&c0b_e, BNN_BUF" in body and ", NULL, (bnn_word_t *)" in body  # x1: added, thresholded, not stored
    # the shortcut conv of a stride-2 stack computed before the main path's add: no fusion there
    g = residual_graph(np.random.default_rng(1), **CASES[0][1])
    body = codegen.emit(g).source
    assert "bnn_stream_add" not in body and "bnn_conv_stream(&d0_p" in body
    # an identity requant between the block's requant and the add: the conv's requant has no add
    # to fuse (stored), the add runs alone on two stored streams; still exact
    need_tool("gcc", "gcc")
    seed = 12
    rng = np.random.default_rng(seed)
    g = _unfused_graph(rng)
    src = codegen.emit(g).source
    assert "bnn_conv_requant(&c0_p" in src and "bnn_requant(&z0b_p" in src and "bnn_stream_add(&x1_p" in src
    x = saturating_inputs(rng, 8, 6, 3)
    np.testing.assert_array_equal(run_firmware(g, tmp_path, "host", x), execute.run(g, x).int_logits,
                                  err_msg=f"seed {seed}")


@pytest.mark.parametrize("pad_value", [-1, 0])
def test_requant_then_threshold_chain_is_folded_and_exact(pad_value, tmp_path):
    """conv -> requant -> threshold with no other reader of the stream (a VGG-style chain on the
    8-bit stream, uint8 stem and binary convs, saturating multipliers of both signs, thresholds
    at the stream's ends and inside): lowered to accumulator thresholds (no requant or stream
    threshold kernel left in the C), every logit equal to the IR on the host (ASan + UBSan)."""
    need_tool("gcc", "gcc")
    seed = 40 - pad_value
    rng = np.random.default_rng(seed)

    def conv(name, c_in, c_out, kind, p):
        return Layer("conv2d", name, f"features.{name}", {"in": kind, "weight_kind": "binary", "stride": 1, "pad": p,
                                                          "pad_value": pad_value if kind == "bits" else 0},
                     {"weight": rng.choice([-1, 1], (c_out, 3, 3, c_in)).astype(np.int8)})

    def rq(name, c, shift, mmax):
        mult = rng.integers(-mmax, mmax + 1, c)
        mult[mult == 0] = -1
        mult[0] = -(1 << (shift + 4))  # saturates at both ends
        return Layer("requant", name, f"{name}.bn", {"shift": shift, "bits": 8, "frac": 3},
                     {"mult": mult.astype(np.int64), "bias": (rng.integers(-(1 << shift), 1 << shift, c)
                                                              + (1 << (shift - 1))).astype(np.int64)})

    def sign(name, c):
        thr = rng.integers(-40, 41, c)
        thr[:4] = [-128, 127, -129, 128][:c]
        return Layer("threshold", name, f"{name}.sign", {}, {"thr": thr.astype(np.int64),
                                                             "direction": rng.choice([-1, 1], c).astype(np.int8)})

    g = Graph((6, 6, 3), [conv("c0", 3, 33, "u8", 1), rq("r0", 33, 6, 40), sign("t0", 33),
                          conv("c1", 33, 31, "bits", 1), rq("r1", 31, 3, 9), sign("t1", 31),
                          Layer("flatten", "f", "flatten", {}),
                          Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
                                {"weight": rng.choice([-1, 1], (4, 6 * 6 * 31)).astype(np.int8)})])
    validate(g)
    src = codegen.emit(g).source
    assert "bnn_requant" not in src and "bnn_conv_stream" not in src and "bnn_stream_threshold" not in src
    assert "requant folded into the threshold" in src
    x = saturating_inputs(rng, 16, 6, 3)
    ref = execute.run(g, x)
    r0 = ref.tensors["r0"]
    assert r0.min() == -128 and r0.max() == 127, f"seed {seed}: the stream does not saturate"
    np.testing.assert_array_equal(run_firmware(g, tmp_path, "host", x), ref.int_logits, err_msg=f"seed {seed}")
