"""Reading a TOML file's text as TOML wants it (kept out of `agent.config`, whose import
pulls in pydantic: the CLI reads the control socket's path with this first)."""

from __future__ import annotations

from pathlib import Path

from agent.errors import ConfigError


def read_toml_text(path: Path) -> str:
    """The file's text: UTF-8, as TOML requires, with a leading byte-order mark (Windows
    editors write one) dropped. A byte that is not UTF-8 is a `ConfigError` naming its line
    and column (issue 16: it used to be a traceback, and systemd restarted the agent forever).
    """
    raw = path.read_bytes()
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}: line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8 "
            "(TOML files are UTF-8: save the file as UTF-8, e.g. iconv -f latin1 -t utf-8)",
            file=str(path),
        ) from None
