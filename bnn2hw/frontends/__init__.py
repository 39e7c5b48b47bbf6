# SPDX-License-Identifier: MIT
"""Front ends: every way into the integer IR other than bnn2hw's own checkpoints.

* :mod:`bnn2hw.frontends.qonnx_import`: a QONNX file (Brevitas ``export_qonnx``) -> IR graph.
* :mod:`bnn2hw.frontends.qonnx_verify`: the IR against qonnx's execution of the original file.
* :mod:`bnn2hw.frontends.biper_official`: a state dict of the official BiPer code -> a bnn2hw
  checkpoint.

Nothing downstream of a front end knows where a graph came from.
"""

from __future__ import annotations

from pathlib import Path


def is_qonnx_path(path) -> bool:
    """True for a path the QONNX front end takes (``.onnx``)."""
    return Path(str(path)).suffix.lower() == ".onnx"
