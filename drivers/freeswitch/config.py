"""The ``[pbx.esl]`` settings table of the FreeSWITCH driver, validated by the agent's loader."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from drivers.freeswitch.settings import EslSettings
from drivers.settings import DriverSettings, Seconds

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class EslConfig(DriverSettings):
    """FreeSWITCH's event socket (event_socket.conf.xml) and the tenants this agent counts."""

    port: int = Field(8021, ge=1, le=65535)
    action_timeout: Seconds = 10.0
    # Directory domains (tenants) of this customer; empty: every domain, reported per domain.
    domains: tuple[str, ...] = ()
    # SIP profiles the phones register to; empty: every running profile.
    profiles: tuple[str, ...] = ()
    # Seconds without any message (HEARTBEAT comes every 20 s) before the link is dropped.
    heartbeat_timeout: float = Field(90, ge=0, le=3600)

    @field_validator("domains", "profiles")
    @classmethod
    def _names(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _NAME.match(value):
                raise ValueError(f"{value!r} is not a domain or profile name")
        if len({v.lower() for v in values}) != len(values):
            raise ValueError("a name is listed twice")
        return values

    def to_settings(self) -> EslSettings:
        return EslSettings(
            host=self.host,
            port=self.port,
            password=self.secret_value(),
            domains=self.domains,
            profiles=self.profiles,
            connect_timeout=self.connect_timeout,
            action_timeout=self.action_timeout,
            reconnect_initial=self.reconnect_initial,
            reconnect_max=self.reconnect_max,
            heartbeat_timeout=self.heartbeat_timeout,
        )
