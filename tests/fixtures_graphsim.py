"""pytest plugin: graphsim over real HTTPS for the whole test suite.

Enable with `pytest_plugins = ["tests.fixtures_graphsim"]` in tests/conftest.py.

- `graphsim_tls` (session, autouse): graphsim's CA in a temporary directory; REQUESTS_CA_BUNDLE
  points at its bundle (system CAs + graphsim CA) for the whole session, so MSAL and requests
  trust graphsim exactly as production trusts Entra.
- `graphsim_server` (session): one running graphsim (HTTPS + HTTP browser listener). Its demo app
  registration holds exactly the required grants of README.md's permission table, read from the
  README (tests/readme_permissions.py): one source of truth for what an admin grants.
- `graphsim` (function): the same server, reset to a fresh demo tenant and default config.
- `graphsim_time` (function): graphsim's throttle and 429-storm windows on a `SimulatedTime`, so
  a test moves them with `graphsim_time.sleep(seconds)` instead of sleeping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from graphsim.model import Tenant
from graphsim.testing import GraphsimHandle, running_graphsim
from graphsim.tls import TlsFiles, ensure_tls
from tests.readme_permissions import readme_grants


def grant_readme_permissions(tenant: Tenant) -> Tenant:
    """Give every app registration of `tenant` exactly the README table's required grants."""
    grants = readme_grants()
    for app in tenant.apps.values():
        app.delegated_permissions = set(grants.delegated)
        app.application_permissions = set(grants.application)
    return tenant


@pytest.fixture(scope="session", autouse=True)
def graphsim_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFiles]:
    tls = ensure_tls(tmp_path_factory.mktemp("graphsim-tls"))
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls.bundle)
    yield tls
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture(scope="session")
def graphsim_server(graphsim_tls: TlsFiles) -> Iterator[GraphsimHandle]:
    with running_graphsim(tls_dir=graphsim_tls.directory) as handle:
        demo_factory = handle.sim.tenant_factory
        handle.sim.tenant_factory = lambda: grant_readme_permissions(demo_factory())
        handle.reset()
        yield handle


@pytest.fixture
def graphsim(graphsim_server: GraphsimHandle) -> GraphsimHandle:
    """A running graphsim with a fresh deterministic demo tenant and default config."""
    graphsim_server.reset()
    return graphsim_server


class SimulatedTime:
    """A clock (seconds) that moves only when something sleeps on it: what happens "within one
    second" then does not depend on how fast or loaded the machine is."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def graphsim_time(graphsim: GraphsimHandle, monkeypatch: pytest.MonkeyPatch) -> SimulatedTime:
    """graphsim's write window, read-unit bucket and 429 storms on simulated time."""
    time = SimulatedTime()
    monkeypatch.setattr(graphsim.sim.throttle, "clock", time.clock)
    monkeypatch.setattr(graphsim.sim.faults, "clock", time.clock)
    return time


@pytest.fixture(params=[409, 400], ids=["undocumented-409", "undocumented-400"])
def undocumented_status(request: pytest.FixtureRequest, graphsim: GraphsimHandle) -> int:
    """Run a test both ways graphsim can answer Graph's undocumented "already exists" refusals
    (docs/graph-contract.md §1.3, §1.6): the product must end the same whichever status it gets."""
    graphsim.sim.config.undocumented_conflict_status = request.param
    return request.param


@pytest.fixture(params=["generated", "sent-code"], ids=["reset-generates", "reset-uses-code"])
def pin_reset_reading(request: pytest.FixtureRequest, graphsim: GraphsimHandle) -> str:
    """Run a test under both readings of the PIN reset (docs/graph-contract.md §1.7): Graph
    generates the new PIN (the pages' description), or it requires and keeps the `code` sent."""
    strict = request.param == "sent-code"
    graphsim.sim.config.pin_reset_requires_code = strict
    graphsim.sim.config.pin_reset_uses_code = strict
    return request.param
