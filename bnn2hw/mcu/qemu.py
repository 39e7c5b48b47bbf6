# SPDX-License-Identifier: MIT
"""Run the firmware harness (firmware/harness/main.c) in QEMU or natively, and count the
instructions of one inference.

File protocol (both QEMU semihosting and the host binary, in a fresh temporary
directory): inputs.bin holds N * input_len bytes, the program writes logits.bin with
N * num_logits little-endian int32 and exits with status 0.

Instruction counting: QEMU runs with ``-singlestep -d exec,nochain`` so every executed
instruction is one "Trace" line carrying its PC.  The harness calls bnn_marker_begin()
and bnn_marker_end() back to back once (calibration), then around the first inference.
The count is (lines from entering begin to entering end around the inference) minus the
same for the calibration pair, i.e. exactly the instructions of the bnn_infer() call
(including its call/return).  Deterministic: no interrupts, no timers, one input.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu.targets import get_target
from bnn2hw.mcu.toolchain import find_tool

EXIT_MEANINGS = {
    2: "cannot open inputs.bin or write logits.bin",
    3: "inputs.bin is not a multiple of BNN_INPUT_LEN",
    4: "bnn_infer returned an error",
}


def _qemu_cmd(elf: Path, machine: str, extra: list[str]) -> list[str]:
    return [
        find_tool("qemu-system-arm"),
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        *extra,
        "-kernel",
        str(Path(elf).resolve()),
    ]


def _run_in(workdir: Path, elf: Path, target: str, timeout: float, extra: list[str]) -> subprocess.CompletedProcess:
    t = get_target(target)
    cmd = [str(Path(elf).resolve())] if t.qemu_machine is None else _qemu_cmd(elf, t.qemu_machine, extra)
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise Bnn2hwError(f"{t.name}: firmware did not finish within {timeout:g} s (hung or crashed)") from exc
    if proc.returncode != 0:
        rc = proc.returncode
        why = EXIT_MEANINGS.get(rc, "fault (exit 100 + exception number)" if 100 <= rc < 612 else "crash")
        err = proc.stderr.decode(errors="replace").strip()
        raise Bnn2hwError(f"{t.name}: firmware exited with status {rc} ({why}) {err}".strip())
    return proc


def run(elf: Path, target: str, inputs: np.ndarray, num_logits: int, timeout: float = 120.0) -> np.ndarray:
    """Run every row of inputs (uint8 [N, input_len]); returns int32 logits [N, num_logits]."""
    x = np.ascontiguousarray(inputs, dtype=np.uint8)
    if x.ndim != 2:
        raise Bnn2hwError(f"inputs must be a 2-D uint8 array [N, input_len], got shape {x.shape}")
    with tempfile.TemporaryDirectory(prefix="bnn2hw-run-") as tmp:
        work = Path(tmp)
        x.tofile(work / "inputs.bin")
        _run_in(work, elf, target, timeout, [])
        out = np.fromfile(work / "logits.bin", dtype="<i4")
    if out.size != x.shape[0] * num_logits:
        raise Bnn2hwError(f"logits.bin has {out.size} values, expected {x.shape[0]} x {num_logits}")
    return out.astype(np.int32).reshape(x.shape[0], num_logits)


_TRACE = re.compile(rb"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/", re.M)


def _symbol_addresses(elf: Path, names: tuple[str, ...]) -> dict[str, int]:
    proc = subprocess.run([find_tool("arm-none-eabi-nm"), str(elf)], capture_output=True, text=True)
    addr = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            addr[parts[2]] = int(parts[0], 16) & ~1
    missing = [n for n in names if n not in addr]
    if missing:
        raise Bnn2hwError(f"{elf}: symbols {missing} not found (not built with the bnn2hw harness?)")
    return addr


def count_instructions(elf: Path, target: str, one_input: np.ndarray, timeout: float = 300.0) -> int:
    """Executed instructions of one bnn_infer() call (see the module docstring)."""
    t = get_target(target)
    if t.qemu_machine is None:
        raise Bnn2hwError("instruction counting needs a Cortex-M target, not host")
    x = np.ascontiguousarray(one_input, dtype=np.uint8).reshape(1, -1)
    addr = _symbol_addresses(elf, ("bnn_marker_begin", "bnn_marker_end"))
    with tempfile.TemporaryDirectory(prefix="bnn2hw-count-") as tmp:
        work = Path(tmp)
        x.tofile(work / "inputs.bin")
        _run_in(work, elf, target, timeout, ["-singlestep", "-d", "exec,nochain", "-D", str(work / "exec.log")])
        log = (work / "exec.log").read_bytes()
    begins, ends = [], []
    for i, m in enumerate(_TRACE.finditer(log)):
        pc = int(m.group(1), 16)
        if pc == addr["bnn_marker_begin"]:
            begins.append(i)
        elif pc == addr["bnn_marker_end"]:
            ends.append(i)
    if len(begins) < 2 or len(ends) < 2:
        raise Bnn2hwError(f"{t.name}: marker calls not found in the QEMU exec log")
    return (ends[1] - begins[1]) - (ends[0] - begins[0])
