# SPDX-License-Identifier: MIT
"""The Python API (issue 13): load -> Graph.summary/predict/emit_c -> Firmware.compile/predict
(ctypes) / run_qemu, the summary table and its numbers, and the figures."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

import bnn2hw
from bnn2hw import cli
from bnn2hw.errors import Bnn2hwError
from bnn2hw.ir import execute
from bnn2hw.ir.graph import save_ir
from bnn2hw.ir.summary import layer_costs


def _need(tool: str, pkg: str):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (apt-get install {pkg})")


def test_load_checkpoint_and_ir_give_the_same_graph(mlp_ckpt, digits, tmp_path):
    g = bnn2hw.load(mlp_ckpt[0])
    save_ir(g, tmp_path / "m.bnnir.npz")
    g2 = bnn2hw.load(tmp_path / "m.bnnir.npz")
    x = digits.x_test[:64]
    np.testing.assert_array_equal(g.predict(x), execute.run(g, x).int_logits)
    np.testing.assert_array_equal(g.predict(x), g2.predict(x))
    np.testing.assert_allclose(g.scores(x), execute.run(g, x).logits)


def test_load_refuses_onnx(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(Bnn2hwError, match="m.onnx"):
        bnn2hw.load(tmp_path / "m.onnx")


@pytest.mark.parametrize("which", ["mlp_ckpt", "cnn_ckpt"])
def test_firmware_predict_through_ctypes_is_bit_exact(which, request, digits, tmp_path):
    _need("gcc", "gcc")
    g = bnn2hw.load(request.getfixturevalue(which)[0])
    fw = g.emit_c(target="cortex-m4", out_dir=tmp_path / "fw")
    lib = fw.compile()
    assert lib.exists()
    x = digits.x_test
    got = fw.predict(x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, g.predict(x))


@pytest.mark.qemu
def test_firmware_run_qemu(mlp_ckpt, digits, tmp_path):
    _need("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    _need("qemu-system-arm", "qemu-system-arm")
    g = bnn2hw.load(mlp_ckpt[0])
    fw = g.emit_c(target="cortex-m4", out_dir=tmp_path / "fw")
    x = digits.x_test[:20]
    np.testing.assert_array_equal(fw.run_qemu(x), g.predict(x))


def test_summary_numbers(mlp_ckpt):
    """hidden [64, 64] digits MLP: fc0 is 64 uint8 x 64 binary, fc1 64x64 binary, fc2 64x10 binary."""
    from bnn2hw.fpga.build import choose_folding, matmul_layers

    g = bnn2hw.load(mlp_ckpt[0])
    rows = {r.name: r for r in layer_costs(g)}
    assert rows["fc0"].int8_macs == 64 * 64 and rows["fc0"].binary_macs == 0
    assert rows["fc1"].binary_macs == 64 * 64 and rows["fc2"].binary_macs == 64 * 10
    assert rows["fc1"].weight_bits == 64 * 64 and rows["thr0"].thresholds == 64
    assert rows["fc1"].flash_bytes == 64 * 64 // 8
    assert rows["fc2"].out_shape == (10,)
    finn = {L["name"]: L["cycles"] for L in choose_folding(matmul_layers(g), 100.0, 1e6)}
    assert {k: rows[k].finn_cycles for k in finn} == finn
    text = g.summary()
    assert "total" in text and f"{64 * 64 + 64 * 10:,}" in text
    assert all(r.instructions >= 0 for r in rows.values()) and rows["fc1"].instructions > 0


def test_summary_cli_json(mlp_ckpt, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bnn2hw", "summary", str(mlp_ckpt[0]), "--json", "--core", "cortex-m0"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["op"] for r in rows][:2] == ["flatten", "dense"]
    assert sum(r["binary_macs"] for r in rows) == 64 * 64 + 64 * 10


def test_plots_are_written(tmp_path, monkeypatch, capsys):
    for what, name in (("surrogates", "surrogates.png"), ("quantization-error", "quantization_error.png")):
        monkeypatch.setattr(sys, "argv", ["bnn2hw", "plot", what, "-o", str(tmp_path)])
        with pytest.raises(SystemExit) as e:
            cli.main()
        assert e.value.code == 0, capsys.readouterr().err
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_train_and_emit_c_write_their_figures(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    monkeypatch.setattr(sys, "argv", ["bnn2hw", "train", "--hidden", "8", "--epochs1", "1", "--epochs2", "1",
                                      "--quiet", "-o", str(tmp_path / "m.pt")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    assert (tmp_path / "m.training.png").read_bytes()[:4] == b"\x89PNG"
    assert "m.training.png" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["bnn2hw", "emit-c", str(tmp_path / "m.pt"), "--target", "host",
                                      "-o", str(tmp_path / "fw")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    assert (tmp_path / "fw" / "layer_costs.png").read_bytes()[:4] == b"\x89PNG"


def test_version(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bnn2hw", "--version"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"bnn2hw {bnn2hw.__version__}"


def test_onnx_files_as_people_view_them(cnn_ckpt, digits):
    """Metadata (producer, version, model hash, surrogate, w0), every node named and documented
    with its IR op and PyTorch module, a dynamic batch in the plain graph (one onnxruntime call)."""
    from bnn2hw.fpga.onnx_export import build_onnx, run_plain

    g = bnn2hw.load(cnn_ckpt[0])
    for flavour in ("plain", "finn"):
        m = build_onnx(g, flavour)
        props = {p.key: p.value for p in m.metadata_props}
        assert m.producer_name == "bnn2hw" and m.producer_version == bnn2hw.__version__
        assert props["bnn2hw.model_hash"] == g.meta["model_hash"] and props["bnn2hw.surrogate"] == "biper"
        assert float(props["bnn2hw.w0"]) == g.meta["w0"]
        names = [n.name for n in m.graph.node]
        assert all(names) and len(set(names)) == len(names), names
        sources = {l.source for l in g.layers}
        for n in m.graph.node:
            assert n.doc_string, n.name
            if n.op_type in ("Conv", "MatMul", "MultiThreshold", "MaxPool"):
                assert any(f"from PyTorch module {s}" in n.doc_string for s in sources), n.doc_string
    plain = build_onnx(g, "plain")
    assert plain.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    _, ints = run_plain(plain, digits.x_test)
    np.testing.assert_array_equal(ints, g.predict(digits.x_test))


@pytest.mark.qemu
def test_instruction_estimate_tracks_qemu(mlp_ckpt, cnn_ckpt, digits, tmp_path):
    """summary's instruction estimate (bnn2hw.mcu.cost_model) is within a factor of 2 of QEMU's
    exact count on Cortex-M4 for the digits MLP and CNN (benchmarks/results/cost_model.md has
    the error on 48 models)."""
    _need("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    _need("qemu-system-arm", "qemu-system-arm")
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs

    for which, ckpt in (("mlp", mlp_ckpt), ("cnn", cnn_ckpt)):
        g = bnn2hw.load(ckpt[0])
        est = sum(r.instructions for r in layer_costs(g, "cortex-m4"))
        fw = g.emit_c(target="cortex-m4", out_dir=tmp_path / which)
        count = qemu.count_instructions(toolchain.build(fw.out_dir, "cortex-m4"), "cortex-m4",
                                        to_c_inputs(g, digits.x_test[:1])[0])
        assert 0.5 < est / count < 2.0, f"{which}: estimate {est}, QEMU {count}"
