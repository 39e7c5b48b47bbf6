# SPDX-License-Identifier: MIT
"""Open RTL back end: Verilog-2005 from the IR with FINN's folding (:mod:`.plan`, :mod:`.emit`),
Verilator/iverilog simulation (:mod:`.sim`), yosys/nextpnr-ecp5 implementation (:mod:`.synth`)
and the ``export --backend rtl`` driver (:mod:`.export`)."""

from .export import TARGETS, check_target, export_rtl, generate

__all__ = ["TARGETS", "check_target", "export_rtl", "generate"]
