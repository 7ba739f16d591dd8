"""The first code a pool worker runs: tie it to its parent before the heavy imports.

A spawned worker spends seconds importing torch before it reaches the pool's loop; a parent killed
in that window (kill -9) used to leave its workers running for 20-30 s. This module imports nothing
heavy, so the worker asks the kernel for SIGTERM on its parent's death first thing (Linux) and exits
at once if the parent is already gone; then it imports the pool's loop, named by the pool.
"""

from __future__ import annotations

import os
import signal


def die_with_parent(parent: int) -> None:
    """Linux: SIGTERM to this process when its parent dies (kill -9 included); elsewhere nothing. If the
    parent died before this was set, exit now."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


def boot(target: str, parent: int, *args) -> None:
    """A pool worker's process target: tie it to `parent`, then import `target` ('module:function', named
    rather than imported here so this module stays light and imports nothing of the suite) and call it
    with `args`."""
    die_with_parent(parent)
    import importlib

    module, _, function = target.partition(":")
    getattr(importlib.import_module(module), function)(*args)
