# SPDX-License-Identifier: MIT
"""Run the ``bnn2hw`` command in-process (the console script's code path, minus the interpreter
start) for the CLI tests, and build-and-run generated firmware for the C tests."""

from __future__ import annotations

import shutil
import signal
import sys

import pytest
import torch

from bnn2hw import cli


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``bnn2hw <args>``; returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["bnn2hw", *map(str, args)])
    torch.set_num_threads(1)  # the machine is shared; the CLI's train uses torch's default
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # main() installs a SIGTERM handler
    out, err = capsys.readouterr()
    return code, out, err


def need_tool(tool: str, pkg: str) -> None:
    """Skip, naming the Debian package, when ``tool`` is not installed."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (apt-get install {pkg})")


def run_firmware(graph, tmp_path, target, x):
    """Integer logits of ``graph``'s generated C for ``target`` (host or QEMU) on uint8 inputs ``x``."""
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    out = tmp_path / f"fw_{target}"
    write_firmware_dir(graph, out, target)
    elf = toolchain.build(out, target)
    return qemu.run(elf, target, to_c_inputs(graph, x), graph.num_classes)
