# SPDX-License-Identifier: MIT
"""Output directories and files, all or nothing.

Invariant: after a bnn2hw command, its ``-o`` path holds either the complete (and, when asked,
verified) result of this run, or exactly what it held before. Everything is built in a hidden
temporary sibling (``.<name>.tmp<random suffix>``) and moved into place with one rename at the very end;
the temporary is removed on any error, on SIGINT and on SIGTERM (see :func:`terminate_on_sigterm`).

An existing output directory is replaced only if bnn2hw wrote it: it holds the marker file, and
every file in it is listed in the manifest that run wrote (``.bnn2hw-manifest``). A file the
user added there is never deleted silently: the command refuses and names it, unless
``force=True`` (``--force``), which the user asks for knowing the folder is replaced.

Files and folders get the usual permissions for the user's umask (``mkstemp``/``mkdtemp``
create 0600/0700, which a FINN Docker build running as another user cannot read).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Callable

from .errors import Bnn2hwError

MANIFEST = ".bnn2hw-manifest"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give ``path`` (recursively) the permissions a plain ``open``/``mkdir`` would have."""
    mask = _umask()
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o777 & ~mask)
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o777 & ~mask)
            for f in files:
                p = os.path.join(root, f)
                # keep the executable bit of scripts, as a copy would
                mode = 0o777 if os.stat(p).st_mode & 0o100 else 0o666
                os.chmod(p, mode & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def check_output_path(out: Path, kind: str = "directory") -> Path:
    """Refuse ``-o`` paths that cannot be written as a ``kind`` ("directory" or "file"), with
    the reason; returns the absolute path. Does not create anything."""
    out = Path(out)
    if out.is_symlink():
        target = os.readlink(out)
        state = "" if out.exists() else ", which does not exist"
        raise Bnn2hwError(f"-o {out} is a symbolic link (to {target}{state}); give a real path")
    if kind == "directory" and out.exists() and not out.is_dir():
        raise Bnn2hwError(f"-o {out} exists and is a file, not a directory; choose another -o")
    if kind == "file" and out.is_dir():
        raise Bnn2hwError(f"-o {out} is a directory; give a file name, e.g. {out / 'model.pt'}")
    parent = out.absolute().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise Bnn2hwError(f"-o {out}: {probe} is a file, so {parent} cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise Bnn2hwError(f"-o {out}: cannot write in {probe} (permission denied or read-only)")
    return out.absolute()


def _check_replaceable(out_dir: Path, marker: str, force: bool) -> None:
    if not out_dir.exists() or force:
        return
    present = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if not p.is_dir())
    if not present:
        return
    if not (out_dir / marker).exists():
        raise Bnn2hwError(f"{out_dir} exists, is not empty and was not written by bnn2hw "
                          f"(no {marker}); choose another -o (or --force to replace it)")
    manifest = out_dir / MANIFEST
    written = set(manifest.read_text().split("\n")) if manifest.exists() else set()
    owned = tuple(w for w in written if w.endswith("/"))  # folders a later step fills (FINN's output)
    extra = [p for p in present
             if p not in written and p != MANIFEST and not any(p.startswith(d) for d in owned)]
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise Bnn2hwError(f"{out_dir} holds files bnn2hw did not write ({shown}); move them away, "
                          "choose another -o, or pass --force to replace the whole folder")


def write_dir_atomically(out_dir: Path, fill: Callable[[Path], None], marker: str,
                         force: bool = False, owned_dirs: tuple[str, ...] = ()) -> None:
    """Call ``fill(tmp)`` on a temp dir beside ``out_dir``; if it returns, record the manifest
    and move the result into place (see the module docstring for the guarantees).
    ``owned_dirs`` are subfolders a later step of the same command fills (FINN's output), which
    a re-export may replace."""
    out_dir = check_output_path(Path(out_dir), "directory")
    _check_replaceable(out_dir, marker, force)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
    except OSError as e:
        raise Bnn2hwError(f"-o {out_dir}: cannot create it ({e.strerror or e})") from None
    old = None
    try:
        fill(tmp)
        if not (tmp / marker).exists():
            raise AssertionError(f"internal error: {marker} was not written")
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if not p.is_dir())
        owned = [d.rstrip("/") + "/" for d in owned_dirs]
        (tmp / MANIFEST).write_text("\n".join(files + owned + [MANIFEST]) + "\n")
        apply_umask(tmp)
        if out_dir.exists():
            # move the old result aside first, so a failed rename can put it back
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old"))
            os.rmdir(old)
            out_dir.rename(old)
        try:
            tmp.rename(out_dir)
        except OSError:
            if old is not None:
                old.rename(out_dir)
                old = None
            raise
    except OSError as e:
        raise Bnn2hwError(f"-o {out_dir}: cannot write it ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a hidden temp file beside ``path``, then rename it into place (umask
    permissions); the temp file is removed on any error or signal."""
    path = check_output_path(Path(path), "file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise Bnn2hwError(f"-o {path}: cannot create it ({e.strerror or e})") from None
    tmp = Path(tmp_name)
    try:
        write(tmp)
        apply_umask(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise Bnn2hwError(f"-o {path}: cannot write it ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so ``finally`` blocks clean up as on Ctrl-C."""


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` (the CLI exits 143 after cleaning up)."""
    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
