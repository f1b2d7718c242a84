"""Connection settings for the Asterisk driver, independent of how the agent stores config."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from drivers.settings import DriverSettings

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """Where and how to reach the AMI.

    Attributes:
        host, port: the AMI listener (Asterisk's default port is 5038).
        username, secret: a `manager.conf` user; the secret is never logged.
        connect_timeout: seconds for TCP connect plus banner plus Login.
        action_timeout: seconds an action's answer may stay still: it fails when nothing of
            it arrives for that long (a long answer that keeps coming is not cut off).
        reconnect_initial, reconnect_max: exponential back-off bounds between reconnects.
        max_answer_bytes: safety limit on one action's answer (a whole list included); a
            larger one fails with `AnswerTooLarge` naming the limit, and is skipped.
    """

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    max_answer_bytes: int = 256 * MIB


class AmiConfig(DriverSettings):
    """The ``[pbx.ami]`` settings table: a manager.conf user on the AMI listener."""

    port: int = Field(5038, ge=1, le=65535)
    username: str = Field(min_length=1)
    max_answer_mb: int = Field(256, ge=1, le=65536)

    def to_settings(self) -> AmiSettings:
        return AmiSettings(
            host=self.host,
            port=self.port,
            username=self.username,
            secret=self.secret_value(),
            connect_timeout=self.connect_timeout,
            action_timeout=self.action_timeout,
            reconnect_initial=self.reconnect_initial,
            reconnect_max=self.reconnect_max,
            max_answer_bytes=self.max_answer_mb * MIB,
        )
