"""Asterisk driver: AMI (Asterisk Manager Interface) over TCP, parsers, and an AMI simulator."""
