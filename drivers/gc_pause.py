"""A pause of Python's cyclic garbage collector around large, acyclic batches of work."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc(*, file_as_old: bool = False) -> Iterator[None]:
    """No cyclic collection inside the block; the previous state comes back after it.

    Parsing or generating a 10,000-extension inventory allocates hundreds of thousands of
    small objects without cycles; the collector's repeated full scans would make that work
    grow worse than linearly. Reference counting still frees everything as usual.

    With `file_as_old`, what the block made is filed with the oldest generation on the way
    out (`gc.freeze` then `gc.unfreeze`) instead of waiting in the youngest: re-enabled, the
    collector would otherwise walk all of it at once at the next allocation (0.2 s for a
    10,000-extension count); it now looks at it with its next full collection, as at any
    long-lived data. Not for a process that keeps objects frozen for good (the simulators
    freeze their office): unfreezing would hand those back to the collector.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if file_as_old:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
