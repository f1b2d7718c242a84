"""Configuration backups: a streamed tar, compressed with zstd, encrypted to age recipients."""
