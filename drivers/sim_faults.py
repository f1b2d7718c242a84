"""Faults a PBX simulator (AMI or ESL) can inject into its sessions, for tests of a client's
resilience. Vendor-free: each simulator applies them at its own message boundaries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Mutable at run time; applies to open sessions from their next reply on.

    Attributes:
        latency: seconds to wait before each reply.
        chunk_size: write replies in pieces of this many bytes, flushed one by one.
        drop_mid_list: close the connection halfway through the next long reply (once).
        garbage: bytes sent in place of the next reply (once).
        stall: read requests but never answer.
        refuse_connections: close new connections at once, before the greeting.
    """

    latency: float = 0.0
    chunk_size: int | None = None
    drop_mid_list: bool = False
    garbage: bytes | None = None
    stall: bool = False
    refuse_connections: bool = False
