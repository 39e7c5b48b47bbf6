# SPDX-License-Identifier: MIT
"""Training-scale benchmark: epoch time of BiPer ResNet-20 on synthetic 32x32x3 data with one
process and with 2 torchrun/DDP processes (gloo) on this machine, and the scaling efficiency.

Every configuration runs the real command (``python -m bnn2hw train`` or ``torchrun ... -m bnn2hw
train``) on the same synthetic ``.npz`` (uint8 noise images, 10 classes, fixed seed) and reads
the per-epoch training seconds that the checkpoint records (the training loop only; the
per-epoch evaluation is excluded). The first epoch is dropped as warm-up; the median of the
rest is reported. Efficiency = (1-process epoch time / N-process epoch time) / N, with every
process given the same number of threads, so it measures what DDP's extra processes buy.

Writes ``benchmarks/results/training_scale.md`` (or ``--out``)::

    python benchmarks/bench_training_scale.py                 # ~10 min on 2 CPU cores
    python benchmarks/bench_training_scale.py --images 512 --epochs 2 --out /tmp/ts.md  # quick

No GPU was available where the committed results were measured: CUDA, NCCL and --amp are not
exercised by it; the GPU command lines are documented in the output.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def make_data(path: Path, images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (images, 3, 32, 32), dtype=np.uint8),
             y=np.arange(images) % 10,
             x_test=rng.integers(0, 256, (200, 3, 32, 32), dtype=np.uint8), y_test=np.arange(200) % 10)


def run(procs: int, threads: int, data: Path, work: Path, args) -> dict:
    out = work / f"p{procs}t{threads}.pt"
    train = ["train", "--model", "resnet20", "--dataset", str(data), "--epochs1", str(args.epochs),
             "--epochs2", "1", "--batch-size", str(args.batch_size), "--threads", str(threads),
             "--augment", "--normalize", "auto", "--device", "cpu", "--quiet", "--no-plots",
             "-o", str(out)]
    if procs == 1:
        cmd = [sys.executable, "-m", "bnn2hw", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={procs}", "-m", "bnn2hw", *train]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    import torch

    meta = torch.load(out, weights_only=True)["meta"]
    secs = [h["seconds"] for h in meta["history"] if h["stage"] == 1][1:]
    return {"procs": procs, "threads": threads, "epoch_s": statistics.median(secs),
            "epochs_timed": len(secs), "wall_s": wall, "cmd": " ".join(["python", *cmd[1:]])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=4, help="stage-1 epochs (first one dropped)")
    ap.add_argument("--batch-size", type=int, default=128, help="global batch")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "training_scale.md")
    args = ap.parse_args()
    import torch

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "synthetic_cifar.npz"
        make_data(data, args.images)
        rows = [run(1, 1, data, work, args), run(2, 1, data, work, args), run(1, 2, data, work, args)]
    load_after = os.getloadavg()
    base = rows[0]["epoch_s"]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=REPO).stdout.strip()
    lines = [
        "# Training at scale: epoch time with 1 and 2 processes (CPU only)",
        "",
        f"- command: `python benchmarks/bench_training_scale.py --images {args.images} --epochs "
        f"{args.epochs} --batch-size {args.batch_size}`",
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs (shared with other jobs), Linux "
        f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"CUDA available: {torch.cuda.is_available()}",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} (git {git})",
        f"- model: BiPer ResNet-20 (Bi-Real double skips, w0 = 20), stage 1; data: {args.images} "
        "synthetic uint8 32x32x3 images, 10 classes, `--augment --normalize auto`; global batch "
        f"{args.batch_size} (each of N processes takes {args.batch_size}/N per step)",
        f"- 1-minute load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on "
        f"{os.cpu_count()} CPUs (anything above ~{os.cpu_count()} means other jobs competed for the cores)",
        "- epoch time: median of the per-epoch training seconds recorded in the checkpoint, first "
        "epoch dropped; evaluation excluded",
        "",
        "| processes | threads / process | s / epoch | images / s | speed-up vs 1 x 1 | efficiency |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = base / r["epoch_s"]
        eff = speed / r["procs"] if r["threads"] == 1 else float("nan")
        usable = args.images - args.images % args.batch_size
        lines.append(f"| {r['procs']} | {r['threads']} | {r['epoch_s']:.2f} | {usable / r['epoch_s']:.0f} | "
                     f"{speed:.2f} | {'' if eff != eff else f'{eff:.0%}'} |")
    lines += [
        "",
        "Commands run (1 process, 2 processes):",
        "",
        f"    OMP_NUM_THREADS=1 {rows[0]['cmd']}",
        f"    OMP_NUM_THREADS=1 {rows[1]['cmd']}",
        "",
        "Efficiency is the 2-process speed-up over one single-threaded process, divided by 2 (both "
        "runs use one thread per process, i.e. 1 vs 2 of the 2 cores); the last row is the "
        "alternative of one process using both cores through intra-op threads.",
        "",
        "What ran here: CPU only, DDP with the gloo backend on one machine (the tests also run 2 "
        "torchrun 'nodes' on 127.0.0.1). Not exercised here (no GPU): CUDA devices, NCCL, "
        "`--amp bf16|fp16`, `--sync-bn`, pinned-memory transfers.",
        "",
        "## GPU run of BiPer ResNet-18 on CIFAR-10 (documented, not run here)",
        "",
        "Convert CIFAR-10 once to an `.npz` (uint8 NCHW, `x`, `y`, `x_test`, `y_test`), then on one "
        "node with 4 GPUs:",
        "",
        "    torchrun --standalone --nproc_per_node=4 -m bnn2hw train \\",
        "        --recipe biper-cifar10-resnet18 --dataset cifar10.npz --workers 4 \\",
        "        --save-every 10 -o biper_r18_cifar10.pt",
        "",
        "The recipe runs 600 stage-1 + 300 stage-2 epochs (900 in all) with the official code's "
        "global batch 256 (64 per GPU), so one epoch is 195 steps of 256 images; no learning-rate "
        "change is needed for 1, 2, 4 or 8 GPUs. Add `--amp bf16` on Ampere or newer GPUs. An "
        "interrupted run continues with `--resume biper_r18_cifar10.resume.pt -o biper_r18_cifar10.pt`.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
