"""The licence server's HTTP API: `GET {url}/v1/sites/{site_id}/licence` answers
`{"token": "<payload>.<signature>"}`. Blocking (`requests`): call it from a thread. TLS is
verified (against `ca_file` when given); plain http is accepted for loopback only (tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests

from agent import bounded_json
from agent.errors import LicenceError

MAX_ANSWER_BYTES = 64 * 1024
ANSWER_LIMITS = bounded_json.Limits(MAX_ANSWER_BYTES, max_depth=4, max_number_chars=24)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LicenceServerUnreachable(LicenceError):
    """No usable answer from the licence server (network, TLS, HTTP status, timeout)."""


@dataclass(frozen=True, slots=True)
class Answer:
    token: object  # whatever the server put in "token"; verified by the caller
    date: str | None  # the server's Date header (clock checks)


def check_url(url: str) -> str:
    """The base URL, or ValueError when it is not https (or http to loopback)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return url.rstrip("/")
    raise ValueError(f"licence url {url!r} must be https:// (http:// only to loopback)")


def fetch(url: str, site_id: str, *, timeout: float, ca_file: Path | None = None) -> Answer:
    target = f"{check_url(url)}/v1/sites/{quote(site_id, safe='')}/licence"
    try:
        with requests.get(
            target,
            timeout=(timeout, timeout),
            verify=str(ca_file) if ca_file else True,
            headers={"Accept": "application/json"},
            stream=True,
            allow_redirects=False,
        ) as response:
            if response.status_code != 200:
                raise LicenceServerUnreachable(f"{target}: HTTP {response.status_code}")
            body = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
            date = response.headers.get("Date")
    except requests.RequestException as exc:
        raise LicenceServerUnreachable(f"{target}: {_why(exc, timeout)}") from exc
    data = bounded_json.loads(body, ANSWER_LIMITS, f"{target}: answer", LicenceError)
    if not isinstance(data, dict):
        raise LicenceError(f"{target}: answer is not a JSON object")
    return Answer(data.get("token"), date)


def _why(exc: requests.RequestException, timeout: float) -> str:
    """A request failure in words, without the library's class names and object reprs."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed (is the server's certificate signed by a CA this host trusts?)"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        for needle, words in (
            ("Connection refused", "connection refused (nothing listens there)"),
            ("Name or service not known", "host name not found (DNS)"),
            ("Temporary failure in name resolution", "host name not found (DNS)"),
            ("No route to host", "no route to host"),
            ("Network is unreachable", "network unreachable"),
        ):
            if needle in text:
                return words
        return "cannot connect"
    return "the request failed"
