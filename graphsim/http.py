"""The seam between graphsim's WSGI application and its Graph handlers.

A handler is `def handler(req: SimRequest) -> SimResponse`, registered on a `Router` with a path
template relative to the version root (`/users/{user}/authentication/phoneMethods`). The
application authenticates the bearer token, rewrites `/me/...` to `/users/{caller}/...`, applies
throttling and faults, and turns a raised `GraphError` into Graph's error body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from graphsim.errors import GraphError

if TYPE_CHECKING:
    from graphsim.model import Tenant


@dataclass(frozen=True)
class Principal:
    """Who called: an app (client credentials) or a user through an app (delegated)."""

    kind: str  # "app" | "delegated"
    app_id: str
    tenant_id: str
    user_id: str | None = None  # the signed-in user's object id, for delegated tokens
    roles: frozenset[str] = frozenset()  # application permissions (`roles` claim)
    scopes: frozenset[str] = frozenset()  # delegated permissions (`scp` claim)
    # Conditional Access authentication contexts satisfied at sign-in (`acrs` claim).
    auth_contexts: frozenset[str] = frozenset()
    # Client capabilities the token carries (`xms_cc`): "cp1" = can handle claims challenges.
    client_capabilities: frozenset[str] = frozenset()


@dataclass
class SimRequest:
    method: str
    path: str  # without the version prefix, after the /me rewrite
    api_version: str  # "v1.0" | "beta"
    params: dict[str, str]  # path parameters from the template
    query: dict[str, str]  # decoded query string, e.g. {"$select": "id,displayName"}
    headers: dict[str, str]  # lower-cased names
    body: bytes
    tenant: Tenant
    principal: Principal
    now: datetime  # the simulator clock (UTC, aware); tests may shift it
    base_url: str  # e.g. "https://127.0.0.1:8443" (for @odata.nextLink and @odata.context)
    # The simulator's run-time config (graphsim.faults.SimConfig), e.g. for the max page size.
    config: Any = None

    def json(self) -> dict[str, Any]:
        """The JSON body, or a 400 like Graph's for an unreadable one."""
        if not self.body:
            raise GraphError(400, "BadRequest", "Empty Payload, JSON content expected")
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
        return data

    def version_url(self, path: str) -> str:
        """An absolute Graph URL for `path` under this request's API version."""
        return f"{self.base_url}/{self.api_version}{path}"


@dataclass
class SimResponse:
    status: int
    body: Any = None  # JSON-serialisable, bytes, or None for no content
    headers: dict[str, str] = field(default_factory=dict)
    # True when the handler changed state: counts against the write budget and is subject to the
    # "write succeeded but the response was lost" fault.
    is_write: bool = False


def json_response(body: Any, status: int = 200, *, is_write: bool = False) -> SimResponse:
    return SimResponse(status=status, body=body, is_write=is_write)


def no_content(*, is_write: bool = True) -> SimResponse:
    return SimResponse(status=204, body=None, is_write=is_write)


Handler = Callable[[SimRequest], SimResponse]


@dataclass
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    versions: frozenset[str]


class Router:
    """Matches (method, path) to a handler; literal segments match case-insensitively (Graph)."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        versions: tuple[str, ...] = ("v1.0", "beta"),
    ) -> None:
        regex = ""
        # `{name}` matches one segment; `{name:a|b}` only the listed literals (case-insensitive),
        # so a segment Graph does not define is "not found" before any permission check.
        for part in re.split(r"(\{[a-zA-Z_]+(?::[^}]+)?\})", template):
            if part.startswith("{") and part.endswith("}"):
                name, _, choices = part[1:-1].partition(":")
                allowed = "|".join(re.escape(c) for c in choices.split("|")) if choices else "[^/]+"
                regex += f"(?P<{name}>{allowed})"
            else:
                regex += re.escape(part)
        self._routes.append(
            _Route(
                method=method.upper(),
                template=template,
                pattern=re.compile(f"^{regex}/?$", re.IGNORECASE),
                handler=handler,
                versions=frozenset(versions),
            )
        )

    def match(self, method: str, path: str, api_version: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path params, or a GraphError (404 unknown path, 405 wrong method)."""
        path_matched = False
        for route in self._routes:
            found = route.pattern.match(path)
            if not found or api_version not in route.versions:
                continue
            path_matched = True
            if route.method == method.upper():
                return route.handler, found.groupdict()
        if path_matched:
            raise GraphError(405, "Request_BadRequest", f"The {method} method is not supported.")
        raise GraphError(
            400,
            "BadRequest",
            f"Resource not found for the segment '{path.strip('/').split('/')[0]}'.",
        )
