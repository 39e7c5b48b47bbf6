# SPDX-License-Identifier: MIT
"""Digits end to end with the Python API: train a BiPer binary MLP, fold it to the integer IR,
look at its cost, generate C, run the C on the host through ctypes and check it bit for bit
against the reference executor, then (if the cross toolchain is installed) on a Cortex-M4 in
QEMU, and write the FINN build folder for a PYNQ-Z2.

    python examples/digits_end_to_end.py            # 30 + 30 epochs, about a minute
    python examples/digits_end_to_end.py --quick    # 1 + 1 epochs (what the test runs)
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

import bnn2hw
from bnn2hw.checkpoint import save_checkpoint
from bnn2hw.data import load_dataset
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, accuracy, seed_everything, train_two_stage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 + 1 epochs")
    ap.add_argument("--out", default="example_out", help="folder for the checkpoint and outputs")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. Train: the bundled digits (uint8, fixed split), BiPer's sign(sin(w0 w)) weights.
    data = load_dataset("digits")
    spec = default_spec("mlp", data.in_shape, data.num_classes)  # 8-bit input, binary 256-256 hidden
    spec["surrogate"].update(name="biper", w0=20.0)
    seed_everything(0)
    model = build_model(spec)
    epochs = 1 if args.quick else 30
    train_two_stage(model, data, TrainConfig(epochs1=epochs, epochs2=epochs), progress=not args.quick)
    acc = accuracy(model, data.x_test, data.y_test)
    ckpt = out / "model.pt"
    save_checkpoint(ckpt, model, spec, {"dataset": "digits", "test_accuracy": acc,
                                        "input": {"dtype": "uint8", "shape": list(data.in_shape)}})
    print(f"PyTorch test accuracy {acc:.4f}")

    # 2. Fold to the integer IR (weights +-1, BatchNorm + scale -> integer thresholds).
    g = bnn2hw.load(ckpt)
    print(g.summary())
    ref = g.predict(data.x_test)  # integer logits from the numpy reference
    print(f"IR accuracy {(ref.argmax(1) == data.y_test).mean():.4f}")

    # 3. Generate C and run it on the host through ctypes: the same integers.
    fw = g.emit_c(target="cortex-m4", out_dir=out / "fw", force=True)
    fw.compile()
    assert np.array_equal(fw.predict(data.x_test), ref), "generated C differs from the IR"
    print(f"generated C == IR on all {len(ref)} test images (host, ctypes)")

    # 4. The same C cross-compiled for Cortex-M4 and run in QEMU (if installed).
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
        n = 20 if args.quick else len(ref)
        assert np.array_equal(fw.run_qemu(data.x_test[:n]), ref[:n])
        print(f"Cortex-M4 (QEMU) == IR on {n} test images")

    # 5. The FINN build folder for a PYNQ-Z2, verified on the test split.
    summary = g.export_fpga(target="pynq-z2", out_dir=out / "build", x=data.x_test, force=True)
    print(f"FINN build folder {out / 'build'}: {summary.get('samples', 0)} test images verified")


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
