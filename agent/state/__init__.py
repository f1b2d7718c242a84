"""The agent's persistent state: one SQLite file, schema-versioned, used off the event loop."""

from agent.state.store import PollRecord, StateStore

__all__ = ["PollRecord", "StateStore"]
