# SPDX-License-Identifier: MIT
"""``bnn2hw emit-c``: checkpoint -> verified IR -> C99 firmware (+ optional QEMU verification).

All or nothing: the firmware folder, its verification (host and QEMU builds run on a copy) and
``report.json`` are completed in a temporary folder, which replaces ``-o`` only at the end
(:func:`bnn2hw.outdir.write_dir_atomically`). A failed verification, a missing toolchain or an
interrupt leaves ``-o`` as it was."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import Bnn2hwError
from ..fpga.build import dumps
from ..outdir import write_dir_atomically
from . import codegen
from .targets import get_target

def firmware_readme(target: str, name: str = "model") -> str:
    """``README.md`` of a generated firmware folder."""
    fn, up = ("bnn", "BNN") if name == "model" else (name, name.upper())
    lib = "bnn_model" if name == "model" else name
    return f"""# Generated bnn2hw firmware

`{name}.c`/`{name}.h` hold the network (static const weights, a static scratch arena, no malloc);
`bnn_*.c`/`bnn_*.h` are the runtime kernels. Call

    int32_t logits[{up}_NUM_LOGITS];
    int rc = {fn}_infer(pixels, {up}_INPUT_LEN, logits, {up}_NUM_LOGITS);   /* or {fn}_predict() */

## Into your project

* **CMake**: `add_subdirectory(<this folder>)` and `target_link_libraries(app PRIVATE {lib})`.
  Standalone host build and self-test: `cmake -S . -B build && cmake --build build && ctest --test-dir build`.
  Cortex-M: `-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake` (flags for {target}; override `BNN_CPU_FLAGS`).
* **Zephyr**: this folder is a module (`zephyr/module.yml`): add it to `ZEPHYR_EXTRA_MODULES` and set
  `CONFIG_BNN_MODEL_{name.upper()}=y`.
* **Arduino**: copy `arduino/bnn2hw_{name}` into your `libraries/` folder and `#include "{name}.h"`.
* **Anything else** (STM32Cube, IAR, Keil): add `{name}.c` and `bnn_*.c` to the sources and this folder to the
  include path; compile with `-std=c99 -O2` and the core's flags.

## Test harness (not for your firmware)

`main.c`, `startup.c`, `semihost.c`, `*.ld`, the `Makefile` and `bnn_harness*.h` run the model in QEMU:
`make` builds for {target} (the `--target` given to emit-c), `make TARGET=host` with sanitizers.
`report.json` has the verification results, flash, RAM and instructions per inference.
"""


def to_c_inputs(graph, x_u8: np.ndarray) -> np.ndarray:
    """PyTorch-layout uint8 data -> the C input layout (channels-last, row-major bytes); for a
    binary-input graph, ±1 vectors -> packed 32-bit words as little-endian bytes."""
    if graph.input_kind == "bits":
        words = codegen.pack_bits(np.asarray(x_u8).reshape(len(x_u8), -1))
        return np.ascontiguousarray(words.astype("<u4")).view(np.uint8).reshape(len(x_u8), -1)
    if x_u8.ndim == 4:
        x_u8 = x_u8.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x_u8.reshape(len(x_u8), -1)).astype(np.uint8)


def conv_choice_line(ch: dict) -> str:
    """One CLI line per binary conv on bits: the kernel picked (--optimize) and each format's
    Cortex-M4 estimate, layer flash and work memory (report.json conv_choices)."""
    est, fl = ch["estimated_instructions_m4"], ch["flash_bytes"]
    if ch["kernel"] == "position-sliced":
        return (f"  {ch['layer']}: position-sliced kernel on Cortex-M3/M4/M7/M33 (multi popcount; other cores: rows) "
                f"(--optimize {ch['optimize']}); estimated M4 instructions position-sliced {est['position_sliced']:,} "
                f"vs rows {est['rows']:,}, prepared rows {est['prepared_rows']:,}"
                + (f", column-sliced {est['column_sliced']:,}" if est["column_sliced"] is not None else "")
                + f"; layer flash {fl['position_sliced']:,} B vs {fl['rows']:,} B; position-sliced work memory "
                f"{ch['position_sliced_work_bytes']:,} B")
    if not ch["column_sliced_supported"]:
        return f"  {ch['layer']}: row kernel (the column-sliced kernel does not support this shape)"
    where = "on Cortex-M3/M4/M7/M33 (multi popcount; other cores: rows)" if ch["kernel"] == "column-sliced" else ""
    return (f"  {ch['layer']}: {ch['kernel']} kernel {where}(--optimize {ch['optimize']}); estimated M4 instructions "
            f"column-sliced {est['column_sliced']:,} vs rows {est['rows']:,}; layer flash {fl['column_sliced']:,} B vs "
            f"{fl['rows']:,} B; column-sliced work memory {ch['column_sliced_work_bytes']:,} B")


def fill_firmware_dir(graph, dest: Path, target: str, popcount: Optional[str] = None,
                      name: str = "model", optimize: str = "speed") -> codegen.Emitted:
    """Write NAME.c/NAME.h (``model`` by default), the runtime, the harness (its Makefile defaults
    to ``target`` and ``popcount``) and the build-system files (CMake, Zephyr, Arduino, self-test;
    :mod:`bnn2hw.mcu.packaging`) into the (new, empty) folder ``dest``."""
    from .packaging import check_name, rename_model, write_packaging
    from .toolchain import write_harness

    check_name(name)
    em = codegen.emit(graph, optimize=optimize)
    header, source = rename_model(em.header, em.source, name)
    (dest / f"{name}.h").write_text(header)
    (dest / f"{name}.c").write_text(source)
    write_harness(dest, target, popcount, name)
    write_packaging(graph, dest, name, get_target(target))
    (dest / "README.md").write_text(firmware_readme(target, name))
    return em


def write_firmware_dir(graph, out_dir: Path, target: str, force: bool = False, name: str = "model",
                       popcount: Optional[str] = None, optimize: str = "speed") -> codegen.Emitted:
    """NAME.c/NAME.h + runtime + harness + build files, written to a temp dir then moved into place."""
    result = {}

    def fill(tmp: Path) -> None:
        result["em"] = fill_firmware_dir(graph, tmp, target, popcount, name, optimize)

    write_dir_atomically(Path(out_dir), fill, marker=f"{name}.h", force=force)
    return result["em"]


def latency_fields(est, target: str, clock_mhz: float) -> dict:
    """report.json fields of one inference's :class:`bnn2hw.mcu.cycles.CycleEstimate` on
    ``target`` at ``clock_mhz``: instruction classes, branches, estimated cycles (and the upper
    end of the TRM's ranges), latency, and what the estimate leaves out."""
    from .cycles import ERROR_SOURCES, check_clock_mhz

    clock = check_clock_mhz(clock_mhz)
    cyc, upper, model = est.cycles_for(target)
    approx = "" if target in ("cortex-m0", "cortex-m4", "cortex-m7") else f" (the Cortex-M4 table applied to {target})"
    return {"instruction_classes": dict(est.classes),
            "branches_taken": est.branches_taken, "branches_not_taken": est.branches_not_taken,
            "estimated_cycles": cyc, "estimated_cycles_upper": upper,
            "cycle_model": f"estimate: {model}{approx}, zero wait states; bnn2hw/mcu/cycles.py",
            "clock_mhz": clock, "estimated_latency_ms": cyc / (clock * 1e3),
            "cycle_error_sources": list(ERROR_SOURCES)}


def verify_firmware(graph, out_dir: Path, target: str, x_u8: np.ndarray, popcount: Optional[str] = None,
                    host: bool = True, echo=print, clock_mhz: Optional[float] = None, ref=None) -> dict:
    """Build and run on the host (sanitizers on) and in QEMU for ``target``; compare every
    integer logit with the IR executor on every sample (QEMU without tracing), then count the
    instructions and estimate the cycles of the first sample's inference (block trace)."""
    from .cycles import DEFAULT_CLOCK_MHZ
    from ..ir import execute
    from . import qemu, toolchain

    ref = ref if ref is not None else execute.run(graph, x_u8)  # the IR's trace on x_u8, if already run
    inputs = to_c_inputs(graph, x_u8)
    result: dict = {"samples": int(len(x_u8))}
    runs = (["host"] if host else []) + ([target] if target != "host" else [])
    for t in runs:
        with tempfile.TemporaryDirectory() as tmpd:
            work = Path(tmpd) / "fw"
            shutil.copytree(out_dir, work)
            elf = toolchain.build(work, t, popcount=popcount)
            got = qemu.run(elf, t, inputs, graph.num_classes)
            diff = int((got != ref.int_logits).sum())
            entry = {"int_logits_differing": diff,
                     "class_agreement": float(((got * graph.layers[-1].arrays["scale"] +
                                                graph.layers[-1].arrays["bias"]).argmax(1)
                                               == ref.logits.argmax(1)).mean())}
            if diff:
                echo(f"{t}: {len(x_u8)} inputs, integer logits differing from the IR: {diff}")
                raise Bnn2hwError(f"firmware on {t} disagrees with the IR on {diff} integer logits")
            if t != "host":
                sz = toolchain.size(elf)
                est = qemu.count_cycles(elf, t, inputs[0])
                clock = clock_mhz if clock_mhz is not None else DEFAULT_CLOCK_MHZ[t]
                entry.update({"flash_bytes": sz.flash, "ram_bytes": sz.ram,
                              "instructions_per_inference": est.instructions,
                              **latency_fields(est, t, clock)})
            result[t] = entry
            echo(f"{t}: {len(x_u8)} inputs, integer logits differing from the IR: {diff}"
                 + (f"; flash {entry['flash_bytes']} B, RAM {entry['ram_bytes']} B, "
                    f"{entry['instructions_per_inference']} instructions/inference, "
                    f"estimated {entry['estimated_cycles']} cycles = {entry['estimated_latency_ms']:.3g} ms "
                    f"at {entry['clock_mhz']:g} MHz (estimate: zero wait states, no cache effects; "
                    f"up to {entry['estimated_cycles_upper']} cycles with the TRM's slowest branch refill)"
                    if t != "host" else " (gcc -Wall -Wextra -Werror -fsanitize=address,undefined)"))
    return result


def periodic_report(graph, exp) -> list[dict]:
    """Per periodic op: max |approx - f| over the calibrated input range (M-BiPer eq. 10-11)."""
    from . import periodic_tables as pt

    rows = []
    for layer in graph.layers:
        if layer.op != "periodic":
            continue
        at = layer.attrs
        lo, hi = at["calib_range"]
        method = {"fixed": "linear"}.get(at["approx"], at["approx"])
        err = pt.max_abs_error(method, at["w0"], at["in_frac"], at["out_frac"], lo, hi,
                               table_bits=at.get("table_bits", 8), func=at["func"])
        rows.append({"layer": layer.name, "func": at["func"], "approx": at["approx"], "w0": at["w0"],
                     "input_range": [lo, hi], "in_frac": at["in_frac"], "out_frac": at["out_frac"],
                     "table_bits": at.get("table_bits"), "max_abs_error": err})
    return rows


def emit_c(checkpoint: Path, target: str, out_dir: Path, popcount: Optional[str] = None,
           verify: bool = False, dataset: Optional[str] = None, verify_samples: Optional[int] = None,
           act_approx: Optional[str] = None, lut_bits: Optional[int] = None, echo=print, warn=None,
           check_torch: bool = True, force: bool = False, plots: bool = True, name: str = "model",
           clock_mhz: Optional[float] = None, optimize: str = "speed") -> dict:
    """Everything ``bnn2hw emit-c`` does; ``out_dir`` gets the complete result or nothing.
    ``optimize`` (``--optimize``): "speed" (default) or "size" (conv_vcols.OPTIMIZE).

    ``check_torch=False`` (``--no-verify``) folds without data: no PyTorch == IR check."""
    from ..export.pipeline import export_ir, test_inputs

    tgt = get_target(target)
    if clock_mhz is not None:
        from .cycles import check_clock_mhz

        check_clock_mhz(clock_mhz)
    from .conv_vcols import check_optimize

    check_optimize(optimize)
    exp = export_ir(checkpoint, dataset, verify=check_torch, act_approx=act_approx or "lut",
                    lut_bits=lut_bits or 8, need_data=check_torch)
    graph = exp.graph
    if (act_approx is not None or lut_bits is not None) and not graph.meta.get("fixed_point"):
        (warn or echo)(f"--act-approx/--lut-bits have no effect: {checkpoint} has no periodic "
                       "activation (only mbiper-mlp models do)")
    if popcount is not None and not verify:
        (warn or echo)(f"--popcount {popcount} only sets the default of the generated Makefile "
                       "(no --verify build runs)")
    report: dict = {}

    def fill(tmp: Path) -> None:
        em = fill_firmware_dir(graph, tmp, tgt.name, popcount, name, optimize)
        report.update({"target": tgt.name, "model_hash": graph.meta["model_hash"],
                       "scratch_bytes": em.scratch_bytes,
                       "flash_lower_bound_bytes": em.flash_lower_bound_bytes,
                       "optimize": optimize, "conv_choices": em.conv_choices,
                       "accumulators": codegen.check_accumulators(graph)})
        if graph.meta.get("fixed_point"):
            _report_fixed_point(graph, exp, report, echo)
        if exp.reference:  # a front end's reference check (QONNX: qonnx's execution of the file)
            report["reference"] = exp.reference
        echo(f"generated model.c, model.h and the runtime; scratch arena {em.scratch_bytes} B, "
             f"flash lower bound {em.flash_lower_bound_bytes} B (weight bits / 8 + 4 B per threshold)")
        for ch in em.conv_choices:
            echo(conv_choice_line(ch))
        if verify:
            from ..ir import execute

            x, y = test_inputs(exp, verify_samples)
            ir_ref = execute.run(graph, x)
            report["verification"] = verify_firmware(graph, tmp, tgt.name, x, popcount, echo=echo,
                                                     clock_mhz=clock_mhz, ref=ir_ref)
            if y is not None:
                ir_acc = float((ir_ref.logits.argmax(1) == y).mean())
                pt_acc = exp.checkpoint["meta"].get("test_accuracy")
                report["accuracy"] = {"pytorch": pt_acc, "device": ir_acc}
                echo(f"accuracy on {tgt.name} (QEMU): {ir_acc:.4f} on {len(x)} test samples"
                     + (f"; PyTorch: {pt_acc:.4f}" if isinstance(pt_acc, float) else ""))
        (tmp / "report.json").write_text(dumps(report))
        if plots:
            from ..plots import plot_layer_costs

            plot_layer_costs(graph, tmp / "layer_costs.png", tgt.name if tgt.name != "host" else "cortex-m4")

    write_dir_atomically(Path(out_dir), fill, marker=f"{name}.h", force=force)
    echo(f"wrote {out_dir}/ ({name}.c, {name}.h, runtime, harness, CMake/Zephyr/Arduino files, report.json"
         + (", layer_costs.png: estimated instructions and flash per layer)" if plots else ")"))
    return report


def _report_fixed_point(graph, exp, report: dict, echo) -> None:
    report["periodic"] = periodic_report(graph, exp)
    for r in report["periodic"]:
        echo(f"{r['layer']}: {r['func']}({r['w0']:g} x) by '{r['approx']}' on [{r['input_range'][0]:.3g}, "
             f"{r['input_range'][1]:.3g}]: max abs error {r['max_abs_error']:.3g}")
    if exp.torch_vs_ir is not None:
        from ..ir import execute

        agr = exp.torch_vs_ir
        x, y = exp.data.x_test, exp.data.y_test
        ir_acc = float((execute.run(graph, x).logits.argmax(1) == y).mean())
        pt_acc = float((exp.torch_logits.argmax(1) == y).mean()) if exp.torch_logits is not None else None
        report["fixed_point_vs_pytorch"] = {**agr.to_dict(), "ir_accuracy": ir_acc, "pytorch_accuracy": pt_acc}
        echo(f"fixed point vs PyTorch float: {agr.bits_differing} of {agr.bits_compared} sign bits differ, "
             f"class agreement {agr.class_agreement:.4f}, accuracy {pt_acc:.4f} -> {ir_acc:.4f}")
