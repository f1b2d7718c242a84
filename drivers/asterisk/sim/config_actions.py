"""GetConfig, GetConfigJSON, ListCategories and UpdateConfig on the office's config files."""

from __future__ import annotations

import json
import re

from drivers.asterisk.sim.base import Reply, Session, SimContext, action, error, response
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.confwrite import Document, Edit, UpdateError
from drivers.asterisk.sim.core_actions import reload_module
from drivers.asterisk.wire import Message, get

_NUMBERED = re.compile(r"^(Action|Cat|Var|Value|Match|Line|Options)-(\d{6})$", re.IGNORECASE)


def _read(ctx: SimContext, request: Message) -> ConfFile | None:
    filename = get(request, "Filename") or ""
    try:
        return ctx.config.read(filename)
    except (FileNotFoundError, IsADirectoryError):
        return None


def _selected(conf: ConfFile, request: Message) -> list[Category]:
    """Categories GetConfig shows: templates only with ``Filter: TEMPLATES=include``, and
    only those matching ``Category:`` and every ``var=value`` of ``Filter:``."""
    wanted = get(request, "Category")
    filters: dict[str, str] = {}
    for part in (get(request, "Filter") or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            filters[key.strip()] = value.strip()
    templates = filters.pop("TEMPLATES", "").lower()
    chosen = []
    for category in conf.categories:
        if category.is_template and templates not in ("include", "restrict"):
            continue
        if templates == "restrict" and not category.is_template:
            continue
        if wanted is not None and category.name != wanted:
            continue
        if any(conf.value(category, k) != v for k, v in filters.items()):
            continue
        chosen.append(category)
    return chosen


@action("GetConfig")
def get_config(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = _read(ctx, request)
    if conf is None:
        return Reply([error(request, "Config file not found")])

    def build() -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        for n, category in enumerate(_selected(conf, request)):
            fields.append((f"Category-{n:06d}", category.name))
            if category.templates:
                fields.append((f"Templates-{n:06d}", ",".join(category.templates)))
            if category.is_template:
                fields.append((f"IsTemplate-{n:06d}", "1"))
            for m, (key, value) in enumerate(conf.expanded(category)):
                fields.append((f"Line-{n:06d}-{m:06d}", f"{key}={value}"))
        return fields

    key = ("GetConfig", conf.filename, get(request, "Category"), get(request, "Filter"))
    return Reply([response(request, "Success", ctx.memo(key, (conf,), build))])


@action("GetConfigJSON")
def get_config_json(ctx: SimContext, session: Session, request: Message) -> Reply:
    """Asterisk writes one JSON member per section and per option, so names repeat
    (fixture fact 11): built by hand, never through a dict."""
    conf = _read(ctx, request)
    if conf is None:
        return Reply([error(request, "Config file not found")])
    members = []
    for category in _selected(conf, request):
        pairs = []
        if category.templates:
            pairs.append(("templates", ",".join(category.templates)))
        if category.is_template:
            pairs.append(("istemplate", "1"))
        pairs += conf.expanded(category)
        body = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
        members.append(f"{json.dumps(category.name)}:{{{body}}}")
    return Reply([response(request, "Success", [("JSON", "{" + ",".join(members) + "}")])])


@action("ListCategories")
def list_categories(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = _read(ctx, request)
    if conf is None:
        return Reply([error(request, "Config file not found")])
    names = [c.name for c in conf.categories if not c.is_template]
    if not names:
        return Reply([error(request, "Config file has no categories")])
    return Reply(
        [
            response(
                request, "Success", [(f"Category-{n:06d}", name) for n, name in enumerate(names)]
            )
        ]
    )


def _edits(request: Message) -> list[Edit]:
    numbered: dict[str, dict[str, str]] = {}
    for key, value in request:
        match = _NUMBERED.match(key)
        if match:
            numbered.setdefault(match.group(2), {})[match.group(1).lower()] = value
    edits = []
    for _, parts in sorted(numbered.items()):
        if "action" not in parts or "cat" not in parts:
            continue
        edits.append(
            Edit(
                action=parts["action"],
                cat=parts["cat"],
                var=parts.get("var"),
                value=parts.get("value"),
                match=parts.get("match"),
                options=parts.get("options"),
            )
        )
    return edits


def _etc_dir(ctx: SimContext) -> str:
    try:
        conf = ctx.loaded("asterisk.conf")
    except FileNotFoundError:
        return "/etc/asterisk"
    for category in conf.categories:
        if category.name == "directories":
            return category.get("astetcdir", "/etc/asterisk") or "/etc/asterisk"
    return "/etc/asterisk"


@action("UpdateConfig")
def update_config(ctx: SimContext, session: Session, request: Message) -> Reply:
    source = get(request, "SrcFilename")
    target = get(request, "DstFilename")
    if not source or not target:
        return Reply([error(request, "Filename not specified")])
    try:
        src_path, dst_path = ctx.config.path(source), ctx.config.path(target)
        text = src_path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return Reply([error(request, "Config file not found")])
    if not dst_path.is_file():
        return Reply([error(request, "File requires escalated privileges")])
    document = Document(text, target)
    try:
        for edit in _edits(request):
            document.apply(edit)
    except UpdateError as exc:
        return Reply([error(request, str(exc))])
    dst_path.write_text(document.render(etc_dir=_etc_dir(ctx)), encoding="utf-8")
    module = get(request, "Reload")
    broadcast: list[Message] = []
    if module and module.lower() not in ("no", "false", "0"):
        broadcast = reload_module(ctx, "All" if module.lower() in ("yes", "true", "1") else module)
    return Reply([response(request, "Success")], broadcast=broadcast)
