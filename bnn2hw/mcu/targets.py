# SPDX-License-Identifier: MIT
"""Cortex-M targets of the firmware runtime: compiler flags, QEMU machine, DSP support
and default popcount strategy (names as in firmware/harness/Makefile)."""

from __future__ import annotations

from dataclasses import dataclass

from bnn2hw.errors import Bnn2hwError

POPCOUNT_STRATEGIES = ("builtin", "swar", "table", "multi")


@dataclass(frozen=True)
class Target:
    name: str  # Makefile TARGET
    cpu_flags: tuple[str, ...]  # arm-none-eabi-gcc flags (empty for host)
    qemu_machine: str | None  # qemu-system-arm -M (None: runs natively)
    has_dsp: bool  # ARMv7E-M / v8-M DSP extension (USADA8)
    popcount: str  # default popcount strategy
    ram_bytes: int  # RAM of the QEMU board as linked (mem_<name>.ld)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("host", (), None, False, "multi", 0),
        Target("cortex-m0", ("-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"), "microbit", False, "multi", 16 << 10),
        Target("cortex-m3", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"), "mps2-an385", False, "multi", 4 << 20),
        Target(
            "cortex-m4",
            ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
            "mps2-an386",
            True,
            "multi",
            4 << 20,
        ),
        Target(
            "cortex-m7",
            ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
            "mps2-an500",
            True,
            "multi",
            4 << 20,
        ),
        Target(
            "cortex-m33",
            ("-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
            "mps2-an505",
            True,
            "multi",
            2 << 20,
        ),
        Target("cortex-m55", ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"), "mps3-an547", True, "multi", 512 << 10),
    )
}

# "cortex-m" picks the Cortex-M4: the most widely deployed core with the DSP extension
# (USADA8) and an FPU, and the core the performance target is stated for.
ALIASES = {"cortex-m": "cortex-m4"}


def get_target(name: str) -> Target:
    """The Target called name (or an alias); Bnn2hwError listing the valid names otherwise."""
    key = ALIASES.get(name, name)
    if key not in TARGETS:
        valid = ", ".join(list(TARGETS) + list(ALIASES))
        raise Bnn2hwError(f"unknown target {name!r}; valid targets: {valid}")
    return TARGETS[key]


def check_popcount(name: str) -> str:
    if name not in POPCOUNT_STRATEGIES:
        raise Bnn2hwError(f"unknown popcount strategy {name!r}; valid: {', '.join(POPCOUNT_STRATEGIES)}")
    return name
