"""A licence server test double: real HTTP on a free loopback port, answering
`GET /v1/sites/{site_id}/licence` with `{"token": ...}` signed by its own Ed25519 key (the
vendor key the agent pins). Tests change what it serves, make it answer garbage, or take it
off the network."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.licence.token import FEATURES
from agent.usage.keys import public_b64


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    data = json.dumps(payload).encode()
    return f"{b64url(data)}.{b64url(key.sign(data))}"


@dataclass
class LicenceServer:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    kid: str = "vendor-test"
    site_id: str = "test-site"
    body: bytes = b'{"error": "no licence yet"}'
    status: int = 200
    requests: int = 0
    serial: int = 0
    _server: ThreadingHTTPServer | None = None
    # When set, called for every request to produce the body (e.g. a fresh token each time).
    on_request: Callable[[], bytes] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, **extra: str) -> str:
        lines = [
            "[licence]",
            "enabled = true",
            f'url = "{self.url}"',
            "timeout = 2",
            f'keys = {{ {self.kid} = "{public_b64(self.key)}" }}',
            *(f"{k} = {v}" for k, v in extra.items()),
        ]
        return "\n".join(lines) + "\n"

    def payload(
        self,
        *,
        expires_at: datetime,
        issued_at: datetime | None = None,
        status: str = "active",
        **changes: Any,
    ) -> dict[str, Any]:
        self.serial += 1
        return {
            "kid": self.kid,
            "site_id": self.site_id,
            "subscription_id": "sub-1",
            "status": status,
            "expires_at": expires_at.isoformat(),
            "issued_at": (issued_at or now() - timedelta(minutes=1)).isoformat(),
            "serial": self.serial,
            "max_users": 20,
            "entitlements": dict.fromkeys(FEATURES, True),
        } | changes

    def serve_token(self, token: str) -> None:
        self.body, self.status = json.dumps({"token": token}).encode(), 200

    def issue(self, **kwargs: Any) -> str:
        """Sign a payload (see `payload`) and serve it; the token."""
        token = sign(self.payload(**kwargs), self.key)
        self.serve_token(token)
        return token

    def start(self) -> LicenceServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.on_request is not None:
                    owner.body = owner.on_request()
                if self.path != f"/v1/sites/{owner.site_id}/licence":
                    self.send_error(404)
                    return
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *_: Any) -> None:
                pass

        port = self._server.server_address[1] if self._server else 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Off the network: connections to its port are refused until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def now() -> datetime:
    return datetime.now(UTC)
