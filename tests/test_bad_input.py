# SPDX-License-Identifier: MIT
"""The bad-input corpus (issue 8): checkpoints, data, IR files, options, output paths, signals
and a missing toolchain. Every case asserts

* a non-zero exit status (2 for bad input, 130/143 for SIGINT/SIGTERM),
* exactly one ``error:`` line on stderr that names the problem (a file, a layer, an option),
* no Python traceback,
* nothing new at ``-o`` and no hidden temporary files: the working folder is byte-for-byte the
  same set of paths as before the command.

Most cases run ``bnn2hw.cli.main()`` in-process (the console script's code path, minus the
interpreter start); the signal, toolchain and broken-dependency cases run a real subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from bnn2hw.checkpoint import save_checkpoint
from bnn2hw.data import load_digits
from bnn2hw.ir.graph import load_ir, save_ir
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, seed_everything, train_two_stage

SEED = 23
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# helpers


def snapshot(folder: Path) -> dict[str, float]:
    """Every path under ``folder`` (hidden ones included) with its modification time."""
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")}




def assert_clean_failure(code: int, err: str, needles, before: dict, after: dict, status: int = 2) -> None:
    assert code == status, f"exit status {code} (expected {status}); stderr {err!r}"
    assert "Traceback" not in err, err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, f"expected one error: line, got {err!r}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    assert after == before, f"paths changed: new {sorted(set(after) - set(before))}, " \
                            f"changed {[k for k in before if after.get(k) != before[k]]}"


# --------------------------------------------------------------------------------------------
# fixtures: one tiny trained model and corrupted variants of it


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.set_num_threads(1)
    data = load_digits()
    spec = default_spec("mlp", data.in_shape, data.num_classes)
    spec["hidden"] = [16]
    seed_everything(SEED)
    model = build_model(spec)
    train_two_stage(model, data, TrainConfig(epochs1=1, epochs2=1, seed=SEED, threads=1), progress=False)
    folder = tmp_path_factory.mktemp("base")
    path = folder / "model.pt"
    save_checkpoint(path, model, spec, {"dataset": "digits", "test_accuracy": 0.5,
                                        "input": {"dtype": "uint8", "shape": [1, 8, 8]}})
    return path


def _mutate(base: Path, dest: Path, fn) -> Path:
    raw = torch.load(base, weights_only=True)
    fn(raw)
    torch.save(raw, dest)
    return dest


def _set(key, value):
    def f(raw):
        t = raw["state_dict"][key]
        t.view(-1)[0] = value
    return f


CHECKPOINT_CASES = {
    # name: (builder(base, folder) -> path, needles in the error line)
    "missing": (lambda b, d: d / "nope.pt", ["nope.pt", "no such checkpoint"]),
    "directory": (lambda b, d: (d / "adir").mkdir() or d / "adir", ["adir", "no such checkpoint file"]),
    "junk": (lambda b, d: (d / "junk.pt").write_bytes(b"\x00garbage") and d / "junk.pt", ["junk.pt", "not a bnn2hw checkpoint"]),
    "empty": (lambda b, d: (d / "empty.pt").write_bytes(b"") or d / "empty.pt", ["empty.pt", "not a bnn2hw checkpoint"]),
    "onnx": (lambda b, d: _onnx_file(d / "model.onnx"), ["model.onnx", "ONNX file"]),
    "ir-file": (lambda b, d: _ir_file(b, d / "model.bnnir.npz"), ["model.bnnir.npz", "IR file"]),
    "a-list": (lambda b, d: torch.save([1, 2], d / "list.pt") or d / "list.pt", ["list.pt", "not a bnn2hw checkpoint"]),
    "wrong-format": (lambda b, d: _mutate(b, d / "fmt.pt", lambda r: r.update(format="other")), ["fmt.pt", "format"]),
    "version-99": (lambda b, d: _mutate(b, d / "v99.pt", lambda r: r.update(version=99)), ["v99.pt", "version 99"]),
    "no-state-dict": (lambda b, d: _mutate(b, d / "nosd.pt", lambda r: r.pop("state_dict")), ["nosd.pt", "state_dict"]),
    "hidden-2e9": (lambda b, d: _mutate(b, d / "huge.pt", lambda r: r["spec"].update(hidden=[2_000_000_000])),
                   ["huge.pt", "features.1.weight", "[2000000000, 64]"]),
    "hidden-mismatch": (lambda b, d: _mutate(b, d / "mism.pt", lambda r: r["spec"].update(hidden=[48])),
                        ["mism.pt", "do not fit"]),
    "hidden-negative": (lambda b, d: _mutate(b, d / "neg.pt", lambda r: r["spec"].update(hidden=[-4])),
                        ["neg.pt", "bad model spec"]),
    "unknown-arch": (lambda b, d: _mutate(b, d / "arch.pt", lambda r: r["spec"].update(arch="transformer")),
                     ["arch.pt", "transformer"]),
    "nan-weight": (lambda b, d: _mutate(b, d / "nanw.pt", _set("features.1.weight", float("nan"))),
                   ["nanw.pt", "features.1.weight", "NaN"]),
    "inf-bn-bias": (lambda b, d: _mutate(b, d / "infb.pt", _set("features.2.bias", float("inf"))),
                    ["infb.pt", "features.2.bias", "Inf"]),
    "nan-bn-mean": (lambda b, d: _mutate(b, d / "nanm.pt", _set("features.2.running_mean", float("nan"))),
                    ["nanm.pt", "features.2.running_mean"]),
    "negative-var": (lambda b, d: _mutate(b, d / "negv.pt", _set("features.2.running_var", -1.0)),
                     ["negv.pt", "features.2.running_var", "negative"]),
    "nan-head-scale": (lambda b, d: _mutate(b, d / "nans.pt", _set("head.scale", float("nan"))),
                       ["nans.pt", "head.scale"]),
    "inf-head-bias": (lambda b, d: _mutate(b, d / "infh.pt", _set("head.bias", float("-inf"))),
                      ["infh.pt", "head.bias", "Inf"]),
    "pickled-object": (lambda b, d: _pickled(d / "pick.pt"), ["pick.pt", "not a bnn2hw checkpoint"]),
    "resnet": (lambda b, d: _resnet(d / "resnet.pt"), ["not exportable"]),
    "data-gone": (lambda b, d: _mutate(b, d / "gone.pt", lambda r: r["meta"].update(dataset=str(d / "gone.npz"))),
                  ["gone.npz", "--dataset"]),
}


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _pickled(path: Path) -> Path:
    torch.save({"format": "bnn2hw-checkpoint", "evil": _Evil()}, path)
    return path


def _onnx_file(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), path)
    return path


def _ir_file(base: Path, path: Path) -> Path:
    from bnn2hw.export.pipeline import export_ir

    save_ir(export_ir(base, verify=False, need_data=False).graph, path)
    return path


def _resnet(path: Path) -> Path:
    spec = default_spec("resnet20", (1, 8, 8), 10)
    spec["residual_bits"] = 0  # the papers' float ResNet-20 (the deployable form exports)
    save_checkpoint(path, build_model(spec), spec, {"dataset": "digits"})
    return path


@pytest.mark.parametrize("command", ["export", "emit-c"])
@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_bad_checkpoint(case, command, base, tmp_path, monkeypatch, capsys):
    make, needles = CHECKPOINT_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    ckpt = make(base, work)
    before = snapshot(work)
    code, _, err = run_cli(monkeypatch, capsys, command, ckpt, "-o", work / "out")
    assert "pickled code ran" not in err
    assert_clean_failure(code, err, needles, before, snapshot(work))


# --------------------------------------------------------------------------------------------
# options


OPTION_CASES = {
    "export-clock-0": (["export", "{ckpt}", "--clock-mhz", "0"], ["--clock-mhz", "positive"]),
    "export-clock-negative": (["export", "{ckpt}", "--clock-mhz", "-5"], ["--clock-mhz"]),
    "export-clock-nan": (["export", "{ckpt}", "--clock-mhz", "nan"], ["--clock-mhz"]),
    "export-clock-text": (["export", "{ckpt}", "--clock-mhz", "fast"], ["--clock-mhz"]),
    "export-fps-0": (["export", "{ckpt}", "--target-fps", "0"], ["--target-fps"]),
    "export-fps-negative": (["export", "{ckpt}", "--target-fps", "-5"], ["--target-fps"]),
    "export-bad-target": (["export", "{ckpt}", "--target", "zedboard"], ["zedboard"]),
    "export-verify-samples-negative": (["export", "{ckpt}", "--verify-samples", "-1"], ["--verify-samples"]),
    "export-verify-samples-0": (["export", "{ckpt}", "--verify-samples", "0"], ["--verify-samples"]),
    "export-unknown-option": (["export", "{ckpt}", "--bogus"], ["--bogus"]),
    "export-no-verify-with-dataset": (["export", "{ckpt}", "--no-verify", "--dataset", "digits"], ["--no-verify"]),
    "emit-verify-samples-negative": (["emit-c", "{ckpt}", "--verify-samples", "-1"], ["--verify-samples"]),
    "emit-bad-target": (["emit-c", "{ckpt}", "--target", "cortex-a53"], ["cortex-a53"]),
    "emit-popcount-fast": (["emit-c", "{ckpt}", "--popcount", "fast"], ["'fast'", "popcount"]),
    "emit-act-approx": (["emit-c", "{ckpt}", "--act-approx", "wobble"], ["wobble"]),
    "emit-lut-bits": (["emit-c", "{ckpt}", "--lut-bits", "40"], ["--lut-bits"]),
    "emit-verify-and-no-verify": (["emit-c", "{ckpt}", "--verify", "--no-verify"], ["--no-verify"]),
    "train-w0-0": (["train", "--w0", "0"], ["--w0"]),
    "train-w0-nan": (["train", "--w0", "nan"], ["--w0"]),
    "train-w0-negative": (["train", "--w0", "-1"], ["--w0"]),
    "train-batch-0": (["train", "--batch-size", "0"], ["--batch-size"]),
    "train-batch-1": (["train", "--batch-size", "1"], ["--batch-size"]),
    "train-hidden-0": (["train", "--hidden", "0"], ["--hidden"]),
    "train-hidden-negative": (["train", "--hidden", "-4"], ["--hidden"]),
    "train-hidden-text": (["train", "--hidden", "wide"], ["--hidden"]),
    "train-hidden-huge": (["train", "--hidden", "2000000000"], ["parameters"]),
    "train-hidden-on-resnet": (["train", "--model", "resnet20", "--hidden", "8"], ["--hidden"]),
    "train-image-size-0": (["train", "--image-size", "0"], ["--image-size"]),
    "train-epochs-negative": (["train", "--epochs1", "-1"], ["--epochs1"]),
    "train-epochs-none": (["train", "--epochs1", "0", "--epochs2", "0"], ["nothing to train"]),
    "train-lr-0": (["train", "--lr1", "0"], ["--lr1"]),
    "train-val-fraction": (["train", "--val-fraction", "0.7"], ["--val-fraction"]),
    "train-surrogate": (["train", "--surrogate", "wobble"], ["wobble"]),
    "train-first": (["train", "--first", "int4"], ["--first", "int4"]),
    "train-channels": (["train", "--channels", "2"], ["--channels"]),
    "train-model": (["train", "--model", "transformer"], ["transformer"]),
    "train-periodic-on-mlp": (["train", "--periodic", "triangle"], ["--periodic"]),
    "train-cnn-on-vectors": (["train", "--model", "cnn", "--dataset", "{flat}"], ["cnn", "image data"]),
    "train-no-output": (["train", "--epochs1", "1"], ["--output"]),
}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_option(case, base, tmp_path, monkeypatch, capsys):
    args, needles = OPTION_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    flat = work / "flat.npz"
    y = np.arange(40) % 2
    np.savez(flat, x=np.tile(np.arange(6, dtype=np.uint8), (40, 1)) + y[:, None].astype(np.uint8), y=y)
    args = [a.format(ckpt=base, flat=flat) for a in args]
    if args[0] == "train" and case != "train-no-output":
        args += ["--epochs1", "1", "--epochs2", "1", "--quiet"] if "--epochs1" not in args else ["--quiet"]
    if case != "train-no-output":
        args += ["-o", work / ("out.pt" if args[0] == "train" else "out")]
    before = snapshot(work)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_clean_failure(code, err, needles, before, snapshot(work))


# --------------------------------------------------------------------------------------------
# data sets


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _two_class(n=40, f=6):
    y = np.arange(n) % 2
    return (np.tile(np.arange(f, dtype=np.uint8), (n, 1)) + y[:, None].astype(np.uint8)), y


def _images(root: Path, spec: dict) -> Path:
    from PIL import Image

    for cls, items in spec.items():
        (root / cls).mkdir(parents=True)
        for i, item in enumerate(items):
            p = root / cls / f"{i}.png"
            if item == "corrupt":
                p.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
            elif item == "truncated":
                Image.new("L", (8, 8), 100).save(p)
                p.write_bytes(p.read_bytes()[:40])
            else:
                Image.new("L", item, 100 + 50 * i).save(p)
    return root


DATA_CASES = {
    "npz-zero-samples": (lambda d: _npz(d / "zero.npz", x=np.zeros((0, 4), np.uint8), y=np.zeros(0, np.int64)),
                         ["zero.npz", "no samples"]),
    "npz-single-sample-class": (lambda d: _npz(d / "single.npz", x=np.zeros((41, 4), np.uint8),
                                               y=np.r_[np.arange(40) % 2, 2]), ["single.npz", "single sample"]),
    "npz-label-gap": (lambda d: _npz(d / "gap.npz", x=np.zeros((40, 4), np.uint8),
                                     y=np.array([0, 1, 2, 1000] * 10)), ["gap.npz", "never occur"]),
    "npz-one-class": (lambda d: _npz(d / "one.npz", x=np.zeros((40, 4), np.uint8), y=np.zeros(40, np.int64)),
                      ["one.npz", "only one class"]),
    "npz-nhwc": (lambda d: _npz(d / "nhwc.npz", x=np.zeros((40, 8, 8, 3), np.uint8), y=np.arange(40) % 2),
                 ["nhwc.npz", "channels-last"]),
    "npz-float-range": (lambda d: _npz(d / "fl.npz", x=np.full((40, 4), 3.0), y=np.arange(40) % 2),
                        ["fl.npz", "[0, 1]"]),
    "npz-missing-y": (lambda d: _npz(d / "noy.npz", x=np.zeros((40, 4), np.uint8)), ["noy.npz", "'y'"]),
    "npz-2d-labels": (lambda d: _npz(d / "y2.npz", x=np.zeros((40, 4), np.uint8), y=np.zeros((40, 2), np.int64)),
                      ["y2.npz", "1-D"]),
    "npz-length-mismatch": (lambda d: _npz(d / "len.npz", x=np.zeros((40, 4), np.uint8), y=np.arange(39) % 2),
                            ["len.npz", "one label per row"]),
    "npz-negative-labels": (lambda d: _npz(d / "negl.npz", x=np.zeros((40, 4), np.uint8), y=np.arange(40) % 2 - 1),
                            ["negl.npz", "non-negative"]),
    "npz-garbage": (lambda d: (d / "bad.npz").write_bytes(b"PK\x03\x04trunc") and d / "bad.npz", ["bad.npz"]),
    "npz-bad-layout": (lambda d: _npz(d / "lay.npz", x=np.zeros((40, 4), np.uint8), y=np.arange(40) % 2,
                                      layout=np.array("CHWN")), ["lay.npz", "layout"]),
    "folder-empty-class": (lambda d: (_images(d / "imgs", {"a": [(8, 8)] * 3}), (d / "imgs" / "b").mkdir(),
                                      d / "imgs")[-1], ["b", "no images"]),
    "folder-one-class": (lambda d: _images(d / "imgs", {"a": [(8, 8)] * 3}), ["only one class"]),
    "folder-corrupt-png": (lambda d: _images(d / "imgs", {"a": [(8, 8)] * 3, "b": [(8, 8), "corrupt", (8, 8)]}),
                           ["1.png", "not a readable image"]),
    "folder-truncated-png": (lambda d: _images(d / "imgs", {"a": [(8, 8)] * 3, "b": [(8, 8), (8, 8), "truncated"]}),
                             ["2.png", "not a readable image"]),
    "folder-mixed-sizes": (lambda d: _images(d / "imgs", {"a": [(8, 8)] * 3, "b": [(8, 8), (9, 9), (8, 8)]}),
                           ["--image-size"]),
    "folder-not-square": (lambda d: _images(d / "imgs", {"a": [(8, 6)] * 3, "b": [(8, 6)] * 3}),
                          ["not square", "--image-size"]),
    "no-such-data": (lambda d: d / "nowhere", ["nowhere", "no such file"]),
    "csv": (lambda d: (d / "data.csv").write_text("1,2\n") and d / "data.csv", ["data.csv", ".npz"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_training_data(case, tmp_path, monkeypatch, capsys):
    pytest.importorskip("PIL", reason="Pillow writes the image-folder cases")
    make, needles = DATA_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    data = make(work)
    before = snapshot(work)
    code, _, err = run_cli(monkeypatch, capsys, "train", "--dataset", data, "--epochs1", "1", "--epochs2", "1",
                           "--quiet", "-o", work / "m.pt")
    assert_clean_failure(code, err, needles, before, snapshot(work))


@pytest.mark.parametrize("command", ["export", "emit-c"])
def test_verification_data_of_another_shape(command, base, tmp_path, monkeypatch, capsys):
    x, y = _two_class()
    data = _npz(tmp_path / "six.npz", x=x, y=y)
    before = snapshot(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, command, base, "--dataset", data, "-o", tmp_path / "out")
    assert_clean_failure(code, err, ["six", "[6]", "[1, 8, 8]"], before, snapshot(tmp_path))


# --------------------------------------------------------------------------------------------
# IR files


def _ir_cases():
    def dense0(g):
        return next(l for l in g.layers if l.op == "dense")

    def weights(g, v):
        dense0(g).arrays["weight"] = dense0(g).arrays["weight"].astype(np.float32) * v

    def layer0(key, fn):
        def f(g):
            dense0(g).arrays[key] = fn(dense0(g).arrays[key])
        return f

    def thr(key, fn):
        def f(g):
            t = next(l for l in g.layers if l.op == "threshold")
            t.arrays[key] = fn(t.arrays[key])
        return f

    return {
        "attrs-list": (lambda g: setattr(dense0(g), "attrs", ["in", "u8"]), ["attrs must be a mapping"]),
        "non-binary-weights": (layer0("weight", lambda w: (w * 3).astype(np.int8)), ["fc0", "-1 or +1"]),
        "truncated-weights": (layer0("weight", lambda w: w[:, :10]), ["fc0", "10 inputs"]),
        "float-weights": (lambda g: weights(g, 1.0), ["fc0", "integer"]),
        "direction-0": (thr("direction", lambda d: np.zeros_like(d)), ["thr0", "directions"]),
        "threshold-length": (thr("thr", lambda t: t[:-1]), ["thr0", "one per channel"]),
        "negative-shape": (lambda g: setattr(g, "input_shape", (8, -8, 1)), ["input shape"]),
        "unknown-op": (lambda g: setattr(dense0(g), "op", "softmax"), ["softmax"]),
        "nan-affine": (lambda g: g.layers[-1].arrays["scale"].__setitem__(0, np.nan), ["logits", "NaN"]),
        "no-layers": (lambda g: setattr(g, "layers", []), ["no layers"]),
    }


IR_CASES = _ir_cases()


@pytest.mark.parametrize("case", sorted(IR_CASES) + ["garbage", "version"])
def test_bad_ir_file(case, base, tmp_path, monkeypatch, capsys):
    from bnn2hw.export.pipeline import export_ir

    path = tmp_path / "m.bnnir.npz"
    if case == "garbage":
        path.write_bytes(b"not a zip")
        needles = ["m.bnnir.npz", "not a bnn2hw IR file"]
    else:
        g = export_ir(base, verify=False, need_data=False).graph
        if case == "version":
            import bnn2hw.ir.graph as gmod

            monkeypatch.setattr(gmod, "IR_VERSION", 99)
            save_ir(g, path)
            monkeypatch.setattr(gmod, "IR_VERSION", 1)
            needles = ["IR version 99"]
        else:
            fn, needles = IR_CASES[case]
            fn(g)
            save_ir(g, path)
    before = snapshot(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "inspect", path)
    assert_clean_failure(code, err, ["m.bnnir.npz", *needles], before, snapshot(tmp_path))


def test_validate_is_run_before_code_generation(base):
    """Through the API too: an inconsistent IR never reaches a back end."""
    from bnn2hw.errors import Bnn2hwError
    from bnn2hw.export.pipeline import export_ir
    from bnn2hw.ir.validate import validate

    g = export_ir(base, verify=False, need_data=False).graph
    validate(g)
    fc0 = next(l for l in g.layers if l.op == "dense")
    fc0.arrays["weight"] = fc0.arrays["weight"][:, :-1]
    with pytest.raises(Bnn2hwError, match="fc0"):
        validate(g)
    from bnn2hw.fpga.onnx_export import build_onnx
    from bnn2hw.mcu import codegen

    for backend in (codegen.emit, lambda graph: build_onnx(graph, "plain")):
        with pytest.raises(Bnn2hwError, match="fc0"):
            backend(g)
    assert callable(load_ir)


# --------------------------------------------------------------------------------------------
# output paths


def _out_cases():
    def existing_file(d):
        (d / "out").write_text("mine")
        return d / "out", ["out", "is a file"]

    def symlink(d):
        (d / "real").mkdir()
        (d / "out").symlink_to(d / "real")
        return d / "out", ["symbolic link"]

    def dangling(d):
        (d / "out").symlink_to(d / "missing")
        return d / "out", ["symbolic link", "does not exist"]

    def under_file(d):
        (d / "afile").write_text("x")
        return d / "afile" / "out", ["afile"]

    def foreign_dir(d):
        (d / "out").mkdir()
        (d / "out" / "notes.txt").write_text("mine")
        return d / "out", ["not written by bnn2hw"]

    return {"existing-file": existing_file, "symlink": symlink, "dangling-symlink": dangling,
            "under-a-file": under_file, "foreign-dir": foreign_dir}


OUT_CASES = _out_cases()


OUT_PARAMS = [(case, command) for case in sorted(OUT_CASES) for command in ("export", "emit-c", "train")
              if (case, command) != ("existing-file", "train")]  # train -o FILE replaces a checkpoint


@pytest.mark.parametrize("case,command", OUT_PARAMS)
def test_bad_output_path(case, command, base, tmp_path, monkeypatch, capsys):
    out, needles = OUT_CASES[case](tmp_path)
    if command == "train" and case == "foreign-dir":
        needles = ["is a directory"]
    before = snapshot(tmp_path)
    args = (["train", "--hidden", "4", "--epochs1", "1", "--epochs2", "1", "--quiet"] if command == "train"
            else [command, base])
    code, _, err = run_cli(monkeypatch, capsys, *args, "-o", out)
    assert_clean_failure(code, err, needles, before, snapshot(tmp_path))


def test_read_only_output_location(base, tmp_path, monkeypatch, capsys):
    """A read-only mount (simulated: creating the temporary folder fails with EROFS)."""
    import errno
    import tempfile

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    before = snapshot(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "-o", tmp_path / "fw")
    assert_clean_failure(code, err, ["fw", "Read-only file system"], before, snapshot(tmp_path))


def test_reexport_keeps_user_files(base, tmp_path, monkeypatch, capsys):
    """A previous bnn2hw folder with a file the user added is refused, the file kept; --force
    replaces the folder."""
    out = tmp_path / "fw"
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "--target", "host", "-o", out)
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "--target", "host", "-o", out)
    assert code == 0, f"re-export into its own folder must work: {err}"
    (out / "my_main.c").write_text("int main(void) { return 0; }\n")
    before = snapshot(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "--target", "host", "-o", out)
    assert_clean_failure(code, err, ["my_main.c", "--force"], before, snapshot(tmp_path))
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "--target", "host", "-o", out, "--force")
    assert code == 0, err
    assert not (out / "my_main.c").exists() and (out / "model.c").exists()


def test_failed_verification_leaves_previous_output(base, tmp_path, monkeypatch, capsys):
    """A verification failure after code generation leaves -o exactly as before."""
    from bnn2hw.mcu import qemu

    out = tmp_path / "fw"
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "--target", "host", "-o", out)
    assert code == 0, err
    before = snapshot(tmp_path)
    real = qemu.run
    monkeypatch.setattr(qemu, "run", lambda *a, **k: real(*a, **k) + 1)  # every logit off by one
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", base, "--target", "host", "--verify", "-o", out)
    assert_clean_failure(code, err, ["disagrees with the IR"], before, snapshot(tmp_path))


# --------------------------------------------------------------------------------------------
# subprocess cases: missing toolchain, signals, broken dependency


def _env(**over):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    env.update(over)
    return env


def test_missing_cross_toolchain(base, tmp_path):
    """No arm-none-eabi-gcc on PATH: one error naming the tool and the Debian package."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("gcc", "make", "cc", "as", "ld"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if found:
            (bindir / tool).symlink_to(found)
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(work)
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(base), "--target", "cortex-m4",
                        "--verify", "--verify-samples", "3", "-o", str(work / "fw")],
                       capture_output=True, text=True, env=_env(PATH=str(bindir)), timeout=300)
    assert_clean_failure(r.returncode, r.stderr, ["arm-none-eabi-gcc", "apt-get install"], before, snapshot(work))


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_verification_cleans_up(sig, status, base, tmp_path):
    # QEMU behind a wrapper that waits first: the signal lands while verification is still running
    # however fast the kernels and however loaded the machine (a bare emit-c could finish before)
    real = shutil.which("qemu-system-arm")
    if real is None:
        pytest.skip("qemu-system-arm is not installed (apt-get install qemu-system-arm)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "qemu-system-arm").write_text(f'#!/bin/sh\nsleep 20\nexec "{real}" "$@"\n')
    (bindir / "qemu-system-arm").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(work)
    proc = subprocess.Popen([sys.executable, "-m", "bnn2hw", "emit-c", str(base), "--target", "cortex-m4",
                             "--verify", "-o", str(work / "fw")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=_env(PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"))
    # wait until code generation is done and verification is building/running
    deadline = time.time() + 120
    line = ""
    while time.time() < deadline and "generated model.c" not in line:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    assert "generated model.c" in line, f"emit-c ended early: {proc.stderr.read()}"
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert_clean_failure(proc.returncode, err, ["SIGTERM" if sig == signal.SIGTERM else "SIGINT"], before,
                         snapshot(work), status=status)


def test_broken_dependency_is_named(base, tmp_path):
    """`export` stays a command when onnx cannot be imported, and the error names the import."""
    code = ("import sys; sys.modules['onnx'] = None; sys.argv = ['bnn2hw', 'export', sys.argv[1], '-o', sys.argv[2]]; "
            "from bnn2hw.cli import main; main()")
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-c", code, str(base), str(tmp_path / "b")], capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert "No such command" not in r.stderr
    assert_clean_failure(r.returncode, r.stderr, ["FPGA back end", "onnx"], before, snapshot(tmp_path))


def test_corpus_size():
    """The issue asks for at least 80 cases; count the parametrized ones."""
    n = (2 * len(CHECKPOINT_CASES) + len(OPTION_CASES) + len(DATA_CASES) + 2 + len(IR_CASES) + 2
         + len(OUT_PARAMS) + 3 + 1 + 2 + 1)
    assert n >= 80, n
    json.dumps(n)
