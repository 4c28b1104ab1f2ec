"""The graphsim WSGI application: one simulator, two listeners.

`Simulator` holds the tenant, the run-time config, the clock, the signing key, counters and the
Graph router. `Simulator.wsgi_app` is served over HTTPS and answers everything: the identity
endpoints under `/{tenant}/...`, Graph under `/v1.0` and `/beta`, and the control API under
`/_graphsim/`. `Simulator.browser_app` is served over plain HTTP for `make run` and answers only the
browser-facing authorize and logout pages (and the health check), so a person's browser needs no
demo CA while tokens and Graph stay HTTPS-only.

Every Graph request goes through the same pipeline, also for each request inside a `$batch`:
latency → connection reset → bearer token → /me rewrite → 429 storm → route → the endpoint's
permission table (graphsim/permissions.py) → throttling → injected 5xx → handler (under
`tenant.lock`) → "response lost" fault. Errors become Graph's error body
(docs/graph-contract.md §7.1) and every response carries `request-id`, `client-request-id` and
`Date`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from werkzeug.wrappers import Request, Response

from graphsim import (
    delta,
    directory,
    identity,
    permissions,
    phone,
    policy,
    qrmethods,
    rbac,
    reports,
)
from graphsim.errors import GraphError
from graphsim.faults import FaultInjector, SimConfig
from graphsim.http import Principal, Router, SimRequest, SimResponse
from graphsim.model import Tenant
from graphsim.throttle import Throttle, format_retry_after, resource_units

logger = logging.getLogger(__name__)

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
API_VERSIONS = ("v1.0", "beta")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DropConnection(ConnectionAbortedError):
    """Raised after the client socket was shut down: the server sends no response at all.

    werkzeug treats a ConnectionError escaping the application as "client went away" and neither
    logs a traceback nor tries to write a 500, which is exactly a reset as the client sees it.
    """


def drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection without answering (connection-reset / lost-response faults)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise DropConnection("graphsim fault: connection dropped")


@dataclass
class Stats:
    """Counters tests and benchmarks read to prove behaviour (e.g. nothing was created twice)."""

    requests: Counter = field(default_factory=Counter)  # "GET 200" → n (Graph, incl. batch items)
    token_requests: Counter = field(default_factory=Counter)  # "client_credentials 200" → n
    # OpenID discovery documents served, by the tenant segment asked for (GUID or domain).
    discovery_requests: Counter = field(default_factory=Counter)
    writes_applied: int = 0
    throttled: int = 0  # 429s sent (throttle and storm)
    faults: Counter = field(default_factory=Counter)  # "latency", "reset", "503", "lost" → n
    qr_method_creations: Counter = field(default_factory=Counter)  # user id → PUT 201s
    qr_standard_code_creations: Counter = field(default_factory=Counter)  # user id → PATCH 201s
    qr_temporary_code_creations: Counter = field(default_factory=Counter)
    pin_resets: Counter = field(default_factory=Counter)  # user id → PATCH pin 201s
    # Writes applied, by caller: "app", or "delegated:<signed-in user's object id>".
    writes_by_caller: Counter = field(default_factory=Counter)
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                f.name: (dict(v) if isinstance(v := getattr(self, f.name), Counter) else v)
                for f in dataclasses.fields(self)
                if f.name != "lock"
            }


_QR_COUNTERS = [
    (re.compile(r"^/users/([^/]+)/authentication/qrCodePinMethod/?$", re.I), "PUT", 201,
     "qr_method_creations"),
    (re.compile(r"^/users/([^/]+)/authentication/qrCodePinMethod/standardQRCode/?$", re.I),
     "PATCH", 201, "qr_standard_code_creations"),
    (re.compile(r"^/users/([^/]+)/authentication/qrCodePinMethod/temporaryQRCode/?$", re.I),
     "PATCH", 201, "qr_temporary_code_creations"),
    (re.compile(r"^/users/([^/]+)/authentication/qrCodePinMethod/pin/?$", re.I), "PATCH", 201,
     "pin_resets"),
]  # fmt: skip


@dataclass
class GraphResult:
    """One answered Graph request, before it is written to the wire (or into a batch)."""

    status: int
    body: Any
    headers: dict[str, str]
    lose_response: bool = False  # the write was applied; the transport must now lose the answer


def graph_error_body(
    error: GraphError, *, request_id: str, client_request_id: str, now: datetime
) -> dict[str, Any]:
    """Graph's error body (docs/graph-contract.md §7.1; the 429 variant as
    docs/graph-examples/error-throttled)."""
    date = now.strftime("%Y-%m-%dT%H:%M:%S")
    if error.status == 429:
        inner: dict[str, Any] = {
            "code": "429",
            "date": date,
            "message": "Please retry after",
            "request-id": request_id,
            "status": "429",
        }
    else:
        inner = {"date": date, "request-id": request_id, "client-request-id": client_request_id}
        if error.inner_code:
            inner = {"code": error.inner_code, **inner}
    return {"error": {"code": error.code, "message": error.message, "innerError": inner}}


def build_router() -> Router:
    """All Graph routes: the directory first (its literal `$count`/`$ref` paths win), then the
    authentication-method, policy and report modules."""
    router = Router()
    delta.register(router)  # before the directory: `delta` is not an object id
    directory.register(router)
    for module in (qrmethods, phone, policy, reports, rbac):
        module.register(router)
    return router


class Simulator:
    """The simulated cloud: one tenant, its identity endpoints and its Graph."""

    def __init__(
        self,
        tenant: Tenant | None = None,
        *,
        config: SimConfig | None = None,
        tenant_factory: Callable[[], Tenant] | None = None,
        browser_url: str | None = None,
        control_key: str | None = None,
        signing_key_pem: bytes | None = None,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        from graphsim import tenantgen  # deferred: tenantgen is heavy-ish and optional here

        self.tenant_factory = tenant_factory or tenantgen.demo_tenant
        self.tenant: Tenant = tenant if tenant is not None else self.tenant_factory()
        self.config = config if config is not None else SimConfig()
        self._initial_config = copy.deepcopy(self.config)
        self.browser_url = browser_url.rstrip("/") if browser_url else None
        self.control_key = control_key
        self.clock_offset = timedelta(0)
        self.stats = Stats()
        self.faults = FaultInjector(self.config)
        self.throttle = Throttle(self.config)
        self.keys = identity.SigningKey(signing_key_pem)
        self.auth_state = identity.AuthState()
        self.router = build_router()
        self.on_write = on_write
        self._batch_counter = 0

    # -- state ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The simulator's clock (aware UTC); `shift_clock` moves it for expiry tests."""
        return datetime.now(UTC) + self.clock_offset

    def shift_clock(self, seconds: float) -> None:
        self.clock_offset += timedelta(seconds=seconds)

    def start_storm(self, seconds: float) -> None:
        """Answer `config.storm_fraction` of Graph requests with 429 for `seconds`."""
        self.faults.start_storm(seconds)

    def reset(self, tenant: Tenant | None = None) -> None:
        """A fresh tenant, default config, zero counters, real time, empty throttle buckets."""
        self.tenant = tenant if tenant is not None else self.tenant_factory()
        for f in dataclasses.fields(self.config):
            # In place, so references held by tests and the fault injector stay valid.
            setattr(self.config, f.name, copy.deepcopy(getattr(self._initial_config, f.name)))
        self.clock_offset = timedelta(0)
        self.stats = Stats()
        self.faults.reseed()
        self.throttle.reset()
        self.auth_state = identity.AuthState()

    # -- tokens for tests -------------------------------------------------------------------

    def issue_app_token(
        self,
        *,
        roles: Iterable[str] | None = None,
        app_id: str | None = None,
        lifetime_s: int | None = None,
        audience: str | None = None,
        tenant_id: str | None = None,
        client_capabilities: Iterable[str] = (),
    ) -> str:
        """An application token as client credentials would issue (roles default to the app's)."""
        app = self.tenant.apps.get(app_id or next(iter(self.tenant.apps)))
        client_id = app_id or (app.client_id if app else "")
        granted = (
            set(roles) if roles is not None else set(app.application_permissions if app else ())
        )
        return identity.mint_access_token(
            self,
            client_id=client_id,
            roles=sorted(granted),
            lifetime_s=lifetime_s,
            audience=audience,
            tenant_id=tenant_id,
            client_capabilities=tuple(client_capabilities),
        )

    def issue_delegated_token(
        self,
        user_id: str,
        *,
        scopes: Iterable[str] | None = None,
        app_id: str | None = None,
        lifetime_s: int | None = None,
        audience: str | None = None,
        client_capabilities: Iterable[str] = (),
    ) -> str:
        """A delegated token for `user_id` (scopes default to the app's delegated permissions).

        `client_capabilities=["cp1"]` stands for a client that declared it can handle claims
        challenges, as Lanyard does."""
        app = self.tenant.apps.get(app_id or next(iter(self.tenant.apps)))
        client_id = app_id or (app.client_id if app else "")
        granted = list(scopes) if scopes is not None else sorted(app.delegated_permissions)
        return identity.mint_access_token(
            self,
            client_id=client_id,
            user_id=user_id,
            scopes=granted,
            lifetime_s=lifetime_s,
            audience=audience,
            client_capabilities=tuple(client_capabilities),
        )

    # -- WSGI entry points ------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """The HTTPS listener: identity, Graph, control API."""
        request = Request(environ)
        request.get_data()  # read the whole body now: the connection is kept alive (server.py)
        path = request.path
        first = path.strip("/").split("/", 1)[0]
        if first in API_VERSIONS:
            response = self.handle_graph(request, environ)
        elif first == "_graphsim":
            from graphsim import control

            response = control.handle(self, request)
        else:
            response = identity.handle(self, request, browser=False)
        return response(environ, start_response)

    def browser_app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """The plain-HTTP listener: only the authorize and logout pages, and the health check."""
        request = Request(environ)
        request.get_data()  # read the whole body now: the connection is kept alive (server.py)
        first = request.path.strip("/").split("/", 1)[0]
        if request.path.rstrip("/") == "/_graphsim/healthz":
            response = Response("ok\n", content_type="text/plain; charset=utf-8")
        elif first in API_VERSIONS or first == "_graphsim":
            response = Response("Graph and the control API are served over HTTPS only.\n",
                                status=404, content_type="text/plain; charset=utf-8")  # fmt: skip
        else:
            response = identity.handle(self, request, browser=True)
        return response(environ, start_response)

    # -- Graph ------------------------------------------------------------------------------

    def handle_graph(self, request: Request, environ: dict[str, Any]) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id
        base_url = request.host_url.rstrip("/")
        version, _, rest = request.path.lstrip("/").partition("/")
        path = "/" + rest

        delay = self.faults.latency_s()
        if delay:
            self._count_fault("latency")
            time.sleep(delay)
        if self.faults.reset_hits():
            self._count_fault("reset")
            self._count_request(request.method, "reset")
            drop_connection(environ)

        try:
            principal = identity.principal_from_bearer(self, request.headers.get("Authorization"))
        except GraphError as error:
            self._count_request(request.method, error.status)
            result = self._error_result(error, request_id, client_request_id)
        else:
            if path.rstrip("/").lower() == "/$batch":
                from graphsim import batch

                result = batch.handle(
                    self,
                    request,
                    principal=principal,
                    version=version,
                    base_url=base_url,
                    request_id=request_id,
                    client_request_id=client_request_id,
                )
            else:
                result = self.execute(
                    method=request.method,
                    version=version,
                    path=path,
                    query=dict(
                        parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
                    ),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=request.get_data(),
                    principal=principal,
                    base_url=base_url,
                    request_id=request_id,
                    client_request_id=client_request_id,
                )
        if result.lose_response:
            self._count_fault("lost")
            if self.config.lost_response_mode == "drop":
                drop_connection(environ)
            result = self._error_result(
                GraphError(504, "GatewayTimeout", "The gateway did not receive a response."),
                request_id,
                client_request_id,
            )
        return self.to_response(result, request_id, client_request_id)

    def execute(
        self,
        *,
        method: str,
        version: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        principal: Principal,
        base_url: str,
        request_id: str,
        client_request_id: str,
        count: bool = True,
    ) -> GraphResult:
        """Route, throttle, inject faults and run one authenticated Graph request."""
        method = method.upper()
        try:
            requested_path = path  # before the /me rewrite: the permission tables tell them apart
            path = self._rewrite_me(path, principal)
            if self.faults.storm_hits():
                retry = self.config.storm_retry_after_s
                raise self._throttled_error(
                    retry,
                    f"Tenant_Application/ReadWrite/{principal.app_id}/{principal.tenant_id}",
                    "CPULimitExceeded",
                )
            if version not in API_VERSIONS:
                raise GraphError(400, "BadRequest", f"Invalid version: {version}")
            handler, params = self.router.match(method, path, version)
            permissions.require_endpoint_permission(
                method=method, path=requested_path, principal=principal, tenant=self.tenant
            )
            required = self.config.require_auth_context
            if (
                required
                and principal.kind == "delegated"
                and method in WRITE_METHODS
                and required not in principal.auth_contexts
            ):
                # Graph challenges only clients that declared cp1 (docs/graph-contract.md §8.6).
                if "cp1" not in principal.client_capabilities:
                    raise identity.auth_context_unsatisfied(required)
                raise identity.auth_context_challenge(required)
            units = resource_units(method, path, query)
            throttled = self.throttle.check(
                app_id=principal.app_id,
                tenant_id=principal.tenant_id,
                is_write=method in WRITE_METHODS,
                units=units,
            )
            if throttled is not None:
                raise self._throttled_error(
                    throttled.retry_after_s, throttled.scope, throttled.information
                )
            injected = self.faults.error_5xx()
            if injected is not None:
                self._count_fault(str(injected))
                raise self._injected_5xx(injected)
            sim_request = SimRequest(
                method=method,
                path=path,
                api_version=version,
                params=params,
                query=query,
                headers=headers,
                body=body,
                tenant=self.tenant,
                principal=principal,
                now=self.now(),
                base_url=base_url,
                config=self.config,
            )
            tenant = self.tenant
            # Every handler runs under the tenant lock: writers need it for Graph's
            # "one active method" rules, and readers then never see a half-made change.
            with tenant.lock:
                response = handler(sim_request)
            result = GraphResult(response.status, response.body, dict(response.headers))
            result.headers.setdefault("x-ms-resource-unit", str(units))
            if response.is_write and response.status < 400:
                self._after_write(method, path, response, principal)
                result.lose_response = self.faults.lose_response()
        except GraphError as error:
            result = self._error_result(error, request_id, client_request_id)
        except Exception:
            logger.exception("graphsim handler failed: %s %s", method, path)
            result = self._error_result(
                GraphError(500, "generalException", "An unexpected error occurred."),
                request_id,
                client_request_id,
            )
        if count:
            self._count_request(method, result.status)
        return result

    def _rewrite_me(self, path: str, principal: Principal) -> str:
        """`/me/...` is `/users/{signed-in user}/...`; app tokens have no "me"."""
        lowered = path.lower()
        if lowered == "/me" or lowered.startswith("/me/"):
            if principal.kind != "delegated" or not principal.user_id:
                raise GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            return f"/users/{principal.user_id}{path[3:]}"
        return path

    def _throttled_error(self, retry_after: float, scope: str, information: str) -> GraphError:
        with self.stats.lock:
            self.stats.throttled += 1
        return GraphError(
            429,
            "TooManyRequests",
            "Please retry again later.",
            headers={
                "Retry-After": format_retry_after(retry_after),
                "x-ms-throttle-scope": scope,
                "x-ms-throttle-information": information,
            },
        )

    # DOC-GAP (docs/graph-contract.md §7.1 gives no bodies for 503/504): codes serviceNotAvailable
    # (listed among Graph's generic codes) and GatewayTimeout.
    def _injected_5xx(self, status: int) -> GraphError:
        if status == 503:
            headers = {}
            if self.config.error_503_retry_after_s is not None:
                headers["Retry-After"] = format_retry_after(self.config.error_503_retry_after_s)
            return GraphError(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
                headers=headers,
            )
        return GraphError(504, "GatewayTimeout", "The gateway did not receive a response.")

    def _after_write(
        self, method: str, path: str, response: SimResponse, principal: Principal | None = None
    ) -> None:
        with self.stats.lock:
            self.stats.writes_applied += 1
            if principal is not None:
                caller = principal.kind
                if principal.kind == "delegated":
                    caller = f"delegated:{principal.user_id}"
                self.stats.writes_by_caller[caller] += 1
            for pattern, wanted_method, status, counter in _QR_COUNTERS:
                found = pattern.match(path)
                if found and method == wanted_method and response.status == status:
                    user = self.tenant.user_by_id_or_upn(found.group(1))
                    key = user.id if user else found.group(1)
                    getattr(self.stats, counter)[key] += 1
        if self.on_write is not None:
            self.on_write()

    def _error_result(
        self, error: GraphError, request_id: str, client_request_id: str
    ) -> GraphResult:
        body = graph_error_body(
            error, request_id=request_id, client_request_id=client_request_id, now=self.now()
        )
        return GraphResult(error.status, body, dict(error.headers))

    def _count_request(self, method: str, status: int | str) -> None:
        with self.stats.lock:
            self.stats.requests[f"{method.upper()} {status}"] += 1

    def _count_fault(self, kind: str) -> None:
        with self.stats.lock:
            self.stats.faults[kind] += 1

    def to_response(self, result: GraphResult, request_id: str, client_request_id: str) -> Response:
        """Write a GraphResult with Graph's headers."""
        headers = dict(result.headers)
        body = result.body
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
            headers.setdefault("Content-Type", "text/plain")
        else:
            data = json.dumps(body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", GRAPH_JSON)
            headers.setdefault("OData-Version", "4.0")
        response = Response(data, status=result.status)
        if body is None:
            response.headers.pop("Content-Type", None)
        for name, value in headers.items():
            response.headers[name] = value
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        # werkzeug's server adds the `Date` header itself (real time, as HTTP requires).
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    # -- helpers shared with batch ----------------------------------------------------------

    @staticmethod
    def split_url(url: str) -> tuple[str, dict[str, str]]:
        path, _, query = url.partition("?")
        return path, dict(parse_qsl(query, keep_blank_values=True))

    @staticmethod
    def encode_query(query: dict[str, str]) -> str:
        return urlencode(query, safe="$,'():")
