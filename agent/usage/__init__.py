"""Signed, hash-chained usage reports: what the reseller bills from, tamper-evident."""
