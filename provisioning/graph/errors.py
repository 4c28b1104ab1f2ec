"""Errors raised by the Graph client (docs/graph-contract.md §7).

Every error says in plain language what went wrong and carries Graph's request-id, so a person can
read it on a bulk-job row and support can find the request in Entra's logs. The message never
contains a request or response body: create and reset responses hold PINs and QR payloads, and
secrets never appear in exception messages or logs (docs/architecture.md §5). Errors are classified
by status and Graph's `code` / `innerError.code`, never by Graph's `message` text.

`permanent` tells a task whether retrying can help: 4xx other than 429 are permanent; 429, 5xx and
connection errors are transient.
"""

from __future__ import annotations

import re
from typing import Any

_SUMMARIES = {
    400: "Microsoft Graph rejected the request as invalid",
    401: "Microsoft Graph did not accept Lanyard's sign-in token",
    403: "Lanyard is not allowed to do this in Microsoft Entra (a permission or role is missing)",
    404: "Microsoft Graph could not find the user or item",
    409: "This conflicts with what already exists in Microsoft Entra",
    424: "Microsoft Graph skipped this request because a request it depends on failed",
    429: "Microsoft Graph is throttling Lanyard's requests",
}


class GraphError(Exception):
    """A Graph request failed. `str(err)` is safe to show to people and to log."""

    summary = "Microsoft Graph returned an error"
    permanent = True

    def __init__(
        self,
        summary: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        inner_code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
        detail: str | None = None,
        permanent: bool | None = None,
    ) -> None:
        if summary is None and type(self) is GraphError:
            summary = _SUMMARIES.get(status or 0)
        self.summary = summary or type(self).summary
        self.status = status
        self.code = code
        self.inner_code = inner_code
        self.request_id = request_id
        self.client_request_id = client_request_id
        # Graph's developer message with anything that could be a PIN or QR payload masked; kept
        # for diagnostics, never part of str(err).
        self.detail = detail
        if permanent is not None:
            self.permanent = permanent
        super().__init__(self._text())

    def _text(self) -> str:
        facts = []
        if self.status is not None:
            facts.append(f"HTTP {self.status}")
        if self.code:
            facts.append(self.code)
        facts.append(f"request-id {self.request_id or 'unknown'}")
        return f"{self.summary} ({', '.join(facts)})."

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._text()!r})"


class GraphBadRequest(GraphError):
    summary = _SUMMARIES[400]


class GraphUnauthorized(GraphError):
    summary = _SUMMARIES[401]


class GraphForbidden(GraphError):
    summary = _SUMMARIES[403]


class GraphNotFound(GraphError):
    summary = _SUMMARIES[404]


class GraphConflict(GraphError):
    summary = _SUMMARIES[409]


class GraphFailedDependency(GraphError):
    summary = _SUMMARIES[424]
    permanent = False


class GraphThrottled(GraphError):
    """429: Graph did not perform the request; retry after `retry_after` seconds."""

    summary = _SUMMARIES[429]
    permanent = False

    def __init__(self, summary: str | None = None, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(summary, **kw)

    def _text(self) -> str:
        text = super()._text()
        if self.retry_after is not None:
            text = f"{text[:-1]}; retry after {self.retry_after:g} s."
        return text


class GraphServerError(GraphError):
    """5xx: Graph failed. For a write, whether it took effect is unknown until Graph is re-read."""

    summary = "Microsoft Graph had an internal error"
    permanent = False


class GraphUnavailable(GraphServerError):
    """503/504: Graph is busy or timed out; retry later."""

    summary = "Microsoft Graph is temporarily unavailable"

    def __init__(self, summary: str | None = None, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(summary, **kw)


class GraphConnectionError(GraphError):
    """No usable response: connection refused/reset, TLS failure or timeout.

    `maybe_performed` is True when the request may have reached Graph (a read timeout or a reset
    after sending): a write must then be checked against Graph's state before it is retried.
    """

    summary = "Lanyard could not reach Microsoft Graph"
    permanent = False

    def __init__(self, summary: str | None = None, *, maybe_performed: bool = True, **kw):
        self.maybe_performed = maybe_performed
        super().__init__(summary, **kw)


class TokenError(GraphError):
    """The identity platform refused to issue a token (bad secret, unknown app, consent ...)."""

    summary = "Microsoft Entra refused to issue a token to Lanyard"


class InteractionRequired(GraphError):
    """The signed-in manager must sign in again (expired session or a claims challenge)."""

    summary = "Please sign in again to continue"

    def __init__(self, summary: str | None = None, *, claims: str | None = None, **kw):
        self.claims = claims
        super().__init__(summary, **kw)


_BY_STATUS: dict[int, type[GraphError]] = {
    400: GraphBadRequest,
    401: GraphUnauthorized,
    403: GraphForbidden,
    404: GraphNotFound,
    409: GraphConflict,
    424: GraphFailedDependency,
    429: GraphThrottled,
    503: GraphUnavailable,
    504: GraphUnavailable,
}

# Long digit runs (PINs, phone numbers) and long base64-ish runs (QR payloads, tokens).
_SECRET_LIKE = re.compile(r"\d{4,}|[A-Za-z0-9+/=_-]{24,}")


# Statuses whose meaning Graph documents the same way for every call (docs/graph-contract.md §7):
# 401 token, 403 permission or role, 404 no such user or item, 429 throttled.
_DOCUMENTED_4XX = frozenset({401, 403, 404, 429})


def is_undocumented_refusal(exc: GraphError) -> bool:
    """Is this a 4xx whose cause Graph leaves undocumented (400, 409, …)?

    "Already has a QR method", "a temporary code already exists", "the policy does not target this
    user" and "invalid PIN" have no documented status (docs/graph-contract.md §1.2, §1.3, §1.6,
    §2). A caller that gets one re-reads Graph's state before deciding what happened, instead of
    trusting 409 vs 400.
    """
    status = exc.status or 0
    return 400 <= status < 500 and status not in _DOCUMENTED_4XX


def mask_secrets(text: str, limit: int = 300) -> str:
    """`text` with anything that could be a PIN, payload or token replaced by '***'."""
    return _SECRET_LIKE.sub("***", text)[:limit]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (may be fractional, e.g. '2.128'); None if absent/bad."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # HTTP-date form: Graph does not send it; fall back to backoff
    return max(0.0, seconds)


def parse_error_body(body: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """(code, innerError.code, request-id, message) from Graph's error body; Nones if malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None, None, None, None
    error = body["error"]
    inner = error.get("innerError") or error.get("innererror") or {}
    if not isinstance(inner, dict):
        inner = {}

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    return (
        text(error.get("code")),
        text(inner.get("code")),
        text(inner.get("request-id")),
        text(error.get("message")),
    )


def error_for_status(
    status: int,
    body: Any = None,
    headers: Any = None,
    *,
    client_request_id: str | None = None,
    fallback_request_id: str | None = None,
) -> GraphError:
    """The typed error for an HTTP (or $batch item) status, Graph error body and headers.

    `fallback_request_id` (the $batch's own) is used when an item names none.
    """
    headers = headers or {}
    code, inner_code, body_request_id, message = parse_error_body(body)
    request_id = _header(headers, "request-id") or body_request_id or fallback_request_id
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = GraphServerError if status >= 500 else GraphError
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "inner_code": inner_code,
        "request_id": request_id,
        "client_request_id": client_request_id or _header(headers, "client-request-id"),
        "detail": mask_secrets(message) if message else None,
    }
    if cls in (GraphThrottled, GraphUnavailable):
        kwargs["retry_after"] = parse_retry_after(_header(headers, "Retry-After"))
    if cls is GraphError:
        kwargs["permanent"] = 400 <= status < 500
    return cls(**kwargs)


def _header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup on a requests CaseInsensitiveDict or a plain dict."""
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value
