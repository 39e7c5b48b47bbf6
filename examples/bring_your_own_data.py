# SPDX-License-Identifier: MIT
"""Bring your own data: a ``.npz`` file or an image folder, through the documented loader
(``bnn2hw/data/__init__.py``), then the CLI's train / emit-c.

An ``.npz`` holds ``x`` (N, C, H, W) or (N, F) as uint8 (or float in [0, 1]) and ``y`` labels
0..K-1; ``x_test``/``y_test`` are optional (otherwise a stratified 25% is held out). Channels-last
arrays need ``layout="NHWC"``. An image folder is ``root/<class>/<image>``.

    python examples/bring_your_own_data.py --npz my_data.npz
    python examples/bring_your_own_data.py --images my_folder --image-size 16
    python examples/bring_your_own_data.py --quick     # makes a small synthetic set (the test)
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from bnn2hw.data import load_dataset


def synthetic_npz(path: Path) -> Path:
    """Two classes of 12x12 images: a bright band on the left or on the right, channels-last."""
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = rng.integers(0, 60, size=(200, 12, 12, 1)).astype(np.uint8)
    x[y == 0, :, :6] += 150
    x[y == 1, :, 6:] += 150
    np.savez(path, x=x, y=y, layout=np.array("NHWC"))  # declare the channels-last layout
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--npz")
    ap.add_argument("--images")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="byod_out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = args.npz or args.images or str(synthetic_npz(out / "synthetic.npz"))

    data = load_dataset(source, image_size=args.image_size)  # the same loader train uses
    print(f"{source}: {len(data.x_train)} training / {len(data.x_test)} test rows of shape "
          f"{list(data.in_shape)}, {data.num_classes} classes")

    epochs = ["--epochs1", "1", "--epochs2", "1"] if args.quick else []
    size = ["--image-size", str(args.image_size)] if args.image_size else []
    bnn2hw = [sys.executable, "-m", "bnn2hw"]
    subprocess.run([*bnn2hw, "train", "--dataset", source, "--hidden", "64", *epochs, *size, "--compact",
                    "-o", str(out / "model.pt")], check=True)
    # the checkpoint records the data set's path and loader options: no --dataset needed here
    subprocess.run([*bnn2hw, "emit-c", str(out / "model.pt"), "--target", "host", "--verify", "--force",
                    "-o", str(out / "fw")], check=True)


if __name__ == "__main__":
    main()
