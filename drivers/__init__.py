"""Vendor drivers: how to talk to a PBX. Nothing here knows about schedules, MQTT or licences."""
