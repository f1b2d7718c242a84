"""Turning the agent's PBX configuration into the driver's own settings."""

from __future__ import annotations

from agent.config.schema import AgentConfig
from drivers.asterisk.settings import AmiSettings


def ami_settings(cfg: AgentConfig) -> AmiSettings:
    ami = cfg.pbx.ami
    if ami.secret is None:
        raise ValueError("the AMI secret was not loaded (use load_config)")
    return AmiSettings(
        host=ami.host,
        port=ami.port,
        username=ami.username,
        secret=ami.secret.get_secret_value(),
        connect_timeout=ami.connect_timeout,
        action_timeout=ami.action_timeout,
        reconnect_initial=ami.reconnect_initial,
        reconnect_max=ami.reconnect_max,
    )
