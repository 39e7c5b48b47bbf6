# SPDX-License-Identifier: MIT
"""How fast the compiler itself is (issue 11): ``export`` of a 28x28 MNIST-shaped CNN and
``emit-c --verify`` of a CIFAR-shaped (3x32x32) CNN, with seconds per stage.

Both models are bnn2hw's default ``cnn`` (conv 32, conv 64 + pool, dense 128, dense 10), trained
for one step with ``bnn2hw train`` on seeded synthetic uint8 data of that shape (the weights do
not matter for speed; the shapes do). The test split has ``--test N`` images (default 1000); the
export verifies all of them (PyTorch, IR, onnxruntime, qonnx), emit-c verifies ``--emit-samples``
of them on the host and in QEMU (Cortex-M4) and counts one inference's instructions and cycles.

Each command runs in a child process with ``PYTHONPATH`` set to a source tree, so the same
script times the current tree and an older commit (``--before REV``: ``git archive`` of that
commit into a temporary folder). Stage times are inclusive wall seconds of the named functions,
wrapped at run time (a stage absent from a tree is not shown). CPU seconds (user + system, the
process and its children) are given beside wall seconds because the machine is shared: wall
time depends on the load, which is recorded.

    python benchmarks/bench_compiler_speed.py --before 0d6e7ea
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# (module, attribute, stage label): wrapped in the child when present
STAGES = [
    ("bnn2hw.export.pipeline", "export_ir", "load + fold + PyTorch==IR (export_ir)"),
    ("bnn2hw.export.verify", "compare_torch_ir", "  of which PyTorch vs IR comparison"),
    ("bnn2hw.fpga.cli", "build_onnx", "build ONNX graphs"),
    ("bnn2hw.fpga.cli", "run_plain", "onnxruntime on the test split"),
    ("bnn2hw.fpga.cli", "run_qonnx", "qonnx executor on the test split"),
    ("bnn2hw.ir.execute", "run", "IR executor (all calls)"),
    ("bnn2hw.mcu.codegen", "emit", "C generation"),
    ("bnn2hw.mcu.toolchain", "build", "builds (host + cross)"),
    ("bnn2hw.mcu.qemu", "run", "runs: host binary + QEMU, all samples"),
    ("bnn2hw.mcu.qemu", "count_cycles", "count instructions + cycles, 1 input"),
    ("bnn2hw.mcu.qemu", "count_instructions", "count instructions, 1 input"),
]

_DRIVER = r"""
import functools, importlib, json, os, resource, sys, time
t0 = time.monotonic()
stages, times = json.loads(sys.argv[1]), {}
def wrap(mod, attr):
    try:
        m = importlib.import_module(mod)
    except ImportError:
        return
    f = getattr(m, attr, None)
    if f is None:
        return
    key = mod + "." + attr
    depth = [0]
    @functools.wraps(f)
    def timed(*a, **k):
        depth[0] += 1
        s = time.monotonic()
        try:
            return f(*a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                times[key] = times.get(key, 0.0) + time.monotonic() - s
    setattr(m, attr, timed)
for mod, attr, _ in stages:
    wrap(mod, attr)
import bnn2hw.fpga.onnx_export as ox, bnn2hw.fpga.cli as fc  # fpga.cli imported these by name
t_cmd = time.monotonic()
sys.argv = ["bnn2hw"] + sys.argv[2:]
from bnn2hw import cli
code = 0
try:
    cli.main()
except SystemExit as e:
    code = e.code or 0
self_ru, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("BENCH " + json.dumps({"code": code, "wall": time.monotonic() - t0, "imports": t_cmd - t0, "stages": times,
      "cpu": self_ru.ru_utime + self_ru.ru_stime + kids.ru_utime + kids.ru_stime,
      "maxrss_mb": max(self_ru.ru_maxrss, kids.ru_maxrss) / 1024}))
"""


def run_child(tree: Path, args: list[str], cwd: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    load = os.getloadavg()
    proc = subprocess.run(["nice", "-n", "10", sys.executable, "-c", _DRIVER, json.dumps(STAGES), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"{' '.join(args)} failed under {tree}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    out = json.loads(line[-1][6:])
    if out["code"] != 0:
        raise SystemExit(f"{' '.join(args)} exited {out['code']} under {tree}:\n{proc.stderr[-3000:]}")
    out["load_before"] = load[0]
    out["load_avg"] = [list(load), list(os.getloadavg())]  # (1, 5, 15 min) at start and at end
    out["log"] = proc.stdout
    return out


def make_inputs(work: Path, tree: Path, n_test: int) -> dict[str, Path]:
    """Seeded synthetic data sets and one-step checkpoints (``bnn2hw train``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, shape in (("mnist", (28, 28)), ("cifar", (3, 32, 32))):
        npz = work / f"{name}.npz"
        np.savez(npz, x=rng.integers(0, 256, (64, *shape), dtype=np.uint8), y=np.arange(64) % 10,
                 x_test=rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), y_test=np.arange(n_test) % 10)
        ckpt = work / f"{name}_cnn.pt"
        r = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "bnn2hw", "train", "--model", "cnn",
                            "--dataset", str(npz), "--epochs1", "1", "--epochs2", "0", "--batch-size", "64",
                            "--seed", "0", "-o", str(ckpt)], cwd=work, env=dict(os.environ, PYTHONPATH=str(tree)),
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"train failed: {r.stderr[-2000:]}")
        out[name] = ckpt
    return out


def measure(tree: Path, work: Path, ckpts: dict, emit_samples: int) -> dict:
    res = {}
    res["export"] = run_child(tree, ["export", str(ckpts["mnist"]), "--target", "pynq-z2", "-o",
                                     str(work / "build"), "--force"], work)
    res["emit-c"] = run_child(tree, ["emit-c", str(ckpts["cifar"]), "--target", "cortex-m4", "-o",
                                     str(work / "fw"), "--verify", "--verify-samples", str(emit_samples),
                                     "--force"], work)
    return res


def table(before: dict | None, after: dict, cmd: str) -> list[str]:
    cols = ["stage", "before (s)", "after (s)"] if before else ["stage", "seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows = [("total wall", "wall"), ("total CPU (user+sys, with children)", "cpu"), ("Python imports", "imports")]
    for label, key in rows:
        vals = ([f"{before[cmd][key]:.1f}"] if before else []) + [f"{after[cmd][key]:.1f}"]
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    for mod, attr, label in STAGES:
        key = f"{mod}.{attr}"
        b = before[cmd]["stages"].get(key) if before else None
        a = after[cmd]["stages"].get(key)
        if a is None and b is None:
            continue
        fmt = (lambda v: "-" if v is None else f"{v:.1f}")
        lines.append(f"| {label} | " + " | ".join(([fmt(b)] if before else []) + [fmt(a)]) + " |")
    mem = ([f"{before[cmd]['maxrss_mb']:.0f}"] if before else []) + [f"{after[cmd]['maxrss_mb']:.0f}"]
    lines.append("| peak RSS of one process (MB) | " + " | ".join(mem) + " |")
    load = ([f"{before[cmd]['load_before']:.1f}"] if before else []) + [f"{after[cmd]['load_before']:.1f}"]
    lines.append("| machine load average at start (2 cores) | " + " | ".join(load) + " |")
    if "load_avg" in after[cmd]:
        la = [" / ".join(f"{v:.1f}" for v in r[cmd]["load_avg"][1]) for r in ([before] if before else []) + [after]]
        lines.append("| load average at end, 1 / 5 / 15 min | " + " | ".join(la) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="git revision to compare against (git archive into a temp dir)")
    ap.add_argument("--test", type=int, default=1000, help="test images in each synthetic data set")
    ap.add_argument("--emit-samples", type=int, default=100, help="emit-c --verify-samples")
    ap.add_argument("--out", type=Path, default=RESULTS / "compiler_speed.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bnn2hw-speed-") as tmp:
        work = Path(tmp)
        ckpts = make_inputs(work, ROOT, args.test)
        before = None
        if args.before:
            old = work / "before"
            old.mkdir()
            arch = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "bnn2hw"], capture_output=True,
                                  check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=arch, check=True)
            print(f"timing {args.before} ...", flush=True)
            before = measure(old, work, ckpts, args.emit_samples)
        print("timing the current tree ...", flush=True)
        after = measure(ROOT, work, ckpts, args.emit_samples)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    per = after["emit-c"]["stages"].get("bnn2hw.mcu.qemu.run", 0.0)
    lines = [
        "# Compiler speed (issue 11)",
        "",
        f"`python benchmarks/bench_compiler_speed.py{' --before ' + args.before if args.before else ''}` "
        f"(after = {head}; {time.strftime('%Y-%m-%d')}). Default `cnn` (conv 32, conv 64 + pool, dense 128, "
        f"dense 10) trained one epoch on seeded synthetic uint8 data; {args.test} test images. Shared 2-core "
        "machine: wall seconds depend on the other jobs (load average recorded), CPU seconds less so; the "
        "wall-time targets are for an idle machine, where wall is about the CPU time (PyTorch and numpy use "
        "both cores for the large products, the rest is one thread).",
        "",
        f"## `export` of the 28x28 MNIST-shaped CNN (verifies all {args.test} test images: PyTorch, IR, "
        "onnxruntime, qonnx; target <= 20 s)",
        "",
        *table(before, after, "export"),
        "",
        f"## `emit-c --verify --verify-samples {args.emit_samples}` of the 3x32x32 CIFAR-shaped CNN on Cortex-M4 "
        "(target <= 2 s per verified sample)",
        "",
        *table(before, after, "emit-c"),
        "",
        f"Per verified sample (after): host + QEMU runs {per / args.emit_samples:.2f} s wall for "
        f"{args.emit_samples} samples; the fixed costs (imports, folding, the PyTorch == IR check on the test "
        "split, builds, one traced inference) are paid once per command.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    (args.out.with_suffix(".json")).write_text(json.dumps(
        {"before": {k: {kk: vv for kk, vv in v.items() if kk != "log"} for k, v in before.items()} if before else None,
         "after": {k: {kk: vv for kk, vv in v.items() if kk != "log"} for k, v in after.items()}}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
