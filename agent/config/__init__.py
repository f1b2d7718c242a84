"""The agent's configuration: TOML -> typed, frozen objects, secrets loaded and checked."""

from agent.config.load import load_config
from agent.config.pbx import ami_settings
from agent.config.schema import AgentConfig

__all__ = ["AgentConfig", "ami_settings", "load_config"]
