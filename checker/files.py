"""Writing files so that no reader ever sees half of one, and checking where they go first.

Every file the checker writes (reports, the baseline, counterexamples, state graphs) goes
through `write_text_atomic`: a temporary file in the same folder, flushed and fsynced, then
renamed over the final path. A run killed at any moment leaves the old file or the new one,
never a truncated one, and a symlink at the final path is replaced rather than followed.
`file_problem` and `folder_problem` say why a path cannot be written, so that commands can
refuse it before any work starts rather than lose the work at the end.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

# Temporary files are `.<name>.<random>.tmp`: hidden, and never matching `*.json`, so a run
# killed mid-write leaves nothing a reader of the folder mistakes for a finished file.
TEMP_SUFFIX = ".tmp"


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one rename; keeps the mode of a file it replaces."""
    target = Path(path)
    folder = target.parent
    mode = _mode_for(target)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise _cannot_write(target, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise _cannot_write(target, exc) from exc
        raise
    _sync_folder(folder)


def _cannot_write(target: Path, exc: OSError) -> OSError:
    """The error named after the file asked for, not the temporary one."""
    return OSError(exc.errno, f"cannot write {target}: {exc.strerror or exc}")


def _mode_for(target: Path) -> int:
    """The mode of the regular file being replaced, else what a plain `open` would create."""
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(target)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some filesystems cannot sync a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `write_text_atomic(path, ...)` would fail, or None. A symlink is fine: it is
    replaced, even when it points at a folder."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        return "is a folder"
    return _writable_folder(target.parent)


def folder_problem(path: str | os.PathLike[str]) -> str | None:
    """Why files cannot be written into the folder `path` (created if missing), or None."""
    folder = Path(path)
    if folder.is_dir():
        return _writable_folder(folder)
    if folder.exists():
        return "is not a folder"
    if folder.is_symlink():
        return "is a dangling symlink"
    ancestor = next(p for p in folder.parents if p.exists())
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    return _writable_folder(ancestor)


def _writable_folder(folder: Path) -> str | None:
    if not folder.exists():
        return f"folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    return None
