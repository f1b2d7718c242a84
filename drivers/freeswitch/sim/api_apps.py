"""Application modules' apis: ``callcenter_config`` (mod_callcenter, pipe-separated lists
ending in ``+OK``, fact 19) and ``fifo list`` (mod_fifo's XML report), from their
configuration sections."""

from __future__ import annotations

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim import xmldoc
from drivers.freeswitch.sim.apis import ApiContext, api
from drivers.freeswitch.sim.state import SimState

QUEUE_COLUMNS = (
    ("name", None, ""),
    ("strategy", "strategy", "longest-idle-agent"),
    ("moh_sound", "moh-sound", "local_stream://default"),
    ("time_base_score", "time-base-score", "queue"),
    ("tier_rules_apply", "tier-rules-apply", "false"),
    ("tier_rule_wait_second", "tier-rule-wait-second", "0"),
    ("tier_rule_wait_multiply_level", "tier-rule-wait-multiply-level", "false"),
    ("tier_rule_no_agent_no_wait", "tier-rule-no-agent-no-wait", "true"),
    ("discard_abandoned_after", "discard-abandoned-after", "60"),
    ("abandoned_resume_allowed", "abandoned-resume-allowed", "false"),
    ("max_wait_time", "max-wait-time", "0"),
    ("max_wait_time_with_no_agent", "max-wait-time-with-no-agent", "0"),
    ("max_wait_time_with_no_agent_time_reached", "max-wait-time-with-no-agent-time-reached", "5"),
    ("record_template", "record-template", ""),
    ("calls_answered", None, "0"),
    ("calls_abandoned", None, "0"),
    ("ring_progressively_delay", "ring-progressively-delay", "0"),
    ("skip_agents_with_external_calls", "skip-agents-with-external-calls", "true"),
    ("agent_no_answer_status", "agent-no-answer-status", "On Break"),
)
AGENT_COLUMNS = (
    "name|instance_id|uuid|type|contact|status|state|max_no_answer|wrap_up_time|"
    "reject_delay_time|busy_delay_time|no_answer_delay_time|last_bridge_start|last_bridge_end|"
    "last_offered_call|last_status_change|no_answer_count|calls_answered|talk_time|ready_time|"
    "external_calls_count"
)
TIER_COLUMNS = "queue|agent|state|level|position"


def _conf(state: SimState, name: str) -> xmldoc.Element | None:
    return state.configuration(name)


def _table(header: str, rows: list[str]) -> str:
    if not rows:
        return "+OK\n"
    return header + "\n" + "".join(row + "\n" for row in rows) + "+OK\n"


def _agents(state: SimState, queue: str | None) -> list[str]:
    conf = _conf(state, "callcenter.conf")
    agents = conf.child("agents") if conf is not None else None
    tiers = _tiers(state)
    wanted = {agent for q, agent, _, _ in tiers if q == queue} if queue else None
    rows = []
    for agent in agents.all("agent") if agents is not None else ():
        a = agent.attr
        name = a("name") or ""
        if wanted is not None and name not in wanted:
            continue
        rows.append(
            "|".join(
                (
                    name,
                    "single_box",
                    "",
                    a("type") or "callback",
                    a("contact") or "",
                    a("status") or "Logged Out",
                    "Waiting",
                    a("max-no-answer") or "0",
                    a("wrap-up-time") or "0",
                    a("reject-delay-time") or "0",
                    a("busy-delay-time") or "0",
                    a("no-answer-delay-time") or "0",
                    "0",
                    "0",
                    "0",
                    str(int(state.started)),
                    "0",
                    "0",
                    "0",
                    "0",
                    "0",
                )
            )
        )
    return rows


def _tiers(state: SimState) -> list[tuple[str, str, str, str]]:
    conf = _conf(state, "callcenter.conf")
    tiers = conf.child("tiers") if conf is not None else None
    return [
        (
            t.attr("queue") or "",
            t.attr("agent") or "",
            t.attr("level") or "1",
            t.attr("position") or "1",
        )
        for t in (tiers.all("tier") if tiers is not None else ())
    ]


def _queues(state: SimState) -> list[xmldoc.Element]:
    conf = _conf(state, "callcenter.conf")
    queues = conf.child("queues") if conf is not None else None
    return list(queues.all("queue")) if queues is not None else []


@api("callcenter_config")
def callcenter_config(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split()
    if words[:2] == ["queue", "list"]:
        rest = words[2:]
        if not rest:
            rows = []
            for queue in _queues(state):
                params = dict((k, v) for k, v in d.pairs_direct(queue))
                values = []
                for column, param, default in QUEUE_COLUMNS:
                    if column == "name":
                        values.append(queue.attr("name") or "")
                    else:
                        values.append(params.get(param, default) if param else default)
                rows.append("|".join(values))
            return _table("|".join(c for c, _, _ in QUEUE_COLUMNS), rows)
        if rest[0] == "agents" and len(rest) > 1:
            return _table(AGENT_COLUMNS, _agents(state, rest[1]))
        if rest[0] == "tiers" and len(rest) > 1:
            rows = [
                f"{q}|{agent}|Ready|{level}|{position}"
                for q, agent, level, position in _tiers(state)
                if q == rest[1]
            ]
            return _table(TIER_COLUMNS, rows)
        if rest[0] == "members" and len(rest) > 1:
            return "+OK\n"
    if words[:3] == ["queue", "count", "members"]:
        return "0\n"
    if words[:2] == ["agent", "list"]:
        return _table(AGENT_COLUMNS, _agents(state, None))
    return "-ERR Invalid usage\n"


@api("fifo")
def fifo(state: SimState, arg: str, ctx: ApiContext) -> str:
    if arg.split()[:1] != ["list"]:
        return "-ERR Usage: fifo list|count|importance [<fifo name>]|reparse [del_all]\n"
    report = xmldoc.Element("fifo_report")
    conf = _conf(state, "fifo.conf")
    box = conf.child("fifos") if conf is not None else None
    fifos = [
        (f.attr("name") or "", f.attr("importance") or "0", True)
        for f in (box.all("fifo") if box is not None else ())
    ]
    fifos.append(("manual_calls", "0", False))  # mod_fifo's own, always there
    for name, importance, configured in fifos:
        attrs = [
            ("name", name),
            ("consumer_count", "0"),
            ("caller_count", "0"),
            ("waiting_count", "0"),
            ("importance", importance),
            ("outbound_per_cycle", "1" if configured else "0"),
            ("outbound_per_cycle_min", "1" if configured else "0"),
            ("ring_timeout", "60" if configured else "0"),
            ("default_lag", "30" if configured else "0"),
            ("outbound_priority", "5"),
            ("outbound_strategy", "ringall"),
        ]
        item = xmldoc.Element("fifo", attrs, parent=report)
        report.children.append(item)
        for child in ("outbound", "callers", "consumers", "bridges"):
            item.children.append(xmldoc.Element(child, parent=item))
    return xmldoc.toxml(report) + "\n"
