"""PbxFacts and the endpoint list: pure functions over raw AMI messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from drivers.asterisk import wire
from drivers.errors import ParseError
from drivers.models import EndpointSummary, PbxFacts


def _required(message: wire.Message, key: str, what: str) -> str:
    value = wire.get(message, key)
    if value is None:
        raise ParseError(f"{what}: missing field {key!r}")
    return value


def _local_datetime(date: str | None, time: str | None, tz: tzinfo) -> datetime | None:
    if not date or not time:
        return None
    try:
        stamp = datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise ParseError(f"CoreStatus: bad date/time {date!r} {time!r}") from exc
    return stamp.replace(tzinfo=tz).astimezone(UTC)


def parse_facts(
    core_settings: wire.Message,
    core_status: wire.Message,
    *,
    now: datetime | None = None,
    pbx_timezone: tzinfo = UTC,
) -> PbxFacts:
    """`PbxFacts` from the CoreSettings and CoreStatus responses.

    Asterisk reports its start-up and reload times in the PBX's local time without an offset;
    `pbx_timezone` says what that is (UTC unless configured).
    """
    version = _required(core_settings, "AsteriskVersion", "CoreSettings")
    if not version.strip():
        raise ParseError("CoreSettings: empty AsteriskVersion")
    startup = _local_datetime(
        wire.get(core_status, "CoreStartupDate"),
        wire.get(core_status, "CoreStartupTime"),
        pbx_timezone,
    )
    reload = _local_datetime(
        wire.get(core_status, "CoreReloadDate"),
        wire.get(core_status, "CoreReloadTime"),
        pbx_timezone,
    )
    if startup is None:
        raise ParseError("CoreStatus: missing CoreStartupDate/CoreStartupTime")
    current = now or datetime.now(UTC)
    return PbxFacts(
        vendor="asterisk",
        version=version.strip(),
        system_name=(wire.get(core_settings, "SystemName") or "").strip() or None,
        startup_time=startup,
        reload_time=reload,
        uptime_seconds=max(0, int((current - startup).total_seconds())),
        api_version=(wire.get(core_settings, "AMIversion") or "").strip() or None,
    )


def _split_list(value: str | None) -> tuple[str, ...]:
    """Comma lists; EndpointList's ``Contacts:`` has a trailing comma (fact 13)."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def parse_endpoint_list(messages: Sequence[wire.Message]) -> tuple[EndpointSummary, ...]:
    """Endpoints from a PJSIPShowEndpoints answer (response, events, Complete), sorted by name
    because Asterisk lists them in hash order."""
    endpoints: list[EndpointSummary] = []
    for message in messages:
        if (wire.get(message, "Event") or "") != "EndpointList":
            continue
        name = _required(message, "ObjectName", "EndpointList")
        channels = wire.get(message, "ActiveChannels") or "0"
        if not channels.strip().isdigit():
            raise ParseError(f"EndpointList {name}: ActiveChannels {channels!r} is not a number")
        contacts = tuple(
            contact.partition("/")[2] or contact
            for contact in _split_list(wire.get(message, "Contacts"))
        )
        endpoints.append(
            EndpointSummary(
                name=name,
                technology="PJSIP",
                device_state=(wire.get(message, "DeviceState") or "Unknown").strip(),
                aors=_split_list(wire.get(message, "Aor")),
                contacts=contacts,
                active_channels=int(channels),
            )
        )
    return tuple(sorted(endpoints, key=lambda e: e.name))
