"""Running graphsim inside a test process or a benchmark: `running_graphsim()` and its handle.

    with running_graphsim() as gs:                      # HTTPS on a free 127.0.0.1 port
        token = gs.issue_app_token()                    # the demo app's application permissions
        r = gs.session(token).get(gs.graph_url("/users?$top=5"))

The handle exposes the live simulator (`gs.sim`: config to change in place, clock to shift, stats),
the live tenant (`gs.tenant`), token minting for handler tests, and `reset()`. The pytest plugin
`tests/fixtures_graphsim.py` wraps it as the `graphsim` fixture.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from graphsim.app import Simulator
from graphsim.faults import SimConfig
from graphsim.model import Tenant
from graphsim.server import ServerThread
from graphsim.tenantgen import DemoPeople, demo_tenant_with_people
from graphsim.tls import TlsFiles, ensure_tls


class TrustingSession(requests.Session):
    """A Session whose `verify` really applies: requests lets REQUESTS_CA_BUNDLE override
    Session.verify, so pass it per request instead."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any):
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


@dataclass
class GraphsimHandle:
    """A running graphsim: URLs, trust bundle, the simulator, and helpers for tests."""

    sim: Simulator
    base_url: str  # https://127.0.0.1:PORT (login and Graph)
    browser_url: str | None  # http://127.0.0.1:PORT (authorize/logout pages only), if started
    tls: TlsFiles
    people: DemoPeople | None  # personas of the demo tenant (None for a custom tenant)

    @property
    def ca_bundle(self) -> str:
        """System CAs + graphsim's CA: the file for REQUESTS_CA_BUNDLE / `verify=`."""
        return str(self.tls.bundle)

    @property
    def tenant(self) -> Tenant:
        """The live tenant (replaced by `reset()`; don't hold on to it across resets)."""
        return self.sim.tenant

    @property
    def authority(self) -> str:
        """The MSAL authority: `{base_url}/{tenant id}` (use with instance_discovery=False)."""
        return f"{self.base_url}/{self.sim.tenant.id}"

    @property
    def stats(self) -> dict[str, Any]:
        return self.sim.stats.snapshot()

    def graph_url(self, path: str, version: str = "v1.0") -> str:
        return f"{self.base_url}/{version}/{path.lstrip('/')}"

    def issue_app_token(self, roles: Iterable[str] | None = None, **kwargs: Any) -> str:
        """An app-only Graph token (default roles: the demo app's application permissions)."""
        return self.sim.issue_app_token(roles=roles, **kwargs)

    def issue_delegated_token(
        self, user_id: str, scopes: Iterable[str] | None = None, **kwargs: Any
    ) -> str:
        """A delegated Graph token for `user_id` (default scopes: the app's delegated ones)."""
        return self.sim.issue_delegated_token(user_id, scopes=scopes, **kwargs)

    def session(self, token: str | None = None) -> requests.Session:
        """A requests.Session trusting graphsim's CA and sending the bearer token, if given."""
        session = TrustingSession()
        session.verify = self.ca_bundle
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        return session

    def reset(self, tenant: Tenant | None = None) -> None:
        """Fresh tenant (the demo one unless given), default config, zero stats, real clock."""
        self.sim.reset(tenant)


@contextlib.contextmanager
def running_graphsim(
    *,
    tenant: Tenant | Callable[[], Tenant] | None = None,
    config: SimConfig | None = None,
    workdir: str | os.PathLike[str] | None = None,
    tls_dir: str | os.PathLike[str] | None = None,
    browser: bool = True,
    trust: bool = False,
    host: str = "127.0.0.1",
    control_key: str | None = None,
) -> Iterator[GraphsimHandle]:
    """Run graphsim over HTTPS (and the HTTP browser listener) in background threads.

    `tenant` is a Tenant (reset() returns to a copy of it) or a factory; default: the demo tenant.
    `tls_dir` reuses a CA (default: `<workdir>/tls`). With `trust=True` the process's
    REQUESTS_CA_BUNDLE points at graphsim's bundle while the context is open (MSAL needs that).
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="graphsim-"))
        tls = ensure_tls(tls_dir or Path(workdir) / "tls")
        people: DemoPeople | None = None
        if tenant is None:
            first, people = demo_tenant_with_people()
            pristine = copy.deepcopy(first)

            def factory() -> Tenant:
                return copy.deepcopy(pristine)

            initial = first
        elif isinstance(tenant, Tenant):
            pristine_custom = copy.deepcopy(tenant)

            def factory() -> Tenant:
                return copy.deepcopy(pristine_custom)

            initial = tenant
        else:
            factory = tenant
            initial = factory()
        https = ServerThread(lambda e, s: sim.wsgi_app(e, s), host, 0, tls.server_ssl_context())
        plain = ServerThread(lambda e, s: sim.browser_app(e, s), host, 0) if browser else None
        browser_url = plain.url("http") if plain else None
        sim = Simulator(
            initial,
            config=config,
            tenant_factory=factory,
            browser_url=browser_url,
            control_key=control_key,
        )
        https.start()
        stack.callback(https.stop)
        if plain is not None:
            plain.start()
            stack.callback(plain.stop)
        if trust:
            previous = os.environ.get("REQUESTS_CA_BUNDLE")
            os.environ["REQUESTS_CA_BUNDLE"] = str(tls.bundle)
            stack.callback(_restore_env, "REQUESTS_CA_BUNDLE", previous)
        yield GraphsimHandle(
            sim=sim, base_url=https.url("https"), browser_url=browser_url, tls=tls, people=people
        )


def _restore_env(name: str, previous: str | None) -> None:
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous
