"""A supervised link to a PBX's management interface, whatever its protocol (AMI, ESL): the
first `connect()` opens it and raises if that fails; after that, a lost link is opened again in
the background with exponential back-off and jitter, and calls made meanwhile fail fast. The
handshake (greeting, login) is the protocol's; so is the goodbye. Errors of the socket layer
are translated into the drivers' tree here, keeping their cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import structlog

from drivers.errors import DriverConnectionError, DriverError, DriverTimeout

log = structlog.get_logger(__name__)


class LinkSettings(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def reconnect_initial(self) -> float: ...
    @property
    def reconnect_max(self) -> float: ...


class SupervisedLink(ABC):
    """Subclasses set `label` (``AMI``) and `interface` (``the AMI``), implement `_handshake`
    and `_goodbye`, and call `_lost` when their protocol loses the connection."""

    label: ClassVar[str]
    interface: ClassVar[str]

    def __init__(self, settings: LinkSettings) -> None:
        self.link_settings = settings
        self._protocol: Any = None
        self._opening: Any = None  # the protocol a handshake is under way on
        self._supervisor: asyncio.Task[None] | None = None
        self._lost_event = asyncio.Event()
        self._closing = False
        self.last_error: DriverError | None = None

    @property
    def where(self) -> str:
        return f"{self.link_settings.host}:{self.link_settings.port}"

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def connect(self) -> None:
        """Open the link; idempotent: once connected, the reconnect loop owns it."""
        if self._supervisor is not None and not self._supervisor.done():
            return
        self._closing = False
        await self._open()
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"{self.label.lower()}-reconnect"
        )

    async def close(self) -> None:
        """Say goodbye and close; never raises."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
            self._supervisor = None
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.closed:
            with contextlib.suppress(DriverError, TimeoutError, asyncio.CancelledError):
                await self._goodbye(protocol)
            self._drop(protocol)

    @abstractmethod
    async def _handshake(self) -> Any:
        """Connect, read the greeting, log in; return the protocol. Set `_opening` as soon
        as the protocol exists (it is dropped if the handshake fails). Raise DriverError
        subclasses for refusals (DriverAuthError for bad credentials)."""

    @abstractmethod
    async def _goodbye(self, protocol: Any) -> None:
        """Leave politely (Logoff, exit)."""

    def _opened(self) -> None:  # noqa: B027 - optional hook
        """Called once a (re)opened link is in use."""

    async def _open(self) -> None:
        s = self.link_settings
        self._opening = None
        try:
            async with asyncio.timeout(s.connect_timeout):
                protocol = await self._handshake()
        except TimeoutError as exc:
            self._drop(self._opening)
            limit = s.connect_timeout
            raise self._remember(
                DriverTimeout(f"{self.label} at {self.where}: no login within {limit:g} s")
            ) from exc
        except DriverError as exc:
            self._drop(self._opening)
            raise self._remember(exc) from exc
        except OSError as exc:
            self._drop(self._opening)
            raise self._remember(
                DriverConnectionError(
                    f"cannot connect to {self.interface} at {self.where}: {exc.strerror or exc}"
                )
            ) from exc
        self._protocol = protocol
        self._lost_event.clear()
        self.last_error = None
        self._opened()

    def _drop(self, protocol: Any) -> None:
        transport = getattr(protocol, "transport", None)
        if transport is not None and not protocol.closed:
            transport.close()

    def _remember(self, exc: DriverError) -> DriverError:
        self.last_error = exc
        return exc

    def _lost(self, protocol: Any) -> None:
        """The protocol lost its connection: the supervisor opens a new one."""
        if protocol is self._protocol:
            self._lost_event.set()

    async def _watch(self) -> None:
        """Return when the link is lost (a protocol may also watch for silence)."""
        await self._lost_event.wait()

    async def _supervise(self) -> None:
        s = self.link_settings
        while not self._closing:
            await self._watch()
            if self._closing:
                return
            log.warning(f"{self.label} connection lost; reconnecting", address=self.where)
            delay = s.reconnect_initial
            while not self._closing:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter
                try:
                    await self._open()
                except DriverError as exc:
                    log.debug(f"{self.label} reconnect attempt failed", error=str(exc))
                    delay = min(delay * 2, s.reconnect_max)
                    continue
                log.info(f"{self.label} connection restored", address=self.where)
                break
