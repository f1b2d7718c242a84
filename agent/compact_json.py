"""One line of compact JSON, keys sorted: what a `--json` command prints for a program and
how the daemon sends a large result (a count's report) over the control socket.

orjson writes a 10,000-seat count report (3.8 MB) in about 0.01 s, where the standard
library's C encoder takes 0.06-0.1 s of a technician's `pbx-agent count --json`. Dates and
dataclasses go through `str`, as `json.dumps(..., default=str)` has them."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def dumps(value: Any) -> bytes:
    """`value` as one line of JSON (UTF-8, no spaces, keys sorted), without the newline."""
    return orjson.dumps(value, default=str, option=_OPTIONS)
