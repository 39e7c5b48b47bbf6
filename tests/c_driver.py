# SPDX-License-Identifier: MIT
"""Build a self-checking C kernel driver (``drv.c`` in a folder) with firmware sources and run it: on
the host with -Werror and ASan/UBSan, or cross-compiled for a Cortex-M core and run in QEMU with
semihosting.  The driver's exit code is its number of failing cases; a missing tool fails the test
(never a silent skip)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bnn2hw.mcu.targets import get_target

FW = Path(__file__).resolve().parents[1] / "firmware"


def run_driver(driver: Path, sources: list[str], target: str) -> subprocess.CompletedProcess:
    """Compile ``driver/drv.c`` with ``sources`` for ``target`` ("host" or a Cortex-M name) and run it
    in ``driver``; returns the finished process (stdout/stderr captured as text)."""
    if target == "host":
        if shutil.which("gcc") is None:
            pytest.fail("gcc not found: apt-get install gcc")
        exe = driver / "drv"
        subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", "-DBNN_HOST", f"-I{FW / 'include'}", str(driver / "drv.c"),
                        *sources, "-o", str(exe)], check=True)
        cmd = [str(exe)]
    else:
        for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                            "qemu-system-arm")
        t = get_target(target)
        elf = driver / f"drv_{target}.elf"
        subprocess.run(["arm-none-eabi-gcc", *t.cpu_flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                        "-fno-tree-loop-distribute-patterns", f"-I{FW / 'include'}", f"-I{FW / 'harness'}",
                        str(driver / "drv.c"), *sources, str(FW / "harness" / "startup.c"),
                        str(FW / "harness" / "semihost.c"), "-nostartfiles", "-specs=nano.specs",
                        "-specs=nosys.specs", f"-L{FW / 'harness'}", "-T", str(FW / "harness" / f"mem_{target}.ld"),
                        "-o", str(elf)], check=True)
        cmd = ["qemu-system-arm", "-M", t.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    return subprocess.run(cmd, cwd=driver, capture_output=True, text=True, timeout=600, check=False)
