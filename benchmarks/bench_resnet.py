# SPDX-License-Identifier: MIT
"""Deployable residual BNNs (issue 9): resnet8 (MLPerf Tiny topology) and resnet20 (BiPer's CIFAR
ResNet-20, Bi-Real double skips) with an 8-bit quantized residual stream, -1 padding, binary
stem on 8-bit pixels and an int8 last layer, at CIFAR-10 shape (3x32x32, 10 classes).

Per model: parameters, binary / 8-bit MACs, fold time, PyTorch == IR on synthetic images (every
hidden bit, stream integer and integer logit), the flash lower bound (packed weights and per-
channel integers) and the arena without reuse (the largest set of tensors live at once in the
IR's order, bits packed 32 per word, stream values one int8/int16 each, accumulators int32);
then, when the C back end places the model, the generated firmware on Cortex-M4, M7 and M55 in
QEMU: integer logits equal to the IR, instructions per inference, flash and RAM.

The weights are random (one SGD step per stage on random pixels: BatchNorm statistics move):
CIFAR-10 is not available here, so accuracy is not measured; costs and exactness do not depend
on it. Writes benchmarks/results/resnet.md.

    python benchmarks/bench_resnet.py
"""

from __future__ import annotations

import datetime
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw.errors import Bnn2hwError  # noqa: E402
from bnn2hw.export.fold import fold_model  # noqa: E402
from bnn2hw.export.verify import compare_residual  # noqa: E402
from bnn2hw.ir import execute  # noqa: E402
from bnn2hw.ir.graph import INPUT, Graph  # noqa: E402
from bnn2hw.ir.validate import tensor_infos, validate  # noqa: E402

SEED = 0
SAMPLES = 64  # synthetic test images for PyTorch == IR
C_SAMPLES = 4  # images run through the firmware in QEMU (each compared with the IR)
CORES = ["cortex-m4", "cortex-m7", "cortex-m55"]
MODELS = {"resnet8": {}, "resnet20": {}}
OUT = ROOT / "benchmarks" / "results" / "resnet.md"


def build(arch: str):
    import torch

    from bnn2hw.nn.layers import set_stage
    from bnn2hw.nn.models import build_model, default_spec

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    spec = default_spec(arch, (3, 32, 32), 10)
    model = build_model(spec)
    g = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, 256, (16, 3, 32, 32), generator=g).float()
    y = torch.randint(0, 10, (16,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for stage in (1, 2):
        set_stage(model, stage)
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, spec


def _bytes(info) -> int:
    n = int(np.prod(info.shape))
    if info.kind == "bits":
        c = info.shape[-1]
        return (n // c) * ((c + 31) // 32) * 4
    if info.kind == "u8":
        return n
    if info.kind == "fixed":
        return n * (1 if (info.bits or 32) <= 8 else 2 if info.bits <= 16 else 4)
    return n * 4  # acc (int32), float logits


def costs(graph: Graph) -> dict:
    """MACs by kind, flash lower bound and arena without reuse (module docstring)."""
    infos = tensor_infos(graph)
    bin_macs = u8_macs = fixed_macs = 0
    flash = 0
    for i, layer in enumerate(graph.layers):
        src = infos[graph.inputs_of(i)[0]]
        if layer.op in ("conv2d", "dense"):
            w = layer.arrays["weight"]
            out = infos[layer.name].shape
            positions = int(np.prod(out[:-1])) if layer.op == "conv2d" else 1
            macs = positions * w.size
            if src.kind == "bits":
                bin_macs += macs
            elif src.kind == "u8":
                u8_macs += macs
            else:
                fixed_macs += macs
            flash += (w.size + 7) // 8 if layer.attrs.get("weight_kind") == "binary" else w.size
        elif layer.op == "threshold":
            flash += 4 * len(layer.arrays["thr"]) + (len(layer.arrays["thr"]) + 7) // 8
        elif layer.op == "requant":
            flash += 8 * len(layer.arrays["mult"])  # int32 multiplier + int32 bias per channel
        elif layer.op == "affine":
            flash += 8 * len(layer.arrays["scale"])
    # arena: tensors live from their producer to their last consumer, in the IR's order
    last_use = {}
    for i in range(len(graph.layers)):
        for n in graph.inputs_of(i):
            last_use[n] = i
    pos = {INPUT: -1, **{l.name: i for i, l in enumerate(graph.layers)}}
    consumers: dict[str, int] = {}
    for i in range(len(graph.layers)):
        for n in graph.inputs_of(i):
            consumers[n] = consumers.get(n, 0) + 1
    # an accumulator read only by the next op (conv -> threshold / requant) is computed per output
    # pixel and never stored: it takes no arena
    fused = {l.name for i, l in enumerate(graph.layers[:-1])
             if infos[l.name].kind == "acc" and consumers.get(l.name) == 1
             and graph.inputs_of(i + 1) == [l.name]}

    def size(n):
        return 0 if n in fused else _bytes(infos[n])

    arena = 0
    for i, layer in enumerate(graph.layers):
        live = [n for n, j in last_use.items() if pos[n] < i <= j]
        arena = max(arena, sum(size(n) for n in live) + size(layer.name))
    return {"bin_macs": bin_macs, "u8_macs": u8_macs, "fixed_macs": fixed_macs, "flash_lb": flash,
            "arena_no_reuse": arena}


def run_c(graph: Graph, x: np.ndarray, ref: np.ndarray) -> dict:
    """Per core: instructions, flash, RAM (or the reason the C back end refuses the graph)."""
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    out = {}
    x_c = to_c_inputs(graph, x)
    with tempfile.TemporaryDirectory() as tmpd:
        for core in CORES:
            fw = Path(tmpd) / core
            try:
                em = write_firmware_dir(graph, fw, core)
            except Bnn2hwError as e:
                return {"refused": str(e)}
            out["scratch_bytes"] = em.scratch_bytes
            work = Path(tmpd) / f"{core}-build"
            shutil.copytree(fw, work)
            elf = toolchain.build(work, core)
            got = qemu.run(elf, core, x_c, graph.num_classes, timeout=1800)
            if not np.array_equal(got, ref):
                raise Bnn2hwError(f"{core}: {(got != ref).sum()} integer logits differ from the IR")
            sz = toolchain.size(elf)
            n = qemu.count_instructions(elf, core, x_c[0], timeout=3600)
            out[core] = {"instructions": n, "flash": sz.flash, "ram": sz.ram, "scratch": em.scratch_bytes}
            print(f"  {core}: {n:,} instructions, flash {sz.flash:,} B, RAM {sz.ram:,} B", flush=True)
    return out


def main() -> None:
    t_all = time.time()
    rows = {}
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 256, (SAMPLES, 3, 32, 32), dtype=np.uint8)
    for arch in MODELS:
        model, spec = build(arch)
        params = sum(p.numel() for p in model.parameters())
        t = time.time()
        graph = validate(fold_model(model, spec))
        fold_s = time.time() - t
        t = time.time()
        agr = compare_residual(model, graph, x, batch=16)
        verify_s = time.time() - t
        if not agr.exact:
            raise Bnn2hwError(f"{arch}: PyTorch != IR: {agr.to_dict()}")
        c = costs(graph)
        print(f"{arch}: {params:,} parameters, {c['bin_macs']:,} binary MACs, fold {fold_s:.1f} s, "
              f"exact on {SAMPLES} images", flush=True)
        ref = execute.run(graph, x[:C_SAMPLES]).int_logits
        rows[arch] = {"params": params, "fold_s": fold_s, "verify_s": verify_s, "agr": agr, **c,
                      "ops": len(graph.layers), "c": run_c(graph, x[:C_SAMPLES], ref)}
    write(rows, time.time() - t_all)


CYCLES_HEADING = "## Estimated cycles at the MLPerf Tiny clock"


def _kept_section(heading: str) -> str:
    """The section of the current results file under ``heading`` (up to the next ``## ``), or ''."""
    if not OUT.exists():
        return ""
    old = OUT.read_text()
    at = old.find(heading)
    if at < 0:
        return ""
    end = old.find("\n## ", at + len(heading))
    return old[at:] if end < 0 else old[at:end + 1]


def write(rows: dict, seconds: float) -> None:
    lines = ["# Residual BNNs: resnet8 and resnet20 (issue 9)", "",
             f"`python benchmarks/bench_resnet.py`, {datetime.date.today()}, {platform.machine()}, "
             f"{seconds:.0f} s on the shared 2-core machine.", "",
             "Models: `--model resnet8` / `resnet20` defaults (8-bit quantized residual stream, Q4 "
             "(range ±8), pad value -1, binary stem on 8-bit pixels, int8 last layer), CIFAR-10 "
             "shape, random weights after one SGD step per stage. **CIFAR-10 accuracy is not "
             "measured here** (no data set on this machine).", "",
             "| model | parameters | IR ops | binary MACs | 8-bit pixel MACs | int8 head MACs | flash "
             "lower bound | arena, no reuse | fold | PyTorch == IR |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for arch, r in rows.items():
        a = r["agr"]
        lines.append(f"| {arch} | {r['params']:,} | {r['ops']} | {r['bin_macs']:,} | {r['u8_macs']:,} | "
                     f"{r['fixed_macs']:,} | {r['flash_lb']:,} B | {r['arena_no_reuse']:,} B | {r['fold_s']:.1f} s | "
                     f"{a.samples} images: {a.bits_compared:,} bits, {a.stream_compared:,} stream integers, "
                     f"{a.samples * 10} logits, 0 differ |")
    lines += ["", "Flash lower bound: packed ±1 weights, int8 weights, an int32 threshold and a direction "
              "bit per threshold channel, int32 multiplier and bias per requant channel, the logits' "
              "float affine. Arena, no reuse: the largest set of tensors live at once in the IR's "
              "order (bits packed 32 per word, stream int8, accumulators int32; a conv accumulator read "
              "only by the next threshold/requant is fused and takes none; no in-place or row-wise reuse, "
              "which the C back end does: its scratch arena is below).", "",
              "## Generated C on Cortex-M (QEMU)", ""]
    any_c = False
    for arch, r in rows.items():
        c = r["c"]
        if "refused" in c:
            lines.append(f"* {arch}: the C back end refused the graph: `{c['refused']}`")
            continue
        any_c = True
        for core, m in c.items():
            if core == "scratch_bytes":
                continue
            lines.append(f"* {arch} on {core}: {m['instructions']:,} instructions per inference "
                         f"({m['instructions'] / max(1, r['bin_macs']):.3f} per binary MAC), flash "
                         f"{m['flash']:,} B (lower bound {r['flash_lb']:,} B), RAM {m['ram']:,} B (scratch arena "
                         f"{m['scratch']:,} B); "
                         f"integer logits equal to the IR on {C_SAMPLES} images")
    if not any_c:
        lines.append("Not measured in this run (see above).")
    r8m4 = rows.get("resnet8", {}).get("c", {}).get("cortex-m4")
    if r8m4:
        ok = lambda v, lim: "met" if v <= lim else "missed"  # noqa: E731
        lines += ["", f"Issue 9 targets for resnet8 on Cortex-M4: <= 5,000,000 instructions: "
                      f"{ok(r8m4['instructions'], 5_000_000)} ({r8m4['instructions']:,}); RAM <= 64 KiB: "
                      f"{ok(r8m4['ram'], 65536)} ({r8m4['ram']:,} B, whole image incl. harness); flash <= 64 KiB: "
                      f"{ok(r8m4['flash'], 65536)} ({r8m4['flash']:,} B, whole image incl. harness)."]
    kept = _kept_section(CYCLES_HEADING)
    if kept:  # hand-written (a CLI run, not this script's): carried over
        lines += ["", kept.rstrip("\n")]
    lines += ["", "## Beside MLPerf Tiny v0.7 image classification (int8 ResNet-8, STM32L4R5, Cortex-M4F "
              "at 120 MHz, measured on boards)", "",
              "| system | latency | accuracy |", "|---|---|---|",
              "| X-CUBE-AI (int8) | 253 ms | 85.0% |", "| Plumerai (int8) | 185 ms | 88.0% |"]
    r8 = rows.get("resnet8", {}).get("c", {})
    if "cortex-m4" in r8:
        n = r8["cortex-m4"]["instructions"]
        lines.append(f"| bnn2hw resnet8 (binary, 8-bit stream), QEMU | {n:,} instructions "
                     f"(= {n / 120e3:.1f} ms at 120 MHz only if 1 instruction/cycle) | not measured |")
    lines += ["", "Not comparable one to one: QEMU counts executed instructions, not cycles (a Cortex-M4 "
              "needs more than one cycle for loads, taken branches and flash wait states at 120 MHz), "
              "and the bnn2hw model is binary (±1 weights and activations, 8-bit stream) while the "
              "MLPerf entries are int8; their accuracy is measured on CIFAR-10, ours is not measured."]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
