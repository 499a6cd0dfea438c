"""Keep freed host memory for reuse instead of handing it back to the kernel.

XLA:CPU allocates a fresh buffer for every large intermediate of every step
(activations, gradients, im2col-sized temporaries). glibc serves allocations
above its mmap threshold (128 KiB, growing to at most 32 MiB) with ``mmap`` and
returns them with ``munmap`` when freed, so every step of a conv net touches
fresh pages: page faults and zeroing by the kernel that cost as much as the
arithmetic (the "system time = user time" of issue 9). Measured on this 2-core
CPU (``benchmarks/train_step.py``): the small CNN's training step takes 127 ms
with glibc's defaults and 50 ms with :func:`keep_freed_memory` -- results are
identical, only where the bytes come from changes.

:func:`keep_freed_memory` sets, through ``mallopt``, ``M_MMAP_MAX = 0`` (every
block comes from the heap, whose freed blocks are reused) and
``M_TRIM_THRESHOLD = 2 GiB`` (the heap's free top is kept up to that size).
The cost: the process keeps its peak heap instead of shrinking after it
(resident memory stays near the peak). ``import jaxal`` calls it once; set
``JAXAL_MALLOC=system`` in the environment to leave glibc's defaults. It does
nothing on a C library without ``mallopt`` (macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
TRIM_THRESHOLD = 2**31 - 1  # bytes (mallopt takes an int)
_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Tune glibc malloc as described above (once per process).

    Returns:
      Whether the setting is in effect (False: ``JAXAL_MALLOC=system``, or no
      glibc ``mallopt``).
    """
    if _done:
        return _done[0]
    ok = False
    if os.environ.get("JAXAL_MALLOC", "") != "system":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _done.append(ok)
    return ok
