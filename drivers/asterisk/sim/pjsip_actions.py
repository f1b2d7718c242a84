"""PJSIP list actions generated from pjsip.conf and the office's registered contacts."""

from __future__ import annotations

from drivers.asterisk.sim.base import Reply, Session, SimContext, action, event, list_reply
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.wire import Message

ONLINE = ("Reachable", "NonQualified")


def _pjsip(ctx: SimContext) -> ConfFile:
    return ctx.loaded("pjsip.conf")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def aor_owners(conf: ConfFile) -> dict[str, str]:
    """AOR name -> the endpoint that uses it (the first one, as Asterisk reports)."""
    owners: dict[str, str] = {}
    for endpoint in conf.objects("endpoint"):
        for aor in _split(conf.value(endpoint, "aors")):
            owners.setdefault(aor, endpoint.name)
    return owners


def endpoint_contacts(ctx: SimContext, conf: ConfFile, endpoint: Category) -> list[str]:
    """`aor/uri` for every contact of the endpoint's AORs: registered ones, then static."""
    contacts: list[str] = []
    for aor_name in _split(conf.value(endpoint, "aors")):
        contacts += [f"{aor_name}/{c.uri}" for c in ctx.live.contacts_of(aor_name)]
        aor = conf.find(aor_name, "aor")
        if aor is not None:
            contacts += [f"{aor_name}/{uri}" for uri in _split(conf.value(aor, "contact"))]
    return contacts


def device_state(ctx: SimContext, conf: ConfFile, endpoint: Category) -> str:
    """A registered contact that answers (or is not qualified) makes the endpoint usable;
    static contacts (trunks) count as usable when qualify is off."""
    for aor_name in _split(conf.value(endpoint, "aors")):
        bound = ctx.live.contacts_of(aor_name) + ctx.live.ghosts_of(aor_name)
        if any(c.status in ONLINE for c in bound):
            return "Not in use"
        aor = conf.find(aor_name, "aor")
        if aor is not None and _split(conf.value(aor, "contact")):
            return "Not in use"
    return "Unavailable"


@action("PJSIPShowEndpoints")
def show_endpoints(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = _pjsip(ctx)
    items = []
    for endpoint in sorted(conf.objects("endpoint"), key=lambda c: c.name):
        contacts = endpoint_contacts(ctx, conf, endpoint)
        items.append(
            event(
                request,
                "EndpointList",
                [
                    ("ObjectType", "endpoint"),
                    ("ObjectName", endpoint.name),
                    ("Transport", conf.value(endpoint, "transport", "") or ""),
                    ("Aor", conf.value(endpoint, "aors", "") or ""),
                    ("Auths", conf.value(endpoint, "auth", "") or ""),
                    ("OutboundAuths", conf.value(endpoint, "outbound_auth", "") or ""),
                    ("Contacts", "".join(f"{c}," for c in contacts)),
                    ("DeviceState", device_state(ctx, conf, endpoint)),
                    ("ActiveChannels", "0"),
                ],
            )
        )
    return list_reply(
        request,
        "A listing of Endpoints follows, presented as EndpointList events",
        items,
        "EndpointListComplete",
    )


def _contact_fields(
    ctx: SimContext, conf: ConfFile, contact: Contact, owners: dict[str, str]
) -> list[tuple[str, str]]:
    aor = conf.find(contact.aor, "aor")
    qualify_frequency = (conf.value(aor, "qualify_frequency") if aor else None) or "0"
    qualify_timeout = float((conf.value(aor, "qualify_timeout") if aor else None) or "3")
    endpoint = owners.get(contact.aor, "")
    addr, port = contact.via
    rtt = str(contact.rtt_usec) if contact.status in ("Reachable",) else "N/A"
    return [
        ("ObjectType", "contact"),
        ("ObjectName", contact.object_name),
        ("ViaAddr", addr),
        ("QualifyTimeout", f"{qualify_timeout:.6f}"),
        ("Qualify2xxOnly", "false"),
        ("CallId", contact.call_id),
        ("RegServer", ctx.system_name or ""),
        ("PruneOnBoot", "no"),
        ("Path", ""),
        ("Endpoint", endpoint),
        ("ViaPort", str(port)),
        ("AuthenticateQualify", "no"),
        ("Uri", contact.uri),
        ("QualifyFrequency", qualify_frequency),
        ("UserAgent", contact.user_agent),
        ("ExpirationTime", str(contact.expires_at)),
        ("OutboundProxy", ""),
        ("Status", contact.status),
        ("RoundtripUsec", rtt),
    ]


@action("PJSIPShowContacts")
def show_contacts(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = _pjsip(ctx)
    contacts = sorted(ctx.live.contacts, key=lambda c: c.object_name)
    owners = aor_owners(conf)
    items = [event(request, "ContactList", _contact_fields(ctx, conf, c, owners)) for c in contacts]
    return list_reply(
        request,
        "A listing of Contacts follows, presented as ContactList events",
        items,
        "ContactListComplete",
    )
