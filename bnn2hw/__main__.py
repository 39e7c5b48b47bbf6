# SPDX-License-Identifier: MIT
"""``python -m bnn2hw`` = the ``bnn2hw`` command."""

from bnn2hw.cli import main

main()
