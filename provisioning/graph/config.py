"""How to reach Entra and Graph: one immutable `GraphConfig`, built from Django settings or by hand.

The package does not import Django; `GraphConfig.from_django_settings()` reads
`django.conf.settings` lazily so graphsim tests and benchmarks can build a config directly.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from provisioning.graph.ratelimit import WriteWindow

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"
GLOBAL_GRAPH_RESOURCE = "https://graph.microsoft.com"
# Graph's application id: Entra also accepts it as the resource of a scope.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Graph's write limit per app and tenant is a window of 150 s (docs/graph-contract.md §7.3). The
# write limiter keeps every window of ours within it (GraphConfig.limiter_window) and paces bulk
# work at 97.5 % of the budget with ten seconds' worth of burst (ratelimit.py).
WRITE_WINDOW_SECONDS = 150.0
# Our window is this much longer than Graph's: a grant reaches Graph 80–250 ms later, more on a
# slow network, and not in the order granted, so a window at Graph's end spans a little more of
# our time. Requests later than this are covered by WRITE_WINDOW_MARGIN (and 429 handling).
WRITE_WINDOW_JITTER_SECONDS = 1.0
WRITE_WINDOW_MARGIN = 10  # writes of Graph's window never planned for
WRITE_RATE_SHARE = 0.975
WRITE_BURST_SECONDS = 10.0
BATCH_WRITES = 20  # the most writes one $batch holds (docs/graph-contract.md §6)
GUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class Cloud:
    """One Microsoft cloud: where people sign in and the Graph hosts whose tokens it issues
    (docs/graph-contract.md §8.4). The first Graph host is the cloud's default."""

    name: str
    authority_hosts: frozenset[str]
    graph_hosts: tuple[str, ...]
    qr_methods_available: bool  # the QR code + PIN APIs are global-only (§0)


CLOUDS = (
    Cloud(
        "global",
        frozenset({"login.microsoftonline.com"}),
        ("graph.microsoft.com",),
        qr_methods_available=True,
    ),
    Cloud(
        "US Government (GCC High, DoD)",
        frozenset({"login.microsoftonline.us", "login-us.microsoftonline.com"}),
        ("graph.microsoft.us", "dod-graph.microsoft.us"),
        qr_methods_available=False,
    ),
    Cloud(
        "China (21Vianet)",
        frozenset({"login.partner.microsoftonline.cn", "login.chinacloudapi.cn"}),
        ("microsoftgraph.chinacloudapi.cn",),
        qr_methods_available=False,
    ),
)


def _host(url: str) -> str:
    return (urlsplit(url if "//" in url else f"https://{url}").hostname or "").lower()


def cloud_of_authority(authority_host: str) -> Cloud | None:
    """The cloud whose sign-in host `authority_host` is, or None (graphsim, a proxy)."""
    host = _host(authority_host)
    return next((cloud for cloud in CLOUDS if host in cloud.authority_hosts), None)


def cloud_of_graph(url: str) -> Cloud | None:
    """The cloud whose Graph host `url` names, or None (graphsim, a proxy, Graph's app id)."""
    host = _host(url)
    return next((cloud for cloud in CLOUDS if host in cloud.graph_hosts), None)


def graph_resource_resolve(
    *, authority_host: str, graph_endpoint: str, configured: str = ""
) -> str | None:
    """The Graph resource of this cloud: the audience of Lanyard's tokens and the prefix of every
    scope it asks for, app (`/.default`) and delegated alike (docs/graph-contract.md §8.2, §8.4).

    It is not `graph_endpoint` (where requests go, possibly a proxy). In order:
    `configured` (GRAPH_RESOURCE); else, for a known sign-in host, the cloud's Graph host that
    `graph_endpoint` names (GCC High or DoD) or the cloud's default; else the Graph host
    `graph_endpoint` names, if it is a known one. None when nothing says which cloud it is.
    """
    if configured:
        return configured.strip().rstrip("/")
    endpoint_host = _host(graph_endpoint)
    cloud = cloud_of_authority(authority_host)
    if cloud is not None:
        host = endpoint_host if endpoint_host in cloud.graph_hosts else cloud.graph_hosts[0]
        return f"https://{host}"
    if cloud_of_graph(graph_endpoint) is not None:
        return f"https://{endpoint_host}"
    return None


@dataclass(frozen=True)
class Certificate:
    """A client certificate: PEM private key, PEM certificate and its SHA-1 thumbprint (hex)."""

    private_key_pem: str = field(repr=False)
    certificate_pem: str
    thumbprint_sha1: str

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Certificate:
        """Read one PEM holding a private key and a certificate (ENTRA_CLIENT_CERTIFICATE)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        data = pem.encode() if isinstance(pem, str) else pem
        cert = x509.load_pem_x509_certificate(data)
        start = data.find(b"-----BEGIN")
        blocks = []
        while start != -1:
            end_marker = data.find(b"-----END", start)
            end = data.find(b"-----", end_marker + 8) + 5
            blocks.append(data[start:end])
            start = data.find(b"-----BEGIN", end)
        keys = [b for b in blocks if b"PRIVATE KEY" in b.split(b"\n", 1)[0]]
        if not keys:
            raise ValueError("The certificate file has no private key (need key and certificate).")
        # Fail here, at configuration time, rather than at the first token request.
        serialization.load_pem_private_key(keys[0], password=None)
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            private_key_pem=keys[0].decode(),
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            thumbprint_sha1=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 - x5t is SHA-1
        )


@dataclass(frozen=True)
class GraphConfig:
    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    client_certificate_path: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    # The Graph resource of this cloud (GRAPH_RESOURCE); "" = derived, see graph_resource_resolve.
    graph_resource: str = ""
    api_version: str = "v1.0"
    timeout: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds, on every request
    writes_per_second: float = 20.0
    # Graph's resource-unit budget per app and tenant (docs/graph-contract.md §7.3): 3,500 RU per
    # 10 s for the smallest tenants, 5,000 for 50–500 users, 8,000 above. Lanyard cannot tell the
    # tier from Graph, so the default is the smallest one; set the tenant's tier to read faster.
    read_units_per_10s: float = 3500.0
    # redis://… / rediss://… for the shared limiter; a directory path (or file://) for the
    # embedded one; None → a directory under the system temp dir.
    rate_limiter_url: str | None = None
    max_retries: int = 6  # HTTP-layer attempts after the first, for reads and throttled writes
    max_retry_seconds: float = 90.0  # total time one call may spend waiting to retry

    def __post_init__(self) -> None:
        if not self.tenant_id or not self.client_id:
            raise ValueError("GraphConfig needs tenant_id and client_id.")
        if not self.client_secret and not self.client_certificate_path:
            raise ValueError("GraphConfig needs client_secret or client_certificate_path.")
        object.__setattr__(self, "authority_host", self.authority_host.rstrip("/"))
        object.__setattr__(self, "graph_endpoint", self.graph_endpoint.rstrip("/"))
        # A config whose hosts name no cloud (graphsim, a proxy) and no GRAPH_RESOURCE gets the
        # global resource; in the portal the system check lanyard.E020 refuses that case instead.
        resource = graph_resource_resolve(
            authority_host=self.authority_host,
            graph_endpoint=self.graph_endpoint,
            configured=self.graph_resource,
        )
        object.__setattr__(self, "graph_resource", resource or GLOBAL_GRAPH_RESOURCE)
        if isinstance(self.timeout, int | float):
            object.__setattr__(self, "timeout", (float(self.timeout), float(self.timeout)))

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def app_scope(self) -> str:
        """The client-credentials scope: the Graph resource of this cloud + /.default
        (docs/graph-contract.md §8.2, §8.4)."""
        return f"{self.graph_resource}/.default"

    def scopes_for(self, permissions: Iterable[str]) -> list[str]:
        """Delegated scopes for Graph permission names, on the same resource as `app_scope`."""
        return [f"{self.graph_resource}/{name}" for name in permissions]

    @property
    def tenant_is_guid(self) -> bool:
        return bool(GUID_PATTERN.match(self.tenant_id))

    @cached_property
    def certificate(self) -> Certificate | None:
        if not self.client_certificate_path:
            return None
        return Certificate.from_pem(Path(self.client_certificate_path).read_bytes())

    @property
    def limiter_rate(self) -> float:
        """The pace of bulk writes: 97.5 % of Graph's budget (ratelimit.py).

        Graph's documented write limit is a window, not a rate: 3,000 writes in any 150 s per app
        and tenant at 20 writes/s (docs/graph-contract.md §7.3). The window (`limiter_window`) is
        what keeps us within it; the pace spreads bulk work over the window, so that interactive
        work finds room in it at any time and a gap is made up by the burst (`limiter_capacity`).
        Over a long job the window holds the average to `bulk_limit` per window, 97.7 % at 20/s.
        """
        return self.writes_per_second * WRITE_RATE_SHARE

    @property
    def write_window_budget(self) -> float:
        """Graph's writes per WRITE_WINDOW_SECONDS (3,000 at 20/s, docs/graph-contract.md §7.3)."""
        return self.writes_per_second * WRITE_WINDOW_SECONDS

    @property
    def limiter_room(self) -> float:
        """What bulk work leaves of every window for interactive work (ratelimit.py): two seconds
        of the budget, so a manager's 20-row $batch fits."""
        return max(float(BATCH_WRITES), 2 * self.limiter_rate)

    @property
    def limiter_horizon(self) -> float:
        """How far ahead bulk work reserves write tokens (ratelimit.py): a quarter of a second.
        Reserved tokens of a worker that is killed are lost to everyone: with four tasks each
        reserving a $batch ahead that was about four seconds of budget per kill, with one second
        about two $batches, now about one."""
        return 0.25

    @property
    def limiter_capacity(self) -> float:
        """Bulk work's burst: ten seconds of the budget (200 writes at 20/s). A job starts with
        it, and a gap of up to ten seconds (a worker killed and restarted) is made up afterwards,
        as far as the window allows. Never less than one $batch: a batch's writes are reserved in
        one acquire."""
        return float(max(BATCH_WRITES, math.floor(self.writes_per_second * WRITE_BURST_SECONDS)))

    @property
    def limiter_window(self) -> WriteWindow:
        """Graph's write window as the limiter plans it (docs/architecture.md §6): no 151 s of our
        grants hold more than 3,000 − 10 writes, bulk work no more than that less the interactive
        room. Graph's window is 150 s; the extra second covers the delay between a grant and Graph
        counting the request (WRITE_WINDOW_JITTER_SECONDS), so every window Graph looks at lies
        within one of ours. Every sequence that keeps to a window of N writes per W seconds also
        keeps to a token bucket of N per W (the other reading of §7.3), so either holds."""
        limit = max(2.0 * BATCH_WRITES, self.write_window_budget - WRITE_WINDOW_MARGIN)
        return WriteWindow(
            seconds=WRITE_WINDOW_SECONDS + WRITE_WINDOW_JITTER_SECONDS,
            limit=limit,
            bulk_limit=max(float(BATCH_WRITES), limit - self.limiter_room),
        )

    @property
    def limiter_key(self) -> str:
        """Graph's write budget is per app and tenant (docs/graph-contract.md §7.3), so is the
        bucket."""
        return f"lanyard:graph-writes:{self.tenant_id}:{self.client_id}"

    @property
    def read_limiter_rate(self) -> float:
        """The read bucket's rate in RU per second: 97 % of Graph's resource-unit budget, minus
        what the writes take (each write costs 1 RU too, docs/graph-contract.md §7.3), never
        below a tenth of the budget."""
        per_second = self.read_units_per_10s / 10 * 0.97
        return max(per_second - self.writes_per_second, per_second / 10)

    @property
    def read_limiter_capacity(self) -> float:
        """The read bucket's burst: half of Graph's 10-second allowance, so a burst of reads never
        empties Graph's own bucket (the writes draw on it as well)."""
        return max(self.read_units_per_10s / 2, self.read_limiter_rate)

    @property
    def read_limiter_key(self) -> str:
        """Graph's resource units are per app and tenant (docs/graph-contract.md §7.3)."""
        return f"lanyard:graph-reads:{self.tenant_id}:{self.client_id}"

    @classmethod
    def from_django_settings(cls, settings: Any = None) -> GraphConfig:
        """The app identity's config from ENTRA_* / GRAPH_* settings (docs/architecture.md §4)."""
        if settings is None:
            from django.conf import settings

        def get(name: str, default: Any = None) -> Any:
            value = getattr(settings, name, default)
            return default if value in (None, "") else value

        timeout = get("GRAPH_TIMEOUT_SECONDS", (5.0, 30.0))
        if isinstance(timeout, list | tuple):
            timeout = (float(timeout[0]), float(timeout[1]))
        else:  # one number: the read timeout; connecting should never take that long
            timeout = (min(10.0, float(timeout)), float(timeout))
        return cls(
            tenant_id=get("ENTRA_TENANT_ID"),
            client_id=get("ENTRA_CLIENT_ID"),
            client_secret=get("ENTRA_CLIENT_SECRET"),
            client_certificate_path=get("ENTRA_CLIENT_CERTIFICATE"),
            authority_host=get("ENTRA_AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST),
            graph_endpoint=get("GRAPH_ENDPOINT", DEFAULT_GRAPH_ENDPOINT),
            graph_resource=get("GRAPH_RESOURCE", ""),
            writes_per_second=float(get("GRAPH_WRITES_PER_SECOND", 20.0)),
            read_units_per_10s=float(get("GRAPH_READ_UNITS_PER_10S", 3500.0)),
            rate_limiter_url=get("GRAPH_RATE_LIMITER_URL"),
            timeout=timeout,
        )
