"""The page cache of a dataset's files: evict them, read them in, and say how much of them is
resident, so that ``feedbench explain`` can measure a pipeline cold and warm.

Eviction is ``posix_fadvise(POSIX_FADV_DONTNEED)`` on each file: it needs no root, but the
kernel may keep pages that are dirty or mapped by another process, and some file systems
(tmpfs) cannot drop them at all. So the fraction still resident is measured after it
(``mincore`` on a private mapping of each file), not assumed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Iterable
from pathlib import Path


def files_under(path: str | os.PathLike[str]) -> list[str]:
    """Every regular file under `path` (or `path` itself, if it is a file), sorted."""
    root = Path(path)
    if root.is_file():
        return [str(root)]
    found = []
    for folder, _, names in os.walk(root):
        found.extend(str(Path(folder, name)) for name in names if Path(folder, name).is_file())
    return sorted(found)


def evict(paths: Iterable[str]) -> int:
    """Asks the kernel to drop the cached pages of each file; returns the bytes advised.
    Files that cannot be opened are passed over (the pipeline names them when it reads them)."""
    advised = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            advised += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return advised


def read_in(paths: Iterable[str], chunk: int = 1 << 20) -> int:
    """Reads each file whole, so that its pages are cached; returns the bytes read."""
    total = 0
    for path in paths:
        try:
            with open(path, "rb", buffering=0) as handle:
                while data := handle.read(chunk):
                    total += len(data)
        except OSError:
            continue
    return total


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))


def resident_fraction(paths: Iterable[str]) -> float:
    """The fraction of the files' pages in the page cache (NaN where nothing could be read)."""
    resident = pages = 0
    size = mmap.PAGESIZE
    for path in paths:
        try:
            with open(path, "rb") as handle:
                length = os.fstat(handle.fileno()).st_size
                if length == 0:
                    continue
                with mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_COPY) as mapped:
                    count = (length + size - 1) // size
                    vector = (ctypes.c_ubyte * count)()
                    anchor = ctypes.c_char.from_buffer(mapped)
                    failed = _libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(length), vector)
                    del anchor  # the mapping cannot close while a pointer into it exists
                    if failed:
                        continue
                    resident += sum(byte & 1 for byte in vector)
                    pages += count
        except (OSError, ValueError, TypeError):
            continue
    return resident / pages if pages else float("nan")
