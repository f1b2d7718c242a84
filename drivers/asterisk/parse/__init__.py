"""Pure parsers: raw AMI messages (`wire.Message`) -> driver models. No I/O: tests feed them
the recorded transcripts directly."""

from drivers.asterisk.parse import live
from drivers.asterisk.parse.config import (
    effective_options,
    parse_aors,
    parse_callerid,
    parse_endpoints,
)
from drivers.asterisk.parse.dialplan import hint_devices, parse_dialplan, parse_hints
from drivers.asterisk.parse.facts import parse_endpoint_list, parse_facts
from drivers.asterisk.parse.getconfig import Section, parse_get_config
from drivers.asterisk.parse.lists import (
    parse_contacts,
    parse_mailboxes,
    parse_manager_users,
    parse_queues,
    parse_registrations,
)

__all__ = [
    "Section",
    "effective_options",
    "hint_devices",
    "live",
    "parse_aors",
    "parse_callerid",
    "parse_contacts",
    "parse_dialplan",
    "parse_endpoint_list",
    "parse_endpoints",
    "parse_facts",
    "parse_get_config",
    "parse_hints",
    "parse_mailboxes",
    "parse_manager_users",
    "parse_queues",
    "parse_registrations",
]
