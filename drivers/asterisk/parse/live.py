"""The endpoints Asterisk runs (PJSIPShowEndpoints, and PJSIPShowEndpoint for the few the
files no longer describe) reconciled with the configuration files (GetConfig): the live view
is what counts, and every difference is reported with both views. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from drivers.asterisk import wire
from drivers.asterisk.parse.config import parse_callerid, split_list
from drivers.asterisk.parse.lists import EventItems, events
from drivers.errors import ParseError
from drivers.models import Aor, Endpoint

# PJSIPShowEndpoints fields the inventory reads (everything else is dropped as it arrives).
LIST_FIELDS = ("ObjectName", "Aor", "Auths", "OutboundAuths")
# PJSIPShowEndpoint fields read for an endpoint the files do not describe (no secrets: the
# AuthDetail events carry passwords, fact 10, and are not read).
DETAIL_FIELDS = (
    "ObjectType",
    "ObjectName",
    "Callerid",
    "Context",
    "Mailboxes",
    "Aors",
    "Auth",
    "OutboundAuth",
    "MaxContacts",
    "EndpointName",
    "Aor",
    "URI",
    "ID",
)


@dataclass(frozen=True, slots=True)
class LiveEndpoint:
    """One EndpointList event: what Asterisk has loaded."""

    name: str
    aors: tuple[str, ...]
    auths: tuple[str, ...]
    outbound_auths: tuple[str, ...]


class LiveEndpoints(EventItems[LiveEndpoint]):
    """PJSIPShowEndpoints' EndpointList events, read as the list streams in."""

    event = "EndpointList"

    def build(self, event: wire.Fields) -> LiveEndpoint:
        name = event.field("ObjectName")
        if not name:
            raise ParseError("EndpointList: missing field 'ObjectName'")
        return LiveEndpoint(
            name=name,
            aors=split_list(event.field("Aor")),
            auths=split_list(event.field("Auths")),
            outbound_auths=split_list(event.field("OutboundAuths")),
        )

    def result(self) -> tuple[LiveEndpoint, ...]:
        return tuple(sorted(self.items, key=lambda e: e.name))


def parse_live_endpoints(messages: Sequence[wire.Message]) -> tuple[LiveEndpoint, ...]:
    return LiveEndpoints().read(messages).result()


def parse_endpoint_detail(messages: Sequence[wire.Message]) -> tuple[Endpoint, tuple[Aor, ...]]:
    """An endpoint and its AORs from one PJSIPShowEndpoint answer."""
    detail = next(iter(events(messages, "EndpointDetail")), None)
    if detail is None:
        raise ParseError("PJSIPShowEndpoint: no EndpointDetail")
    name = wire.get(detail, "ObjectName") or ""
    callerid_name, number = parse_callerid(wire.get(detail, "Callerid"))
    static: dict[str, list[str]] = {}
    for m in events(messages, "ContactStatusDetail"):
        if "@@" in (wire.get(m, "ID") or ""):  # configured, not registered (fact 13: `;@`)
            static.setdefault(wire.get(m, "AOR") or "", []).append(wire.get(m, "URI") or "")
    aors = []
    for m in events(messages, "AorDetail"):
        raw = (wire.get(m, "MaxContacts") or "0").strip()
        aor = wire.get(m, "ObjectName") or ""
        aors.append(
            Aor(
                name=aor,
                max_contacts=int(raw) if raw.isdigit() else 0,
                static_contacts=tuple(static.get(aor, ())),
                mailboxes=split_list(wire.get(m, "Mailboxes")),
            )
        )
    endpoint = Endpoint(
        name=name,
        technology="PJSIP",
        callerid_name=callerid_name,
        callerid_number=number,
        context=wire.get(detail, "Context") or None,
        aors=split_list(wire.get(detail, "Aors")),
        mailboxes=split_list(wire.get(detail, "Mailboxes")),
        inbound_auth=bool(split_list(wire.get(detail, "Auth"))),
        outbound_auth=bool(split_list(wire.get(detail, "OutboundAuth"))),
        identify=bool(events(messages, "IdentifyDetail")),
    )
    return endpoint, tuple(aors)


@dataclass(frozen=True, slots=True)
class Reconciled:
    endpoints: tuple[Endpoint, ...]  # what Asterisk runs, described by the files
    only_live: tuple[str, ...]  # loaded, but gone from the files: details needed from the PBX
    warnings: tuple[str, ...]


def reconcile(
    live: Sequence[LiveEndpoint],
    configured: Sequence[Endpoint],
    file_auths: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> Reconciled:
    """The live endpoints, each described by its configuration; the live list wins where the
    two disagree (AORs and auths: what a reload has not applied yet). `file_auths`: each
    endpoint's ``auth`` and ``outbound_auth`` values as the file has them, when the reader
    kept them aside (else read from the endpoint's options)."""
    by_name: dict[str, Endpoint] = {}
    for endpoint in configured:
        by_name.setdefault(endpoint.name, endpoint)
    running = {e.name for e in live}
    endpoints: list[Endpoint] = []
    only_live: list[str] = []
    warnings: list[str] = []
    for item in live:
        found = by_name.get(item.name)
        if found is None:
            only_live.append(item.name)
            continue
        endpoint = found
        if file_auths is not None:
            auth, outbound = file_auths.get(item.name, (None, None))
        else:
            options = dict(endpoint.options)  # effective options: one value each
            auth, outbound = options.get("auth"), options.get("outbound_auth")
        file_auth, file_outbound = split_list(auth), split_list(outbound)
        if (
            item.aors == endpoint.aors
            and item.auths == file_auth
            and item.outbound_auths == file_outbound
        ):
            endpoints.append(endpoint)
            continue
        differences = [
            f"{what} {_show(mine)} in Asterisk, {_show(theirs)} in the file"
            for what, mine, theirs in (
                ("aors", item.aors, endpoint.aors),
                ("auth", item.auths, file_auth),
                ("outbound_auth", item.outbound_auths, file_outbound),
            )
            if mine != theirs
        ]
        warnings.append(
            f"endpoint {item.name}: {'; '.join(differences)}: counted as Asterisk runs it "
            "(the file takes effect at the next res_pjsip reload)"
        )
        endpoints.append(
            replace(
                endpoint,
                aors=item.aors,
                inbound_auth=bool(item.auths),
                outbound_auth=bool(item.outbound_auths),
            )
        )
    for name in sorted(by_name.keys() - running):
        warnings.append(
            f"endpoint {name} is in pjsip.conf but not loaded in Asterisk: not counted until "
            "res_pjsip is reloaded"
        )
    return Reconciled(tuple(endpoints), tuple(only_live), tuple(warnings))


def _show(values: tuple[str, ...]) -> str:
    return ",".join(values) if values else "(none)"
