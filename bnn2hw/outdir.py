# SPDX-License-Identifier: MIT
"""Write an output directory atomically: a failed command never leaves a half-written
directory that looks complete."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .errors import Bnn2hwError


def write_dir_atomically(out_dir: Path, fill: Callable[[Path], None], marker: str) -> None:
    """Call ``fill(tmp)`` on a temp dir beside ``out_dir``, then move it into place.

    An existing non-empty ``out_dir`` is replaced only if it holds ``marker`` (a file a
    previous run of the same command wrote), so a user's unrelated folder is never deleted."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / marker).exists():
        raise Bnn2hwError(f"{out_dir} exists, is not empty and was not written by bnn2hw "
                          f"(no {marker}); choose another -o")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
    try:
        fill(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
