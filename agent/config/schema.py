"""The configuration's shape: typed, frozen models; unknown keys are errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from drivers.asterisk.settings import AmiConfig
from drivers.errors import UnsupportedOperation
from drivers.registry import driver_class
from drivers.settings import DriverSettings, Seconds


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PbxConfig(Section):
    """Which driver talks to the PBX, and its own settings table (``[pbx.ami]`` for
    Asterisk, ``[pbx.esl]`` for FreeSWITCH, ...), validated by the loader with the model the
    driver declares (`drivers.base.Driver.settings_model`)."""

    driver: str = "asterisk"
    settings: DriverSettings

    @model_validator(mode="after")
    def _driver_known(self) -> PbxConfig:
        cls = driver_class(self.driver)  # raises, naming the known drivers
        if not isinstance(self.settings, cls.settings_model):
            raise ValueError(f"driver {self.driver!r} is configured by [pbx.{cls.settings_table}]")
        return self

    @property
    def table(self) -> str:
        """The name of the driver's settings table, e.g. ``esl`` for ``[pbx.esl]``."""
        return driver_class(self.driver).settings_table

    @property
    def ami(self) -> AmiConfig:
        """The Asterisk settings (for Asterisk-only callers)."""
        if not isinstance(self.settings, AmiConfig):
            raise ValueError(f"driver {self.driver!r} has no [pbx.ami] settings")
        return self.settings


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
    """The reseller's archive host. Copies go there while `enabled` and the licence's
    `config_archive` feature are on; `lapse` says what happens to them while it is off."""

    enabled: bool = True
    remote_dir: str = Field(min_length=1)
    # While config_archive is off (licence lapse): "keep" leaves the archive host untouched;
    # "delete" removes this site's copies there once the lapse is lapse_delete_days old.
    lapse: Literal["keep", "delete"] = "keep"
    lapse_delete_days: int = Field(30, ge=0, le=3650)
    uploads_per_run: int = Field(5, ge=1, le=1000)  # missed copies caught up per run
    retry_interval: float = Field(3600, ge=60, le=86400)  # while copies are missing


class BackupLimitsConfig(Section):
    """What an archive may hold before it is read (restore, verify, --to-pbx), checked while
    it streams; a backup that would not fit is failed when it is taken, never stored."""

    manifest_bytes: int = Field(64 * 2**20, ge=2**20, le=2**31)
    file_bytes: int = Field(4 * 2**30, ge=2**20, le=2**42)
    total_bytes: int = Field(16 * 2**30, ge=2**20, le=2**44)
    members: int = Field(200_000, ge=100, le=10_000_000)

    @model_validator(mode="after")
    def _total_holds_a_file(self) -> BackupLimitsConfig:
        if self.total_bytes < self.file_bytes:
            raise ValueError("total_bytes must be at least file_bytes")
        return self


class BackupConfig(Section):
    enabled: bool = False
    schedule: str = "30 2 * * *"  # cron: minute hour day month weekday (site time)
    source: Literal["sftp", "local"] = "sftp"
    path: str = "/etc/asterisk"  # default: the configured driver's config folder
    excludes: tuple[str, ...] = ()
    store: Path | None = None  # default: <state.dir>/backups
    recipients: tuple[str, ...] = ()
    identity_file: Path | None = None  # optional: allows full local verify and restore
    keep_last: int = Field(7, ge=1, le=1000)
    keep_daily: int = Field(7, ge=0, le=1000)
    keep_weekly: int = Field(4, ge=0, le=1000)
    keep_monthly: int = Field(12, ge=0, le=1000)
    keep_yearly: int = Field(3, ge=0, le=100)
    read_mb_per_second: float = Field(0, ge=0, le=100_000)  # 0: as fast as the PBX gives
    ssh: BackupSshConfig | None = None
    offsite: OffsiteConfig | None = None
    limits: BackupLimitsConfig = BackupLimitsConfig()

    @field_validator("recipients")
    @classmethod
    def _age_recipients(cls, recipients: tuple[str, ...]) -> tuple[str, ...]:
        for recipient in recipients:
            _check_age_recipient(recipient)
        return recipients

    @model_validator(mode="after")
    def _complete(self) -> BackupConfig:
        if self.enabled and not self.recipients:
            raise ValueError('backups need at least one age recipient (recipients = ["age1..."])')
        if self.enabled and self.source == "sftp" and self.ssh is None:
            raise ValueError('source = "sftp" needs a [backup.ssh] table')
        try:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(self.schedule)
        except ValueError as exc:
            raise ValueError(f"schedule {self.schedule!r} is not a cron expression: {exc}") from exc
        return self


def _check_age_recipient(recipient: str) -> None:
    from agent.backup.age import recipient_key

    try:
        recipient_key(recipient)
    except ValueError:
        raise ValueError(
            f"recipient {recipient[:70]!r} is not an age X25519 public key "
            "(age1 followed by 58 characters, as age-keygen prints it)"
        ) from None


def _check_ed25519_keys(name: str, keys: dict[str, str]) -> None:
    from agent.errors import AgentError
    from agent.usage.keys import public_from_b64

    for key_id, key in keys.items():
        try:
            public_from_b64(key)
        except AgentError:
            raise ValueError(
                f"{name}.{key_id}: not a base64 Ed25519 public key (32 bytes)"
            ) from None


class MqttTlsConfig(Section):
    ca_file: Path  # the CA that signed the broker's certificate
    cert_file: Path | None = None  # client certificate (PEM), when the broker asks for one
    key_file: Path | None = None  # its private key (PEM, mode 0600)

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file, or neither")
        return self


class OutboxConfig(Section):
    max_messages: int = Field(100_000, ge=100, le=10_000_000)
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024, le=4 * 1024**3)
    in_flight: int = Field(50, ge=1, le=1000)  # QoS 1 messages awaiting PUBACK at once


class MqttConfig(Section):
    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1)
    port: int | None = Field(None, ge=1, le=65535)  # default 1883, or 8883 with [mqtt.tls]
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    prefix: str = Field("pbx-agent/v1", pattern=r"^[^#+]+[^#+/]$")
    client_id: str | None = Field(None, min_length=1, max_length=64)
    username: str | None = Field(None, min_length=1)
    password_file: Path | None = None
    keepalive: int = Field(60, ge=5, le=3600)
    timeout: Seconds = 10.0
    heartbeat_interval: float = Field(60, ge=5, le=3600)
    reconnect_initial: Seconds = 1.0
    reconnect_max: Seconds = 60.0
    tls: MqttTlsConfig | None = None
    outbox: OutboxConfig = OutboxConfig()
    # Central keys allowed to sign commands: key id -> Ed25519 public key (base64, 32 bytes).
    command_keys: dict[str, str] = Field(default_factory=dict)
    # Filled by the loader from password_file; never in the TOML.
    password: SecretStr | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must be at least reconnect_initial")
        _check_ed25519_keys("command_keys", self.command_keys)
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


class HealthConfig(Section):
    # Consecutive observations before a check changes state (flap damping), both ways.
    flap_count: int = Field(3, ge=1, le=100)
    interval: float = Field(60, ge=1, le=86400)  # local checks; PBX checks follow poll.interval
    ami_slow_ms: int = Field(2000, ge=10, le=600_000)
    phones_unreachable_share: float = Field(0.3, gt=0, le=1)
    backup_max_age_hours: float = Field(36, gt=0, le=24 * 365)
    outbox_backlog: int = Field(1000, ge=1)
    clock_jump_seconds: float = Field(120, gt=0)
    disk_min_free_percent: float = Field(10, gt=0, lt=100)
    disk_interval: float = Field(3600, ge=60, le=86400)  # over [backup.ssh], when configured


class LicenceConfig(Section):
    enabled: bool = False
    url: str = "https://licence.example.net"
    interval: float = Field(3600, ge=60, le=86400)
    timeout: Seconds = 10.0
    ca_file: Path | None = None  # default: the system's CAs
    grace_days: int = Field(30, ge=0, le=365)
    # Vendor keys that sign licence tokens: key id -> Ed25519 public key (base64, 32 bytes).
    keys: dict[str, str] = Field(default_factory=dict)
    # What the lapse of `integrations` and `offsite_devices` acts on.
    integration_accounts: tuple[str, ...] = ()  # manager.conf users used by CRM/API tools
    lan_subnets: tuple[str, ...] = ()  # on-site networks, e.g. "192.168.1.0/24"

    @model_validator(mode="after")
    def _consistent(self) -> LicenceConfig:
        from agent.licence.client import check_url

        check_url(self.url)
        _check_ed25519_keys("keys", self.keys)
        if self.enabled and not self.keys:
            raise ValueError("an enabled licence needs at least one vendor key in keys")
        for subnet in self.lan_subnets:
            ipaddress.ip_network(subnet, strict=False)
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
    mqtt: MqttConfig = MqttConfig()
    health: HealthConfig = HealthConfig()
    licence: LicenceConfig = LicenceConfig()
    # The file this was loaded from (set by the loader).
    source: Path = Field(Path("<memory>"), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _backup_path_default(cls, data: Any) -> Any:
        """Backups copy the configured driver's config folder unless `backup.path` says."""
        if not isinstance(data, dict):
            return data
        pbx, backup = data.get("pbx"), data.get("backup", {})
        driver = pbx.get("driver", "asterisk") if isinstance(pbx, dict) else "asterisk"
        if isinstance(backup, dict) and not backup.get("path") and isinstance(driver, str):
            try:
                folder = driver_class(driver).default_config_dir
            except UnsupportedOperation:
                return data  # the pbx table reports the unknown driver
            data = {**data, "backup": {**backup, "path": folder}}
        return data

    def secret_values(self) -> list[str]:
        """Every loaded secret value, for the log redactor."""
        secrets = (self.pbx.settings.secret, self.mqtt.password)
        return [s.get_secret_value() for s in secrets if s is not None]
