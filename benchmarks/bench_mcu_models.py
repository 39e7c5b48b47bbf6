# SPDX-License-Identifier: MIT
"""Generated firmware for real models: the digits MLP and CNN (default specs, trained here) and a
random-weight 256-256-256-10 MLP built directly as an IR Graph, all emitted by the code generator
(bnn2hw.mcu.codegen).  Per Cortex-M core and popcount strategy: exact instructions per inference
(QEMU), flash/RAM, the flash lower bound and the scratch arena; the float C version of the same
IR (bnn2hw.mcu.float_codegen) per core where it links; the digits CNN also as emit-c --optimize size
emits it (Cortex-M0 and M4); and a per-function profile of the 8-bit
first layer against its previous implementation.  Every build is checked first: its integer
logits must equal the IR executor's.  Writes benchmarks/results/mcu_models.md.

    python benchmarks/bench_mcu_models.py
"""

from __future__ import annotations

import collections
import datetime
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw.data import load_digits  # noqa: E402
from bnn2hw.errors import Bnn2hwError  # noqa: E402
from bnn2hw.export.fold import fold_model  # noqa: E402
from bnn2hw.ir import execute  # noqa: E402
from bnn2hw.ir.graph import Graph, Layer  # noqa: E402
from bnn2hw.mcu import qemu, toolchain  # noqa: E402
from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir  # noqa: E402
from bnn2hw.mcu.float_codegen import write_float_firmware_dir  # noqa: E402
from bnn2hw.mcu.targets import POPCOUNT_STRATEGIES, get_target  # noqa: E402
from bnn2hw.train import TrainConfig, accuracy, seed_everything, train_two_stage  # noqa: E402

SEED = 0
RANDOM_SEED = 2024
CORES = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
SIZE_CORES = ["cortex-m0", "cortex-m4"]  # the digits CNN also built with emit-c --optimize size
VERIFY_SAMPLES = 20
BASELINE_COMMIT = "b02e16f"  # firmware/src/bnn_first.c before the byte-table first layer
HAND_WRITTEN_M4 = 38_836  # benchmarks/results/mcu_kernels.md, cortex-m4 / multi


def train_digits(arch: str, data) -> tuple[Graph, float]:
    import torch

    from bnn2hw.nn.models import build_model, default_spec

    torch.set_num_threads(1)
    spec = default_spec(arch, data.in_shape, data.num_classes)
    seed_everything(SEED)
    model = build_model(spec)
    train_two_stage(model, data, TrainConfig(epochs1=10, epochs2=10, seed=SEED), progress=False)
    return fold_model(model, spec), accuracy(model, data.x_test, data.y_test)


def random_mlp_graph(sizes=(256, 256, 256, 10), seed: int = RANDOM_SEED) -> Graph:
    """The issue's shape: input already 256 bits, every layer binary (xnor-popcount), random ±1
    weights, random thresholds near 0 with random directions, integer logits."""
    rng = np.random.default_rng(seed)
    layers = []
    n = len(sizes) - 1
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(b, a))
        layers.append(Layer("dense", f"fc{i}", f"random.fc{i}", {"in": "bits", "weight_kind": "binary"},
                            {"weight": w}))
        if i < n - 1:
            layers.append(Layer("threshold", f"thr{i}", f"random.thr{i}", {},
                                {"thr": rng.integers(-8, 9, size=b).astype(np.int64),
                                 "direction": rng.choice(np.array([-1, 1], dtype=np.int8), size=b)}))
    layers.append(Layer("affine", "logits", "random.head", {},
                        {"scale": np.ones(sizes[-1]), "bias": np.zeros(sizes[-1])}))
    return Graph((sizes[0],), layers, 1.0, {"model_hash": f"random{seed}", "source": "random"}, "bits")


EMPTY_MODEL_C = """/* SPDX-License-Identifier: MIT */
/* The harness alone: an empty bnn_infer, to measure the flash the harness itself takes. */
#include "model.h"
int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)
{
    (void)input; (void)input_len; (void)logits; (void)logits_len;
    return 0;
}
"""


def library_flash(work_dir: Path, core: str, popcount: str | None, total_flash: int) -> int | None:
    """Flash the model library adds (model.c + the kernels it links, after --gc-sections): the
    ELF's flash minus that of the same harness built around an empty ``bnn_infer``."""
    if core == "host":
        return None
    with tempfile.TemporaryDirectory() as tmpd:
        empty = Path(tmpd) / "fw"
        shutil.copytree(work_dir, empty)
        (empty / "model.c").write_text(EMPTY_MODEL_C)
        harness = toolchain.size(toolchain.build(empty, core, popcount=popcount)).flash
    return total_flash - harness


def work(graph: Graph) -> dict:
    """Binary MACs (bits x +-1), 8-bit MACs (uint8 x +-1 or int8) and xnor-popcount words."""
    shape = tuple(graph.input_shape)
    kind = graph.input_kind
    bin_macs = u8_macs = words = 0
    for layer in graph.layers:
        if layer.op == "dense":
            o, k = layer.arrays["weight"].shape
            if kind == "bits" and layer.attrs.get("weight_kind", "binary") == "binary":
                bin_macs += o * k
                words += o * ((k + 31) // 32)
            else:
                u8_macs += o * k
            shape, kind = (o,), "acc"
        elif layer.op == "conv2d":
            o, kh, kw, c = layer.arrays["weight"].shape
            h, w, _ = shape
            s, p = layer.attrs["stride"], layer.attrs["pad"]
            oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
            if kind == "bits":
                bin_macs += oh * ow * o * kh * kw * c
                words += oh * ow * o * kh * kw * ((c + 31) // 32)
            else:
                u8_macs += oh * ow * o * kh * kw * c
            shape, kind = (oh, ow, o), "acc"
        elif layer.op == "threshold":
            kind = "bits"
        elif layer.op == "maxpool":
            h, w, c = shape
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            shape = ((h - k) // s + 1, (w - k) // s + 1, c)
        elif layer.op == "flatten":
            shape = (int(np.prod(shape)),)
    return {"bin_macs": bin_macs, "u8_macs": u8_macs, "words": words}


def measure(build_dir: Path, graph: Graph, core: str, popcount: str | None, x_c: np.ndarray,
            ref: np.ndarray, count: bool = True) -> dict:
    """Build, check every integer logit against the IR, count instructions, read sizes."""
    with tempfile.TemporaryDirectory() as tmpd:
        work_dir = Path(tmpd) / "fw"
        shutil.copytree(build_dir, work_dir)
        elf = toolchain.build(work_dir, core, popcount=popcount)
        got = qemu.run(elf, core, x_c, graph.num_classes, timeout=600)
        if not np.array_equal(got, ref):
            raise Bnn2hwError(f"{core}/{popcount}: {(got != ref).sum()} integer logits differ from the IR")
        sz = toolchain.size(elf)
        n = qemu.count_instructions(elf, core, x_c[0], timeout=900) if count else None
        lib = library_flash(work_dir, core, popcount, sz.flash)
    return {"instructions": n, "flash": sz.flash, "ram": sz.ram, "lib_flash": lib}


def profile(build_dir: Path, core: str, x_one: np.ndarray, first_c: str | None = None) -> collections.Counter:
    """Instructions per function over the whole run of one input (QEMU exec log by symbol)."""
    with tempfile.TemporaryDirectory() as tmpd:
        work_dir = Path(tmpd) / "fw"
        shutil.copytree(build_dir, work_dir)
        if first_c is not None:
            (work_dir / "bnn_first.c").write_text(first_c)
        elf = toolchain.build(work_dir, core)
        syms = []
        nm = subprocess.run([toolchain.find_tool("arm-none-eabi-nm"), "-S", "--defined-only", str(elf)],
                            capture_output=True, text=True, check=True).stdout
        for line in nm.splitlines():
            p = line.split()
            if len(p) == 4 and p[2] in "tT":
                syms.append((int(p[0], 16) & ~1, int(p[1], 16), p[3]))
        syms.sort()
        starts = np.array([s[0] for s in syms])
        x_one.reshape(1, -1).astype(np.uint8).tofile(work_dir / "inputs.bin")
        t = get_target(core)
        cmd = qemu._qemu_cmd(elf, t.qemu_machine, ["-singlestep", "-d", "exec,nochain", "-D",
                                                    str(work_dir / "exec.log")])
        subprocess.run(cmd, cwd=work_dir, check=True, capture_output=True, timeout=900)
        log = (work_dir / "exec.log").read_bytes()
    cnt: collections.Counter = collections.Counter()
    for m in qemu._TRACE.finditer(log):
        pc = int(m.group(1), 16)
        j = int(np.searchsorted(starts, pc, side="right")) - 1
        if j >= 0 and pc < syms[j][0] + syms[j][1]:
            cnt[syms[j][2]] += 1
    return cnt


FIRST_FUNCS = ("bnn_first_u8_bin_bits", "lut_build", "nibble_sums", "lut_rows_bits", "lut_rows_bits_2w",
               "lut_rows_acc", "bnn_first_u8_bin_acc")


def main() -> None:
    t0 = time.time()
    data = load_digits()
    models = {}
    for arch in ("mlp", "cnn"):
        g, acc = train_digits(arch, data)
        models[f"digits {arch}"] = (g, data.x_test[:VERIFY_SAMPLES], acc)
        print(f"trained {arch}: test accuracy {acc:.4f}", flush=True)
    rnd = random_mlp_graph()
    xr = np.random.default_rng(RANDOM_SEED).choice(np.array([-1, 1], dtype=np.int8), size=(VERIFY_SAMPLES, 256))
    models["random 256-256-256-10"] = (rnd, xr, None)

    rows = []  # (model, core, variant, result)
    info = {}
    for name, (graph, x, acc) in models.items():
        ref = execute.run(graph, x).int_logits
        x_c = to_c_inputs(graph, x)
        with tempfile.TemporaryDirectory() as tmpd:
            bdir = Path(tmpd) / "bin"
            em = write_firmware_dir(graph, bdir, "cortex-m4")
            fdir = Path(tmpd) / "float"
            fem = write_float_firmware_dir(graph, fdir, "cortex-m4")
            info[name] = {"lb": em.flash_lower_bound_bytes, "scratch": em.scratch_bytes, "acc": acc,
                          "float_lb": fem.flash_lower_bound_bytes, "float_scratch": fem.scratch_bytes,
                          **work(graph)}
            for core in CORES:
                for pop in POPCOUNT_STRATEGIES:
                    r = measure(bdir, graph, core, pop, x_c, ref)
                    rows.append((name, core, pop, r))
                    print(name, core, pop, r, flush=True)
                fpu = get_target(core).cpu_flags and "-mfloat-abi=hard" in get_target(core).cpu_flags
                try:
                    r = measure(fdir, graph, core, None, x_c, ref, count=bool(fpu))
                except Bnn2hwError as exc:
                    msg = str(exc)
                    why = "does not link (flash/RAM overflow)" if "overflow" in msg or "will not fit" in msg \
                        else msg.splitlines()[0][:120]
                    r = {"instructions": None, "flash": None, "ram": None, "note": why}
                rows.append((name, core, "float C", r))
                print(name, core, "float", r, flush=True)
            if name == "digits cnn":
                # emit-c --optimize size (no column-sliced, position-sliced or few-position conv code)
                sdir = Path(tmpd) / "size"
                write_firmware_dir(graph, sdir, "cortex-m4", optimize="size")
                for core in SIZE_CORES:
                    r = measure(sdir, graph, core, None, x_c, ref)
                    rows.append((name, core, "--optimize size", r))
                    print(name, core, "size", r, flush=True)
            if name == "digits mlp":
                cur_fw = bdir
                base_c = subprocess.run(["git", "-C", str(ROOT), "show",
                                         f"{BASELINE_COMMIT}:firmware/src/bnn_first.c"],
                                        capture_output=True, text=True, check=True).stdout
                prof = {}
                for core in ("cortex-m4", "cortex-m0"):
                    new = profile(cur_fw, core, x_c[0])
                    old = profile(cur_fw, core, x_c[0], first_c=base_c)
                    prof[core] = (sum(new[f] for f in FIRST_FUNCS), sum(old[f] for f in FIRST_FUNCS))
                    print("first layer", core, prof[core], flush=True)
                info[name]["first_layer"] = prof
    write_results(rows, info, time.time() - t0)


CMSIS_NN_INT8_M4 = 276_855  # issue 11's reference (arm_fully_connected_s8 + int8 ReLU, -O2); issue 4: 276,981
FLASH_TARGET = 1.05  # issue 11 (issue 4: 1.10)


def _targets(rows, info) -> list[str]:
    """Issue 4's and 11's targets for the random 256-256-256-10 all-binary MLP on Cortex-M4
    (the width sweep is in benchmarks/results/mcu_kernels.md)."""
    name = "random 256-256-256-10"
    get = {(m, c, v): r for m, c, v, r in rows}
    best = min((r["instructions"], v) for (m, c, v), r in get.items()
               if m == name and c == "cortex-m4" and v != "float C" and r.get("instructions"))
    r = get[(name, "cortex-m4", best[1])]
    flt = get.get((name, "cortex-m4", "float C"), {}).get("instructions")
    lb = info[name]["lb"]
    out = ["## Targets (issues 4 and 11), random 256-256-256-10 all-binary MLP on Cortex-M4", "",
           f"* instructions per inference: {best[0]:,} with `{best[1]}` (target <= 40,000): "
           f"{'met' if best[0] <= 40_000 else 'NOT met'}; {CMSIS_NN_INT8_M4 / best[0]:.1f}x fewer than "
           f"CMSIS-NN int8's {CMSIS_NN_INT8_M4:,} (target >= 7x).",
           f"* library flash (model.c + runtime, no harness): {r['lib_flash']:,} B vs lower bound {lb:,} B "
           f"= {r['lib_flash'] / lb:.3f} (target <= {FLASH_TARGET:.2f}): "
           f"{'met' if r['lib_flash'] <= FLASH_TARGET * lb else 'NOT met'}.",
           "* every other width: `benchmarks/results/mcu_kernels.md` (issue 11's width sweep).",
           ]
    if flt:
        out.append(f"* float C version of the same network: {flt:,} instructions = {flt / best[0]:.1f}x more "
                   f"(target >= 8x): {'met' if flt >= 8 * best[0] else 'NOT met'}.")
    return out + [""]


def fmt(v) -> str:
    return "—" if v is None else f"{v:,}"


def write_results(rows, info, seconds: float) -> None:
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qv = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    lines = [
        "# MCU benchmark: generated firmware for real models",
        "",
        f"Date: {datetime.date.today().isoformat()}.  Machine: {platform.machine()} {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; `{gcc}`; `{qv}`.  "
        f"Run time {seconds / 60:.1f} min.",
        "",
        "Command: `python benchmarks/bench_mcu_models.py` (trains the models itself; seed 0, "
        "`TrainConfig(epochs1=10, epochs2=10)`, default specs, BiPer surrogate).",
        "",
        "Instructions = exact QEMU count of one `bnn_infer()` call (`bnn2hw.mcu.qemu.count_instructions`). "
        "Flash = text + data, RAM = data + bss of the whole harness ELF (`arm-none-eabi-size`; stack not "
        "included).  Flash LB = the code generator's lower bound (weight bits / 8 + 4 B per threshold; for "
        "float: 4 B per weight and threshold).  Every build was first run on "
        f"{VERIFY_SAMPLES} inputs in QEMU and all its integer logits equal the IR executor's.",
        "",
    ]
    for name, inf in info.items():
        words = inf["words"]
        lines += [f"## {name}", ""]
        if inf["acc"] is not None:
            lines.append(f"PyTorch test accuracy {inf['acc']:.4f}.  ")
        lines += [
            f"Work: {inf['bin_macs']:,} binary MACs = {words:,} xnor-popcount words of 32 MACs, plus "
            f"{inf['u8_macs']:,} 8-bit MACs in the first layer.  Scratch arena {inf['scratch']:,} B "
            f"(float version: {inf['float_scratch']:,} B).  Flash lower bound {inf['lb']:,} B "
            f"(float: {inf['float_lb']:,} B).",
            "",
            "| core | variant | instructions | instr / binary word | flash (B) | flash / LB | library flash (B) "
            "| library / LB | RAM (B) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m, core, var, r in rows:
            if m != name:
                continue
            if r.get("flash") is None:
                lines.append(f"| {core} | {var} | {r.get('note', '')} | | | | | | |")
                continue
            n = r["instructions"]
            lb = inf["float_lb"] if var == "float C" else inf["lb"]
            per = "" if n is None or var == "float C" or not words else f"{n / words:.2f}"
            note = " (soft-float: not counted)" if n is None else ""
            lib = r.get("lib_flash")
            lib_s = f"{lib:,} | {lib / lb:.2f}" if lib else " | "
            lines.append(f"| {core} | {var} | {fmt(n)}{note} | {per} | {r['flash']:,} | {r['flash'] / lb:.2f} | "
                         f"{lib_s} | {r['ram']:,} |")
        fl = info[name].get("first_layer")
        if fl:
            lines += ["", "First layer (64 uint8 x 256 binary, `bnn_first_u8_bin_bits` and its helpers), "
                      f"instructions per inference, before (bnn_first.c at {BASELINE_COMMIT}) and after:", "",
                      "| core | before | after | speed-up |", "|---|---:|---:|---:|"]
            for core, (new, old) in fl.items():
                lines.append(f"| {core} | {old:,} | {new:,} | {old / new:.1f}x |")
        lines.append("")
    lines += _targets(rows, info)
    (ROOT / "benchmarks" / "results" / "mcu_models.md").write_text("\n".join(lines))
    print(ROOT / "benchmarks" / "results" / "mcu_models.md")


if __name__ == "__main__":
    main()
