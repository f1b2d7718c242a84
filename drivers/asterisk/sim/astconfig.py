"""Asterisk's configuration loader, reproduced: what `ast_config_load2()` builds from a `.conf`
file and everything it `#include`s, with the comments and line numbers its writer needs.

Rules (Asterisk 22 `main/config.c`, checked against captures 1 and 2):
- `#include`/`#tryinclude` load the named file (relative to the config folder) in place; the
  categories of an included file remember that file (by absolute path), those of the top file
  remember "" (the top file, whatever its name); a file included twice is recorded as
  `name~~N`; more than 10 levels of includes fail.
- `[name](!)` is a template, `[name](tpl,...)` copies the templates' variables first (marked
  inherited), `[name](+)` / `[name](+type=endpoint&...)` appends the following variables to the
  first existing category that matches (the header and its comments disappear); a `(+)` whose
  category does not exist makes the whole load invalid (fact 22), so does a variable before
  any category (fact 30).
- `name += more` appends to the last value of `name`; `=>` marks an object.
- Comments (`;`, `;-- --;`) and blank lines are kept as the pre-comments of the next category,
  variable or include, a comment at the end of a line as its same-line comment, what ends a file
  as the trailing comment of the last thing in it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_INCLUDE_LEVEL = 10
MAX_NESTED_COMMENTS = 128
_DIRECTIVE = re.compile(r"^#(?P<word>[^\x00-\x20]*)[\x00-\x20]?(?P<argument>.*)$", re.DOTALL)


class ConfigInvalid(ValueError):
    """The file (or one it includes) cannot be parsed: Asterisk's CONFIG_STATUS_FILEINVALID
    ("Config file has invalid format"). The message is what Asterisk logs."""


@dataclass(eq=False)
class Var:
    name: str
    value: str
    file: str  # "" for the top file, else the absolute path of the file it was read from
    lineno: int = 0
    object: bool = False
    inherited: bool = False
    precomments: str = ""
    sameline: str = ""
    trailing: str = ""


@dataclass(eq=False)
class Cat:
    name: str
    file: str
    lineno: int = 0
    ignored: bool = False  # a template
    templates: list[Cat] = field(default_factory=list)
    vars: list[Var] = field(default_factory=list)
    precomments: str = ""
    sameline: str = ""
    trailing: str = ""


@dataclass(eq=False)
class Include:
    location_file: str  # "" for the top file
    location_lineno: int
    included_file: str  # as written (dequoted), or `name~~N` for a repeated include
    kind: str  # "include" | "tryinclude"
    paths: list[str] = field(default_factory=list)  # absolute paths of the files it names
    precomments: str = ""
    sameline: str = ""
    trailing: str = ""


@dataclass(eq=False)
class AstConfig:
    """A loaded configuration: categories in load order, every include, the files read."""

    root: Path  # where the files really are
    etc_dir: str  # the folder Asterisk believes they are in (asterisk.conf astetcdir)
    categories: list[Cat] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    include_level: int = 0
    current: Cat | None = None

    def absolute(self, name: str) -> str:
        """Asterisk's make_fn: a name relative to the config folder as an absolute path."""
        return name if name.startswith("/") else f"{self.etc_dir}/{name}"

    def real(self, absolute: str) -> Path:
        """The file behind an absolute path inside the config folder."""
        prefix = self.etc_dir.rstrip("/") + "/"
        if not absolute.startswith(prefix):
            raise FileNotFoundError(absolute)
        relative = absolute[len(prefix) :]
        if not relative or relative.startswith(".") or "/" in relative:
            raise FileNotFoundError(absolute)
        return self.root / relative

    def find(self, name: str, match: str = "", sep: str = ",") -> Cat | None:
        """category_get_sep: the first category called `name` that `match` accepts."""
        return next((c for c in self.categories if matches(c, name, match, sep)), None)


def matches(cat: Cat, name: str | None, match: str | None, sep: str = ",") -> bool:
    """Asterisk's does_category_match: the name compared without case; `match` is
    `var=value` pairs (POSIX regular expressions searched in the category's variables,
    inherited ones included) and `TEMPLATES=include|restrict`. No match: not a template."""
    if name and cat.name.lower() != name.lower():
        return False
    if not match:
        return not cat.ignored
    found = expressions = 0
    template_ok = False
    for part in match.split(sep):
        part = part.strip()
        expressions += 1
        key, eq, value = part.partition("=")
        if not eq:
            break
        key, value = key.strip(), value.strip()
        if key == "TEMPLATES":
            if value.lower() == "include":
                template_ok = template_ok or cat.ignored
                found += 1
            elif value.lower() == "restrict":
                if not cat.ignored:
                    break
                found += 1
                template_ok = True
            continue
        try:
            name_re, value_re = re.compile(key), re.compile(value)
        except re.error:
            return False
        if any(name_re.search(v.name) and value_re.search(v.value) for v in cat.vars):
            found += 1
    return found == expressions and (not cat.ignored or template_ok)


def load(root: Path, filename: str, etc_dir: str = "/etc/asterisk") -> AstConfig:
    """Load `filename` from `root` as Asterisk does; FileNotFoundError when it is missing,
    ConfigInvalid when it (or an include) cannot be parsed."""
    cfg = AstConfig(root=root, etc_dir=etc_dir.rstrip("/") or "/")
    if not _load_file(cfg, filename, ""):
        raise FileNotFoundError(filename)
    return cfg


class _FileState:
    """The per-file locals of config_text_file_load."""

    def __init__(self, cfg: AstConfig) -> None:
        self.cat = cfg.current
        self.comment_buffer = ""
        self.lline_buffer = ""
        self.last_cat: Cat | None = None
        self.last_var: Var | None = None
        self.last_inc: Include | None = None


def _load_file(cfg: AstConfig, filename: str, suggested: str) -> bool:
    """ast_config_internal_load + config_text_file_load; False when no file was found."""
    if cfg.include_level == MAX_INCLUDE_LEVEL:
        return False
    cfg.include_level += 1
    try:
        pattern = cfg.absolute(filename)
        paths = _glob(cfg, pattern)
        count = 0
        for path in paths:
            try:
                real = cfg.real(path)
                text = real.read_text(encoding="utf-8", errors="replace")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            count += 1
            cfg.files.append(real)
            _parse_text(cfg, text, path, suggested)
        return count > 0
    finally:
        cfg.include_level -= 1


def _glob(cfg: AstConfig, pattern: str) -> list[str]:
    if not any(ch in pattern for ch in "*?["):
        return [pattern]
    folder, _, name = pattern.rpartition("/")
    try:
        real_folder = cfg.real(folder + "/x").parent
        names = sorted(p.name for p in real_folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{folder}/{n}" for n in names if fnmatch.fnmatchcase(n, name)]


def _parse_text(cfg: AstConfig, text: str, fn: str, suggested: str) -> None:
    state = _FileState(cfg)
    comment = 0
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    for lineno, line in enumerate(lines, start=1):
        if state.lline_buffer:
            state.comment_buffer += state.lline_buffer
            state.lline_buffer = ""
        if not line.strip(" \t\n\r"):
            state.comment_buffer += "\n"  # keep blank lines as comments
            continue
        buf: list[str] = list(line)
        process: int | None = None if comment else 0
        new = 0
        while (at := _find(buf, ";", new)) >= 0:
            if at > new and buf[at - 1] == "\\":
                new = at
                del buf[at - 1]
            elif _at(buf, at + 1) == "-" and _at(buf, at + 2) == "-" and _at(buf, at + 3) != "-":
                if comment < MAX_NESTED_COMMENTS:
                    buf[at] = "\0"
                    new = at + 3
                    comment += 1
            elif at >= new + 2 and buf[at - 1] == "-" and buf[at - 2] == "-":
                comment -= 1
                new = at + 1
                if not comment:
                    if process is not None:
                        old = _strlen_end(buf, process)
                        state.comment_buffer += ";" + "".join(buf[old + 1 : new])
                        buf[old:] = buf[new : _strlen_end(buf, new)]
                        new = old
                    else:
                        process = new
            elif not comment:
                start = at
                while start > new and buf[start - 1].isspace():
                    start -= 1
                if start != new and buf[start] == " " and _at(buf, start + 1) == " ":
                    start += 2
                state.lline_buffer += "".join(buf[start : _strlen_end(buf, start)])
                del buf[start:]
                new = start
            else:
                new = at + 1
        if comment and process is None:
            state.comment_buffer += line
        if process is not None:
            content = "".join(buf[process : _strlen_end(buf, process)]).strip()
            if content:
                _process_line(cfg, state, content, lineno, fn, suggested)
    # end of file: what is left in the comment buffer trails the last thing read
    trailing = state.comment_buffer + state.lline_buffer if state.comment_buffer else ""
    if trailing:
        if state.last_cat is not None:
            state.last_cat.trailing = trailing
        elif state.last_var is not None:
            state.last_var.trailing = trailing
        elif state.last_inc is not None:
            state.last_inc.trailing = trailing


def _at(buf: list[str], i: int) -> str:
    return buf[i] if 0 <= i < len(buf) else "\0"


def _find(buf: list[str], ch: str, start: int) -> int:
    """strchr from `start`, stopping at a NUL as C does."""
    for i in range(start, len(buf)):
        if buf[i] == "\0":
            return -1
        if buf[i] == ch:
            return i
    return -1


def _strlen_end(buf: list[str], start: int) -> int:
    for i in range(start, len(buf)):
        if buf[i] == "\0":
            return i
    return len(buf)


def _take_comments(state: _FileState) -> tuple[str, str]:
    pre, same = state.comment_buffer, state.lline_buffer
    state.comment_buffer = state.lline_buffer = ""
    return pre, same


def _origin(cfg: AstConfig, fn: str, suggested: str) -> str:
    return suggested or ("" if cfg.include_level == 1 else fn)


def _process_line(
    cfg: AstConfig, state: _FileState, cur: str, lineno: int, fn: str, suggested: str
) -> None:
    """process_text_line: one non-comment line. Raises ConfigInvalid where Asterisk fails."""
    if cur.startswith("["):
        _category(cfg, state, cur, lineno, fn, suggested)
    elif cur.startswith("#"):
        _directive(cfg, state, cur, lineno, fn)
    else:
        _variable(cfg, state, cur, lineno, fn, suggested)


def _category(
    cfg: AstConfig, state: _FileState, cur: str, lineno: int, fn: str, suggested: str
) -> None:
    close = cur.find("]")
    if close < 0:
        raise ConfigInvalid(f"parse error: no closing ']', line {lineno} of {fn}")
    name = cur[1:close]
    rest = cur[close + 1 :]
    newcat: Cat | None = Cat(name=name, file=_origin(cfg, fn, suggested), lineno=lineno)
    assert newcat is not None
    newcat.precomments, newcat.sameline = _take_comments(state)
    state.cat = newcat
    if rest.startswith("("):
        end = rest.find(")")
        if end < 0:
            raise ConfigInvalid(f"parse error: no closing ')', line {lineno} of {fn}")
        for option in rest[1:end].split(","):
            if option.lower() == "!":
                state.cat.ignored = True
            elif option.startswith("+"):
                target = cfg.find(name, option[1:], "&")
                if target is None:
                    raise ConfigInvalid(
                        f"Category addition requested, but category '{name}' does not exist, "
                        f"line {lineno} of {fn}"
                    )
                cfg.current = state.cat = target
                if newcat is not None:
                    target.ignored = target.ignored or newcat.ignored
                    target.vars.extend(newcat.vars)
                    newcat = None
            else:
                base = cfg.find(option, "TEMPLATES=include")
                if base is None:
                    raise ConfigInvalid(
                        f"Inheritance requested, but category '{option}' does not exist, "
                        f"line {lineno} of {fn}"
                    )
                state.cat.templates.append(base)
                state.cat.vars.extend(
                    Var(v.name, v.value, v.file, v.lineno, v.object, inherited=True)
                    for v in base.vars
                )
    state.last_cat, state.last_var, state.last_inc = newcat, None, None
    if newcat is not None:
        cfg.categories.append(newcat)
        cfg.current = newcat


def _directive(cfg: AstConfig, state: _FileState, cur: str, lineno: int, fn: str) -> None:
    directive = _DIRECTIVE.match(cur)
    assert directive is not None  # the pattern matches any text after "#"
    kind, argument = directive["word"].lower(), directive["argument"].strip()
    if kind not in ("include", "tryinclude") or not argument:
        return  # #exec needs execincludes; unknown directives are warned about and skipped
    if argument[0] in '"<':
        closing = ">" if argument[0] == "<" else '"'
        if argument.endswith(closing) and len(argument) > 1:
            argument = argument[1:-1]
    location = "" if cfg.include_level == 1 else fn
    real_name = ""
    if any(i.included_file == argument for i in cfg.includes):
        count = sum(1 for i in cfg.includes if i.included_file.startswith(argument + "~~")) + 1
        real_name = f"{argument}~~{count}"
    include = Include(location, lineno, real_name or argument, kind)
    pattern = cfg.absolute(include.included_file)
    include.paths = _glob(cfg, pattern) if kind == "tryinclude" else [pattern]
    if kind == "tryinclude":
        include.paths = [p for p in include.paths if _exists(cfg, p)]
    cfg.includes.append(include)
    found = _load_file(cfg, argument, real_name)
    if not found and kind == "include":
        raise ConfigInvalid(
            f"The file '{argument}' was listed as a #include but it does not exist."
        )
    include.precomments, include.sameline = _take_comments(state)
    state.last_cat, state.last_var, state.last_inc = None, None, include


def _exists(cfg: AstConfig, path: str) -> bool:
    try:
        return cfg.real(path).exists()
    except FileNotFoundError:
        return False


def _variable(
    cfg: AstConfig, state: _FileState, cur: str, lineno: int, fn: str, suggested: str
) -> None:
    if state.cat is None:
        raise ConfigInvalid(f"parse error: No category context for line {lineno} of {fn}")
    escaped = cur.startswith("\\")
    if escaped:
        cur = cur[1:]
        if not cur or ord(cur[0]) < 33:
            raise ConfigInvalid(f"Invalid escape in line {lineno} of {fn}")
    equals = cur.find("=", 1 if escaped else 0)
    if equals < 0:
        return  # "No '=' (equal sign)": warned about and skipped
    obj = False
    if equals > 0 and cur[equals - 1] == "+":
        name, value = cur[: equals - 1].strip(), cur[equals + 1 :]
        previous = [v for v in state.cat.vars if v.name == name]
        if previous:
            replace = previous[-1]
            replace.value = (replace.value + value).rstrip().lstrip()
            return
    else:
        name, value = cur[:equals].strip(), cur[equals + 1 :]
        if value.startswith(">"):
            obj, value = True, value[1:]
    if not name:
        return  # "No variable name": warned about and skipped
    var = Var(name, value.strip(), _origin(cfg, fn, suggested), lineno, obj)
    var.precomments, var.sameline = _take_comments(state)
    state.cat.vars.append(var)
    state.last_cat, state.last_var, state.last_inc = None, var, None
