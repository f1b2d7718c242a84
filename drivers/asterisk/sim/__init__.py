"""Building blocks of the AMI simulator (see `drivers.asterisk.simulator`)."""
