# SPDX-License-Identifier: MIT
"""Estimated cycles of executed Thumb code on Cortex-M4 and Cortex-M7, from QEMU's block trace.

QEMU counts instructions, not cycles. This module classifies every executed instruction (its
text from ``arm-none-eabi-objdump -d`` of the firmware ELF) and applies per-class timings:

**Cortex-M4**: Arm, *Cortex-M4 Technical Reference Manual* r0p1 (Arm document 100166_0001_00),
section 3.3.1 "Table of processor instructions", Table 3-1, and its load/store notes
(the same notes are section 3.3.2 of DDI 0439B):

=====================================  ===========================================================
class                                  cycles (Table 3-1)
=====================================  ===========================================================
ALU, move, shift, compare, logical,    1 (``1 + P`` when it writes the PC)
extend, bit field, reverse, CLZ, NOP
MUL, MLA, MLS, SMULL, UMULL, SMLAL,    1
UMLAL, SMLAxy, SMLAD, SMUAD, USADA8,
every other DSP / SIMD / saturating op
SDIV, UDIV                             2 to 12 (early termination; :data:`DIV_CYCLES` = 12 here)
LDR/LDRB/LDRH/LDRSB/LDRSH/LDREX        2; 1 when it directly follows a load single whose result
                                       it does not use for its address (pipelined, note b)
STR/STRB/STRH with immediate offset    1 ("STR Rx,[Ry,#imm] is always one cycle")
STR with register offset, STREX        2; 1 when it directly follows a load single (pipelined)
LDRD, STRD                             1 + N with N = 2
LDM, STM, PUSH, POP, VLDM, VSTM,       1 + N (N = registers in the list); ``+ P`` when PC is loaded
VPUSH, VPOP
B, BL, BX, BLX, CBZ, CBNZ              1 + P taken, 1 not taken
TBB, TBH                               2 + P
IT                                     1 (the TRM allows folding onto the preceding 16-bit
                                       instruction, 0 cycles; not modelled: an upper bound)
DMB, DSB                               1 + B with B = 0; ISB 1 + P
VLDR, VSTR                             2; VMLA, VMLS, VFMA... 3; VDIV, VSQRT 14; other VFP ops 1
=====================================  ===========================================================

Also from the notes: a load or store whose address depends on the result of the directly
preceding data-processing instruction stalls one more cycle ("there is no forwarding path").
``P`` (pipeline refill) "ranges from 1 to 3 depending on the alignment and width of the target
instruction, and whether the processor manages to speculate the address early"; the TRM's
notes say a taken branch normally costs 1 cycle of reload, so the estimate uses ``P = 1`` and
the upper end of the range uses ``P = 3`` (and 12-cycle divides in both).

**Cortex-M0** (Armv6-M): Arm, *Cortex-M0 Technical Reference Manual* r0p0 (DDI 0432C), section 3.3
"Instruction set summary", Table 3-1: data processing and MUL 1 (the fast multiplier option;
the small one takes 32), LDR/STR 2 (no pipelining), LDM/STM/PUSH/POP 1 + N, POP with PC
3 + N (N counting the PC), B and taken B<cc> 3, B<cc> not taken 1, BL 4, BX/BLX and MOV/ADD to
PC 3.

**Cortex-M7** (dual issue): the Cortex-M7 TRM (DDI 0489) publishes no cycle table, only the
pipeline: six stages, in-order dual issue, two ALUs, one MAC, a 64-bit load/store path and a
branch target address cache. Modelled simply: within a translated block, two neighbouring
instructions issue in one cycle when neither is a branch, a multi-cycle op (LDM/STM, LDRD/STRD,
divide, VFP multi-cycle), they are not both memory accesses nor both multiplies, and the second
does not read a register the first writes. Every other instruction takes one issue cycle;
LDM/STM take ``1 + ceil(N / 2)`` (64-bit path), divides 12, a taken branch one extra cycle
(predicted by the BTAC); mispredictions and load-use stalls are not modelled.

**Cortex-M55** (Armv8.1-M, Helium): Arm publishes the M55's timings in the *Cortex-M55 Software
Optimization Guide* (Arm 102692); the model here follows Arm's scheduling model of the core in LLVM
(``llvm/lib/Target/ARM/ARMScheduleM55.td``, whose header explains the MVE pipeline): scalar
instructions as on the Cortex-M4 (Table 3-1 above; "Cortex-M55 is a lot like the M4/M33 in terms of
scheduling"; its limited dual issue of 16-bit instructions is not modelled, an overestimate), and
every 128-bit MVE instruction as **two beats** of 64 bits on one of four pipelines (load/store,
integer, float/multiply, control). The second beat of an instruction overlaps the first beat of the
next one when the two use different pipelines, so ``VLDR; VADD; VMUL; VSTR`` takes 5 cycles and
``VLDR; VLDRB; VADD; VSTR`` 6 (the two pipeline diagrams of that file, run in QEMU by
``tests/test_cycles_m55.py``). Per MVE instruction: 2 cycles, 1 when the previous
instruction was a two-beat MVE instruction of another pipeline; VPT/VPST/VCTP 1. Gathers
(``VLDRx Qd, [Rn, Qm]``, ``VLDRW Qd, [Qm, #imm]``) are charged as contiguous loads in the estimate
(as that model does) and one cycle per element in the upper column (16 for a byte gather): a gather
accesses memory element by element, and neither source gives its exact cost, so the M55 estimate of
a gather-heavy kernel (the Helium popcount rows) is a range, not a figure. Low-overhead loops
(``LE``/``LETP``) are charged as branches (1 + P taken); the M55 can remove that cost after the first
iteration (its loop cache), so loop-heavy code is overestimated by up to one cycle per iteration.

**Known error sources** (why these are estimates): flash wait states (a 168 MHz STM32F4 needs 5,
hidden partly by the ART accelerator's prefetch and cache), instruction and data caches (M7),
TCM versus AXI memory, bus contention with DMA, unaligned or mispredicted fetches (``P`` is 1..3),
divide early termination, IT folding, and conditional instructions that fail their condition
(charged as if executed). QEMU's blocks give the executed instruction sequence exactly; the
pipelining across the boundary of two translated blocks is ignored.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Bnn2hwError

DIV_CYCLES = 12
P_ESTIMATE = 1  # TRM 3.3.1 notes: "normally 1 cycle of pipeline reload"
P_MAX = 3  # Table 3-1: "P ... ranges from 1 to 3"

CLASSES = ("alu", "mul_dsp", "div", "load", "store", "load_multiple", "store_multiple", "branch", "it",
           "fp", "system", "other")
"""Instruction classes counted per inference (``report.json`` ``instruction_classes``)."""

CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")

_ALU = {"mov", "movw", "movt", "mvn", "add", "addw", "adc", "sub", "subw", "sbc", "rsb", "adr", "cmp", "cmn",
        "tst", "teq", "and", "orr", "orn", "eor", "bic", "lsl", "lsr", "asr", "ror", "rrx", "neg", "sxtb", "sxth",
        "uxtb", "uxth", "sxtab", "sxtah", "uxtab", "uxtah", "sxtb16", "uxtb16", "sxtab16", "uxtab16", "bfc", "bfi",
        "ubfx", "sbfx", "rev", "rev16", "revsh", "rbit", "clz", "nop", "sel", "cpy", "yield", "sev", "pkhbt",
        "pkhtb", "dls", "dlstp", "lctp"}
_MUL = {"mul", "mla", "mls", "smull", "umull", "smlal", "umlal", "umaal", "usad8", "usada8", "ssat", "usat",
        "ssat16", "usat16", "qadd", "qsub", "qdadd", "qdsub", "smmul", "smmulr", "smmla", "smmlar", "smmls",
        "smmlsr"}
_MUL_PREFIX = ("smla", "smul", "smua", "smus", "smls", "sadd", "ssub", "sasx", "ssax", "uadd", "usub", "uasx",
               "usax", "qadd", "qsub", "qasx", "qsax", "shadd", "shsub", "shasx", "shsax", "uqadd", "uqsub",
               "uqasx", "uqsax", "uhadd", "uhsub", "uhasx", "uhsax")
_DIV = {"sdiv", "udiv"}
_LOAD = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh", "ldrt", "ldrbt", "ldrht",
         "ldrsbt", "ldrsht"}
_STORE = {"str", "strb", "strh", "strex", "strexb", "strexh", "strt", "strbt", "strht"}
_LDM = {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "pop", "ldrd", "vldm", "vldmia", "vldmdb", "vpop"}
_STM = {"stm", "stmia", "stmea", "stmdb", "stmfd", "push", "strd", "vstm", "vstmia", "vstmdb", "vpush"}
_BRANCH = {"b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh",
           "le", "letp", "wls", "wlstp"}  # Armv8.1-M low-overhead loops (Cortex-M55)
_SYSTEM = {"dmb", "dsb", "isb", "msr", "mrs", "cpsid", "cpsie", "svc", "bkpt", "wfi", "wfe", "udf", "clrex", "pld", "pli"}
_S_FORMS = {m for m in _ALU | _MUL if m not in ("movw", "movt", "addw", "subw", "cmp", "cmn", "tst", "teq")}
_FP3 = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}
_FP14 = {"vdiv", "vsqrt"}
_KNOWN = _ALU | _MUL | _DIV | _LOAD | _STORE | _LDM | _STM | _BRANCH | _SYSTEM | {"it"}
_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sp|lr|pc|ip|fp|sl|sb)\b")
_REG_ALIAS = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}


@dataclass(frozen=True)
class Insn:
    """One decoded instruction: ``base`` is the mnemonic without width, flag or condition
    suffix; ``klass`` one of :data:`CLASSES`; ``nregs`` the register-list length of a
    load/store multiple (2 for LDRD/STRD)."""

    pc: int
    size: int
    text: str
    base: str
    klass: str
    conditional: bool  # carries a condition (B<cc>, or inside an IT block)
    nregs: int = 0
    writes_pc: bool = False
    dests: tuple[str, ...] = ()
    addr_regs: tuple[str, ...] = ()  # registers of a load/store address ([...])
    reads: tuple[str, ...] = ()
    reg_offset: bool = False  # load/store with a register offset

    @property
    def is_branch(self) -> bool:
        return self.klass == "branch"


def _regs(text: str) -> tuple[str, ...]:
    return tuple(_REG_ALIAS.get(r, r) for r in _REG.findall(text))


def _split_mnemonic(m: str) -> tuple[str, bool]:
    """(base mnemonic, conditional) from a GNU mnemonic such as ``addseq.w`` or ``bne.n``."""
    m = m.lower().split(".")[0]
    if re.fullmatch("it[te]{0,3}", m):
        return "it", False
    if m in _KNOWN or m.startswith("v"):
        return m, False
    if m.endswith("s") and m[:-1] in _S_FORMS:
        return m[:-1], False
    if m[-2:] in CONDS:
        rest = m[:-2]
        if rest in _KNOWN:
            return rest, True
        if rest.endswith("s") and rest[:-1] in _S_FORMS:
            return rest[:-1], True
    if any(m.startswith(p) for p in _MUL_PREFIX):
        return m, False
    return m, False


def _reglist_len(ops: str) -> int:
    inner = ops[ops.find("{") + 1:ops.find("}")] if "{" in ops else ""
    n = 0
    for part in filter(None, (p.strip() for p in inner.split(","))):
        if "-" in part:
            a, b = (re.sub(r"\D", "", s) for s in part.split("-"))
            n += int(b) - int(a) + 1
        else:
            n += 1
    return n


def decode(pc: int, size: int, mnemonic: str, operands: str) -> Insn:
    """Classify one instruction from its GNU ``objdump`` text."""
    ops = operands.split("@")[0].split(";")[0].strip()
    base, cond = _split_mnemonic(mnemonic)
    regs = _regs(ops)
    addr = _regs(ops[ops.find("["):ops.find("]") + 1]) if "[" in ops else ()
    nregs, writes_pc = 0, False
    if base.startswith(("vldr", "vstr")):
        klass = "fp"
    elif base.startswith("v"):
        klass = "load_multiple" if base in _LDM else "store_multiple" if base in _STM else "fp"
    elif base in _BRANCH:
        klass, writes_pc = "branch", True
    elif base in _LDM:
        klass, nregs = "load_multiple", 2 if base == "ldrd" else _reglist_len(ops)
        writes_pc = "r15" in _regs(ops[ops.find("{"):]) if "{" in ops else False
    elif base in _STM:
        klass, nregs = "store_multiple", 2 if base == "strd" else _reglist_len(ops)
    elif base in _LOAD:
        klass = "load"
        writes_pc = bool(regs) and regs[0] == "r15"
    elif base in _STORE:
        klass = "store"
    elif base in _DIV:
        klass = "div"
    elif base in _MUL or base.startswith(_MUL_PREFIX):
        klass = "mul_dsp"
    elif base == "it":
        klass = "it"
    elif base in _ALU:
        klass = "alu"
        writes_pc = bool(regs) and regs[0] == "r15" and base not in ("cmp", "cmn", "tst", "teq")
    elif base in _SYSTEM:
        klass = "system"
    else:
        klass = "other"
    if klass in ("load_multiple", "store_multiple") and base.startswith("v"):
        nregs = _reglist_len(ops) or 1
    if klass in ("load", "load_multiple", "alu", "mul_dsp", "div") and base not in ("cmp", "cmn", "tst", "teq"):
        dests = regs[:2] if base in ("smull", "umull", "smlal", "umlal", "umaal", "ldrd") else regs[:1]
        if base in ("pop", "ldm", "ldmia", "ldmfd", "ldmdb", "ldmea"):
            inner = ops[ops.find("{"):ops.find("}") + 1]
            dests = _regs(inner) + (_regs(ops.split(",")[0]) if "!" in ops else ())
    else:
        dests = ()
    if klass in ("load", "store") and ("!" in ops or "], " in ops):
        dests = dests + addr[:1]  # base write-back (pre- or post-indexed)
    reads = tuple(r for r in regs if r not in dests[:1]) if klass != "store" else regs
    reg_offset = klass in ("load", "store") and len(addr) >= 2
    return Insn(pc, size, f"{mnemonic} {ops}".strip(), base, klass, cond, nregs, writes_pc, dests, addr,
                reads, reg_offset)


_OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f]{4}(?: [0-9a-f]{4})?)\s*\t(\S+)(?:\t(.*))?$")


def parse_objdump(text: str) -> dict[int, Insn]:
    """PC -> :class:`Insn` for every Thumb instruction of ``objdump -d`` output (literal pools,
    printed as ``.word``, are skipped)."""
    out = {}
    for line in text.splitlines():
        m = _OBJDUMP_LINE.match(line)
        if m is None or m.group(3).startswith("."):
            continue
        pc = int(m.group(1), 16)
        out[pc] = decode(pc, len(m.group(2).replace(" ", "")) // 2, m.group(3), m.group(4) or "")
    return out


OBJDUMP_ARCH = {"cortex-m55": "armv8.1-m.main"}
"""objdump's ``-m`` per core where the ELF's attributes do not select the decoder: without it, GNU
objdump decodes the M55's Helium (MVE) instructions as coprocessor ``ldc``/``cdp2``."""


def disassemble(elf: Path, target: str | None = None) -> dict[int, Insn]:
    """:func:`parse_objdump` of ``arm-none-eabi-objdump -d elf`` (with ``-m`` of :data:`OBJDUMP_ARCH`
    for ``target``)."""
    from .toolchain import find_tool

    arch = ["-m", OBJDUMP_ARCH[target]] if target in OBJDUMP_ARCH else []
    proc = subprocess.run([find_tool("arm-none-eabi-objdump"), "-d", *arch, str(elf)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise Bnn2hwError(f"arm-none-eabi-objdump failed on {elf}: {proc.stderr.strip()}")
    return parse_objdump(proc.stdout)


# ---------------------------------------------------------------------------------------------
# Timing of one translated block (straight-line code ending in at most one branch)


def _m4_cost(i: Insn, prev: Insn | None, p: int) -> int:
    """Cortex-M4 cycles of ``i`` after ``prev`` (None at a block start), branch outcome aside."""
    k = i.klass
    prev_load = prev is not None and prev.klass == "load"
    stall = 1 if (k in ("load", "store", "load_multiple", "store_multiple") and prev is not None
                  and prev.klass in ("alu", "mul_dsp") and set(prev.dests) & set(i.addr_regs)) else 0
    if k == "load":
        piped = prev_load and not (set(prev.dests) & set(i.addr_regs))
        c = 1 if piped else 2
        return c + stall + (p if i.writes_pc else 0)
    if k == "store":
        if i.base.startswith("strex") or i.reg_offset:
            return (1 if prev_load else 2) + stall
        return 1 + stall
    if k in ("load_multiple", "store_multiple"):
        return 1 + i.nregs + stall + (p if i.writes_pc else 0)
    if k == "div":
        return DIV_CYCLES
    if k == "fp":
        if i.base.startswith(("vldr", "vstr")):
            return 2
        if i.base in _FP3:
            return 3
        if i.base in _FP14:
            return 14
        return 1
    if k == "system":
        return 1 + p if i.base == "isb" else 1
    if k == "alu" and i.writes_pc:
        return 1 + p
    return 1  # alu, mul_dsp, it, other; branches get their outcome cost separately


_M55_LS_PREFIX = ("vldr", "vstr", "vld2", "vld4", "vst2", "vst4")
_M55_MUL_PREFIX = ("vmul", "vmla", "vmls", "vqdm", "vqrdm", "vrmla", "vrmls", "vfma", "vfms", "vcmul", "vcmla")
_M55_CTL = ("vpt", "vpst", "vctp", "vpnot")
_GATHER = re.compile(r"\[[^\]]*\bq[0-7]\b")  # a Q register inside the address: gather / scatter


def _m55_pipe(i: Insn) -> str | None:
    """The Cortex-M55 MVE pipeline of ``i`` ("ls", "int", "mul", "ctl"), None for a scalar or
    single-register VFP instruction (timed as on the Cortex-M4)."""
    b = i.base
    if not b.startswith("v") or i.klass in ("load_multiple", "store_multiple"):
        return None
    ops = i.text.split(None, 1)[1] if " " in i.text else ""
    if b in ("vmrs", "vmsr") or not re.search(r"\bq[0-7]\b", ops):
        return None  # no Q register: scalar VFP (or a move between core and FP registers)
    if b.startswith(_M55_LS_PREFIX):
        return "ls"
    if b.startswith(_M55_CTL):
        return "ctl"
    if b.startswith(_M55_MUL_PREFIX):
        return "mul"
    return "int"


def _m55_gather_elements(i: Insn) -> int:
    """Elements of a gather load / scatter store (0 if ``i`` is none): 16, 8 or 4 by its size."""
    if not i.base.startswith(("vldr", "vstr")) or not _GATHER.search(i.text):
        return 0
    return {"b": 16, "h": 8}.get(i.base[4:5], 4)


def _m55_cost(i: Insn, prev: Insn | None, p: int) -> tuple[int, int]:
    """Cortex-M55 (estimate, upper) cycles of ``i`` after ``prev`` (None at a block start)."""
    pipe = _m55_pipe(i)
    if pipe is None:
        c = _m4_cost(i, prev, p)
        return c, _m4_cost(i, prev, P_MAX) if p != P_MAX else c
    if pipe == "ctl":
        return 1, 1
    prev_pipe = _m55_pipe(prev) if prev is not None else None
    est = 1 if prev_pipe not in (None, "ctl", pipe) else 2  # beat overlap with another pipeline
    n = _m55_gather_elements(i)
    return est, max(2, n)


def _m0_cost(i: Insn) -> int:
    """Cortex-M0 cycles of ``i`` (Table 3-1 of DDI 0432C), branch outcome aside."""
    k = i.klass
    if k in ("load", "store"):
        return 2 + (1 if i.writes_pc else 0)
    if k in ("load_multiple", "store_multiple"):
        return 1 + i.nregs + (2 if i.writes_pc else 0)
    if k == "alu" and i.writes_pc:
        return 3
    if k == "system":
        return 3 if i.base in ("dmb", "dsb", "isb") else 1 if i.base != "mrs" and i.base != "msr" else 4
    return 1


def branch_cycles_m0(i: Insn, taken: bool) -> int:
    if i.base == "bl":
        return 4
    return 3 if taken else 1


def branch_cycles(i: Insn, taken: bool, p: int) -> int:
    """Cortex-M4 cycles of the block's last instruction when it is a branch (Table 3-1)."""
    if i.base in ("tbb", "tbh"):
        return 2 + p
    return 1 + p if taken else 1


def _m7_pairable(a: Insn, b: Insn) -> bool:
    single = ("alu", "mul_dsp", "load", "store", "it", "fp", "other")
    if a.klass not in single or b.klass not in single or a.writes_pc or b.writes_pc:
        return False
    if a.klass == "it" or b.klass == "it" or a.conditional or b.conditional:
        return False
    mem = ("load", "store")
    if a.klass in mem and b.klass in mem:
        return False
    if a.klass == "mul_dsp" and b.klass == "mul_dsp":
        return False
    if a.klass == "fp" and (b.klass == "fp" or a.base in _FP3 | _FP14):
        return False
    return not (set(a.dests) & set(b.reads + b.addr_regs))


def _m7_cost(i: Insn) -> int:
    if i.klass in ("load_multiple", "store_multiple"):
        return 1 + (i.nregs + 1) // 2
    if i.klass == "div":
        return DIV_CYCLES
    if i.klass == "fp":
        return 14 if i.base in _FP14 else 1
    return 1


@dataclass
class BlockCost:
    """Static cost of one translated block; the last instruction's branch outcome is dynamic."""

    insns: tuple[Insn, ...]
    classes: dict[str, int] = field(default_factory=dict)
    m4: int = 0  # with P_ESTIMATE, excluding the final branch
    m4_max: int = 0  # with P_MAX
    m7: int = 0
    m0: int = 0
    m55: int = 0  # Cortex-M55 estimate (P_ESTIMATE), excluding the final branch
    m55_max: int = 0  # with P_MAX and gathers at one cycle per element
    last_branch: Insn | None = None
    fallthrough: int = 0

    @classmethod
    def of(cls, insns: list[Insn]) -> BlockCost:
        b = cls(tuple(insns))
        for k in CLASSES:
            b.classes[k] = 0
        for i in insns:
            b.classes[i.klass] += 1
        last = insns[-1]
        body = insns[:-1] if last.is_branch else insns
        b.last_branch = last if last.is_branch else None
        b.fallthrough = last.pc + last.size
        prev = None
        for i in body:
            b.m0 += _m0_cost(i)
            b.m4 += _m4_cost(i, prev, P_ESTIMATE)
            b.m4_max += _m4_cost(i, prev, P_MAX)
            e55, u55 = _m55_cost(i, prev, P_ESTIMATE)
            b.m55 += e55
            b.m55_max += u55
            prev = i
        j = 0
        while j < len(body):
            if j + 1 < len(body) and _m7_pairable(body[j], body[j + 1]):
                b.m7 += max(_m7_cost(body[j]), _m7_cost(body[j + 1]))
                j += 2
            else:
                b.m7 += _m7_cost(body[j])
                j += 1
        if b.last_branch is not None:
            b.m7 += 1  # issue cycle of the branch; +1 more when taken (see :func:`estimate`)
        return b


@dataclass
class CycleEstimate:
    """Per-inference totals: instructions, class counts, branches taken / not taken and the
    estimated cycles (M4 at ``P = 1``, M4 upper end at ``P = 3``, M7 dual-issue model)."""

    instructions: int = 0
    classes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    branches_taken: int = 0
    branches_not_taken: int = 0
    cycles_m4: int = 0
    cycles_m4_max: int = 0
    cycles_m7: int = 0
    cycles_m0: int = 0
    cycles_m55: int = 0
    cycles_m55_max: int = 0

    def add(self, block: BlockCost, taken: bool | None, n: int) -> None:
        """``n`` executions of ``block``; ``taken`` is its final branch's outcome (None: no branch)."""
        self.instructions += n * len(block.insns)
        for k, v in block.classes.items():
            self.classes[k] += n * v
        m4, m4_max, m7, m0 = block.m4, block.m4_max, block.m7, block.m0
        m55, m55_max = block.m55, block.m55_max
        if block.last_branch is not None:
            m0 += branch_cycles_m0(block.last_branch, bool(taken))
            m4 += branch_cycles(block.last_branch, bool(taken), P_ESTIMATE)
            m4_max += branch_cycles(block.last_branch, bool(taken), P_MAX)
            m55 += branch_cycles(block.last_branch, bool(taken), P_ESTIMATE)
            m55_max += branch_cycles(block.last_branch, bool(taken), P_MAX)
            m7 += 1 if taken else 0
            if taken:
                self.branches_taken += n
            else:
                self.branches_not_taken += n
        self.cycles_m4 += n * m4
        self.cycles_m4_max += n * m4_max
        self.cycles_m7 += n * m7
        self.cycles_m0 += n * m0
        self.cycles_m55 += n * m55
        self.cycles_m55_max += n * m55_max

    def minus(self, other: CycleEstimate) -> CycleEstimate:
        out = CycleEstimate(self.instructions - other.instructions,
                            {k: self.classes[k] - other.classes[k] for k in CLASSES},
                            self.branches_taken - other.branches_taken,
                            self.branches_not_taken - other.branches_not_taken,
                            self.cycles_m4 - other.cycles_m4, self.cycles_m4_max - other.cycles_m4_max,
                            self.cycles_m7 - other.cycles_m7, self.cycles_m0 - other.cycles_m0,
                            self.cycles_m55 - other.cycles_m55, self.cycles_m55_max - other.cycles_m55_max)
        return out

    def cycles_for(self, target: str) -> tuple[int, int, str]:
        """(estimate, upper end, model name) for a target: the M0 table for cortex-m0, the M7
        model for cortex-m7, the M55 beat model for cortex-m55, the M4 table for every other core
        (an approximation for M3/M33, said in the report)."""
        if target == "cortex-m55":
            return self.cycles_m55, self.cycles_m55_max, "cortex-m55 MVE beat model"
        if target == "cortex-m7":
            return self.cycles_m7, self.cycles_m7, "cortex-m7 dual-issue model"
        if target == "cortex-m0":
            return self.cycles_m0, self.cycles_m0, "cortex-m0 TRM table 3-1"
        return self.cycles_m4, self.cycles_m4_max, "cortex-m4 TRM table 3-1"


ERROR_SOURCES = ("flash wait states (and the flash accelerator/ART prefetch hiding part of them)",
                 "instruction and data caches, TCM vs. bus memory (Cortex-M7)",
                 "bus contention (DMA, other masters)",
                 "pipeline refill P = 1..3 per taken branch (estimate uses 1)",
                 ("divide early termination (12 cycles charged), IT folding (not modelled), "
                  "conditional instructions that fail (charged as executed)"),
                 "Cortex-M7: simplified dual-issue pairing; no branch misprediction or load-use stalls",
                 ("Cortex-M55: MVE beats from Arm's LLVM scheduling model; gathers between 2 cycles and one "
                  "per element; no dual issue of 16-bit instructions; low-overhead loop ends charged as branches"))


# Typical core clocks (MHz), the default of ``emit-c --clock-mhz``; each names a common part.
DEFAULT_CLOCK_MHZ = {
    "cortex-m0": 48.0,  # STM32F0
    "cortex-m3": 72.0,  # STM32F103
    "cortex-m4": 168.0,  # STM32F407
    "cortex-m7": 216.0,  # STM32F746
    "cortex-m33": 110.0,  # STM32L552
    "cortex-m55": 160.0,  # Alif Ensemble E3 high-efficiency core
}
MAX_CLOCK_MHZ = 2000.0


def check_clock_mhz(clock_mhz: float) -> float:
    """``clock_mhz`` if it is a finite clock in (0, MAX_CLOCK_MHZ] MHz, else Bnn2hwError."""
    import math

    c = float(clock_mhz)
    if not (math.isfinite(c) and 0.0 < c <= MAX_CLOCK_MHZ):
        raise Bnn2hwError(f"--clock-mhz must be a clock in (0, {MAX_CLOCK_MHZ:g}] MHz, got {clock_mhz}")
    return c
