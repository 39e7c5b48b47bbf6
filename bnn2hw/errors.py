# SPDX-License-Identifier: MIT
"""The one exception type bnn2hw raises for user-facing problems.

The CLI turns a :class:`Bnn2hwError` into a one-line message on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""


class Bnn2hwError(Exception):
    """A problem with the user's input (a file, a layer, a shape, a tool), stated in words."""
