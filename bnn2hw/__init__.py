# SPDX-License-Identifier: MIT
"""bnn2hw: train periodic-surrogate binary neural networks and deploy them bit-exactly
to FPGAs (through FINN) and Cortex-M microcontrollers (through generated C99)."""

__version__ = "0.1.0"
