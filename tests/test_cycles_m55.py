# SPDX-License-Identifier: MIT
"""Cortex-M55 cycle estimate (issue 11, bnn2hw/mcu/cycles.py): MVE instructions as two beats on one
of four pipelines, overlapping across pipelines (Arm's Cortex-M55 scheduling model in LLVM,
ARMScheduleM55.td).  Its two published pipeline diagrams (VLDR; VADD; VMUL; VSTR = 5 cycles,
VLDR; VLDRB; VADD; VSTR = 6 cycles) run in QEMU (mps3-an547) and must get exactly those cycles; a
gather loop of the Helium popcount kind gets the hand-derived estimate and upper end; the
pipeline and gather classification of single instructions."""

from __future__ import annotations

import numpy as np
import pytest

from bnn2hw.mcu import cycles, qemu
from test_cycles import _build, _need

# MVE (and the FPU) are off at reset: CPACR (0xE000ED88) grants CP10 and CP11 full access
_ENABLE_MVE = ("  ldr r0, =0xE000ED88\n  ldr r3, [r0]\n  orr r3, r3, #0xF00000\n  str r3, [r0]\n  dsb\n  isb\n")

# (name, setup, loop, cycles by hand (estimate), upper end by hand, instructions)
M55_LOOPS = [
    # ARMScheduleM55.td header, first diagram: VLDR 2 beats; VADD (integer pipe) overlaps VLDR's
    # second beat: +1; VMUL (multiply pipe) +1; VSTR (load/store pipe) +1 = 5.  Upper end (no
    # overlap): 4 x 2 = 8.
    ("VLDR; VADD; VMUL; VSTR", "  ldr r1, =data",
     "  vldrw.u32 q0, [r1]\n  vadd.i32 q1, q0, q0\n  vmul.i32 q2, q1, q1\n  vstrw.32 q2, [r1]", 5, 8, 4),
    # second diagram: two loads cannot overlap: VLDR 2, VLDRB 2, VADD +1, VSTR +1 = 6; upper 8
    ("VLDR; VLDRB; VADD; VSTR", "  ldr r1, =data",
     "  vldrw.u32 q0, [r1]\n  vldrb.u8 q3, [r1]\n  vadd.i8 q1, q0, q3\n  vstrw.32 q1, [r1]", 6, 8, 4),
    # a popcount-table loop (byte gather), 3 iterations of a low-overhead loop: DLS 1; per
    # iteration VLDRW 2 (first in its block), VEOR +1, VLDRB gather +1 (charged as a load in the
    # estimate), VADD.I8 +1; LE taken 1 + P = 2 twice, not taken 1:
    # 1 + 3 x 5 + 2 x 2 + 1 = 21.  Upper end: the gather one cycle per element (16), no beat
    # overlap, P = 3: 1 + 3 x (2 + 2 + 16 + 2) + 2 x 4 + 1 = 76.  1 + 3 x 5 = 16 instructions.
    ("byte-gather popcount loop", "  ldr r1, =data\n  mov r2, r1\n  movs r0, #3\n  vmov.i32 q3, #0",
     ("  dls lr, r0\n1: vldrw.u32 q0, [r1]\n  veor q1, q0, q0\n  vldrb.u8 q2, [r2, q1]\n"
      "  vadd.i8 q3, q3, q2\n  le lr, 1b"), 21, 76, 16),
]


@pytest.mark.qemu
@pytest.mark.parametrize("name,setup,loop,want,want_max,want_insns", M55_LOOPS, ids=[x[0] for x in M55_LOOPS])
def test_m55_beat_model_on_published_and_derived_loops(tmp_path, name, setup, loop, want, want_max, want_insns):
    _need("arm-none-eabi-gcc", "arm-none-eabi-objdump", "arm-none-eabi-nm", "qemu-system-arm")
    elf = _build(tmp_path, _ENABLE_MVE + setup, loop, "", "cortex-m55")
    est = qemu.count_cycles(elf, "cortex-m55", np.zeros(1, np.uint8))
    assert est.instructions == want_insns, name
    assert est.cycles_m55 == want, f"{name}: model {est.cycles_m55}, by hand {want}"
    assert est.cycles_m55_max == want_max, f"{name}: upper {est.cycles_m55_max}, by hand {want_max}"
    assert est.cycles_for("cortex-m55") == (want, want_max, "cortex-m55 MVE beat model")


@pytest.mark.parametrize("mnemonic,operands,pipe,elements", [
    ("vldrw.u32", "q1, [r1], #16", "ls", 0), ("vldrb.u8", "q3, [r2, q4]", "ls", 16),
    ("vldrw.u32", "q3, [q0, #4]!", "ls", 4), ("vldrh.u16", "q1, [r0, q2]", "ls", 8),
    ("vstrw.32", "q6, [r8], #16", "ls", 0), ("veor", "q4, q4, q3", "int", 0), ("vaddva.u8", "r4, q5", "int", 0),
    ("vmul.i32", "q6, q6, r0", "mul", 0), ("vmla.u32", "q4, q6, r3", "mul", 0), ("vpt.s32", "ge, q3, q6", "ctl", 0),
    ("vmov.i32", "q6, #0", "int", 0), ("vadd.f32", "s0, s1, s2", None, 0), ("vmrs", "r0, p0", None, 0),
    ("vpush", "{d8-d9}", None, 0), ("vctp.32", "r0", None, 0),
])
def test_m55_pipe_and_gather_classes(mnemonic, operands, pipe, elements):
    i = cycles.decode(0x100, 4, mnemonic, operands)
    assert cycles._m55_pipe(i) == pipe
    assert cycles._m55_gather_elements(i) == elements


def test_m55_scalar_code_is_timed_as_on_the_m4():
    """Without MVE instructions the M55 estimate is the M4 table's (the documented approximation)."""
    a = cycles.decode(0x100, 2, "ldr", "r2, [r1]")
    b = cycles.decode(0x102, 2, "ldr", "r3, [r1, #4]")
    c = cycles.decode(0x104, 2, "adds", "r5, r2, r3")
    blk = cycles.BlockCost.of([a, b, c])
    assert (blk.m55, blk.m4) == (4, 4)
