#!/usr/bin/env python3
"""Local, Vivado-free check of the graph form bnn2hw hands to FINN.

Builds, by hand with qonnx's ModelWrapper, the "already folded" binary MLP

    UINT8[1,64] -> MatMul(W0: BIPOLAR 64x64) -> MultiThreshold(BIPOLAR, scale 2, bias -1)
                -> MatMul(W1: BIPOLAR 64x64) -> MultiThreshold(BIPOLAR, scale 2, bias -1)
                -> MatMul(W2: BIPOLAR 64x10) -> integer logits

runs FINN's own estimate-only build steps on it (step_qonnx_to_finn ...
step_generate_estimate_reports, via finn.builder.build_dataflow.build_dataflow_cfg),
checks after each step that the intermediate model still computes the
reference logits (python execution, no cppsim / rtlsim), and prints FINN's
cycle and resource estimates.

It imports FINN; it contains no FINN code.  It needs an environment where
`import finn` works (see hw/FINN_NOTES.md, "Local check" for the exact venv).
Because pyverilator and torchvision are only needed by FINN for rtlsim and
its test helpers, missing ones are replaced by inert stub modules here.

Usage:
    FINN_ROOT=/path/to/finn FINN_BUILD_DIR=/tmp/finn_build \
        python hw/finn_local_check.py [--out /tmp/finn_check] [--target-fps 1000000]
"""
import argparse
import importlib.util
import json
import os
import sys
import types

import numpy as np


def _stub_missing_modules():
    """FINN v0.10.x imports pyverilator (rtlsim) and torchvision (test helpers)
    at module import time; neither is used by the analytical steps run here."""
    if "pyverilator" in sys.modules and getattr(sys.modules["pyverilator"], "__spec__", None) is None:
        return  # stubbed already (find_spec raises on a module without __spec__)
    if importlib.util.find_spec("pyverilator") is None or (
        importlib.util.find_spec("pyverilator.util") is None
    ):
        for name in ["pyverilator", "pyverilator.util", "pyverilator.util.axi_utils"]:
            sys.modules[name] = types.ModuleType(name)

        def _unavailable(*args, **kwargs):
            raise RuntimeError("pyverilator stub: rtlsim is not available in this environment")

        for fn in ["_read_signal", "reset_rtlsim", "rtlsim_multi_io", "toggle_clk",
                   "axilite_read", "axilite_write"]:
            setattr(sys.modules["pyverilator.util.axi_utils"], fn, _unavailable)
        sys.modules["pyverilator"].PyVerilator = object
    if importlib.util.find_spec("torchvision") is None:
        for name in ["torchvision", "torchvision.transforms", "torchvision.transforms.functional"]:
            sys.modules.setdefault(name, types.ModuleType(name))


def make_model(sizes=(64, 64, 64, 10), seed=0, final_affine=False, input_threshold=False):
    """Return (ModelWrapper, reference_fn) for the folded binary MLP.

    input_threshold=True builds the Brevitas-TFC-like form instead: the UINT8
    input is first binarised by a MultiThreshold (x >= 128 -> +1), so every
    MatMul is bipolar x bipolar and FINN must make the input MultiThreshold a
    standalone Thresholding layer."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    rng = np.random.default_rng(seed)
    n_layers = len(sizes) - 1
    nodes, inits, dts = [], {}, {}
    cur = "global_in"
    weights, thresholds = [], []
    if input_threshold:
        inits["T_in"] = np.full((sizes[0], 1), 128.0, np.float32)
        dts["T_in"] = "UINT8"
        nodes.append(helper.make_node(
            "MultiThreshold", ["global_in", "T_in"], ["act_in"], domain="qonnx.custom_op.general",
            out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0, name="MultiThreshold_in"))
        dts["act_in"] = "BIPOLAR"
        cur = "act_in"
    for i in range(n_layers):
        k, n = sizes[i], sizes[i + 1]
        W = rng.choice([-1.0, 1.0], size=(k, n)).astype(np.float32)  # ONNX MatMul: (in, out)
        wname, mmout = f"W{i}", f"mm{i}_out"
        inits[wname] = W
        dts[wname] = "BIPOLAR"
        nodes.append(helper.make_node("MatMul", [cur, wname], [mmout], name=f"MatMul_{i}"))
        weights.append(W)
        if i < n_layers - 1:
            # integer thresholds on the dot product, one per output channel: shape [C, 1]
            if i == 0 and not input_threshold:
                lo, hi = -255 * k // 8, 255 * k // 8  # dot of UINT8 x (+-1)
            else:
                lo, hi = -k // 2, k // 2  # dot of (+-1) x (+-1), |dot| <= k
            T = rng.integers(lo, hi, size=(n, 1)).astype(np.float32)
            tname, mtout = f"T{i}", f"act{i}"
            inits[tname] = T
            dts[tname] = "INT32"
            nodes.append(
                helper.make_node(
                    "MultiThreshold", [mmout, tname], [mtout],
                    domain="qonnx.custom_op.general",
                    out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0,
                    name=f"MultiThreshold_{i}",
                )
            )
            dts[mtout] = "BIPOLAR"
            thresholds.append(T)
            cur = mtout
        else:
            cur = mmout
    out_name = cur
    if final_affine:
        inits["scale"] = np.asarray([0.5], np.float32)
        inits["shift"] = np.asarray([1.0], np.float32)
        nodes.append(helper.make_node("Mul", [cur, "scale"], ["scaled"], name="Mul_out"))
        nodes.append(helper.make_node("Add", ["scaled", "shift"], ["global_out"], name="Add_out"))
    else:
        nodes[-1].output[0] = "global_out"
    out_name = "global_out"
    inp = helper.make_tensor_value_info("global_in", TensorProto.FLOAT, [1, sizes[0]])
    outp = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, sizes[-1]])
    graph = helper.make_graph(nodes, "bnn2hw_folded_mlp", [inp], [outp])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnn2hw-finn-local-check"))
    for name, val in inits.items():
        model.set_initializer(name, val)
    model.set_tensor_datatype("global_in", DataType["UINT8"])
    for name, dt in dts.items():
        model.set_tensor_datatype(name, DataType[dt])

    def reference(x):
        a = x.astype(np.int64)
        if input_threshold:
            a = np.where(a >= 128, 1, -1)
        for i, W in enumerate(weights):
            a = a @ W.astype(np.int64)
            if i < len(thresholds):
                a = np.where(a >= thresholds[i][:, 0].astype(np.int64), 1, -1)
        a = a.astype(np.float32)
        if final_affine:
            a = a * 0.5 + 1.0
        return a

    return model, reference


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/finn_local_check")
    ap.add_argument("--target-fps", type=int, default=1_000_000)
    ap.add_argument("--clk-ns", type=float, default=10.0)
    ap.add_argument("--board", default="Pynq-Z2")
    ap.add_argument("--final-affine", action="store_true",
                    help="append a float Mul/Add after the last MatMul")
    ap.add_argument("--folding-config", default=None,
                    help="use this folding_config.json instead of target_fps")
    ap.add_argument("--standalone-thresholds", action="store_true")
    ap.add_argument("--tfc-like", action="store_true",
                    help="784-64-64-64-10 with a UINT8->bipolar input MultiThreshold")
    ap.add_argument("--minimize-bit-width", action="store_true",
                    help="FINN default; OFF here because FINN v0.10.1 then clips "
                    "xnor-popcount thresholds (see FINN_NOTES.md)")
    args = ap.parse_args()

    _stub_missing_modules()
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("FINN_BUILD_DIR", os.path.join(args.out, "finn_tmp"))
    os.makedirs(os.environ["FINN_BUILD_DIR"], exist_ok=True)

    import finn.builder.build_dataflow_config as bc
    from finn.builder.build_dataflow import build_dataflow_cfg
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    sizes = (784, 64, 64, 64, 10) if args.tfc_like else (64, 64, 64, 10)
    model, reference = make_model(sizes=sizes, final_affine=args.final_affine,
                                  input_threshold=args.tfc_like)
    model_path = os.path.join(args.out, "model.onnx")
    model.save(model_path)

    rng = np.random.default_rng(1)
    xs = [rng.integers(0, 256, size=(1, sizes[0])).astype(np.float32) for _ in range(8)]
    np.save(os.path.join(args.out, "input.npy"), xs[0])
    np.save(os.path.join(args.out, "expected_output.npy"), reference(xs[0]))

    out_dir = os.path.join(args.out, "output")
    cfg = bc.DataflowBuildConfig(
        output_dir=out_dir,
        synth_clk_period_ns=args.clk_ns,
        board=args.board,
        shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ,
        target_fps=None if args.folding_config else args.target_fps,
        folding_config_file=args.folding_config,
        standalone_thresholds=args.standalone_thresholds,
        minimize_bit_width=args.minimize_bit_width,
        generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS],
        steps=bc.estimate_only_dataflow_steps,
        save_intermediate_models=True,
        verify_steps=[
            bc.VerificationStepType.TIDY_UP_PYTHON,
            bc.VerificationStepType.STREAMLINED_PYTHON,
        ],
        verify_input_npy=os.path.join(args.out, "input.npy"),
        verify_expected_output_npy=os.path.join(args.out, "expected_output.npy"),
    )
    ret = build_dataflow_cfg(model_path, cfg)
    print("build_dataflow_cfg returned", ret)
    if ret != 0:
        log = os.path.join(out_dir, "build_dataflow.log")
        if os.path.exists(log):
            print(open(log).read()[-6000:])
        sys.exit(1)

    # python-execute the intermediate models on several inputs
    inter = os.path.join(out_dir, "intermediate_models")
    checks = {}
    for step in ["step_tidy_up", "step_streamline", "step_convert_to_hw"]:
        m = ModelWrapper(os.path.join(inter, step + ".onnx"))
        iname, oname = m.graph.input[0].name, m.graph.output[0].name
        ok = True
        for x in xs:
            y = execute_onnx(m, {iname: x})[oname]
            ok &= bool(np.array_equal(y, reference(x)))
        checks[step] = ok
    print("python execution matches reference:", json.dumps(checks))

    # describe the streamlined and HW graphs
    for step in ["step_streamline", "step_convert_to_hw", "step_create_dataflow_partition",
                 "step_minimize_bit_width"]:
        m = ModelWrapper(os.path.join(inter, step + ".onnx"))
        print(f"--- {step}")
        for n in m.graph.node:
            attrs = {a.name: (a.s.decode() if a.s else (a.i if a.type == 2 else a.f))
                     for a in n.attribute
                     if a.name in ("out_dtype", "out_scale", "out_bias", "inputDataType",
                                   "weightDataType", "outputDataType", "accDataType",
                                   "binaryXnorMode", "noActivation", "ActVal", "PE", "SIMD",
                                   "MW", "MH", "mem_mode", "ram_style")}
            dts = [str(m.get_tensor_datatype(t)) for t in n.input]
            extra = ""
            if n.op_type in ("MultiThreshold", "MVAU", "MVAU_hls") and len(n.input) > 2 or \
                    n.op_type == "MultiThreshold":
                T = m.get_initializer(n.input[-1])
                if T is not None:
                    extra = f" thr shape={list(T.shape)} min={T.min()} max={T.max()}"
            print(f"{n.op_type:22s} in_dtypes={dts} {attrs}{extra}")
    # did step_minimize_bit_width change any threshold in a way that changes the function?
    # For binaryXnorMode the MVAU accumulates a popcount in [0, MW]; for other MVAUs
    # the accumulator range is that of the +-1/int dot product.
    ma = ModelWrapper(os.path.join(inter, "step_specialize_layers.onnx"))
    mb = ModelWrapper(os.path.join(inter, "step_minimize_bit_width.onnx"))
    for na, nb in zip(ma.graph.node, mb.graph.node):
        if len(na.input) < 3:
            continue
        Ta, Tb = ma.get_initializer(na.input[2]), mb.get_initializer(nb.input[2])
        xnor = any(a.name == "binaryXnorMode" and a.i == 1 for a in na.attribute)
        mw = ma.get_initializer(na.input[1]).shape[0]
        if xnor:  # popcount p in [0, MW]; output = #(p >= T)
            p = np.arange(0, mw + 1)[:, None, None]
            fa = (p >= Ta[None]).sum(-1)
            fb = (p >= Tb[None]).sum(-1)
            changed = np.nonzero((fa != fb).any(0))[0]
            print(f"threshold check {nb.name} (xnor, popcount 0..{mw}): "
                  f"{len(changed)} of {Ta.shape[0]} channels compute a different function "
                  f"after step_minimize_bit_width")
        else:
            print(f"threshold check {nb.name}: {int((Ta != Tb).sum())} thresholds changed")
    parent = os.path.join(inter, "dataflow_parent.onnx")
    if os.path.exists(parent):
        m = ModelWrapper(parent)
        print("--- dataflow_parent:", [n.op_type for n in m.graph.node])

    for rep in ["estimate_layer_cycles.json", "estimate_layer_resources.json",
                "estimate_network_performance.json"]:
        p = os.path.join(out_dir, "report", rep)
        print(f"=== {rep}\n" + open(p).read())
    p = os.path.join(out_dir, "auto_folding_config.json")
    if os.path.exists(p):
        print("=== auto_folding_config.json\n" + open(p).read())


if __name__ == "__main__":
    main()
