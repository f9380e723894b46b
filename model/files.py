"""Writing a file so that readers see the old one or the new one, never half of one.

Used for everything the project writes that something else may read meanwhile: checkpoints,
the exported model (a running service reloads it), the MNIST cache, a feedback export.
Standard library only.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def write_atomic(path: Path, write: Callable[[Path], object], mode: int = 0o644) -> None:
    """Have `write` fill a temporary file beside `path`, flush it to disk, then rename it over
    `path`. If `write` fails or the process is interrupted, `path` is left as it was and the
    temporary file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`path.write_bytes(data)`, atomically."""
    write_atomic(path, lambda tmp: tmp.write_bytes(data), mode)


def write_directory_atomic(path: Path, fill: Callable[[Path], T]) -> T:
    """Have `fill` write a new directory beside `path`, then rename it to `path`, which must not
    exist or be empty; its result is returned. Interrupted or failed, nothing is left behind."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} already exists and is not empty: choose a new directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        result = fill(staging)
        if path.exists():
            path.rmdir()
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result
