"""The shape of a driver's ``[pbx.<table>]`` settings, validated like the rest of the config.

Every driver declares a model derived from `DriverSettings` (where its management interface
listens, how long to wait, where its secret comes from); the agent's config loader validates
the table the configured driver names, without knowing the vendor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Seconds = Annotated[float, Field(gt=0, le=3600)]


class DriverSettings(BaseModel):
    """Common settings of a PBX management connection.

    The secret itself is never written in the config: `secret_file` names a file only the
    agent's user may read, or `secret_credential` a systemd credential; the loader fills
    `secret` from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Keys under which a secret must never be written inline in this table.
    INLINE_SECRET_KEYS: ClassVar[tuple[str, ...]] = ("secret", "password")

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    secret_file: Path | None = None
    secret_credential: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    connect_timeout: Seconds = 5.0
    action_timeout: Seconds = 10.0
    reconnect_initial: Seconds = 1.0
    reconnect_max: Seconds = 60.0
    # Filled by the loader from secret_file or secret_credential; never in the TOML.
    secret: SecretStr | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _one_secret_source(self) -> DriverSettings:
        if (self.secret_file is None) == (self.secret_credential is None):
            raise ValueError("set exactly one of secret_file and secret_credential")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must be at least reconnect_initial")
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def secret_value(self) -> str:
        if self.secret is None:
            raise ValueError("the PBX secret was not loaded (use load_config)")
        return self.secret.get_secret_value()
