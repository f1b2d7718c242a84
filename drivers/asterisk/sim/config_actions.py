"""GetConfig, GetConfigJSON, ListCategories and UpdateConfig on the office's config files,
as `main/manager.c` answers them (each request loads the file afresh, includes followed)."""

from __future__ import annotations

import re

from drivers.asterisk.sim.astconfig import AstConfig, Cat, Var, matches
from drivers.asterisk.sim.base import Reply, Session, SimContext, action, error, response
from drivers.asterisk.sim.conffile import Category, ConfFile, ConfigInvalid
from drivers.asterisk.sim.confwrite import Edit, UpdateError, apply, save, write
from drivers.asterisk.sim.core_actions import reload_module
from drivers.asterisk.wire import Message, get

_NUMBERED = re.compile(r"^(Action|Cat|Var|Value|Match|Line|Options)-(\d{6})$", re.IGNORECASE)


class _Refused(Exception):
    """The request is answered with an error; the message is Asterisk's."""


def _read(ctx: SimContext, request: Message) -> ConfFile:
    filename = (get(request, "Filename") or "").strip()
    if not filename:
        raise _Refused("Filename not specified")
    try:
        return ctx.config.read(filename)
    except (FileNotFoundError, IsADirectoryError):
        raise _Refused("Config file not found") from None
    except ConfigInvalid:
        raise _Refused("Config file has invalid format") from None


def _selected(conf: ConfFile, wanted: str | None, match: str | None) -> list[Category]:
    """ast_category_browse_filtered: the categories named `wanted` (any, when absent) that
    `match` accepts (`var=value` regular expressions, `TEMPLATES=include|restrict`; no
    filter: every category that is not a template)."""
    chosen = []
    for category in conf.categories:
        probe = Cat(category.name, "", ignored=category.is_template)
        probe.vars = [Var(k, v, "") for k, v in conf.expanded(category)]
        if matches(probe, wanted, match or ""):
            chosen.append(category)
    return chosen


@action("GetConfig")
def get_config(ctx: SimContext, session: Session, request: Message) -> Reply:
    try:
        conf = _read(ctx, request)
    except _Refused as exc:
        return Reply([error(request, str(exc))])

    def build() -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        for n, category in enumerate(
            _selected(conf, get(request, "Category"), get(request, "Filter"))
        ):
            fields.append((f"Category-{n:06d}", category.name))
            if category.is_template:
                fields.append((f"IsTemplate-{n:06d}", "1"))
            if category.templates:
                fields.append((f"Templates-{n:06d}", ",".join(category.templates)))
            for m, (key, value) in enumerate(conf.expanded(category)):
                fields.append((f"Line-{n:06d}-{m:06d}", f"{key}={value}"))
        if get(request, "Category") and not fields:
            fields.append(("", "No categories found"))
        return fields

    key = ("GetConfig", conf.filename, get(request, "Category"), get(request, "Filter"))
    return Reply([response(request, "Success", ctx.memo(key, (conf,), build))])


@action("GetConfigJSON")
def get_config_json(ctx: SimContext, session: Session, request: Message) -> Reply:
    """Asterisk writes one JSON member per section and per option, so names repeat
    (fixture facts 11 and 20): built by hand, never through a dict."""
    try:
        conf = _read(ctx, request)
    except _Refused as exc:
        return Reply([error(request, str(exc))])
    members = []
    for category in _selected(conf, get(request, "Category"), get(request, "Filter")):
        pairs: list[str] = []
        if category.is_template:
            pairs.append('"istemplate":1')
        if category.templates:
            pairs.append(f'"templates":"{",".join(category.templates)}"')
        pairs += [f'"{_json(k)}":"{_json(v)}"' for k, v in conf.expanded(category)]
        members.append(f'"{_json(category.name)}":{{{",".join(pairs)}}}')
    return Reply([response(request, "Success", [("JSON", "{" + ",".join(members) + "}")])])


def _json(text: str) -> str:
    """Asterisk's json_escape: only backslash and double quote are escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


@action("ListCategories")
def list_categories(ctx: SimContext, session: Session, request: Message) -> Reply:
    try:
        conf = _read(ctx, request)
    except _Refused as exc:
        return Reply([error(request, str(exc))])
    names = [c.name for c in _selected(conf, None, get(request, "Match"))]
    fields = [(f"Category-{n:06d}", name) for n, name in enumerate(names)]
    if not names:
        fields = [("", "Error: no categories found")]
    return Reply([response(request, "Success", fields)])


def _edits(request: Message) -> list[Edit]:
    """The numbered actions, from 000000 up to the first missing `Action-NNNNNN`; raises
    `UpdateError` for an action without its category."""
    numbered: dict[int, dict[str, str]] = {}
    for key, value in request:
        match = _NUMBERED.match(key)
        if match:
            numbered.setdefault(int(match.group(2)), {}).setdefault(match.group(1).lower(), value)
    edits = []
    for index in range(len(numbered) + 1):
        parts = numbered.get(index, {})
        if not parts.get("action"):
            break
        if not parts.get("cat"):
            raise UpdateError("Category not specified")
        edits.append(
            Edit(
                action=parts["action"],
                cat=parts["cat"],
                var=parts.get("var"),
                value=parts.get("value"),
                match=parts.get("match"),
                line=parts.get("line"),
                options=parts.get("options"),
            )
        )
    return edits


@action("UpdateConfig")
def update_config(ctx: SimContext, session: Session, request: Message) -> Reply:
    source = (get(request, "SrcFilename") or "").strip()
    target = (get(request, "DstFilename") or "").strip()
    if not source or not target:
        return Reply([error(request, "Filename not specified")])
    try:
        if not ctx.config.path(source).is_file() or not ctx.config.path(target).is_file():
            raise FileNotFoundError(target)
    except FileNotFoundError:  # realpath fails outside the config folder or for a missing file
        return Reply([error(request, "File requires escalated privileges")])
    try:
        cfg = ctx.config.load(source)
    except FileNotFoundError:
        return Reply([error(request, "Config file not found")])
    except ConfigInvalid:
        return Reply([error(request, "Config file has invalid format")])
    try:
        for edit in _edits(request):
            apply(cfg, edit, target)
    except UpdateError as exc:
        return Reply([error(request, str(exc))])
    _rename(cfg, source, target)
    try:
        write(cfg, save(cfg, target))
    except (OSError, FileNotFoundError):
        return Reply([error(request, "Save of config failed")])
    module = get(request, "Reload")
    broadcast: list[Message] = []
    if module and module.lower() not in ("no", "false", "0", "n", "f", "off"):
        everything = module.lower() in ("yes", "true", "1", "y", "t", "on")
        broadcast = reload_module(ctx, "All" if everything else module)
    return Reply([response(request, "Success")], broadcast=broadcast)


def _rename(cfg: AstConfig, source: str, target: str) -> None:
    """ast_include_rename: what was recorded as coming from `source` now belongs to
    `target` (the top file is recorded as "", so in practice only an include named like the
    source moves)."""
    if source == target:
        return
    for include in cfg.includes:
        if include.location_file == source:
            include.location_file = target
    for cat in cfg.categories:
        if cat.file == source:
            cat.file = target
        for var in cat.vars:
            if var.file == source:
                var.file = target
