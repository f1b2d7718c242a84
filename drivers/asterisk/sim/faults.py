"""Faults the AMI simulator can inject: the vendor-free set in `drivers.sim_faults`."""

from drivers.sim_faults import Faults

__all__ = ["Faults"]
