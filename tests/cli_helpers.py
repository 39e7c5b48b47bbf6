# SPDX-License-Identifier: MIT
"""Run the ``bnn2hw`` command in-process (the console script's code path, minus the interpreter
start) for the CLI tests."""

from __future__ import annotations

import signal
import sys

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
