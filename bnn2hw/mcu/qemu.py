# SPDX-License-Identifier: MIT
"""Run the firmware harness (firmware/harness/main.c) in QEMU or natively, and count the
instructions of one inference.

File protocol (both QEMU semihosting and the host binary, in a fresh temporary
directory): inputs.bin holds N * input_len bytes, the program writes logits.bin with
N * num_logits little-endian int32 and exits with status 0.

Instruction counting: the harness calls bnn_marker_begin() and bnn_marker_end() back to back
once (calibration), then around the first inference. The count is (instructions from entering
begin to entering end around the inference) minus the same for the calibration pair, i.e.
exactly the instructions of the bnn_infer() call (including its call/return). Deterministic: no
interrupts, no timers, one input.

Two ways to get the executed instructions from QEMU's log, both exact:

* :func:`count_cycles` (the default): ``-d in_asm,exec,nochain``. QEMU lists each translation
  block's instructions once and prints one "Trace" line per executed block, so the log is about
  8x smaller than one line per instruction and QEMU runs at its normal speed; the listing also
  gives every instruction's class and, with the next block's address, each branch's outcome,
  from which :mod:`bnn2hw.mcu.cycles` estimates Cortex-M4 / M7 cycles.
* ``count_instructions(..., single_step=True)``: one instruction per translation block
  (``-singlestep``, or ``-accel tcg,one-insn-per-tb=on`` from QEMU 8.1) with ``-d exec,nochain``,
  one "Trace" line per instruction (:class:`TraceCounter`); the reference the tests compare with.

The log is never stored: QEMU writes it into a FIFO and the counter consumes it in bounded
chunks (the single-step log of an 18.9 M-instruction CNN is 1.4 GB; memory stays at a few MB and
nothing is written to disk; the block log of the same run is counted in 5 s with a 57 MB peak
RSS, QEMU included).
"""

from __future__ import annotations

import functools
import os
import re
import select
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
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


def _check_exit(target: str, rc: int, stderr: bytes) -> None:
    if rc != 0:
        why = EXIT_MEANINGS.get(rc, "fault (exit 100 + exception number)" if 100 <= rc < 612 else "crash")
        err = stderr.decode(errors="replace").strip()
        raise Bnn2hwError(f"{target}: firmware exited with status {rc} ({why}) {err}".strip())


def _run_in(workdir: Path, elf: Path, target: str, timeout: float, extra: list[str]) -> subprocess.CompletedProcess:
    t = get_target(target)
    cmd = [str(Path(elf).resolve())] if t.qemu_machine is None else _qemu_cmd(elf, t.qemu_machine, extra)
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Bnn2hwError(f"{t.name}: firmware did not finish within {timeout:g} s (hung or crashed)") from exc
    _check_exit(t.name, proc.returncode, proc.stderr)
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


_TRACE = re.compile(rb"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")  # used with match() at a line start


class _LineStream(ABC):
    """Feeds a byte stream to ``self._lines(buf, end)`` in runs of complete lines, holding only the
    unfinished last line between chunks (QEMU's trace is never stored)."""

    bytes_seen = 0
    max_held = 0  # largest buffer held at once (bytes), for the memory tests
    _tail = b""

    @abstractmethod
    def _lines(self, buf: bytes, end: int) -> None:
        """Consume the complete lines buf[0:end] (buf[0] starts a line)."""

    def feed(self, chunk: bytes) -> None:
        self.bytes_seen += len(chunk)
        buf = self._tail + chunk if self._tail else chunk
        self.max_held = max(self.max_held, len(buf))
        cut = buf.rfind(b"\n") + 1
        self._tail = buf[cut:]
        if cut:
            self._lines(buf, cut)

    def close(self) -> None:
        if self._tail:
            tail, self._tail = self._tail + b"\n", b""
            self._lines(tail, len(tail))


class TraceCounter(_LineStream):
    """Streaming count over a QEMU ``-d exec`` trace: feed() it chunks of any size; it keeps
    only the unfinished last line and the line numbers of the first two entries of each marker.

    Lines are numbered by "Trace" lines only (other log lines are ignored); ``begins`` and
    ``ends`` hold the 0-based numbers of the lines whose PC is the begin / end marker."""

    def __init__(self, begin_pc: int, end_pc: int):
        self.pcs = {begin_pc: "begin", end_pc: "end"}
        # QEMU prints the PC as a zero-padded hex field between slashes: a cheap substring test
        # finds candidate lines, the full regex confirms them.
        self.tokens = [b"/%08x/" % pc for pc in self.pcs]
        self.lines = 0  # Trace lines seen so far (complete lines only)
        self.begins: list[int] = []
        self.ends: list[int] = []
        self.marker_hits = 0
        self.bytes_seen = 0
        self.max_held = 0  # largest buffer held at once (bytes), for the memory test
        self._tail = b""

    def _lines(self, buf: bytes, end: int) -> None:
        """Count the complete lines buf[0:end] (buf[0] starts a line)."""
        hits = []
        for tok in self.tokens:
            pos = buf.find(tok, 0, end)
            while pos >= 0:
                start = buf.rfind(b"\n", 0, pos) + 1
                m = _TRACE.match(buf, start, end)
                if m is not None and m.end() == pos + len(tok):
                    hits.append(start)
                pos = buf.find(tok, pos + 1, end)
        for start in sorted(set(hits)):
            m = _TRACE.match(buf, start, end)
            which = self.pcs.get(int(m.group(1), 16))
            if which is None:
                continue
            line = self.lines + self._count_trace_lines(buf, start)
            self.marker_hits += 1
            dest = self.begins if which == "begin" else self.ends
            if len(dest) < 2:
                dest.append(line)
        self.lines += self._count_trace_lines(buf, end)

    @staticmethod
    def _count_trace_lines(buf: bytes, end: int) -> int:
        """Trace lines starting in buf[0:end] (end is a line start or the block end)."""
        first = 1 if end > 0 and buf.startswith(b"Trace ") else 0
        return first + buf.count(b"\nTrace ", 0, end)

    def instructions(self, target: str) -> int:
        if len(self.begins) < 2 or len(self.ends) < 2:
            raise Bnn2hwError(f"{target}: marker calls not found in the QEMU exec log "
                              f"({self.lines} trace lines, {self.marker_hits} marker hits)")
        return (self.ends[1] - self.begins[1]) - (self.ends[0] - self.begins[0])


def consume_fifo(fd: int, counter: TraceCounter, proc: subprocess.Popen, writer_fd: int, deadline: float,
                 chunk_bytes: int = 1 << 20) -> None:
    """Feed everything written into the FIFO ``fd`` (opened non-blocking) to ``counter`` until
    ``proc`` has exited and the FIFO is drained. ``writer_fd`` is our own write end, which keeps
    the FIFO from reporting end-of-file before ``proc`` has opened it; it is closed here once
    ``proc`` has exited. TimeoutError past ``deadline`` (time.monotonic())."""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, chunk_bytes)
                except BlockingIOError:
                    data = None
                if data:
                    counter.feed(data)
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    continue
                if data == b"":  # every writer closed, ours included: done
                    break
            if writer_fd >= 0 and proc.poll() is not None:
                os.close(writer_fd)
                writer_fd = -1
            if time.monotonic() > deadline:
                raise TimeoutError
    finally:
        if writer_fd >= 0:
            os.close(writer_fd)
    counter.close()


def _symbol_addresses(elf: Path, names: tuple[str, ...]) -> dict[str, int]:
    proc = subprocess.run([find_tool("arm-none-eabi-nm"), str(elf)], capture_output=True, text=True, check=False)
    addr = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            addr[parts[2]] = int(parts[0], 16) & ~1
    missing = [n for n in names if n not in addr]
    if missing:
        raise Bnn2hwError(f"{elf}: symbols {missing} not found (not built with the bnn2hw harness?)")
    return addr


def parse_qemu_version(text: str) -> tuple[int, int]:
    """(major, minor) from ``qemu-system-arm --version`` output; (0, 0) if unrecognised."""
    m = re.search(r"version (\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def one_insn_per_tb_args(version: tuple[int, int]) -> list[str]:
    """QEMU options for one instruction per translation block."""
    return ["-accel", "tcg,one-insn-per-tb=on"] if version >= (8, 1) else ["-singlestep"]


@functools.cache
def _qemu_version(qemu_path: str) -> tuple[int, int]:
    proc = subprocess.run([qemu_path, "--version"], capture_output=True, text=True, check=False)
    return parse_qemu_version(proc.stdout)


class BlockTraceCounter(_LineStream):
    """Streaming instruction, class and cycle count over QEMU's ``-d in_asm,exec,nochain`` log
    (translation blocks, no single-stepping): feed() it chunks of any size.

    ``in_asm`` prints each block's instructions once, when it is translated, right before its
    first execution; ``exec`` prints one "Trace" line per executed block with the host address
    of its code, which binds the line to the block. The instructions executed are the blocks'
    instructions in trace order, so the count is exact (the same as one instruction per block,
    which is 8x slower and writes 8x more log). A block's successor tells whether its final
    branch was taken (the next block does not start at the fall-through address).

    Two windows are kept, like :class:`TraceCounter`: from entering ``begin_pc`` to entering
    ``end_pc``, the first (calibration) and second (around the inference) time. Memory: the
    blocks seen (a few per static instruction) and one counter per (block, branch outcome)."""

    def __init__(self, begin_pc: int, end_pc: int, insns: dict):
        self.begin_pc, self.end_pc = begin_pc, end_pc
        self.insns = insns  # pc -> cycles.Insn (the ELF's disassembly)
        self.blocks: list = []  # block id -> cycles.BlockCost
        self._by_host: dict[bytes, int] = {}
        self._pending: list[tuple[int, int]] = []  # (pc, bytes) of the block being listed
        self.windows: list[dict] = [{}, {}]  # (block id, taken) -> executions
        self._win = -1  # index of the open window, -1 if none
        self._begins = 0
        self._ends = 0
        self._prev = -1  # block id of the previous block in the open window
        self.unknown_pcs: set[int] = set()
        self.bytes_seen = 0
        self.max_held = 0
        self._tail = b""

    def _new_block(self, listed: list[tuple[int, int]]) -> int:
        """A block from its in_asm listing [(pc, bytes)]: the ELF's instructions from the first
        listed address to the end of the last one. QEMU's disassembler (capstone) does not know
        every instruction (e.g. Armv8.1-M's DLS/LE, printed as two ``.byte`` halves), so only the
        listing's address range is trusted; the instructions come from objdump."""
        from .cycles import BlockCost, decode

        start, end = listed[0][0], listed[-1][0] + listed[-1][1]
        insns, pc = [], start
        while pc < end and pc in self.insns:
            insns.append(self.insns[pc])
            pc += self.insns[pc].size
        if pc != end:  # not in the ELF's disassembly: the listing's items, as 1-cycle "other"
            self.unknown_pcs.update(p for p, _ in listed)
            insns = [self.insns.get(p) or decode(p, n, "?", "") for p, n in listed]
        self.blocks.append(BlockCost.of(insns))
        return len(self.blocks) - 1

    def _lines(self, buf: bytes, end: int) -> None:
        blocks, by_host, pending = self.blocks, self._by_host, self._pending
        for m in _BLOCK_LOG.finditer(buf, 0, end):
            host = m.group(1)
            if host is None:
                pc_text = m.group(3)
                if pc_text is not None:
                    pending.append((int(pc_text, 16), len(m.group(4).replace(b" ", b"")) // 2))
                else:  # "IN:": a new block's listing starts
                    pending.clear()
                continue
            if pending:
                if int(m.group(2), 16) != pending[0][0]:
                    raise Bnn2hwError(f"QEMU log: block listed at 0x{pending[0][0]:x} but executed at "
                                      f"0x{int(m.group(2), 16):x}")
                by_host[host] = self._new_block(pending)
                pending.clear()
            bid = by_host.get(host)
            if bid is None:
                raise Bnn2hwError(f"QEMU log: block {host.decode()} executed before it was listed "
                                  "(-d in_asm missing?)")
            pc = int(m.group(2), 16)
            if self._win >= 0:
                prev = self._prev
                if prev >= 0:
                    taken = pc != blocks[prev].fallthrough if blocks[prev].last_branch is not None else None
                    key = (prev, taken)
                    w = self.windows[self._win]
                    w[key] = w.get(key, 0) + 1
                if pc == self.end_pc:
                    self._ends += 1
                    self._win = -1
                    self._prev = -1
                    continue
                self._prev = bid
            elif pc == self.begin_pc and self._begins < 2:
                self._win = self._begins
                self._begins += 1
                self._prev = bid

    def estimate(self, target: str):
        """The inference's :class:`bnn2hw.mcu.cycles.CycleEstimate` (second window minus the
        calibration window)."""
        from .cycles import CycleEstimate

        if self._begins < 2 or self._ends < 2:
            raise Bnn2hwError(f"{target}: marker calls not found in the QEMU exec log "
                              f"({len(self.blocks)} blocks, {self._begins} begin / {self._ends} end markers)")
        est = []
        for w in self.windows:
            e = CycleEstimate()
            for (bid, taken), n in w.items():
                e.add(self.blocks[bid], taken, n)
            est.append(e)
        return est[1].minus(est[0])

    def instructions(self, target: str) -> int:
        return self.estimate(target).instructions


# "Trace 0: 0x7f.. [cs_base/pc/flags/cflags] sym", an in_asm "0x000006e4:  f843 1b04  str ..."
# line, or "IN: sym" (QEMU 7.2 .. 10 formats)
_BLOCK_LOG = re.compile(rb"^(?:Trace \d+: (0x[0-9a-f]+) \[[0-9a-f]+/([0-9a-f]+)/[^\n]*"
                        rb"|(?:0x)?([0-9a-f]{8}):  ([0-9a-f]{4}(?: [0-9a-f]{4})?)[^\n]*|IN:[^\n]*)$", re.MULTILINE)


def _run_traced(elf: Path, target: str, one_input: np.ndarray, counter, log: str, step: list[str],
                timeout: float) -> None:
    """Run ``elf`` on one input with QEMU's ``-d log`` written into a FIFO that ``counter`` consumes."""
    t = get_target(target)
    x = np.ascontiguousarray(one_input, dtype=np.uint8).reshape(1, -1)
    with tempfile.TemporaryDirectory(prefix="bnn2hw-count-") as tmp:
        work = Path(tmp)
        x.tofile(work / "inputs.bin")
        fifo = work / "exec.fifo"
        os.mkfifo(fifo)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:  # a larger pipe buffer means fewer wake-ups (Linux only; best effort)
                import fcntl

                fcntl.fcntl(rfd, fcntl.F_SETPIPE_SZ, 1 << 20)
            except (ImportError, AttributeError, OSError):
                pass
            cmd = _qemu_cmd(elf, t.qemu_machine, [*step, "-d", log, "-D", str(fifo)])
            with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
                proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=err)
            try:
                consume_fifo(rfd, counter, proc, wfd, time.monotonic() + timeout)
                rc = proc.wait(timeout=max(1.0, timeout))
            except (TimeoutError, subprocess.TimeoutExpired) as exc:
                raise Bnn2hwError(f"{t.name}: firmware did not finish within {timeout:g} s "
                                  "(hung or crashed)") from exc
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        finally:
            os.close(rfd)
        _check_exit(t.name, rc, (work / "stderr").read_bytes())


def _check_counting_target(target: str):
    t = get_target(target)
    if t.qemu_machine is None:
        raise Bnn2hwError("instruction counting needs a Cortex-M target, not host")
    return t


def count_cycles(elf: Path, target: str, one_input: np.ndarray, timeout: float = 300.0):
    """Instructions, instruction classes and estimated cycles of one bnn_infer() call
    (:class:`bnn2hw.mcu.cycles.CycleEstimate`), from QEMU's block trace streamed through a
    FIFO (:class:`BlockTraceCounter`; never stored)."""
    from .cycles import disassemble

    t = _check_counting_target(target)
    addr = _symbol_addresses(elf, ("bnn_marker_begin", "bnn_marker_end"))
    counter = BlockTraceCounter(addr["bnn_marker_begin"], addr["bnn_marker_end"], disassemble(elf, t.name))
    _run_traced(elf, t.name, one_input, counter, "in_asm,exec,nochain", [], timeout)
    return counter.estimate(t.name)


def count_instructions(elf: Path, target: str, one_input: np.ndarray, timeout: float = 300.0,
                       single_step: bool = False) -> int:
    """Executed instructions of one bnn_infer() call (see the module docstring). By default from
    the block trace (:func:`count_cycles`); ``single_step=True`` counts one "Trace" line per
    instruction (:class:`TraceCounter`, the slower reference method)."""
    if not single_step:
        return count_cycles(elf, target, one_input, timeout).instructions
    t = _check_counting_target(target)
    addr = _symbol_addresses(elf, ("bnn_marker_begin", "bnn_marker_end"))
    counter = TraceCounter(addr["bnn_marker_begin"], addr["bnn_marker_end"])
    step = one_insn_per_tb_args(_qemu_version(find_tool("qemu-system-arm")))
    _run_traced(elf, t.name, one_input, counter, "exec,nochain", step, timeout)
    return counter.instructions(t.name)
