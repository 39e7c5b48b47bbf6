# SPDX-License-Identifier: MIT
"""Find the C toolchain, build the firmware harness (firmware/harness/Makefile) and read
flash/RAM sizes with arm-none-eabi-size."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu.targets import check_popcount, get_target

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"

# tool -> Debian package(s) that provide it
PACKAGES = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "gcc": "gcc",
    "make": "make",
}


def find_tool(name: str) -> str:
    """Absolute path of a tool; Bnn2hwError naming the Debian package when missing."""
    path = shutil.which(name)
    if path is None:
        pkg = PACKAGES.get(name, name)
        raise Bnn2hwError(f"{name} not found: apt-get install {pkg}")
    return path


def runtime_files() -> list[Path]:
    """Files a code generator copies next to model.c/model.h for a flat build directory."""
    fw = FIRMWARE_DIR
    return (
        sorted((fw / "include").glob("bnn_*.h"))
        + sorted((fw / "src").glob("bnn_*.c"))
        + [fw / "harness" / n for n in ("Makefile", "main.c", "startup.c", "semihost.c", "bnn_harness.h", "sections.ld")]
        + sorted((fw / "harness").glob("mem_*.ld"))
    )


def build(out_dir: Path, target: str, popcount: str | None = None, extra_cflags: str = "") -> Path:
    """Build out_dir/model.c with the harness; returns fw.elf (or fw for host).

    If out_dir holds a copy of the runtime (a flat directory made by the code generator)
    that copy is used, otherwise the runtime and harness from this checkout's firmware/.
    """
    out_dir = Path(out_dir).resolve()
    t = get_target(target)
    pop = check_popcount(popcount or t.popcount)
    find_tool("make")
    find_tool("gcc" if t.name == "host" else "arm-none-eabi-gcc")
    if not (out_dir / "model.c").exists() or not (out_dir / "model.h").exists():
        raise Bnn2hwError(f"{out_dir} has no model.c/model.h to build")
    if (out_dir / "Makefile").exists() and (out_dir / "bnn_bits.h").exists():
        dirs = {}
        makefile = out_dir / "Makefile"
    else:
        fw = FIRMWARE_DIR
        dirs = {
            "RUNTIME_SRC": str(fw / "src"),
            "RUNTIME_INC": str(fw / "include"),
            "HARNESS_DIR": str(fw / "harness"),
        }
        makefile = fw / "harness" / "Makefile"
    args = [
        "make",
        "-s",
        "-f",
        str(makefile),
        f"TARGET={t.name}",
        f"POPCOUNT={pop}",
        f"MODEL_DIR={out_dir}",
        f"OUT={out_dir}",
    ]
    args += [f"{k}={v}" for k, v in dirs.items()]
    if extra_cflags:
        args.append(f"EXTRA_CFLAGS={extra_cflags}")
    proc = subprocess.run(args, cwd=out_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise Bnn2hwError(f"firmware build for {t.name} failed:\n{proc.stdout}{proc.stderr}")
    return out_dir / ("fw" if t.name == "host" else "fw.elf")


@dataclass(frozen=True)
class Size:
    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


def size(elf: Path) -> Size:
    """text/data/bss of an ELF (flash = text + data, RAM = data + bss; the harness stack is
    not included)."""
    tool = find_tool("arm-none-eabi-size")
    proc = subprocess.run([tool, "-B", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Bnn2hwError(f"arm-none-eabi-size failed on {elf}: {proc.stderr.strip()}")
    fields = proc.stdout.splitlines()[1].split()
    return Size(int(fields[0]), int(fields[1]), int(fields[2]))
