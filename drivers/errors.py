"""The drivers' error tree. Transport libraries' errors are translated into these at the boundary.

DriverError
├── DriverConnectionError (also ConnectionError)  cannot reach or lost the PBX
│   ├── DriverTimeout (also TimeoutError)          no answer within the timeout
│   └── DriverAuthError                            the PBX refused our credentials
├── CommandError                                   the PBX answered an action with an error
│   └── PermissionDenied                           our account lacks the class for it
├── ParseError                                     the PBX sent something we cannot understand
├── AnswerTooLarge                                 an answer passed the configured safety limit
├── UnsafeChange                                   a PBX change refused: it could not be made safely
└── UnsupportedOperation (also NotImplementedError) the driver did not declare it
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error raised by a driver."""


class DriverConnectionError(DriverError, ConnectionError):
    """The PBX cannot be reached, or the connection to it was lost."""


class DriverTimeout(DriverConnectionError, TimeoutError):
    """The PBX did not answer within the configured timeout."""


class DriverAuthError(DriverConnectionError):
    """The PBX refused the configured credentials."""


class CommandError(DriverError):
    """The PBX answered an action with an error.

    Attributes:
        action: the action that failed, e.g. ``PJSIPShowEndpoint``.
        reason: the PBX's own message, e.g. ``Unable to retrieve endpoint 999``.
    """

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"{action} failed: {reason}")


class PermissionDenied(CommandError):
    """The PBX refused an action because our account lacks the permission class for it."""


class ParseError(DriverError):
    """The PBX sent output that does not have the shape we expect."""


class AnswerTooLarge(DriverError):
    """An answer passed the configured safety limit on its size and was not read; the message
    names the action and the limit's setting."""


class UnsafeChange(DriverError):
    """A change to the PBX was not made because it could not be made safely (or was undone
    after the proof failed): the PBX is as it was. The message says why."""


class UnsupportedOperation(DriverError, NotImplementedError):
    """The driver does not declare the capability that was asked for."""
