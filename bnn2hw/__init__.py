# SPDX-License-Identifier: MIT
"""bnn2hw: train periodic-surrogate binary neural networks and deploy them bit-exactly
to FPGAs (through FINN) and Cortex-M microcontrollers (through generated C99)."""

__version__ = "0.1.0"


def load(path, dataset=None):
    """Load a checkpoint (``.pt``) or IR file (``.bnnir.npz``) as an IR graph; see :mod:`bnn2hw.api`."""
    from .api import load as _load

    return _load(path, dataset)


__all__ = ["__version__", "load"]
