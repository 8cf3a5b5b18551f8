"""Locust users that call one client and fire exactly ONE request event per logical request.

The event is named after the client and carries the full :class:`CallResult` in its
context (``context["gvf"]``): the closed-loop driver hands it to the run's result sink. Locust's own
response times are for its console only (it rounds them; reports never use them).

Used two ways:

- in the ``gvf run`` process: the closed-loop driver (:mod:`loadtests.drivers.closed`) sets
  :attr:`GvfUser.client_under_test` and runs a :class:`StepShape` on a local or master runner;
- as the locustfile of ``--workers`` processes (``locust -f loadtests/locustfile.py
  --worker``): the client comes from ``GVF_CLIENT`` / ``GVF_IMAGE`` / ``GVF_TIMEOUT_S``
  (the client timeout from ``GVF_CLIENT_TIMEOUT_S``, when set) and each result is forwarded
  to the master as a ``gvf_result`` message, so the workers' rows reach the one table the
  master writes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from locust import LoadTestShape, User, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.clients import Client, make_client
from loadtests.scenarios import Phase
from loadtests.session import LocustSession

RESULT_MESSAGE = "gvf_result"
# Locust warns above 100 users/s; every step spawns its users within about a second.
MAX_SPAWN_RATE = 100.0


class LogicalRequestFailed(Exception):
    """Locust's view of a failed logical request (its message is the row's error)."""


@cache
def _client_from_environment() -> Client:
    return make_client(os.environ["GVF_CLIENT"], Path(os.environ["GVF_IMAGE"]).read_bytes())


class GvfUser(User):
    """Back to back, no think time: closed-loop load is set by the number of users alone."""

    wait_time = constant(0)
    client_under_test: ClassVar[Client | None] = None  # set by the closed-loop driver in-process
    timeout_s: ClassVar[float] = float(os.environ.get("GVF_TIMEOUT_S", "120"))
    # the client timeout: a request gives up this long after it was sent (None: never)
    give_up_s: ClassVar[float | None] = (
        float(os.environ["GVF_CLIENT_TIMEOUT_S"]) if os.environ.get("GVF_CLIENT_TIMEOUT_S") else None
    )

    def on_start(self) -> None:
        self.gvf_client = self.client_under_test or _client_from_environment()
        self.session = LocustSession(self.host or "")

    @task
    def logical_request(self) -> None:
        request_id = uuid.uuid4().hex
        now = time.time()
        give_up_at = None if self.give_up_s is None else now + self.give_up_s
        result = self.gvf_client.call(self.session, request_id, now + self.timeout_s, give_up_at)
        self.environment.events.request.fire(
            request_type="LOGICAL",
            name=self.gvf_client.name,
            response_time=(result.t_done - result.t_sent) * 1000,
            response_length=result.bytes,
            response=None,
            context={"gvf": asdict(result)},
            exception=None if result.ok else LogicalRequestFailed(result.error),
            start_time=result.t_sent,
            url=self.host,
        )


class StepShape(LoadTestShape):
    """Runs phases one after another; a phase ends at its request target or its time box.

    Locust ticks a shape about once a second, so a phase may overshoot its target by up to a
    second of requests (more samples, never fewer); the closed-loop driver ends the last phase
    at its target itself. ``on_phase(i)`` is called as phase ``i``
    begins (``None`` after the last) so that the driver can mark the window boundary.
    """

    abstract = True  # built with its phases by the closed-loop driver, never picked by Locust's loader

    def __init__(
        self,
        phases: Sequence[Phase],
        completed: Callable[[int], int],
        on_phase: Callable[[int | None], None],
    ) -> None:
        super().__init__()
        self.phases = list(phases)
        self.completed = completed
        self.on_phase = on_phase
        self.index = -1
        self.phase_started = 0.0

    def tick(self) -> tuple[int, float] | None:
        now = time.time()
        if self.index >= 0:
            phase = self.phases[self.index]
            reached = phase.target_requests > 0 and self.completed(self.index) >= phase.target_requests
            if not reached and now - self.phase_started < phase.max_s:
                return self._users(phase)
        self.index += 1
        if self.index >= len(self.phases):
            self.on_phase(None)
            return None
        self.phase_started = now
        self.on_phase(self.index)
        return self._users(self.phases[self.index])

    @staticmethod
    def _users(phase: Phase) -> tuple[int, float]:
        users = phase.users or 1
        return users, min(float(users) * 10, MAX_SPAWN_RATE)


@events.init.add_listener
def _forward_results_to_master(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return

    def forward(context: dict[str, Any], **_event: Any) -> None:
        result = context.get("gvf")
        if result is not None:
            runner.send_message(RESULT_MESSAGE, {**result, "worker": runner.client_id})

    environment.events.request.add_listener(forward)
