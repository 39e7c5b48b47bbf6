# SPDX-License-Identifier: MIT
"""Cycle estimates (issue 11): tiny assembly loops run in QEMU, whose Cortex-M4 cycles are
derived by hand from the Cortex-M4 TRM (Arm 100166_0001_00, section 3.3.1, Table 3-1 and its
load/store notes; ``P = 1``), must get exactly that estimate; the block trace must count the same
instructions as single-stepping; class counting on a known program; report.json fields and the
``--clock-mhz`` checks."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu import cycles, qemu
from bnn2hw.mcu.cli import latency_fields

# Program skeleton: calibration marker pair, then SETUP, the second begin marker, the LOOP,
# the end marker, semihosting exit. The markers are bare "bx lr", so the counted window is the
# LOOP exactly (what the harness's calibration subtraction gives for bnn_infer).
_SKELETON = """
.syntax unified
.thumb
.section .vectors, "a"
.word 0x20004000
.word reset + 1
.text
.global bnn_marker_begin
.global bnn_marker_end
.thumb_func
bnn_marker_begin:
  bx lr
.thumb_func
bnn_marker_end:
  bx lr
.thumb_func
reset:
  bl bnn_marker_begin
  bl bnn_marker_end
{setup}
  bl bnn_marker_begin
{loop}
  bl bnn_marker_end
  movs r0, #0x18
  ldr r1, =0x20026
  bkpt 0xab
{extra}
.align 2
.data
data: .word 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41
"""

# (name, setup, loop, extra, expected M4 cycles derived by hand, expected instructions)
LOOPS = [
    # subs 1 + bne; bne taken 1 + P = 2 nine times, not taken 1 once:
    # 10 * 1 + 9 * 2 + 1 = 29 cycles, 20 instructions
    ("countdown", "  movs r0, #10", "1: subs r0, #1\n  bne 1b", "", 29, 20),
    # ldr 2, ldr 1 and ldr 1 (pipelined behind a load, address not from it), adds 1,
    # str [Rn, #imm] 1, subs 1 = 7 per iteration; 3 taken bne (2) + 1 not taken (1):
    # 4 * 7 + 3 * 2 + 1 = 35 cycles, 4 * 7 = 28 instructions
    ("pipelined loads", "  ldr r1, =data\n  movs r0, #4",
     ("1: ldr r2, [r1]\n  ldr r3, [r1, #4]\n  ldr r4, [r1, #8]\n  adds r5, r2, r3\n  str r5, [r1, #12]\n"
      "  subs r0, #1\n  bne 1b"), "", 35, 28),
    # ldmia 4 regs 1 + N = 5, umlal 1, cmp 1, it 1, addeq 1, subs 1 = 10 per iteration;
    # 3 * 10 + 2 * 2 + 1 = 35 cycles, 3 * 7 = 21 instructions
    ("ldm, mac, it", "  ldr r1, =data\n  movs r0, #3\n  movs r6, #0\n  movs r7, #0",
     ("1: ldmia r1, {r2-r5}\n  umlal r6, r7, r2, r3\n  cmp r0, #2\n  it eq\n  addeq r6, #1\n"
      "  subs r0, #1\n  bne 1b"), "", 35, 21),
    # bl 1 + P = 2; in f: adds 1, ldr whose address comes from the adds 2 + 1 (no forwarding
    # path), ldr [r1, #4] 1 (pipelined), bx lr 1 + P = 2; back: udiv 12, subs 1, bne:
    # 2 * (2 + 1 + 3 + 1 + 2 + 12 + 1) + 2 + 1 = 47 cycles, 2 * 8 = 16 instructions
    ("call, dependent load, divide", "  ldr r1, =data\n  movs r0, #2",
     "1: bl f\n  udiv r3, r2, r0\n  subs r0, #1\n  bne 1b",
     ".thumb_func\nf:\n  adds r1, r1, #4\n  ldr r2, [r1]\n  ldr r4, [r1, #4]\n  bx lr", 47, 16),
]


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/setup.sh installs it)")


def _build(tmp_path, setup: str, loop: str, extra: str, cpu: str = "cortex-m4"):
    src = tmp_path / "loop.S"
    src.write_text(_SKELETON.format(setup=setup, loop=loop, extra=extra))
    elf = tmp_path / "loop.elf"
    r = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-nostdlib", "-Wl,-Ttext=0x100",
                        "-Wl,--section-start=.vectors=0x0", "-Wl,--section-start=.data=0x20000000",
                        "-Wl,-e,reset", str(src), "-o", str(elf)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return elf


@pytest.mark.qemu
@pytest.mark.parametrize("name,setup,loop,extra,want_cycles,want_insns", LOOPS, ids=[x[0] for x in LOOPS])
def test_hand_derived_m4_cycles(tmp_path, name, setup, loop, extra, want_cycles, want_insns):
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm")
    elf = _build(tmp_path, setup, loop, extra)
    est = qemu.count_cycles(elf, "cortex-m4", np.zeros(1, np.uint8))
    assert est.instructions == want_insns, name
    assert est.cycles_m4 == want_cycles, f"{name}: model {est.cycles_m4}, TRM by hand {want_cycles}"
    assert est.instructions == qemu.count_instructions(elf, "cortex-m4", np.zeros(1, np.uint8), single_step=True)
    assert est.cycles_m4 <= est.cycles_m4_max


@pytest.mark.qemu
def test_class_counts_and_branch_outcomes_of_a_known_loop(tmp_path):
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm")
    _, setup, loop, extra, _, _ = LOOPS[2]
    est = qemu.count_cycles(_build(tmp_path, setup, loop, extra), "cortex-m4", np.zeros(1, np.uint8))
    want = dict.fromkeys(cycles.CLASSES, 0)
    want.update(load_multiple=3, mul_dsp=3, it=3, alu=9, branch=3)
    assert est.classes == want
    assert (est.branches_taken, est.branches_not_taken) == (2, 1)
    # P = 3 upper end: two taken branches cost 2 more cycles each
    assert est.cycles_m4_max == est.cycles_m4 + 2 * 2


@pytest.mark.qemu
def test_m7_dual_issue_model_on_the_load_loop(tmp_path):
    """The M7 model (module docstring): ldr | ldr | ldr+adds | str+subs = 4 issue cycles, bne 1
    (+1 taken): 4 * 5 + 3 = 23."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm")
    _, setup, loop, extra, _, _ = LOOPS[1]
    est = qemu.count_cycles(_build(tmp_path, setup, loop, extra), "cortex-m4", np.zeros(1, np.uint8))
    assert est.cycles_m7 == 23
    assert est.cycles_for("cortex-m7")[0] == 23 and est.cycles_for("cortex-m4")[0] == 35


@pytest.mark.qemu
def test_m0_table_on_the_countdown_and_load_loops(tmp_path):
    """Cortex-M0 TRM (DDI 0432C) Table 3-1: subs 1, bne taken 3 / not 1:
    10 + 9 * 3 + 1 = 38; loads and stores 2 each, no pipelining:
    4 * (2 + 2 + 2 + 1 + 2 + 1) + 3 * 3 + 1 = 50."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm")
    for (_, setup, loop, extra, _, _), want in zip(LOOPS[:2], (38, 50)):
        est = qemu.count_cycles(_build(tmp_path, setup, loop, extra), "cortex-m4", np.zeros(1, np.uint8))
        assert est.cycles_m0 == want and est.cycles_for("cortex-m0")[0] == want


@pytest.mark.qemu
def test_low_overhead_loop_on_m55(tmp_path):
    """QEMU's own disassembler prints Armv8.1-M DLS/LE as ``.byte`` halves; the block's
    instructions come from objdump, so the count still equals single-stepping:
    mov + dls + 10 x (nop + le) = 22, with 9 LE taken and 1 not."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm")
    elf = _build(tmp_path, "  movs r0, #10", "  mov lr, r0\n  dls lr, lr\n1: nop\n  le lr, 1b", "", "cortex-m55")
    est = qemu.count_cycles(elf, "cortex-m55", np.zeros(1, np.uint8))
    assert est.instructions == 22 == qemu.count_instructions(elf, "cortex-m55", np.zeros(1, np.uint8),
                                                             single_step=True)
    assert (est.branches_taken, est.branches_not_taken) == (9, 1) and est.classes["other"] == 0


@pytest.mark.parametrize("mnemonic,operands,klass,cond,nregs", [
    ("addseq.w", "r0, r1, r2", "alu", True, 0), ("bics", "r0, r1", "alu", False, 0),
    ("bls.n", "100 <f>", "branch", True, 0), ("bl", "100 <f>", "branch", False, 0),
    ("teq", "r0, r1", "alu", False, 0), ("pop", "{r4, r5, r6, pc}", "load_multiple", False, 4),
    ("ldmia.w", "r1!, {r2, r3, r4, r5}", "load_multiple", False, 4), ("ldrd", "r2, r3, [r1]", "load_multiple",
                                                                       False, 2),
    ("usada8", "r0, r1, r2, r3", "mul_dsp", False, 0), ("smlabb", "r0, r1, r2, r3", "mul_dsp", False, 0),
    ("ite", "ne", "it", False, 0), ("sdiv", "r0, r1, r2", "div", False, 0), ("vpush", "{d8-d9}", "store_multiple",
                                                                            False, 2),
    ("ldrne", "r0, [r1, r2]", "load", True, 0), ("strb.w", "r0, [r1], #1", "store", False, 0),
])
def test_decode_classes(mnemonic, operands, klass, cond, nregs):
    i = cycles.decode(0x100, 4, mnemonic, operands)
    assert (i.klass, i.conditional, i.nregs) == (klass, cond, nregs), i


def test_decode_registers_for_pipelining():
    a = cycles.decode(0, 2, "ldr", "r2, [r1, #0]")
    b = cycles.decode(2, 2, "ldr", "r3, [r2, #4]")
    assert a.dests == ("r2",) and b.addr_regs == ("r2",)
    assert cycles.decode(0, 4, "ldr.w", "r2, [r1], #4").dests == ("r2", "r1")  # post-index write-back
    assert cycles.decode(0, 2, "pop", "{r4, pc}").writes_pc


def test_block_trace_counter_on_a_synthetic_log():
    """Blocks listed by in_asm, executed by exec lines; the loop block ends in a conditional
    branch whose outcome comes from the next block's PC. Fed in 1-byte chunks."""
    insns = {0x10: cycles.decode(0x10, 2, "bx", "lr"), 0x12: cycles.decode(0x12, 2, "bx", "lr"),
             0x20: cycles.decode(0x20, 4, "bl", "10"), 0x24: cycles.decode(0x24, 4, "bl", "12"),
             0x28: cycles.decode(0x28, 4, "bl", "10"),
             0x2c: cycles.decode(0x2c, 2, "subs", "r0, #1"), 0x2e: cycles.decode(0x2e, 2, "bne.n", "2c"),
             0x30: cycles.decode(0x30, 4, "bl", "12")}

    def listing(pcs):
        return b"----------------\nIN: f\n" + b"".join(b"0x%08x:  4770       bx lr\n" % p for p in pcs) + b"\n"

    def trace(host, pc):
        return b"Trace 0: 0x7f00%04x [00800408/%08x/00000110/ff000200] f\n" % (host, pc)

    log = (listing([0x20]) + trace(1, 0x20) + listing([0x10]) + trace(2, 0x10) + listing([0x24])
           + trace(3, 0x24) + listing([0x12]) + trace(4, 0x12) + listing([0x28]) + trace(5, 0x28)
           + trace(2, 0x10) + listing([0x2c, 0x2e]) + trace(6, 0x2c) + trace(6, 0x2c) + trace(6, 0x2c)
           + listing([0x30]) + trace(7, 0x30) + trace(4, 0x12))
    c = qemu.BlockTraceCounter(0x10, 0x12, insns)
    for k in range(len(log)):
        c.feed(log[k:k + 1])
    c.close()
    est = c.estimate("t")
    assert est.instructions == 6  # 3 x (subs, bne)
    assert (est.branches_taken, est.branches_not_taken) == (2, 1)
    assert est.cycles_m4 == 3 * 1 + 2 * 2 + 1


def test_block_trace_counter_errors():
    c = qemu.BlockTraceCounter(0x10, 0x12, {})
    with pytest.raises(Bnn2hwError, match="before it was listed"):
        c.feed(b"Trace 0: 0x7f0001 [00800408/00000010/00000110/ff000200] f\n")
    c = qemu.BlockTraceCounter(0x10, 0x12, {})
    with pytest.raises(Bnn2hwError, match="listed at 0x20 but executed at 0x10"):
        c.feed(b"IN: f\n0x00000020:  4770  bx lr\n\nTrace 0: 0x7f0001 [00800408/00000010/00000110/ff000200] f\n")
    c = qemu.BlockTraceCounter(0x10, 0x12, {})
    c.close()
    with pytest.raises(Bnn2hwError, match="marker calls not found"):
        c.estimate("cortex-m4")


def test_latency_fields():
    est = cycles.CycleEstimate(instructions=10, cycles_m4=168_000, cycles_m4_max=200_000, cycles_m7=90_000)
    f = latency_fields(est, "cortex-m4", 168.0)
    assert f["estimated_cycles"] == 168_000 and f["clock_mhz"] == 168.0
    assert f["estimated_latency_ms"] == pytest.approx(1.0)
    assert f["estimated_cycles_upper"] == 200_000 and "estimate" in f["cycle_model"]
    assert latency_fields(est, "cortex-m7", 216.0)["estimated_cycles"] == 90_000
    for bad in (0.0, -5.0, float("nan"), float("inf"), 100_000.0):
        with pytest.raises(Bnn2hwError, match="--clock-mhz"):
            latency_fields(est, "cortex-m4", bad)


def test_emit_c_cli_rejects_bad_clock(mlp_ckpt, tmp_path, monkeypatch, capsys):
    from tests.cli_helpers import run_cli

    for bad in ("-3", "0", "nan", "1e6"):
        code, _, err = run_cli(monkeypatch, capsys, "emit-c", mlp_ckpt[0], "--clock-mhz", bad,
                               "-o", tmp_path / "fw")
        assert code == 2 and "--clock-mhz" in err and "Traceback" not in err, (bad, err)
        assert not (tmp_path / "fw").exists()


@pytest.mark.qemu
def test_report_json_has_cycle_fields(mlp_ckpt, tmp_path):
    """report.json of emit-c --verify: instructions, classes, estimated cycles, clock and
    latency, and the estimate's error sources."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "qemu-system-arm", "gcc", "make")
    from bnn2hw.mcu.cli import emit_c

    rep = emit_c(mlp_ckpt[0], "cortex-m4", tmp_path / "fw", verify=True, verify_samples=3,
                 echo=lambda *_: None, plots=False, clock_mhz=80.0)
    on = json.loads((tmp_path / "fw" / "report.json").read_text())["verification"]["cortex-m4"]
    assert on == rep["verification"]["cortex-m4"]
    assert on["instructions_per_inference"] == sum(on["instruction_classes"].values())
    assert on["instructions_per_inference"] // 2 <= on["estimated_cycles"] <= on["estimated_cycles_upper"]
    assert on["clock_mhz"] == 80.0
    assert on["estimated_latency_ms"] == pytest.approx(on["estimated_cycles"] / 80e3)
    assert on["cycle_error_sources"] and "estimate" in on["cycle_model"]
