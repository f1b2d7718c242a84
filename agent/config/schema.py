"""The configuration's shape: typed, frozen models; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Seconds = Annotated[float, Field(gt=0, le=3600)]


class AmiConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = Field(min_length=1)
    secret_file: Path | None = None
    secret_credential: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    connect_timeout: Seconds = 5.0
    action_timeout: Seconds = 10.0
    reconnect_initial: Seconds = 1.0
    reconnect_max: Seconds = 60.0
    # Filled by the loader from secret_file or secret_credential; never in the TOML.
    secret: SecretStr | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _one_secret_source(self) -> AmiConfig:
        if (self.secret_file is None) == (self.secret_credential is None):
            raise ValueError("set exactly one of secret_file and secret_credential")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must be at least reconnect_initial")
        return self


class PbxConfig(Section):
    driver: Literal["asterisk"] = "asterisk"
    ami: AmiConfig


class PollConfig(Section):
    interval: float = Field(300, ge=5, le=86400)


class StateConfig(Section):
    dir: Path = Path("/var/lib/pbx-agent")


class ControlConfig(Section):
    socket: Path = Path("/run/pbx-agent/control.sock")


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


DeviceKindName = Literal["desk_phone", "cordless", "conference", "app", "ata", "unknown"]


class EndpointOverride(Section):
    """What a human knows about one endpoint better than the PBX does."""

    kind: DeviceKindName | None = None
    seat: str | None = Field(None, min_length=1)  # merge into this extension's seat
    exclude: str | None = Field(None, min_length=3)  # never count it; the reason is reported


class CountingConfig(Section):
    interval: float = Field(3600, ge=60, le=7 * 86400)
    stale_days: int = Field(30, ge=1, le=3650)
    app_patterns: tuple[str, ...] = ("{ext}-app", "app{ext}", "{ext}app")
    endpoints: dict[str, EndpointOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _patterns_name_the_extension(self) -> CountingConfig:
        for pattern in self.app_patterns:
            if pattern.count("{ext}") != 1:
                raise ValueError(f"app pattern {pattern!r} must contain {{ext}} exactly once")
        return self


class BackupSshConfig(Section):
    host: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    username: str = Field(min_length=1)
    key_file: Path
    known_hosts: Path | None = None  # default: <state.dir>/known_hosts
    timeout: Seconds = 15.0


class OffsiteConfig(BackupSshConfig):
    """The reseller's archive host. Copies go there while the `config_archive` entitlement
    is on; until licences land (issue 6), `enabled` is that switch."""

    enabled: bool = True
    remote_dir: str = Field(min_length=1)


class BackupConfig(Section):
    enabled: bool = False
    schedule: str = "30 2 * * *"  # cron: minute hour day month weekday (site time)
    source: Literal["sftp", "local"] = "sftp"
    path: str = "/etc/asterisk"
    excludes: tuple[str, ...] = ()
    store: Path | None = None  # default: <state.dir>/backups
    recipients: tuple[str, ...] = ()
    identity_file: Path | None = None  # optional: allows full local verify and restore
    keep_last: int = Field(7, ge=1, le=1000)
    keep_daily: int = Field(7, ge=0, le=1000)
    keep_weekly: int = Field(4, ge=0, le=1000)
    keep_monthly: int = Field(12, ge=0, le=1000)
    keep_yearly: int = Field(3, ge=0, le=100)
    ssh: BackupSshConfig | None = None
    offsite: OffsiteConfig | None = None

    @model_validator(mode="after")
    def _complete(self) -> BackupConfig:
        if self.enabled and not self.recipients:
            raise ValueError('backups need at least one age recipient (recipients = ["age1..."])')
        for recipient in self.recipients:
            if not recipient.startswith("age1"):
                raise ValueError(f"recipient {recipient[:20]!r} is not an age X25519 public key")
        if self.enabled and self.source == "sftp" and self.ssh is None:
            raise ValueError('source = "sftp" needs a [backup.ssh] table')
        try:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(self.schedule)
        except ValueError as exc:
            raise ValueError(f"schedule {self.schedule!r} is not a cron expression: {exc}") from exc
        return self


class AgentConfig(Section):
    site_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    pbx: PbxConfig
    poll: PollConfig = PollConfig()
    state: StateConfig = StateConfig()
    control: ControlConfig = ControlConfig()
    logging: LoggingConfig = LoggingConfig()
    counting: CountingConfig = CountingConfig()
    backup: BackupConfig = BackupConfig()
    # The file this was loaded from (set by the loader).
    source: Path = Field(Path("<memory>"), exclude=True)

    def secret_values(self) -> list[str]:
        """Every loaded secret value, for the log redactor."""
        secret = self.pbx.ami.secret
        return [secret.get_secret_value()] if secret is not None else []
