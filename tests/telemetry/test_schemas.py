"""Every topic has a JSON Schema in the repo, and each is a valid Draft 2020-12 schema (the
watcher in `tests/mqtt_watch.py` validates every message the agent publishes against them)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from agent.telemetry.messages import TOPICS, envelope
from tests.mqtt_watch import SCHEMAS, validator


@pytest.mark.parametrize("topic", TOPICS)
def test_each_topic_has_a_valid_schema(topic: str) -> None:
    schema = json.loads((SCHEMAS / f"{topic}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == f"pbx-agent/{topic}/1"


def test_a_schema_rejects_what_the_agent_must_not_send() -> None:
    good = envelope(
        "event",
        "test-site",
        {"kind": "problem", "check": "x", "severity": "warning", "summary": "s"},
    )
    assert not list(validator("event").iter_errors(good))
    for broken in ({**good, "severity": "fatal"}, {k: v for k, v in good.items() if k != "id"}):
        assert list(validator("event").iter_errors(broken))
