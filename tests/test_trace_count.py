# SPDX-License-Identifier: MIT
"""Instruction counting streams the QEMU trace (issue 8, defect 11): the count equals the
whole-log count, chunk boundaries do not matter, and a 96 MB trace pushed through the FIFO is
counted with a few MB of memory. Also: the generated Makefile defaults to the chosen target."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu import qemu, toolchain

BEGIN, END = 0x6F0, 0x1A4C  # marker PCs of the synthetic traces
_WHOLE_LOG = re.compile(rb"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/", re.MULTILINE)


def _line(pc: int, sym: str = "f") -> bytes:
    return b"Trace 0: 0x7f173c000100 [00800408/%08x/00000110/ff000201] %s\n" % (pc, sym.encode())


def _reference_count(log: bytes) -> int:
    """The former implementation: the whole log in memory, one regex pass."""
    begins, ends = [], []
    for i, m in enumerate(_WHOLE_LOG.finditer(log)):
        pc = int(m.group(1), 16)
        if pc == BEGIN:
            begins.append(i)
        elif pc == END:
            ends.append(i)
    return (ends[1] - begins[1]) - (ends[0] - begins[0])


def _synthetic_log(seed: int, body: int) -> tuple[bytes, int]:
    """Calibration pair, then begin, ``body`` random instructions (some carrying a marker value
    in the flags field, which is not a marker, and some non-Trace lines in between), end, a
    tail; returns the log and its instruction count (body + 1 for the call, - 2 calibration)."""
    rng = np.random.default_rng(seed)
    out = [_line(0x100 + 2 * i) for i in range(5)]
    out += [_line(BEGIN, "bnn_marker_begin"), _line(BEGIN + 2), _line(END, "bnn_marker_end")]
    out += [_line(0x400 + 2 * i) for i in range(9)]
    out.append(_line(BEGIN, "bnn_marker_begin"))
    for i in range(body):
        pc = int(rng.integers(0x100, 0x10000)) & ~1
        if pc in (BEGIN, END):
            pc += 2
        if i % 97 == 0:
            out.append(b"Trace 0: 0x7f17 [00800408/%08x/%08x/ff000201] g\n" % (pc, BEGIN))
        else:
            out.append(_line(pc))
        if i % 211 == 0:
            out.append(b"Linking TBs 0x7f17 [00000100] index 0 -> 0x7f18 [00000104]\n")
    out += [_line(END, "bnn_marker_end"), _line(0x300)]
    return b"".join(out), body + 1 - 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_count_equals_whole_log_count_for_any_chunking(seed):
    log, want = _synthetic_log(seed, 3000 + seed)
    assert _reference_count(log) == want, f"seed {seed}: the synthetic log is not what it claims"
    rng = np.random.default_rng(100 + seed)
    for trial in range(6):
        c = qemu.TraceCounter(BEGIN, END)
        pos = 0
        while pos < len(log):
            n = int(rng.integers(1, 400)) if trial % 2 else int(rng.integers(1, 70_000))
            c.feed(log[pos:pos + n])
            pos += n
        c.close()
        assert c.instructions("t") == want, f"seed {seed}, trial {trial}"


def test_streamed_count_exact_value():
    """Begin at line 5, end at 7 (calibration: 2 lines); then begin, 10 lines, end: 11 - 2 = 9."""
    lines = [_line(0x100)] * 5 + [_line(BEGIN), _line(0x102), _line(END)]
    lines += [_line(BEGIN)] + [_line(0x104)] * 10 + [_line(END)]
    log = b"".join(lines)
    c = qemu.TraceCounter(BEGIN, END)
    c.feed(log[:-1])  # last line unterminated until close()
    c.close()
    assert c.instructions("t") == 9 == _reference_count(log)


def test_missing_markers_is_an_error():
    c = qemu.TraceCounter(BEGIN, END)
    c.feed(_line(BEGIN) + _line(END))
    c.close()
    with pytest.raises(Bnn2hwError, match="marker calls not found"):
        c.instructions("cortex-m4")


def _fifo_writer(fifo, blocks: int, block: bytes, head: bytes, tail: bytes) -> subprocess.Popen:
    """A process that writes head, then ``block`` ``blocks`` times, then tail into the FIFO."""
    parts = fifo.parent / "parts"
    parts.mkdir()
    for name, data in (("head", head), ("block", block), ("tail", tail)):
        (parts / name).write_bytes(data)
    code = ("import sys, pathlib\np = pathlib.Path(sys.argv[2])\nb = (p / 'block').read_bytes()\n"
            "with open(sys.argv[1], 'wb') as f:\n    f.write((p / 'head').read_bytes())\n"
            "    for _ in range(int(sys.argv[3])):\n        f.write(b)\n"
            "    f.write((p / 'tail').read_bytes())\n")
    return subprocess.Popen([sys.executable, "-c", code, str(fifo), str(parts), str(blocks)])


def test_fifo_counting_holds_no_trace(tmp_path):
    """96 MB of trace through a FIFO (as QEMU writes it): right count, bounded chunks, and
    Python's peak allocation stays a few MB (holding the trace would need >= 96 MB)."""
    seed = 7
    rng = np.random.default_rng(seed)
    block = b"".join(_line(int(pc) & ~1 | 0x100) for pc in rng.integers(0x1000, 0x8000, 16_000))
    head = _line(BEGIN) + _line(0x102) + _line(END) + _line(BEGIN)
    tail = _line(END) + _line(0x300)
    blocks = (96 << 20) // len(block) + 1
    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    counter = qemu.TraceCounter(BEGIN, END)
    proc = _fifo_writer(fifo, blocks, block, head, tail)
    tracemalloc.start()
    try:
        qemu.consume_fifo(rfd, counter, proc, wfd, time.monotonic() + 120, chunk_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.close(rfd)
        proc.wait()
    total = len(head) + blocks * len(block) + len(tail)
    assert counter.bytes_seen == total, f"seed {seed}: read {counter.bytes_seen} of {total} bytes"
    assert counter.instructions("t") == blocks * 16_000 + 1 - 2, f"seed {seed}"
    assert counter.max_held <= (1 << 20) + 200, f"seed {seed}: held {counter.max_held} bytes at once"
    assert peak < 8 << 20, f"seed {seed}: peak Python allocation {peak} bytes for a {total}-byte trace"


def test_fifo_consumer_times_out_on_a_hung_writer(tmp_path):
    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            qemu.consume_fifo(rfd, qemu.TraceCounter(BEGIN, END), proc, wfd, time.monotonic() + 0.5)
        assert time.monotonic() - t0 < 5
    finally:
        proc.kill()
        proc.wait()
        os.close(rfd)


def test_one_insn_per_tb_option_follows_the_qemu_version():
    assert qemu.parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)") == (7, 2)
    assert qemu.parse_qemu_version("QEMU emulator version 10.0.3") == (10, 0)
    assert qemu.one_insn_per_tb_args((7, 2)) == ["-singlestep"]
    assert qemu.one_insn_per_tb_args((8, 0)) == ["-singlestep"]
    assert qemu.one_insn_per_tb_args((8, 1)) == ["-accel", "tcg,one-insn-per-tb=on"]
    assert qemu.one_insn_per_tb_args((10, 0)) == ["-accel", "tcg,one-insn-per-tb=on"]


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {toolchain.PACKAGES.get(tool, tool)})")


@pytest.mark.qemu
def test_qemu_streamed_count_equals_whole_log_count(tmp_path):
    """On a real Cortex-M4 run: count_instructions (FIFO, streamed) == counting the whole log."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm", "make")
    sys.path.insert(0, str(toolchain.FIRMWARE_DIR / "tests"))
    import mlp_model

    seed = 4321
    model = mlp_model.random_binary_mlp([256, 64, 10], seed)
    mlp_model.write_binary_mlp(tmp_path, model)
    elf = toolchain.build(tmp_path, "cortex-m4")
    x = np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8)
    got = qemu.count_instructions(elf, "cortex-m4", x)
    work = tmp_path / "run"
    work.mkdir()
    x.tofile(work / "inputs.bin")
    qemu._run_in(work, elf, "cortex-m4", 60, ["-singlestep", "-d", "exec,nochain", "-D", str(work / "exec.log")])
    addr = qemu._symbol_addresses(elf, ("bnn_marker_begin", "bnn_marker_end"))
    begins, ends = [], []
    for i, m in enumerate(_WHOLE_LOG.finditer((work / "exec.log").read_bytes())):
        pc = int(m.group(1), 16)
        (begins if pc == addr["bnn_marker_begin"] else ends if pc == addr["bnn_marker_end"] else []).append(i)
    assert got == (ends[1] - begins[1]) - (ends[0] - begins[0]), f"seed {seed}"
    assert 100 < got < 40_000, f"seed {seed}: {got}"


@pytest.mark.parametrize("target", ["host", "cortex-m0", "cortex-m7", "cortex-m"])
def test_written_makefile_defaults_to_the_chosen_target(tmp_path, target):
    _need("make")
    written = toolchain.write_harness(tmp_path, target)
    assert {p.name for p in written} >= {"Makefile", "main.c", "bnn_bits.h", "bnn_dense.c", "mem_cortex-m0.ld"}
    text = (tmp_path / "Makefile").read_text()
    name = "cortex-m4" if target == "cortex-m" else target
    assert f"\nTARGET ?= {name}\n" in text and "\nPOPCOUNT ?= multi\n" in text
    (tmp_path / "model.c").write_text("")
    (tmp_path / "model.h").write_text("")
    r = subprocess.run(["make", "-n"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    if name == "host":
        assert "-fsanitize=address,undefined" in r.stdout and "arm-none-eabi" not in r.stdout
    else:
        assert f"-mcpu={name} " in r.stdout and f"mem_{name}.ld" in r.stdout


def test_write_harness_popcount_and_bad_names(tmp_path):
    toolchain.write_harness(tmp_path, "cortex-m3", popcount="table")
    assert "\nPOPCOUNT ?= table\n" in (tmp_path / "Makefile").read_text()
    with pytest.raises(Bnn2hwError, match="valid targets"):
        toolchain.write_harness(tmp_path, "cortex-a53")
    with pytest.raises(Bnn2hwError, match="popcount"):
        toolchain.write_harness(tmp_path, "cortex-m4", popcount="fast")


def _block_log(blocks: int) -> tuple[bytes, bytes, bytes, dict]:
    """A block trace: calibration pair, then a 3-instruction loop block executed ``blocks`` x
    16 times (the repeated part), then the end marker. Returns (head, repeated block, tail, insns)."""
    from bnn2hw.mcu import cycles

    insns = {BEGIN: cycles.decode(BEGIN, 2, "bx", "lr"), END: cycles.decode(END, 2, "bx", "lr"),
             0x100: cycles.decode(0x100, 4, "bl", "6f0"), 0x104: cycles.decode(0x104, 4, "bl", "1a4c"),
             0x200: cycles.decode(0x200, 2, "ldr", "r2, [r1, #0]"),
             0x202: cycles.decode(0x202, 2, "subs", "r0, #1"), 0x204: cycles.decode(0x204, 2, "bne.n", "200")}

    def listing(pcs):
        return b"----------------\nIN: f\n" + b"".join(b"0x%08x:  4770       x\n" % p for p in pcs) + b"\n"

    def trace(host, pc):
        return b"Trace 0: 0x7f00000%05x [00800408/%08x/00000110/ff000200] f\n" % (host, pc)

    head = (listing([0x100]) + trace(1, 0x100) + listing([BEGIN]) + trace(2, BEGIN) + listing([0x104])
            + trace(3, 0x104) + listing([END]) + trace(4, END) + trace(2, BEGIN) + listing([0x200, 0x202, 0x204])
            + trace(5, 0x200))
    block = trace(5, 0x200) * 16
    tail = listing([0x206]) + trace(6, 0x206) + trace(4, END)
    insns[0x206] = cycles.decode(0x206, 4, "bl", "1a4c")
    return head, block, tail, insns


def test_fifo_block_counting_holds_no_trace(tmp_path):
    """The block trace (instruction classes and cycles too) through a FIFO: 64 MB of log, right
    counts, Python's peak allocation a few MB."""
    head, block, tail, insns = _block_log(1)
    blocks = (64 << 20) // len(block) + 1
    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    counter = qemu.BlockTraceCounter(BEGIN, END, insns)
    proc = _fifo_writer(fifo, blocks, block, head, tail)
    tracemalloc.start()
    try:
        qemu.consume_fifo(rfd, counter, proc, wfd, time.monotonic() + 120, chunk_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.close(rfd)
        proc.wait()
    loops = 1 + 16 * blocks  # executions of the loop block
    est = counter.estimate("t")
    # window: begin (bx), the loop block `loops` times, the exit block (bl); calibration: bx + bl
    assert est.instructions == 3 * loops
    assert est.classes["load"] == loops and est.branches_taken == loops - 1 and est.branches_not_taken == 1
    assert est.cycles_m4 == loops * (2 + 1) + (loops - 1) * 2 + 1
    assert counter.max_held <= (1 << 20) + 200
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes for a {counter.bytes_seen}-byte log"


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3", "cortex-m7", "cortex-m33", "cortex-m55"])
def test_block_count_equals_single_step_count_on_every_core(tmp_path, target):
    _need("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-objdump", "qemu-system-arm", "make")
    sys.path.insert(0, str(toolchain.FIRMWARE_DIR / "tests"))
    import mlp_model

    seed = 99
    model = mlp_model.random_binary_mlp([65, 33, 10], seed)
    mlp_model.write_binary_mlp(tmp_path, model)
    elf = toolchain.build(tmp_path, target)
    x = np.random.default_rng(seed).integers(0, 256, 9, dtype=np.uint8)
    est = qemu.count_cycles(elf, target, x)
    assert est.instructions == qemu.count_instructions(elf, target, x, single_step=True), f"seed {seed}"
    assert est.instructions == sum(est.classes.values())
    assert est.classes["other"] == 0, f"{target}: unclassified instructions"
    assert est.instructions // 2 < est.cycles_m4 <= est.cycles_m4_max
