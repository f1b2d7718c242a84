"""The agent's error tree; every error the agent raises is one of these.

    AgentError
    ├── ConfigError        bad or missing configuration (exit code 2)
    ├── StateError         the SQLite state store failed
    ├── ControlError       talking to the daemon over the control socket failed
    │   ├── DaemonNotRunning
    │   └── CommandFailed  the daemon answered: the command was refused or failed
    ├── LicenceError       (issue 6)
    ├── TelemetryError     (issue 5)
    └── BackupError        (issue 4)

Driver errors live in `drivers.errors`; the agent catches them at the driver boundary.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error raised by the agent package."""


class ConfigError(AgentError):
    """The configuration is invalid. The message names the file, the key and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        super().__init__(message)


class StateError(AgentError):
    """The state store could not be opened, migrated, read or written."""


class ControlError(AgentError):
    """A control-socket request failed."""


class DaemonNotRunning(ControlError):
    """Nothing listens on the control socket: the daemon is not running."""


class CommandFailed(ControlError):
    """The daemon refused a command or the command failed; `kind` is ``config`` when the
    daemon's configuration does not allow it (exit code 2), else ``failed``."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        self.kind = kind or "failed"
        super().__init__(message)


class LicenceError(AgentError):
    """A licence token could not be fetched, verified or applied."""


class TelemetryError(AgentError):
    """A telemetry message could not be queued or published."""


class BackupError(AgentError):
    """A configuration backup could not be taken, stored, verified or restored."""
