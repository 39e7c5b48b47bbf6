# SPDX-License-Identifier: MIT
"""Find the C toolchain, write and build the firmware harness (firmware/harness/Makefile) and
read flash/RAM sizes with arm-none-eabi-size.

The C runtime and harness ship inside the package as ``bnn2hw/firmware/`` (package data, so a
wheel install has them too); the top-level ``firmware/`` of a checkout is a symlink to it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu.targets import check_popcount, get_target

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"
"""The C runtime (include/, src/) and the QEMU/host harness (harness/), as installed."""

HARNESS_FILES = ("Makefile", "main.c", "startup.c", "semihost.c", "bnn_harness.h", "sections.ld")

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
    """Files a code generator copies next to model.c/model.h for a flat build directory.

    Bnn2hwError if the runtime is missing or incomplete (a broken install)."""
    fw = FIRMWARE_DIR
    headers = sorted((fw / "include").glob("bnn_*.h"))
    sources = sorted((fw / "src").glob("bnn_*.c"))
    harness = [fw / "harness" / n for n in HARNESS_FILES]
    linker = sorted((fw / "harness").glob("mem_*.ld"))
    missing = [str(p) for p in harness if not p.is_file()]
    if not headers or not sources or not linker or missing:
        raise Bnn2hwError(f"the bnn2hw C runtime is incomplete under {fw} (missing: "
                          f"{', '.join(missing) or 'bnn_*.h, bnn_*.c or mem_*.ld'}); reinstall bnn2hw")
    return headers + sources + harness + linker


_MAKEFILE_DEFAULT_TARGET = re.compile(r"^TARGET \?= \S+$", re.MULTILINE)
_MAKEFILE_DEFAULT_POPCOUNT = re.compile(r"^POPCOUNT \?= \S+$", re.MULTILINE)


def harness_makefile(target: str, popcount: str | None = None, model: str = "model") -> str:
    """Text of the harness Makefile whose defaults are ``target`` (``make`` with no
    arguments builds for it) and its popcount strategy (or ``popcount``)."""
    t = get_target(target)
    pop = check_popcount(popcount or t.popcount)
    text = (FIRMWARE_DIR / "harness" / "Makefile").read_text()
    for pattern, value in ((_MAKEFILE_DEFAULT_TARGET, f"TARGET ?= {t.name}"),
                           (_MAKEFILE_DEFAULT_POPCOUNT, f"POPCOUNT ?= {pop}")):
        text, n = pattern.subn(value, text)
        if n != 1:
            raise Bnn2hwError(f"{FIRMWARE_DIR / 'harness' / 'Makefile'}: expected one '{value.split()[0]} ?=' "
                              f"line, found {n}")
    return text.replace("MODEL ?= model\n", f"MODEL ?= {model}\n", 1)


def write_harness(out_dir: Path, target: str, popcount: str | None = None, model: str = "model") -> list[Path]:
    """Copy the runtime and harness into ``out_dir`` (flat, next to model.c/model.h) with a
    Makefile whose default TARGET is ``target`` (and default POPCOUNT ``popcount``, else the
    target's); returns the paths written."""
    out_dir = Path(out_dir)
    makefile = harness_makefile(target, popcount, model)
    written = []
    for f in runtime_files():
        dst = out_dir / f.name
        if f.name == "Makefile":
            dst.write_text(makefile)
        else:
            shutil.copyfile(f, dst)
        written.append(dst)
    return written


HARNESS_C = {"main.c", "startup.c", "semihost.c"}


def _model_name(out_dir: Path) -> str:
    """``model`` or the NAME of an ``emit-c --name NAME`` folder (NAME.c + NAME.h)."""
    if (out_dir / "model.c").exists() and (out_dir / "model.h").exists():
        return "model"
    names = [p.stem for p in out_dir.glob("*.c") if not p.name.startswith("bnn_") and p.name not in HARNESS_C
             and (out_dir / f"{p.stem}.h").exists()]
    if len(names) != 1:
        raise Bnn2hwError(f"{out_dir} has no model.c/model.h (or one NAME.c/NAME.h) to build")
    return names[0]


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
    model = _model_name(out_dir)
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
        f"MODEL={model}",
        f"MODEL_DIR={out_dir}",
        f"OUT={out_dir}",
    ]
    args += [f"{k}={v}" for k, v in dirs.items()]
    if extra_cflags:
        args.append(f"EXTRA_CFLAGS={extra_cflags}")
    proc = subprocess.run(args, cwd=out_dir, capture_output=True, text=True, check=False)
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
    proc = subprocess.run([tool, "-B", str(elf)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Bnn2hwError(f"arm-none-eabi-size failed on {elf}: {proc.stderr.strip()}")
    fields = proc.stdout.splitlines()[1].split()
    return Size(int(fields[0]), int(fields[1]), int(fields[2]))
