"""Written files are never half-written: each goes through a temporary file that is renamed
into place, and any OS problem is one `DeriveError` line naming the path."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from derive.errors import DeriveError

_UMASK = os.umask(0)   # read the process's umask (the only way) and put it back at once
os.umask(_UMASK)


def write_text(path: Path, text: str) -> None:
    """Write atomically; any OS problem becomes a one-line DeriveError naming the path."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file in the target folder, renamed into place.  An existing
    path that is not a regular file (a device such as /dev/stdout, a pipe) is refused:
    renaming over it would replace the node itself, not write to it."""
    path = Path(path)
    tmp = None
    if path.exists() and not path.is_dir() and not path.is_file():
        raise DeriveError(f"cannot write {path}: not a regular file (a device or pipe)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes it private; give it a new file's mode
        os.replace(tmp, path)
    except OSError as err:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise DeriveError(f"cannot write {path}: {err.strerror or err}") from None
