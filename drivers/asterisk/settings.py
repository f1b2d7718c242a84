"""Connection settings for the Asterisk driver, independent of how the agent stores config."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """Where and how to reach the AMI.

    Attributes:
        host, port: the AMI listener (Asterisk's default port is 5038).
        username, secret: a `manager.conf` user; the secret is never logged.
        connect_timeout: seconds for TCP connect plus banner plus Login.
        action_timeout: seconds for one action's complete answer (a whole list included).
        reconnect_initial, reconnect_max: exponential back-off bounds between reconnects.
    """

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
