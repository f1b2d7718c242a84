"""Turning the agent's PBX configuration into the driver's own settings."""

from __future__ import annotations

from agent.config.schema import AgentConfig
from drivers.asterisk.settings import AmiSettings


def ami_settings(cfg: AgentConfig) -> AmiSettings:
    """The Asterisk driver's connection settings (``[pbx.ami]``, secret loaded)."""
    return cfg.pbx.ami.to_settings()
