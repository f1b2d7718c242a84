"""Connection settings for the FreeSWITCH driver, independent of how the agent stores config."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EslSettings:
    """Where and how to reach FreeSWITCH's event socket (mod_event_socket).

    Attributes:
        host, port: the listener (FreeSWITCH's default port is 8021).
        password: event_socket.conf.xml's password; never logged, never kept elsewhere.
        domains: the tenants (directory domains) this agent counts; empty = every domain.
        profiles: the SIP profiles phones register to; empty = every profile sofia lists.
        connect_timeout: seconds for TCP connect plus banner plus auth.
        action_timeout: seconds for one api's complete answer.
        reconnect_initial, reconnect_max: exponential back-off bounds between reconnects.
        heartbeat_timeout: seconds without any message (FreeSWITCH sends HEARTBEAT every
            20 s by default) after which the connection is considered dead; 0 disables.
    """

    host: str
    port: int
    password: str = field(repr=False)
    domains: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    heartbeat_timeout: float = 90.0
