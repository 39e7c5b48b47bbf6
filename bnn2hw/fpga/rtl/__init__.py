# SPDX-License-Identifier: MIT
"""Open RTL back end: Verilog-2005 from the IR with FINN's folding (:mod:`.plan`, :mod:`.emit`),
Verilator/iverilog simulation (:mod:`.sim`), yosys/nextpnr-ecp5 implementation (:mod:`.synth`)
and the ``export --backend rtl`` driver (:mod:`.export`)."""

from .export import TARGETS, Design, check_target, export_rtl, generate, generate_design

__all__ = ["TARGETS", "Design", "check_target", "export_rtl", "generate", "generate_design"]
