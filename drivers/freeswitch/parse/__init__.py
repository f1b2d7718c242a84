"""Pure parsers: raw ESL answers -> driver models. No I/O: tests feed them the recorded
transcripts directly."""

from drivers.freeswitch.parse.core import (
    Status,
    api_error,
    checked,
    no_output,
    parse_status,
    parse_version,
    startup_from_heartbeat,
)
from drivers.freeswitch.parse.dialplan import parse_context
from drivers.freeswitch.parse.directory import (
    DirectoryUser,
    parse_bool,
    parse_flag,
    parse_list_users,
)
from drivers.freeswitch.parse.lists import parse_callcenter_queues, parse_fifo_names
from drivers.freeswitch.parse.sofia import (
    GatewayStatus,
    RegistrationRow,
    SofiaEntry,
    parse_gateway,
    parse_registrations,
    parse_sofia_status,
    ping_time_usec,
)

__all__ = [
    "DirectoryUser",
    "GatewayStatus",
    "RegistrationRow",
    "SofiaEntry",
    "Status",
    "api_error",
    "checked",
    "no_output",
    "parse_bool",
    "parse_callcenter_queues",
    "parse_context",
    "parse_fifo_names",
    "parse_flag",
    "parse_gateway",
    "parse_list_users",
    "parse_registrations",
    "parse_sofia_status",
    "parse_status",
    "parse_version",
    "ping_time_usec",
    "startup_from_heartbeat",
]
