"""PJSIP list actions over AORs, auths, registrations and contact statuses, built from the
same field tables as PJSIPShowEndpoint."""

from __future__ import annotations

from drivers.asterisk.sim.base import (
    Reply,
    Session,
    SimContext,
    action,
    error,
    event,
    list_reply,
    response,
)
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.pjsip_actions import aor_owners
from drivers.asterisk.sim.pjsip_detail import contact_fields, render
from drivers.asterisk.wire import Message, get

AOR_ONLY_IN_DETAIL = ("TotalContacts", "ContactsRegistered", "EndpointName")


def _aor_fields(ctx: SimContext, conf: ConfFile, aor: Category) -> list[tuple[str, str]]:
    uris = [c.uri for c in ctx.live.contacts_of(aor.name)]
    uris += [u.strip() for u in (conf.value(aor, "contact") or "").split(",") if u.strip()]
    computed = {
        "ObjectType": "aor",
        "ObjectName": aor.name,
        "Contacts": ",".join(f"{aor.name}/{u}" for u in uris),
    }
    return [f for f in render("aor", conf, aor, computed) if f[0] not in AOR_ONLY_IN_DETAIL]


def _auth_fields(conf: ConfFile, auth: Category) -> list[tuple[str, str]]:
    fields = render("auth", conf, auth, {"ObjectType": "auth", "ObjectName": auth.name})
    return [f for f in fields if f[0] != "EndpointName"]


def _sorted(conf: ConfFile, kind: str) -> list[Category]:
    return sorted(conf.objects(kind), key=lambda c: c.name)


@action("PJSIPShowAors")
def show_aors(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = ctx.loaded("pjsip.conf")
    items = [event(request, "AorList", _aor_fields(ctx, conf, a)) for a in _sorted(conf, "aor")]
    return list_reply(
        request, "A listing of AORs follows, presented as AorList events", items, "AorListComplete"
    )


@action("PJSIPShowAuths")
def show_auths(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = ctx.loaded("pjsip.conf")
    items = [event(request, "AuthList", _auth_fields(conf, a)) for a in _sorted(conf, "auth")]
    return list_reply(
        request,
        "A listing of Auths follows, presented as AuthList events",
        items,
        "AuthListComplete",
    )


@action("PJSIPShowRegistrationsInbound")
def show_registrations_inbound(ctx: SimContext, session: Session, request: Message) -> Reply:
    """One event per AOR (not per registration, fact 13): the AOR's fields with `Contact`
    where AorList has `Contacts`, and `Contacts` with a trailing comma at the end."""
    conf = ctx.loaded("pjsip.conf")
    items = []
    for aor in _sorted(conf, "aor"):
        fields = _aor_fields(ctx, conf, aor)
        contacts = dict(fields)["Contacts"]
        fields = [("Contact", v) if k == "Contacts" else (k, v) for k, v in fields]
        fields.append(("Contacts", "".join(f"{c}," for c in contacts.split(",") if c)))
        items.append(event(request, "InboundRegistrationDetail", fields))
    return list_reply(
        request,
        "Following are Events for each Inbound registration",
        items,
        "InboundRegistrationDetailComplete",
    )


@action("PJSIPShowRegistrationInboundContactStatuses")
def show_inbound_contact_statuses(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = ctx.loaded("pjsip.conf")
    owners = aor_owners(conf)
    items = []
    for contact in sorted(ctx.live.contacts, key=lambda c: c.object_name):
        aor = conf.find(contact.aor, "aor")
        qualify = (conf.value(aor, "qualify_frequency") if aor else None) or "0"
        timeout = (conf.value(aor, "qualify_timeout") if aor else None) or "3"
        endpoint = owners.get(contact.aor, "")
        items.append(
            event(
                request,
                "ContactStatusDetail",
                contact_fields(contact, qualify, endpoint, timeout),
            )
        )
    return list_reply(
        request,
        "Following are ContactStatusEvents for each Inbound registration",
        items,
        "ContactStatusDetailComplete",
    )


@action("PJSIPShowSubscriptionsInbound")
def show_subscriptions_inbound(ctx: SimContext, session: Session, request: Message) -> Reply:
    return list_reply(
        request,
        "Following are Events for each inbound Subscription",
        [],
        "InboundSubscriptionDetailComplete",
    )


@action("PJSIPShowRegistrationsOutbound")
def show_registrations_outbound(ctx: SimContext, session: Session, request: Message) -> Reply:
    """Each registration is followed by its AuthDetail, but `ListItems` counts only the
    registrations, and the Complete event adds Registered/NotRegistered (fact 6)."""
    conf = ctx.loaded("pjsip.conf")
    items: list[Message] = []
    registrations = _sorted(conf, "registration")
    registered = 0
    for reg in registrations:
        status = ctx.live.registrations.get(reg.name, "Unregistered")
        registered += status == "Registered"
        computed = {
            "ObjectType": "registration",
            "ObjectName": reg.name,
            "Status": status,
            "NextReg": "0",
        }
        items.append(
            event(
                request, "OutboundRegistrationDetail", render("registration", conf, reg, computed)
            )
        )
        auth_name = conf.value(reg, "outbound_auth")
        auth = conf.find(auth_name, "auth") if auth_name else None
        if auth is not None:
            items.append(event(request, "AuthDetail", _auth_fields(conf, auth)))
    return list_reply(
        request,
        "Following are Events for each Outbound registration",
        items,
        "OutboundRegistrationDetailComplete",
        list_items=len(registrations),
        complete_extra=[
            ("Registered", str(registered)),
            ("NotRegistered", str(len(registrations) - registered)),
        ],
    )


def registry_event(ctx: SimContext, reg: Category, status: str) -> Message:
    """The `Registry` event of an outbound registration attempt."""
    conf = ctx.loaded("pjsip.conf")
    return ctx.unsolicited(
        "Registry",
        [
            ("ChannelType", "PJSIP"),
            ("Username", conf.value(reg, "client_uri") or ""),
            ("Domain", conf.value(reg, "server_uri") or ""),
            ("Status", status),
        ],
    )


@action("PJSIPRegister")
def register(ctx: SimContext, session: Session, request: Message) -> Reply:
    """Sends a REGISTER; the simulated registrar answers at once with the office's configured
    outcome, announced by a `Registry` event (fact 15)."""
    conf = ctx.loaded("pjsip.conf")
    name = get(request, "Registration") or ""
    reg = conf.find(name, "registration")
    if reg is None:
        return Reply([error(request, f"Unable to retrieve registration {name}")])
    registry = registry_event(ctx, reg, ctx.live.registrations.get(name, "Rejected"))
    return Reply(
        [response(request, "Success", [("Message", "Reregistration sent")])], broadcast=[registry]
    )


@action("PJSIPQualify")
def qualify(ctx: SimContext, session: Session, request: Message) -> Reply:
    name = get(request, "Endpoint") or ""
    if ctx.loaded("pjsip.conf").find(name, "endpoint") is None:
        return Reply([error(request, f"Unable to retrieve endpoint {name}")])
    return Reply([response(request, "Success", [("Message", "Endpoint found, will qualify")])])
