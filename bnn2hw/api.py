# SPDX-License-Identifier: MIT
"""The Python API: load a model, look at it, run it, and deploy it.

    import bnn2hw
    g = bnn2hw.load("model.pt")              # or "model.bnnir.npz"; returns the IR graph
    print(g.summary())                       # per-layer MACs, bits, flash, RAM, instructions, FINN cycles
    logits = g.predict(x_uint8)              # integer logits from the numpy reference executor
    fw = g.emit_c(target="cortex-m4", out_dir="fw/")
    fw.compile()                             # host shared library of the generated C
    assert (fw.predict(x_uint8) == logits).all()   # the generated C through ctypes, bit for bit
    fw.run_qemu(x_uint8)                     # the same C cross-compiled and run on the emulated core
    g.export_fpga(target="pynq-z2", out_dir="build/")

Inputs are uint8 arrays in the PyTorch layout, ``(N, C, H, W)`` or ``(N, F)`` (a binary-input
graph takes ±1 values). Outputs are the integer logits ``(N, classes)`` (int64 from the
reference, int32 from C); ``Graph.scores`` applies the float affine of the last layer.
The CLI commands call the same functions.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import Bnn2hwError
from .ir.graph import Graph

__all__ = ["load", "Firmware"]


def load(path: str | Path, dataset: str | None = None) -> Graph:
    """A bnn2hw checkpoint (``.pt``, folded to the IR; fixed-point models are calibrated on
    ``dataset`` or the recorded training data) or an IR file (``.bnnir.npz``), validated."""
    path = Path(path)
    if path.name.endswith(".npz"):
        from .ir.graph import load_ir

        return load_ir(path)
    if path.suffix == ".onnx":  # a QONNX file (Brevitas export_qonnx): the QONNX front end
        from .frontends.qonnx_import import import_qonnx

        return import_qonnx(path).graph
    from .checkpoint import read_checkpoint
    from .export.pipeline import export_ir

    arch = read_checkpoint(path)["spec"].get("arch")
    needs_data = arch == "mbiper-mlp" or dataset is not None
    return export_ir(path, dataset, verify=needs_data, need_data=needs_data).graph


@dataclass
class Firmware:
    """A generated firmware folder (``model.c``/``model.h`` + runtime + harness)."""

    graph: Graph
    out_dir: Path
    target: str
    name: str = "model"
    report: dict = field(default_factory=dict)
    _lib: ctypes.CDLL | None = None

    def compile(self, cflags: tuple[str, ...] = ("-O2",)) -> Path:
        """Build ``libbnn_model.so`` from the generated C on the host (``gcc -std=c99 -Wall
        -Wextra -Werror -shared``) and load it; returns the library's path."""
        gcc = shutil.which("gcc")
        if gcc is None:
            raise Bnn2hwError("gcc not found: apt-get install gcc")
        d = Path(self.out_dir)
        lib = d / "libbnn_model.so"
        srcs = [str(d / f"{self.name}.c")] + sorted(str(p) for p in d.glob("bnn_*.c"))
        cmd = [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", *cflags, "-fPIC", "-shared", "-DBNN_HOST",
               "-DBNN_POPCOUNT=4", f"-I{d}", *srcs, "-o", str(lib)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise Bnn2hwError(f"compiling {d} as a host library failed:\n{proc.stderr}")
        self._lib = ctypes.CDLL(str(lib))
        self._infer = getattr(self._lib, "bnn_infer" if self.name == "model" else f"{self.name}_infer")
        self._infer.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        self._infer.restype = ctypes.c_int
        return lib

    def _inputs(self, x) -> np.ndarray:
        from .mcu.cli import to_c_inputs

        x = np.asarray(x)
        if self.graph.input_kind == "u8" and x.dtype != np.uint8:
            raise Bnn2hwError(f"inputs must be uint8, got {x.dtype}")
        return to_c_inputs(self.graph, x)

    def predict(self, x) -> np.ndarray:
        """Integer logits ``(N, classes)`` from the generated C, called through ctypes."""
        if self._lib is None:
            self.compile()
        rows = self._inputs(x)
        k = self.graph.num_classes
        out = np.zeros((len(rows), k), dtype=np.int32)
        for i, row in enumerate(rows):
            buf = np.ascontiguousarray(row, dtype=np.uint8)
            rc = self._infer(buf.ctypes.data, buf.size, out[i].ctypes.data, k)
            if rc < 0:
                raise Bnn2hwError(f"bnn_infer returned {rc} on input {i}")
        return out

    def run_qemu(self, x, target: str | None = None) -> np.ndarray:
        """Integer logits from the firmware cross-compiled for ``target`` (default: the one it
        was generated for) and run in QEMU (``host`` runs natively with sanitizers)."""
        import tempfile

        from .mcu import qemu, toolchain

        t = target or self.target
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "fw"
            shutil.copytree(self.out_dir, work)
            elf = toolchain.build(work, t)
            return qemu.run(elf, t, self._inputs(x), self.graph.num_classes)


def graph_predict(graph: Graph, x) -> np.ndarray:
    from .ir import execute

    return execute.run(graph, np.asarray(x)).int_logits


def graph_scores(graph: Graph, x) -> np.ndarray:
    from .ir import execute

    return execute.run(graph, np.asarray(x)).logits


def graph_summary(graph: Graph, core: str = "cortex-m4", clock_mhz: float = 100.0,
                  target_fps: float = 1e6) -> str:
    from .ir.summary import summary_table
    from .mcu import codegen

    return summary_table(graph, core, clock_mhz, target_fps, scratch_bytes=codegen.emit(graph).scratch_bytes)


def graph_emit_c(graph: Graph, target: str = "cortex-m4", out_dir: str | Path = "fw", force: bool = False,
                 name: str = "model") -> Firmware:
    from .mcu.cli import write_firmware_dir
    from .mcu.targets import get_target

    t = get_target(target).name
    em = write_firmware_dir(graph, Path(out_dir), t, force=force, name=name)
    return Firmware(graph, Path(out_dir), t, name, {"scratch_bytes": em.scratch_bytes,
                                              "flash_lower_bound_bytes": em.flash_lower_bound_bytes})


def graph_export_fpga(graph: Graph, target: str = "pynq-z2", out_dir: str | Path = "build", x=None,
                      clock_mhz: float = 100.0, target_fps: float = 1e6, force: bool = False) -> dict:
    from .fpga.cli import write_fpga_build

    return write_fpga_build(graph, target, Path(out_dir), x=x, clock_mhz=clock_mhz, target_fps=target_fps,
                            force=force)
