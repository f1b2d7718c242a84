"""pbx-agent: the on-premises agent for phone-system support subscriptions."""

from __future__ import annotations

import functools


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pbx-agent")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """`agent.__version__`, looked up when first asked for: importing `importlib.metadata`
    took a tenth of every command's start-up."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
