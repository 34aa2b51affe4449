"""Read and set the number of BLAS threads numpy uses, at runtime.

numpy's wheels bundle OpenBLAS under a prefixed name (``scipy_openblas64_``).
Its thread count is normally fixed by ``OPENBLAS_NUM_THREADS`` before numpy is
imported; to measure and change it in a running process (the benchmark does),
we call OpenBLAS's own setter through ctypes. threadpoolctl would do the same
but is not in the lock for one function.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


def available_cpus() -> int:
    """CPUs this process may run on (respects container cpusets, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _loaded_openblas() -> ctypes.CDLL | None:
    import numpy  # noqa: F401  (loads the bundled OpenBLAS into the process)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rsplit(" ", 1)[-1]
        if "openblas" in Path(path).name.lower():
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def _function(names: tuple[str, ...]) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    library = _loaded_openblas()
    if library is None:
        return None
    for name in names:
        function = getattr(library, name, None)
        if function is not None:
            return function
    return None


def get_blas_threads() -> int | None:
    """The BLAS thread count, or None if numpy's BLAS is not OpenBLAS."""
    getter = _function(_GETTERS)
    if getter is None:
        return None
    getter.restype = ctypes.c_int
    return int(getter())


def set_blas_threads(count: int) -> bool:
    """Set the BLAS thread count; False if this BLAS offers no runtime setter."""
    setter = _function(_SETTERS)
    if setter is None:
        return False
    setter.argtypes = [ctypes.c_int]
    setter(max(1, int(count)))
    return True


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` BLAS threads, restoring the previous count after."""
    previous = get_blas_threads()
    set_blas_threads(count)
    try:
        yield
    finally:
        if previous is not None:
            set_blas_threads(previous)
