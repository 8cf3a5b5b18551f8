"""The load drivers, registered by the kind a scenario names (``Scenario.driver``), all behind
one contract (:mod:`loadtests.drivers.base`): closed loop (Locust), bursts, open loop, soak."""

from __future__ import annotations

from loadtests.drivers.base import Driver, DriverInput, DriverOutput, ResultSink
from loadtests.drivers.closed import run_closed_loop
from loadtests.drivers.open import run_bursts, run_open_loop, run_soak
from loadtests.scenarios import DriverKind

__all__ = ["DRIVERS", "Driver", "DriverInput", "DriverOutput", "ResultSink"]

DRIVERS: dict[DriverKind, Driver] = {
    "closed-loop": run_closed_loop,
    "bursts": run_bursts,
    "open-loop": run_open_loop,
    "soak": run_soak,
}
