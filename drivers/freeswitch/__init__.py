"""The FreeSWITCH (and FusionPBX) driver: ESL client, pure parsers, inventory per domain, and
an ESL simulator built on transcripts captured from a real FreeSWITCH 1.10.12."""
