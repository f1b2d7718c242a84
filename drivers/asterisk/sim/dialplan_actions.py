"""ShowDialPlan and `dialplan show EXTEN@CONTEXT` from extensions.conf: hints and priorities
per extension, sorted as Asterisk sorts them (literal extensions first, patterns after). A
context written in two files is one context. Context includes are not listed."""

from __future__ import annotations

import contextlib
import re

from drivers.asterisk.sim.base import (
    Reply,
    Session,
    SimContext,
    action,
    cli,
    error,
    event,
    list_reply,
)
from drivers.asterisk.sim.conffile import Category
from drivers.asterisk.wire import Message, get

_LABEL = re.compile(r"\([^)]*\)$")
_APP = re.compile(r"^(?P<app>[A-Za-z0-9_]+)\s*(?:\((?P<data>.*)\))?\s*$")

Step = tuple[str, str, str, str | None]  # extension, priority, application, data (None: hint)


def _steps(context: Category) -> list[Step]:
    return [step for step, _ in numbered_steps(context)]


def numbered_steps(context: Category) -> list[tuple[Step, int]]:
    """Each hint and priority of the context, with the index of the option it comes from."""
    steps: list[tuple[Step, int]] = []
    last_exten, last_priority = "", 0
    for index, (key, value) in enumerate(context.options):
        if key not in ("exten", "same"):
            continue
        if key == "exten":
            exten, _, rest = value.partition(",")
        else:
            exten, rest = last_exten, value
        priority, _, command = rest.partition(",")
        priority = _LABEL.sub("", priority.strip())  # "n(open)": a labelled priority
        if priority == "hint":
            steps.append(((exten.strip(), "hint", command.strip(), None), index))
            continue
        number = last_priority + 1 if priority == "n" else int(priority)
        match = _APP.match(command.strip())
        app, data = (match["app"], match["data"] or "") if match else (command.strip(), "")
        steps.append(((exten.strip(), str(number), app, data), index))
        last_exten, last_priority = exten.strip(), number
    return steps


def _parking_contexts(ctx: SimContext) -> list[Category]:
    """The context res_parking registers: the park extension, one ParkedCall extension per
    slot, and the slots' hints."""
    try:
        lots = ctx.loaded("res_parking.conf").categories
    except FileNotFoundError:
        return []
    contexts = []
    for lot in lots:
        first, _, last = (lot.get("parkpos") or "").partition("-")
        if lot.name == "general" or not (first.isdigit() and last.isdigit()):
            continue
        context = lot.get("context") or "parkedcalls"
        options = []
        if lot.get("parkext"):
            options.append(("exten", f"{lot.get('parkext')},1,Park()"))
        for slot in range(int(first), int(last) + 1):
            options.append(("exten", f"{slot},1,ParkedCall({lot.name},{slot})"))
            if (lot.get("parkinghints") or "").lower() in ("yes", "true", "1", "on"):
                options.append(("exten", f"{slot},hint,park:{slot}@{context}"))
        contexts.append(Category(context, options=options))
    return contexts


def _order(step: Step) -> tuple[int, str, int]:
    exten, priority, _, _ = step
    return (1 if exten.startswith("_") else 0, exten, -1 if priority == "hint" else int(priority))


@action("ShowDialPlan")
def show_dialplan(ctx: SimContext, session: Session, request: Message) -> Reply:
    wanted = get(request, "Context")
    # A context written in two files (FreePBX's *_custom.conf) is one context (fact 25).
    contexts: dict[str, list[Step]] = {}
    for c in [*ctx.loaded("extensions.conf").categories, *_parking_contexts(ctx)]:
        if c.name not in ("general", "globals") and (not wanted or c.name == wanted):
            contexts.setdefault(c.name, []).extend(_steps(c))
    if not contexts:
        return Reply([error(request, f"Did not find context {wanted}")])

    def build() -> tuple[list[list[tuple[str, str]]], int]:
        rows: list[list[tuple[str, str]]] = []
        extensions: set[tuple[str, str]] = set()
        for name, steps in contexts.items():
            for exten, priority, app, data in sorted(steps, key=_order):
                extensions.add((name, exten))
                fields = [
                    ("Context", name),
                    ("Extension", exten),
                    ("Priority", priority),
                    ("Application", app),
                ]
                if data is not None:
                    fields.append(("AppData", data))
                fields.append(("Registrar", "pbx_config"))
                rows.append(fields)
        return rows, len(extensions)

    sources = [ctx.loaded("extensions.conf")]
    with contextlib.suppress(FileNotFoundError):
        sources.append(ctx.loaded("res_parking.conf"))
    rows, extension_count = ctx.memo(("ShowDialPlan", wanted), tuple(sources), build)
    items = [event(request, "ListDialplan", fields) for fields in rows]
    return list_reply(
        request,
        "DialPlan list will follow",
        items,
        "ShowDialPlanComplete",
        complete_extra=[
            ("ListExtensions", str(extension_count)),
            ("ListPriorities", str(len(items))),
            ("ListContexts", str(len(contexts))),
        ],
    )


@cli("dialplan show")
def cli_dialplan_show(ctx: SimContext, words: list[str]) -> list[str] | None:
    """`dialplan show EXTEN@CONTEXT`: where each line was written (fact 25)."""
    if len(words) != 3 or "@" not in words[2]:
        return None
    exten, _, wanted = words[2].partition("@")
    rows: list[tuple[Step, str]] = []
    for category in ctx.loaded("extensions.conf").categories:
        if category.name == wanted:
            for step, index in numbered_steps(category):
                if step[0] == exten:
                    rows.append((step, category.source(index)))
    if not rows:
        return [f"There is no existence of {exten}@{wanted} extension", ""]
    lines = [f"[ Context '{wanted}' created by 'pbx_config' ]"]
    rows.sort(key=lambda row: _order(row[0]))
    for n, ((name, priority, app, data), where) in enumerate(rows):
        label = f"'{name}' =>" if n == 0 else ""
        text = f"hint: {app}" if data is None else f"{priority}. {app}({data})"
        lines.append(f"  {label:<17} {text:<45} [{where}]")
    return [*lines, "", f"-= 1 extension ({len(rows)} priorities) in 1 context. =-"]
