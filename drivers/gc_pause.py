"""A pause of Python's cyclic garbage collector around large, acyclic batches of work."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block; the previous state comes back after it.

    Parsing or generating a 10,000-extension inventory allocates hundreds of thousands of
    small objects without cycles; the collector's repeated full scans would make that work
    grow worse than linearly. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
