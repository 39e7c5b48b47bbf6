# SPDX-License-Identifier: MIT
"""Residual and padded IR graphs through the FINN-ready export (issue 9 section 3), without FINN:
qonnx's executor (``model_finn.onnx``) and onnxruntime (``model_plain.onnx``) give the IR's
integer logits **and stream integers** exactly, on random, saturating (all 255, all 0) and
checkerboard inputs; the requant MultiThresholds equal the integer requant on every reachable
input (so on every threshold landing); what FINN cannot express is refused naming the layer.

``tests/test_finn.py`` (marked ``finn``) runs the same graphs through FINN v0.10.1 / dev.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from finn_helpers import resnet8_graph
from residual_graphs import residual_graph, saturating_inputs

from bnn2hw.errors import Bnn2hwError
from bnn2hw.fpga import build
from bnn2hw.fpga.onnx_export import INPUT_NAME, build_onnx, run_plain, run_qonnx
from bnn2hw.fpga.residual_onnx import monotone_thresholds, needs_residual_form, stream_tensor_names
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import Layer

# (seed, residual_graph keyword arguments): strided 1x1-conv shortcut, identity shortcut, 4-bit and
# 2-bit streams (saturating), awkward widths (1 input channel, 1 and 3 channels), odd map size
CASES = {
    "conv_shortcut": (1, {}),
    "identity": (2, {"widths": (5, 5), "stride": 1, "shortcut": "identity"}),
    "bits4": (3, {"bits": 4, "frac": 2}),
    "bits2_narrow": (4, {"bits": 2, "frac": 0, "c_in": 1, "widths": (1, 3)}),
    "odd_map": (5, {"hw": 7, "widths": (3, 5)}),
}


def _case(key):
    seed, kw = CASES[key]
    rng = np.random.default_rng(seed)
    g = residual_graph(rng, **kw)
    x = saturating_inputs(rng, 10, kw.get("hw", 8), kw.get("c_in", 3))
    return g, x


def _plain_streams(graph, x):
    """onnxruntime on the plain graph with every stored stream tensor as an extra output."""
    import onnx
    import onnxruntime as ort

    model = build_onnx(graph, "plain")
    names = stream_tensor_names(graph, finn=False)
    for onnx_name in names.values():
        model.graph.output.append(onnx.helper.make_tensor_value_info(onnx_name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(list(names.values()), {INPUT_NAME: x})
    return dict(zip(names, outs))


@pytest.mark.parametrize("key", list(CASES))
def test_qonnx_and_onnxruntime_equal_ir(key):
    graph, x = _case(key)
    assert needs_residual_form(graph)
    ref = execute.run(graph, x)
    _, i_plain = run_plain(build_onnx(graph, "plain"), x)
    _, i_qonnx = run_qonnx(build_onnx(graph, "finn"), x)
    seed = CASES[key][0]
    assert np.array_equal(i_plain, ref.int_logits), f"onnxruntime != IR ({key}, seed {seed})"
    assert np.array_equal(i_qonnx, ref.int_logits), f"qonnx != IR ({key}, seed {seed})"


@pytest.mark.parametrize("key", list(CASES))
def test_stream_integers_equal_ir(key):
    """Every requantized stream, residual sum and pool sum, integer for integer (onnxruntime)."""
    graph, x = _case(key)
    ref = execute.run(graph, x)
    got = _plain_streams(graph, x)
    assert {"x0", "x1", "pool"} <= set(got), sorted(got)
    for name, val in got.items():
        assert np.array_equal(val.astype(np.int64), ref.tensors[name].reshape(val.shape)), (key, name)


def test_saturation_is_reached():
    """The saturating cases really saturate (otherwise the tests above would not test it)."""
    graph, x = _case("bits4")
    ref = execute.run(graph, x)
    assert (ref.tensors["x0"] == 7).any() and (ref.tensors["x0"] == -8).any()
    adds = [l for l in build_onnx(graph, "finn").graph.node if l.name.startswith("x1_sat")]
    assert adds, "the residual add of two 4-bit streams must be followed by a saturating MultiThreshold"


@pytest.mark.parametrize("bits,shift,parity", [(2, 0, None), (3, 2, None), (8, 3, 1), (8, 9, 0), (4, 5, 1)])
def test_requant_thresholds_exact_on_every_reachable_value(bits, shift, parity):
    """MultiThreshold(v) == requant(v) for every v in the reachable range (of the accumulator's
    parity), so also at every threshold and one below it; negative multipliers enter negated
    (``mult`` >= 0 here is what the export writes after folding the sign into the weights);
    a zero multiplier is a constant channel."""
    rng = np.random.default_rng(100 + bits + shift)
    c = 7
    mult = rng.integers(0, 40, c)
    mult[0] = 0
    bias = rng.integers(-(1 << (shift + 3)), 1 << (shift + 3), c)
    lo, hi = rng.integers(-300, -1, c), rng.integers(1, 300, c)
    if parity is not None:  # an XNOR accumulator over K terms lies in [-K, K] with K's parity
        lo, hi = lo - np.mod(lo - parity, 2), hi - np.mod(hi - parity, 2)
    out_lo = -(1 << (bits - 1))
    f = lambda v: ops.requant(v[:, None], mult, bias, shift, bits)
    thr = monotone_thresholds(f, lo, hi, out_lo, (1 << bits) - 1, parity, "test")
    assert thr.shape == (c, (1 << bits) - 1) and np.all(np.diff(thr, axis=1) >= 0)
    if parity is not None:
        assert np.all(np.mod(thr - parity, 2) == 0), "thresholds must keep the accumulator's parity"
    for ch in range(c):
        v = np.arange(lo[ch], hi[ch] + 1, 2 if parity is not None else 1)
        mt = out_lo + (v[:, None] >= thr[ch][None, :]).sum(1)
        assert np.array_equal(mt, f(v)[:, ch]), f"channel {ch} (bits {bits}, shift {shift})"


def _layer(graph, name):
    return next(l for l in graph.layers if l.name == name)


def test_zero_padding_of_binary_input_is_refused_with_the_hint():
    graph = residual_graph(np.random.default_rng(1), pad_value=0)
    with pytest.raises(Bnn2hwError, match=r"IR layer c0 .*--pad-value -1"):
        build_onnx(graph, "finn")


def test_non_global_average_pool_is_refused():
    graph = residual_graph(np.random.default_rng(1), pool="2x2")
    with pytest.raises(Bnn2hwError, match=r"IR layer pool .*global average pooling only"):
        build_onnx(graph, "finn")


def test_negative_multiplier_on_a_stream_is_refused():
    """A requant reading the fixed stream (not an accumulator) cannot fold its sign anywhere."""
    graph = residual_graph(np.random.default_rng(1))
    i = [l.name for l in graph.layers].index("pool")
    graph.layers.insert(i, Layer("requant", "rq", "extra", {"shift": 1, "bits": 8, "frac": 4},
                                 {"mult": -np.ones(6, dtype=np.int64), "bias": np.zeros(6, dtype=np.int64)},
                                 ["x1"]))
    graph.layers[i + 1].inputs = ["rq"]
    with pytest.raises(Bnn2hwError, match=r"IR layer rq .*negative multiplier"):
        build_onnx(graph, "finn")


def test_add_of_streams_of_different_widths_is_refused():
    graph = residual_graph(np.random.default_rng(1))
    _layer(graph, "y0").attrs["bits"] = 6
    with pytest.raises(Bnn2hwError, match=r"IR layer x1 .*INT8 and INT6"):
        build_onnx(graph, "finn")


def test_finn_graph_shape_for_finn():
    """The FINN-ready graph is NHWC after one input Transpose, the fan-out of the stream is left
    to FINN (InferDuplicateStreamsLayer), each stream threshold feeds exactly one conv (qonnx's
    XNOR rewrite converts one BIPOLAR MultiThreshold per MatMul), padded binary Im2Cols pad -1."""
    graph = residual_graph(np.random.default_rng(1))
    m = build_onnx(graph, "finn")
    nodes = list(m.graph.node)
    assert nodes[0].op_type == "Transpose"
    consumers: dict = {}
    for n in nodes:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    bipolar = [n for n in nodes if n.op_type == "MultiThreshold"
               and any(a.name == "out_dtype" and a.s == b"BIPOLAR" for a in n.attribute)]
    assert bipolar and all(len(consumers[n.output[0]]) == 1 for n in bipolar)
    requant_x0 = next(n for n in nodes if n.name.startswith("x0_"))
    assert len(consumers[requant_x0.output[0]]) >= 2  # the stream fans out
    pads = {n.name: {a.name: a for a in n.attribute} for n in nodes if n.op_type == "Im2Col"}
    padded = [p for p in pads.values() if list(p["pad_amount"].ints) != [0, 0, 0, 0]]
    assert padded and all(p["pad_value"].i in (0, -1) for p in padded)
    assert [o.name for o in m.graph.output] == ["global_out"]


def test_resnet8_exact_and_folded_for_1000_fps(tmp_path):
    """The resnet8-shaped graph: qonnx and onnxruntime equal the IR; the build folder holds the
    residual form and a folding whose every MVAU meets 1,000 frames/s at 100 MHz."""
    from bnn2hw.fpga.cli import write_fpga_build

    graph = resnet8_graph(seed=0)
    x = saturating_inputs(np.random.default_rng(7), 3, 32, 3)
    summary = write_fpga_build(graph, "pynq-z2", tmp_path / "b", x=x, clock_mhz=100.0, target_fps=1000.0)
    assert summary["ir_vs_qonnx"]["int_logits_differing"] == 0
    assert summary["ir_vs_onnxruntime"]["int_logits_differing"] == 0
    meta = json.loads((tmp_path / "b" / "bnn2hw_export.json").read_text())
    assert meta["graph_form"] == "residual"
    fold = json.loads((tmp_path / "b" / build.MVAU_FOLDING_FILE).read_text())["mvau"]
    assert len(fold) == 1 + 3 * 2 + 2 + 1  # stem, two 3x3 per block, two 1x1 shortcuts, head
    assert all(e["cycles"] <= 100_000 for e in fold), fold
    for e in fold:
        assert e["MH"] % e["PE"] == 0 and e["MW"] % e["SIMD"] == 0
        assert e["cycles"] == (e["MH"] // e["PE"]) * (e["MW"] // e["SIMD"]) * e["vectors"]
    report = json.loads((tmp_path / "b" / "layer_report.json").read_text())
    assert report["estimated_fps"] >= 1000.0


def _folded(arch: str, seed: int, **over):
    """bnn2hw's own model ``arch`` (res-core's residual/padded models) with seeded random weights
    and BatchNorm statistics (negative scales included), folded to the IR."""
    import torch

    from bnn2hw.export.fold import fold_model
    from bnn2hw.nn.models import build_model, default_spec

    torch.manual_seed(seed)
    spec = default_spec(arch, (3, 32, 32), 10)
    spec.update(over)
    model = build_model(spec).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0, 2)
                m.running_var.uniform_(0.5, 4)
                m.weight.normal_(0, 1)
                m.bias.normal_(0, 1)
    return fold_model(model, spec)


@pytest.mark.parametrize("arch", ["resnet8", "resnet20", "vgg-small"])
def test_bnn2hw_models_export_exactly(arch):
    """resnet8, resnet20 (Bi-Real double skips) and vgg-small (padded chain) as bnn2hw folds
    them: qonnx and onnxruntime equal the IR on all-255, all-0 and checkerboard images."""
    graph = _folded(arch, seed=3)
    x = saturating_inputs(np.random.default_rng(11), 3, 32, 3)
    ref = execute.run(graph, x)
    assert np.array_equal(run_plain(build_onnx(graph, "plain"), x)[1], ref.int_logits), arch
    assert np.array_equal(run_qonnx(build_onnx(graph, "finn"), x)[1], ref.int_logits), arch


def test_resnet8_with_zero_padding_is_refused_naming_the_first_padded_binary_conv():
    graph = _folded("resnet8", seed=3, pad_value=0)
    with pytest.raises(Bnn2hwError, match=r"IR layer b0_conv1 \(conv2d, from blocks.0.conv1\).*--pad-value -1"):
        build_onnx(graph, "finn")


def test_export_of_a_resnet8_checkpoint_is_verified_end_to_end(tmp_path):
    """``export_fpga`` on a (seeded, untrained) resnet8 checkpoint with a synthetic CIFAR-shaped
    .npz: PyTorch == IR (every bit and stream integer) == onnxruntime == qonnx on the test split,
    and the build folder is the residual form folded for 1,000 frames/s."""
    import torch

    from bnn2hw.checkpoint import save_checkpoint
    from bnn2hw.fpga.cli import export_fpga
    from bnn2hw.nn.models import build_model, default_spec

    rng = np.random.default_rng(21)
    data = tmp_path / "syn.npz"
    np.savez(data, x=rng.integers(0, 256, (20, 3, 32, 32)).astype(np.uint8), y=np.arange(20) % 10,
             x_test=saturating_inputs(rng, 3, 32, 3), y_test=np.array([0, 1, 2]))
    torch.manual_seed(21)
    spec = default_spec("resnet8", (3, 32, 32), 10)
    save_checkpoint(tmp_path / "r8.pt", build_model(spec), spec, {"dataset": str(data), "test_accuracy": 0.0})
    lines = []
    s = export_fpga(tmp_path / "r8.pt", "pynq-z2", tmp_path / "build", target_fps=1000.0, dataset=str(data),
                    run_finn=False, echo=lines.append)
    assert s["samples"] == 3 and s["graph_form"] == "residual"
    assert s["pytorch_vs_ir"]["exact"] and s["pytorch_vs_ir"]["stream_differing"] == 0
    assert s["ir_vs_qonnx"]["int_logits_differing"] == 0 and s["ir_vs_onnxruntime"]["int_logits_differing"] == 0
    assert json.loads((tmp_path / "build" / "layer_report.json").read_text())["estimated_fps"] >= 1000.0
    assert any("bnn2hw's FINN steps" in ln for ln in lines), lines


def test_dead_op_is_refused_naming_it():
    """A tensor nobody reads would be a FINN stream with no consumer; the export names the op."""
    graph = residual_graph(np.random.default_rng(1))
    i = [l.name for l in graph.layers].index("pool")
    graph.layers.insert(i, Layer("threshold", "dead", "unused.sign", {},
                                 {"thr": np.zeros(6, np.int64), "direction": np.ones(6, np.int8)}, ["x1"]))
    graph.layers[i + 1].inputs = ["x1"]
    with pytest.raises(Bnn2hwError, match=r"IR layer dead .*never read.*logits come from fc"):
        build_onnx(graph, "finn")
