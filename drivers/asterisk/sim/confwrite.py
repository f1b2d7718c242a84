"""UpdateConfig: its edits on a loaded configuration and Asterisk's save of it, reproduced from
`main/manager.c` (handle_updates) and `main/config.c` (ast_config_text_file_save2).

Why it damages files (facts 17-18, 27-30): the save writes *every* file the source loaded
(each truncated and given a generated `;!` header), each category and variable back into the
file it was read from, in load order, as `name = value`; the lines of the top file go to the
destination; `(+)` headers were merged away at load, so their variables come back bare; a new
variable belongs to the destination file and has no line number; an option equal to one of
its templates' values is dropped. Blank lines are re-created from the line-number gaps.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from drivers.asterisk.sim.astconfig import AstConfig, Cat, Include, Var, matches


class UpdateError(ValueError):
    """An UpdateConfig that Asterisk refuses; the message is Asterisk's."""


@dataclass
class Edit:
    """One numbered action of an UpdateConfig request."""

    action: str
    cat: str
    var: str | None = None
    value: str | None = None
    match: str | None = None
    line: str | None = None
    options: str | None = None

    def parsed_options(self) -> dict[str, str]:
        """`Options-NNNNNN`: allowdups, template, ignoreerror, inherit=..., catfilter=..."""
        found: dict[str, str] = {}
        for token in (t.strip() for t in (self.options or "").split(",")):
            key, _, value = token.partition("=")
            key = key.strip().lower()
            if key in ("allowdups", "template", "ignoreerror"):
                found[key] = "1"
            elif key.startswith(("inherit", "catfilter")):
                found["inherit" if key.startswith("inherit") else "catfilter"] = (
                    value.strip().strip('"')
                )
        return found


def _selected(cfg: AstConfig, edit: Edit, catfilter: str | None) -> list[Cat]:
    return [c for c in cfg.categories if matches(c, edit.cat, catfilter or "")]


def apply(cfg: AstConfig, edit: Edit, dst: str) -> None:
    """One action, with Asterisk's error messages."""
    kind = edit.action.lower()
    options = edit.parsed_options()
    catfilter = options.get("catfilter")
    value = edit.value or ""
    obj = value.startswith(">")
    value = value[1:] if obj else value
    if kind == "newcat":
        if "allowdups" not in options and cfg.find(edit.cat, "TEMPLATES=include"):
            if "ignoreerror" in options:
                return
            raise UpdateError("Create category did not complete successfully")
        cat = Cat(edit.cat, dst, -1, ignored="template" in options)
        for name in filter(None, (n.strip() for n in options.get("inherit", "").split(","))):
            base = cfg.find(name, "TEMPLATES=restrict")
            if base is None:
                raise UpdateError("Template category not found")
            cat.templates.append(base)
            cat.vars += [Var(v.name, v.value, v.file, v.lineno, v.object, True) for v in base.vars]
        if not edit.match:
            cfg.categories.append(cat)
            return
        at = next(
            (i for i, c in enumerate(cfg.categories) if c.name.lower() == edit.match.lower()), None
        )
        if at is None:
            raise UpdateError("Create category did not complete successfully")
        cfg.categories.insert(at, cat)
        return
    if kind not in ("renamecat", "delcat", "emptycat", "update", "delete", "append", "insert"):
        raise UpdateError("Unknown action command")
    if kind in ("update", "append", "insert") and not edit.var:
        raise UpdateError("Problem with category, value, or line (if required)")
    if kind == "renamecat" and not value:
        raise UpdateError("Problem with category, value, or line (if required)")
    if kind == "delete" and not edit.var and not edit.line:
        raise UpdateError("Problem with category, value, or line (if required)")
    if kind == "insert" and not edit.line:
        raise UpdateError("Problem with category, value, or line (if required)")
    targets = _selected(cfg, edit, catfilter)
    if not targets:
        if kind == "delcat" and "ignoreerror" in options:
            return
        raise UpdateError("Given category does not exist")
    found_var = False
    for cat in targets:
        if kind == "renamecat":
            cat.name = value
        elif kind == "delcat":
            cfg.categories.remove(cat)
        elif kind == "emptycat":
            cat.vars.clear()
        elif kind == "update":
            found_var = _update(cat, edit.var or "", value, edit.match, obj) or found_var
        elif kind == "delete":
            found_var = _delete(cat, edit.var or "", edit.match, edit.line) or found_var
        else:
            var = Var(edit.var or "", value, dst, 0, obj or (edit.match or "").lower() == "object")
            if kind == "append":
                cat.vars.append(var)
            else:
                _insert(cat, var, edit.line or "")
    if kind == "update" and not found_var:
        raise UpdateError("Update did not complete successfully")
    if kind == "delete" and not found_var and "ignoreerror" not in options:
        raise UpdateError("Update did not complete successfully")


def _update(cat: Cat, name: str, value: str, match: str | None, obj: bool) -> bool:
    for i, var in enumerate(cat.vars):
        if var.name.lower() != name.lower() or (match and var.value.lower() != match.lower()):
            continue
        new = Var(name, value, var.file, var.lineno, var.object or obj)
        new.precomments, new.sameline, new.trailing = var.precomments, var.sameline, var.trailing
        cat.vars[i] = new
        return True
    return False


def _delete(cat: Cat, name: str, match: str | None, line: str | None) -> bool:
    wanted = -1
    if line:
        try:
            wanted = int(line.strip())
        except ValueError:
            return False
        if wanted < 0:
            return False
    kept = [
        var
        for index, var in enumerate(cat.vars)
        if not (
            (wanted >= 0 and index == wanted)
            or (
                wanted < 0
                and var.name.lower() == name.lower()
                and (not match or var.value.lower() == match.lower())
            )
        )
    ]
    deleted = len(kept) != len(cat.vars)
    cat.vars[:] = kept
    return deleted


def _insert(cat: Cat, var: Var, line: str) -> None:
    try:
        at = int(line.strip())
    except ValueError:
        return
    cat.vars.insert(min(max(at, 0), len(cat.vars)), var)


# -- saving -----------------------------------------------------------------------------------


@dataclass
class _Out:
    """One file being written: its text and the line number reached (Asterisk's inclfile)."""

    text: list[str] = field(default_factory=list)
    lineno: int = 1


class _Saver:
    def __init__(self, cfg: AstConfig, configfile: str, now: float | None) -> None:
        self.cfg = cfg
        self.configfile = configfile
        self.now = now
        self.files: dict[str, _Out] = {}
        self.output: set[int] = set()

    def fn(self, file: str) -> str:
        """make_fn: "" is the destination file, a relative name is in the config folder."""
        return self.cfg.absolute(file or self.configfile)

    def open(self, file: str) -> _Out:
        name = self.fn(file)
        if name not in self.files:
            self.files[name] = _Out()
        return self.files[name]

    def truncate(self, name: str) -> None:
        out = self.files.setdefault(name, _Out())
        out.text = [self.header(name)]

    def header(self, fn: str) -> str:
        date = time.asctime(time.localtime(self.now))
        where = f"{self.configfile} ({fn})" if fn != self.configfile else self.configfile
        return (
            ";!\n;! Automatically generated configuration file\n"
            f";! Filename: {where}\n;! Generator: Manager\n;! Creation Date: {date}\n;!\n"
        )

    def blank_lines(self, out: _Out, precomments: str, lineno: int) -> None:
        """insert_leading_blank_lines: re-create the blank lines a gap in numbering implies."""
        gap = lineno - precomments.count("\n") - out.lineno
        if gap < 0 or lineno == 0:
            return
        out.text.append("\n" * gap if gap < 5 else "\n")
        out.lineno = lineno + 1

    def includes_before(self, out: _Out, file: str, lineno: int) -> None:
        for include in self.cfg.includes:
            later = include.location_file == file and lineno > include.location_lineno
            if later and id(include) not in self.output:
                self.include(out, include)

    def include(self, out: _Out, include: Include) -> None:
        self.blank_lines(out, include.precomments, include.location_lineno)
        out.text.append(_comment(include.precomments))
        keyword = "#tryinclude" if include.kind == "tryinclude" else "#include"
        out.text.append(f'{keyword} "{include.included_file}"\n')
        self.output.add(id(include))

    def save(self) -> dict[str, str]:
        for include in self.cfg.includes:
            for path in include.paths:
                self.truncate(path)
        self.truncate(self.fn(""))
        for cat in self.cfg.categories:
            out = self.open(cat.file)
            self.includes_before(out, cat.file, cat.lineno)
            self.blank_lines(out, cat.precomments, cat.lineno)
            out.text.append(_comment(cat.precomments))
            flags = (["!"] if cat.ignored else []) + [t.name for t in cat.templates]
            out.text.append(f"[{cat.name}]" + (f"({','.join(flags)})" if flags else ""))
            out.text.append(cat.sameline or "\n")
            out.text.append(_comment(cat.trailing))
            for var in cat.vars:
                if any(
                    (var.name.lower(), var.value) == (v.name.lower(), v.value)
                    for t in cat.templates
                    for v in t.vars
                ):
                    continue  # equal to a template's value: dropped (fact 18)
                out = self.open(var.file)
                self.includes_before(out, var.file, var.lineno)
                self.blank_lines(out, var.precomments, var.lineno)
                out.text.append(_comment(var.precomments))
                op = "=>" if var.object else "="
                value = var.value.replace(";", "\\;")
                if var.sameline:
                    out.text.append(f"{var.name} {op} {value}  {var.sameline}")
                else:
                    out.text.append(f"{var.name} {op} {value}\n")
                out.text.append(_comment(var.trailing))
        for include in self.cfg.includes:
            if id(include) not in self.output:
                out = self.open(include.location_file)
                self.include(out, include)
                out.text.append(_comment(include.trailing))
        return {name: "".join(out.text) for name, out in self.files.items()}


def _comment(text: str) -> str:
    """print_comment: every complete line except Asterisk's own `;!` header lines."""
    lines = text.split("\n")[:-1]
    return "".join(f"{line}\n" for line in lines if not line.startswith(";!"))


def save(cfg: AstConfig, configfile: str, *, now: float | None = None) -> dict[str, str]:
    """Every file the save writes (absolute path -> new content)."""
    return _Saver(cfg, configfile, now).save()


def write(cfg: AstConfig, files: dict[str, str]) -> None:
    """Write what `save` produced into the configuration folder."""
    for name, text in files.items():
        path: Path = cfg.real(name)
        path.write_text(text, encoding="utf-8")


_NUMBERED = re.compile(r"^(Action|Cat|Var|Value|Match|Line|Options)-(\d{6})$", re.IGNORECASE)
