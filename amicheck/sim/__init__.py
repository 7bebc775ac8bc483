"""The UCM6XXX simulator: a real AMI server that behaves like the UCM.

``with Simulator(profile) as sim:`` serves ``profile`` on ephemeral loopback ports;
``amicheck sim --config FILE`` serves it in the foreground. See docs/internals.md.
"""

from __future__ import annotations

from amicheck.sim.faults import FAULTS, Fault, UnknownFaultError
from amicheck.sim.server import Simulator, SimulatorError

__all__ = ["Simulator", "SimulatorError", "FAULTS", "Fault", "UnknownFaultError"]
