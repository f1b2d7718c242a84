"""pbx-agent: the on-premises agent for phone-system support subscriptions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pbx-agent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
