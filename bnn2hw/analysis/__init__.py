# SPDX-License-Identifier: MIT
"""Analyses of trained binary networks: quantization error (BiPer sec. 4.1)."""

from .quantization_error import (QE_LIMIT, QE_MAX, expected_sin2, format_report, laplace_b,
                                 measured_qe, model_quantization_report, optimal_scale,
                                 quantization_error)

__all__ = ["QE_LIMIT", "QE_MAX", "expected_sin2", "format_report", "laplace_b", "measured_qe",
           "model_quantization_report", "optimal_scale", "quantization_error"]
