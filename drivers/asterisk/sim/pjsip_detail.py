"""PJSIPShowEndpoint: every object behind one endpoint, each field computed from pjsip.conf
(templates expanded) over Asterisk's defaults, in Asterisk's own field order.

The field orders and defaults are data (`data/pjsip_fields.json`, regenerated from the
captured transcripts by scripts/dev/extract_pjsip_fields.py); the rules that turn a config
value into what Asterisk displays are here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from functools import cache
from importlib import resources
from typing import Any

from drivers.asterisk.sim.base import Reply, Session, SimContext, action, error, event, list_reply
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.sim.pjsip_actions import device_state
from drivers.asterisk.wire import Message, get

TRUE = {"yes", "true", "y", "t", "1", "on"}
FALSE = {"no", "false", "n", "f", "0", "off"}


@cache
def _fields() -> dict[str, Any]:
    text = resources.files("drivers.asterisk.sim").joinpath("data/pjsip_fields.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def aor_defaults() -> dict[str, str]:
    """AorDetail's fields as Asterisk shows them when an AOR does not set them."""
    defaults: dict[str, str] = _fields()["aor"]["defaults"]
    return defaults


def camel(option: str) -> str:
    """`max_contacts` -> `MaxContacts`: how Asterisk names an option in AMI events."""
    return "".join(part[:1].upper() + part[1:] for part in option.split("_"))


def display(value: str, default: str) -> str:
    """A configured value as Asterisk shows it, in the style of the field's default."""
    lowered = value.lower()
    if default in ("true", "false") and lowered in TRUE | FALSE:
        return "true" if lowered in TRUE else "false"
    if default in ("yes", "no") and lowered in TRUE | FALSE:
        return "yes" if lowered in TRUE else "no"
    if default in ("Yes", "No") and lowered in TRUE | FALSE:
        return "Yes" if lowered in TRUE else "No"
    if default.count(".") == 1 and default.replace(".", "").isdigit():
        try:
            return f"{float(value):.{len(default.split('.')[1])}f}"
        except ValueError:
            return value
    return value


def codecs(options: list[tuple[str, str]]) -> str:
    """`allow`/`disallow` applied in order, as Asterisk builds the format capabilities."""
    chosen: list[str] = []
    for key, value in options:
        names = [v.strip() for v in value.split(",") if v.strip()]
        if key == "allow":
            chosen += [n for n in names if n not in chosen]
        elif key == "disallow":
            chosen = [] if "all" in names else [c for c in chosen if c not in names]
    return f"({'|'.join(chosen)})" if chosen else "(nothing)"


def tos(value: str) -> str:
    """DSCP class names and numbers as the TOS byte Asterisk reports (cs3 -> 96)."""
    name = value.strip().lower()
    if name.startswith("cs") and name[2:].isdigit():
        return str(int(name[2:]) * 8 * 4)
    if name.startswith("af") and len(name) == 4 and name[2:].isdigit():
        return str((int(name[2]) * 8 + int(name[3]) * 2) * 4)
    if name == "ef":
        return str(46 * 4)
    try:
        return str(int(name, 0))
    except ValueError:
        return "0"


def _match(value: str) -> str:
    parts = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            parts.append(item)
            continue
        parts.append(f"{net.network_address}/{net.netmask}")
    return ",".join(parts)


def render(
    kind: str, conf: ConfFile, obj: Category, computed: dict[str, str]
) -> list[tuple[str, str]]:
    """The fields of one object: computed ones, else the configured option, else the default."""
    table = _fields()[kind]
    options = conf.expanded(obj)
    configured: dict[str, str] = {}
    for key, value in options:
        configured[camel(key)] = value
    out = []
    for name in table["order"]:
        default = table["defaults"].get(name, "")
        if name in computed:
            value = computed[name]
        elif name in configured:
            value = display(configured[name], default)
        else:
            value = default
        out.append((name, value))
    return out


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _acl(conf: ConfFile, obj: Category, deny: str, permit: str) -> str:
    keys = [k for k, _ in conf.expanded(obj) if k in (deny, permit)]
    return "/".join(dict.fromkeys("deny" if k == deny else "permit" for k in keys))


def endpoint_fields(ctx: SimContext, conf: ConfFile, endpoint: Category) -> list[tuple[str, str]]:
    options = conf.expanded(endpoint)
    computed = {
        "DeviceState": device_state(ctx, conf, endpoint),
        "ObjectType": "endpoint",
        "ObjectName": endpoint.name,
        "Allow": codecs(options),
        "Acl": _acl(conf, endpoint, "deny", "permit"),
        "ContactAcl": _acl(conf, endpoint, "contact_deny", "contact_permit"),
    }
    for option in ("named_call_group", "named_pickup_group"):
        groups = conf.value(endpoint, option)
        if groups is not None:
            computed[camel(option)] = ", ".join(sorted(set(_split(groups))))
    auth = conf.value(endpoint, "auth")
    if auth is not None:
        computed["Auth"] = auth
    return render("endpoint", conf, endpoint, computed)


def _contact_status_tail(
    endpoint: str, contact_id: str, qualify_frequency: str, qualify_timeout: str
) -> list[tuple[str, str]]:
    """The fields every ContactStatusDetail ends with, registered or static contact."""
    return [
        ("EndpointName", endpoint),
        ("ID", contact_id),
        ("AuthenticateQualify", "0"),
        ("OutboundProxy", ""),
        ("Path", ""),
        ("QualifyFrequency", qualify_frequency),
        ("QualifyTimeout", f"{float(qualify_timeout):.3f}"),
        ("Qualify2xxOnly", "0"),
    ]


def static_contact_fields(
    aor: str, uri: str, qualify_frequency: str, endpoint: str, qualify_timeout: str = "3"
) -> list[tuple[str, str]]:
    return [
        ("AOR", aor),
        ("URI", uri),
        ("UserAgent", ""),
        ("RegExpire", "0"),
        ("Status", "NonQualified" if qualify_frequency == "0" else "Unknown"),
        ("RoundtripUsec", "N/A"),
        *_contact_status_tail(
            endpoint,
            f"{aor}@@{hashlib.md5(uri.encode()).hexdigest()}",
            qualify_frequency,
            qualify_timeout,
        ),
    ]


def contact_fields(
    contact: Contact, qualify_frequency: str, endpoint: str, qualify_timeout: str = "3"
) -> list[tuple[str, str]]:
    addr, port = contact.via
    rtt = str(contact.rtt_usec) if contact.status == "Reachable" else "N/A"
    return [
        ("AOR", contact.aor),
        ("URI", contact.uri),
        ("UserAgent", contact.user_agent),
        ("RegExpire", str(contact.expires_at)),
        ("ViaAddress", f"{addr}:{port}"),
        ("CallID", contact.call_id),
        ("Status", contact.status),
        ("RoundtripUsec", rtt),
        *_contact_status_tail(endpoint, contact.object_name, qualify_frequency, qualify_timeout),
    ]


@action("PJSIPShowEndpoint")
def show_endpoint(ctx: SimContext, session: Session, request: Message) -> Reply:
    name = get(request, "Endpoint") or ""
    conf = ctx.loaded("pjsip.conf")
    endpoint = conf.find(name, "endpoint")
    if endpoint is None:
        return Reply([error(request, f"Unable to retrieve endpoint {name}\n")])
    owner = {"EndpointName": endpoint.name}
    items: list[Message] = [event(request, "EndpointDetail", endpoint_fields(ctx, conf, endpoint))]
    for auth_name in _split(conf.value(endpoint, "auth")) + _split(
        conf.value(endpoint, "outbound_auth")
    ):
        auth = conf.find(auth_name, "auth")
        if auth is not None:
            fields = render(
                "auth", conf, auth, {"ObjectType": "auth", "ObjectName": auth.name, **owner}
            )
            items.append(event(request, "AuthDetail", fields))
    transport_name = conf.value(endpoint, "transport")
    transport = conf.find(transport_name, "transport") if transport_name else None
    if transport is not None:
        computed = {"ObjectType": "transport", "ObjectName": transport.name, **owner}
        if conf.value(transport, "tos") is not None:
            computed["Tos"] = tos(conf.value(transport, "tos") or "0")
        items.append(
            event(request, "TransportDetail", render("transport", conf, transport, computed))
        )
    for aor_name in _split(conf.value(endpoint, "aors")):
        aor = conf.find(aor_name, "aor")
        if aor is None:
            continue
        dynamic = ctx.live.contacts_of(aor_name)
        static = _split(conf.value(aor, "contact"))
        qualify = conf.value(aor, "qualify_frequency") or "0"
        timeout = conf.value(aor, "qualify_timeout") or "3"
        uris = [c.uri for c in dynamic] + static
        computed = {
            "ObjectType": "aor",
            "ObjectName": aor.name,
            "Contacts": ",".join(f"{aor_name}/{u}" for u in uris),
            "TotalContacts": str(len(uris)),
            "ContactsRegistered": str(len(dynamic)),
            **owner,
        }
        items.append(event(request, "AorDetail", render("aor", conf, aor, computed)))
        for contact in dynamic:
            items.append(
                event(
                    request,
                    "ContactStatusDetail",
                    contact_fields(contact, qualify, endpoint.name, timeout),
                )
            )
        for uri in static:
            items.append(
                event(
                    request,
                    "ContactStatusDetail",
                    static_contact_fields(aor_name, uri, qualify, endpoint.name, timeout),
                )
            )
    for identify in conf.objects("identify"):
        if conf.value(identify, "endpoint") == endpoint.name:
            fields = [
                ("ObjectType", "identify"),
                ("ObjectName", identify.name),
                ("Match", _match(conf.value(identify, "match") or "")),
                ("MatchRequestUri", conf.value(identify, "match_request_uri") or ""),
                ("SrvLookups", display(conf.value(identify, "srv_lookups") or "yes", "true")),
                ("Endpoint", endpoint.name),
                ("MatchHeader", conf.value(identify, "match_header") or ""),
            ]
            items.append(
                event(request, "IdentifyDetail", [*fields, ("EndpointName", endpoint.name)])
            )
    return list_reply(
        request,
        "Following are Events for each object associated with the Endpoint",
        items,
        "EndpointDetailComplete",
    )
