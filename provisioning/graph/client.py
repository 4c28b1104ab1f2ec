"""The HTTP side of every Graph call: tokens, timeouts, request ids, retries, paging and $batch.

Retries follow docs/architecture.md §6:
- Reads (GET) are retried here on 429, 502/503/504 and connection errors, with exponential backoff
  and full jitter, honouring Retry-After, within `max_retries` attempts and `max_retry_seconds`.
- Writes are not retried here after a 5xx or a lost response: Graph may have performed them, and
  the QR image and PIN come back only once. They raise a transient error and the task re-reads
  Graph's state before trying again. Two cases are safe and retried here: a 429 (Graph did not
  perform the request) and a connection that was never established.
- A 401 is answered by fetching a new token once (tokens may expire between fetch and use).

Budgets (docs/architecture.md §6, docs/graph-contract.md §7.3): every write is charged one token
to the shared write limiter, every GET its resource units to the shared read limiter, before it is
sent (each item of a $batch too); a 429 penalises the limiter of the kind of request it answered.
A client built with `priority=INTERACTIVE` (a manager's work) takes its tokens ahead of bulk
reservations.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3

from provisioning.graph.config import GraphConfig
from provisioning.graph.errors import (
    GraphConnectionError,
    GraphError,
    GraphThrottled,
    InteractionRequired,
    error_for_status,
    parse_error_body,
    parse_retry_after,
)
from provisioning.graph.ratelimit import BULK, NoRateLimiter, RateLimiter, resource_units

logger = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
BATCH_LIMIT = 20  # requests per $batch (docs/graph-contract.md §6)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


class TokenProvider(Protocol):
    kind: str  # "app" | "delegated"

    def get_token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


@dataclass(frozen=True)
class GraphRequest:
    """One Graph operation, sendable alone or as an item of a $batch.

    `url` is relative to the version root and carries its query string (`/users/x?$select=id`);
    an absolute https URL (an @odata.nextLink) is used verbatim. `body` may hold a PIN, so it is
    left out of repr().
    """

    method: str
    url: str
    body: Any = field(default=None, repr=False)
    headers: Mapping[str, str] | None = None
    api_version: str | None = None  # None → the client's default ("v1.0")

    @property
    def is_write(self) -> bool:
        return self.method.upper() in WRITE_METHODS


@dataclass
class GraphResponse:
    status: int
    body: Any = field(repr=False)  # parsed JSON, text, or None (204)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    request_id: str | None = None
    client_request_id: str | None = None


@dataclass
class BatchResult:
    """The outcome of one $batch item, in the caller's order.

    `status` is None when no answer for the item came back (the whole $batch failed or its
    response was lost): the item may or may not have been performed.
    """

    request: GraphRequest
    status: int | None
    body: Any = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    request_id: str | None = None
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached Graph (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)


def _claims_challenge(response: requests.Response) -> str | None:
    """The `claims` of a Conditional Access challenge (401/403), or None.

    Graph sends them base64-encoded in WWW-Authenticate; MSAL's `claims_challenge` wants the JSON,
    so they are decoded here.
    """
    www = response.headers.get("WWW-Authenticate", "")
    if "claims=" in www:
        value = www.split("claims=", 1)[1].strip()
        if value.startswith('"'):
            value = value[1:].split('"', 1)[0]
        value = value.split(",", 1)[0]
        if not value.lstrip().startswith("{"):
            with contextlib.suppress(ValueError):
                value = base64.b64decode(value + "=" * (-len(value) % 4)).decode()
        return value
    try:
        code, inner, _, _ = parse_error_body(response.json())
    except ValueError:
        return None
    if "insufficient_claims" in (code, inner):
        return ""
    return None


class GraphClient:
    """Sends Graph requests for one identity (the app, or one signed-in manager)."""

    def __init__(
        self,
        config: GraphConfig,
        token_provider: TokenProvider,
        rate_limiter: RateLimiter | None = None,
        *,
        read_limiter: RateLimiter | None = None,
        priority: str = BULK,
        session: requests.Session | None = None,
        sleep=time.sleep,
    ) -> None:
        self.config = config
        self.tokens = token_provider
        self.rate_limiter = rate_limiter or NoRateLimiter()  # writes
        self.read_limiter = read_limiter or NoRateLimiter()  # resource units of reads
        self.priority = priority  # BULK or INTERACTIVE (ratelimit.py)
        self.session = session or requests.Session()
        self._sleep = sleep
        self._origin = urlsplit(config.graph_endpoint)
        self._stats_lock = threading.Lock()
        self.stats: Counter[str] = Counter()  # requests, retries, status_429, … for figures

    # -- single requests ---------------------------------------------------------------------

    def request(self, req: GraphRequest) -> GraphResponse:
        """Send one operation; raise a GraphError subclass for any non-2xx answer."""
        return self._send(
            req.method.upper(),
            self._absolute(req),
            body=req.body,
            headers=req.headers,
            charge=1 if req.is_write else 0,
            read_units=_read_units(req),
            idempotent=not req.is_write,
        )

    def get(self, url: str, *, headers: Mapping[str, str] | None = None, **kw) -> Any:
        """GET and return the JSON body."""
        return self.request(GraphRequest("GET", url, headers=headers, **kw)).body

    def iter_pages(self, req: GraphRequest) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink verbatim (docs/graph-contract.md
        §4.2).

        Headers such as ConsistencyLevel are not carried by the link, so they are resent on every
        page. Nothing is assumed about page sizes.
        """
        url = self._absolute(req)
        while url:
            page = self._send(
                "GET",
                url,
                headers=req.headers,
                charge=0,
                read_units=resource_units("GET", url),
                idempotent=True,
            ).body
            if not isinstance(page, dict):
                raise GraphError("Microsoft Graph returned an unreadable page", status=200)
            yield page
            url = page.get("@odata.nextLink")
            if url:
                self._check_origin(url)

    def iter_values(self, req: GraphRequest) -> Iterator[dict[str, Any]]:
        """Every item of a collection, across pages."""
        for page in self.iter_pages(req):
            yield from page.get("value") or []

    # -- $batch ------------------------------------------------------------------------------

    def batch(
        self, requests_: Sequence[GraphRequest], *, priority: str | None = None
    ) -> list[BatchResult]:
        """Send operations through $batch, ≤20 per call; one BatchResult per request, in order.

        `priority` overrides the client's for these requests' budgets (ratelimit.RECOVERY for
        writes that redo what a crash lost).

        Each write is charged to the rate limiter before its batch is sent. Throttled items (429)
        are resent after the longest item Retry-After; so are reads that got 502/503/504. Any
        other outcome, including a write's 5xx or a $batch whose response was lost
        (status None), is returned for the caller to resolve against Graph's state.
        """
        results: list[BatchResult | None] = [None] * len(requests_)
        pending = list(range(len(requests_)))
        rounds = 0  # consecutive rounds in which no throttled item got through
        waited = 0.0  # time spent waiting to resend (sending a long list takes time by itself)
        while pending:
            retry: list[int] = []
            longest_wait = 0.0
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start : start + BATCH_LIMIT]
                answers = self._send_batch(requests_, chunk, priority or self.priority)
                for index, item in zip(chunk, answers, strict=True):
                    results[index] = item
                    if self._batch_item_retryable(item):
                        retry.append(index)
                        wait = parse_retry_after(_header(item.headers, "Retry-After"))
                        longest_wait = max(longest_wait, wait or 0.0)
            if not retry:
                break
            rounds = rounds + 1 if len(retry) == len(pending) else 0
            if longest_wait == 0.0:
                longest_wait = self._backoff(rounds)
            if rounds > self.config.max_retries or waited + longest_wait > self.max_wait():
                break
            self._count("batch_item_retries", len(retry))
            self._sleep(longest_wait)
            waited += longest_wait
            pending = retry
        return [r for r in results if r is not None]

    def _send_batch(
        self, requests_: Sequence[GraphRequest], chunk: list[int], priority: str
    ) -> list[BatchResult]:
        versions = {requests_[i].api_version or self.config.api_version for i in chunk}
        if len(versions) != 1:
            raise ValueError("All requests of one $batch must use the same API version.")
        items = []
        writes = 0
        read_units = 0
        for index in chunk:
            req = requests_[index]
            if req.url.startswith("https://"):
                raise ValueError("$batch items need URLs relative to the version root.")
            item: dict[str, Any] = {"id": str(index), "method": req.method.upper(), "url": req.url}
            headers = dict(req.headers or {})
            if req.body is not None:
                headers.setdefault("Content-Type", "application/json")
                item["body"] = req.body
            if headers:
                item["headers"] = headers
            items.append(item)
            writes += req.is_write
            read_units += _read_units(req)
        if read_units:  # the GET items' resource units, at once (≤ 20 × 6 RU)
            self.read_limiter.acquire(read_units, priority=priority)
        if writes:
            # One write unit each (docs/graph-contract.md §7.3), reserved together: the batch
            # sends them together, so they must not be spread over other tasks' reservations.
            # Last before sending: the write window counts a write from its grant.
            self.rate_limiter.acquire(writes, priority=priority)
        url = f"{self.config.graph_endpoint}/{versions.pop()}/$batch"
        try:
            # A batch of reads may be resent whole; one holding writes may not: its items'
            # fate is unknown when the $batch itself fails.
            response = self._send(
                "POST",
                url,
                body={"requests": items},
                charge=0,
                idempotent=writes == 0,
                batch_writes=writes,
            )
        except GraphError as exc:
            if exc.permanent:  # malformed batch, no permission, sign in again: nothing ran
                raise
            return [BatchResult(requests_[i], None, error=exc) for i in chunk]
        answers = {}
        for answer in (response.body or {}).get("responses") or []:
            if isinstance(answer, dict) and "id" in answer:
                answers[str(answer["id"])] = answer
        out = []
        for index in chunk:
            answer = answers.get(str(index))
            if answer is None:
                lost = GraphConnectionError(
                    "Microsoft Graph did not answer this request of the batch",
                    request_id=response.request_id,
                )
                out.append(BatchResult(requests_[index], None, error=lost))
                continue
            status = int(answer.get("status") or 0)
            headers = answer.get("headers") or {}
            body = answer.get("body")
            error = None
            if not 200 <= status < 300:
                error = error_for_status(
                    status, body, headers, fallback_request_id=response.request_id
                )
            self._count(f"batch_item_{status}")
            if status == 429:
                limiter = self.rate_limiter if requests_[index].is_write else self.read_limiter
                limiter.penalize(
                    parse_retry_after(_header(headers, "Retry-After")) or self._backoff(0)
                )
            out.append(
                BatchResult(
                    requests_[index],
                    status,
                    body,
                    headers,
                    request_id=_header(headers, "request-id") or response.request_id,
                    error=error,
                )
            )
        return out

    @staticmethod
    def _batch_item_retryable(item: BatchResult) -> bool:
        if item.status == 429:
            return True  # throttled items were not performed
        return item.status in (502, 503, 504) and not item.request.is_write

    # -- the core ----------------------------------------------------------------------------

    def max_wait(self) -> float:
        return self.config.max_retry_seconds

    def _absolute(self, req: GraphRequest) -> str:
        if req.url.startswith("https://"):
            self._check_origin(req.url)
            return req.url
        version = req.api_version or self.config.api_version
        return f"{self.config.graph_endpoint}/{version}{req.url}"

    def _check_origin(self, url: str) -> None:
        # The bearer token goes only to the configured Graph host, whatever a nextLink says.
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != (
            self._origin.scheme,
            self._origin.netloc.lower(),
        ):
            raise GraphError(
                "Microsoft Graph returned a link to another host; Lanyard did not follow it"
            )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        charge: int,
        idempotent: bool,
        read_units: int = 0,
        batch_writes: int = 0,
    ) -> GraphResponse:
        started = time.monotonic()
        client_request_id = str(uuid.uuid4())
        attempt = 0
        refreshed_token = False
        data = json.dumps(body) if body is not None else None
        while True:
            if read_units:
                self.read_limiter.acquire(read_units, priority=self.priority)
            token = self.tokens.get_token()  # raises before sending: nothing to undo
            if charge:
                # Last before sending: the write window counts a write from its grant.
                self.rate_limiter.acquire(charge, priority=self.priority)
            send_headers = {
                "Authorization": f"Bearer {token}",
                "client-request-id": client_request_id,
                "return-client-request-id": "true",
                "Accept": "application/json",
                **(headers or {}),
            }
            if data is not None:
                send_headers.setdefault("Content-Type", "application/json")
            self._count("requests")
            error: GraphError
            try:
                response = self.session.request(
                    method, url, data=data, headers=send_headers, timeout=self.config.timeout
                )
            except requests.exceptions.SSLError as exc:
                raise GraphConnectionError(
                    "Lanyard could not verify Microsoft Graph's TLS certificate "
                    "(check REQUESTS_CA_BUNDLE)",
                    maybe_performed=False,
                    permanent=True,
                    client_request_id=client_request_id,
                ) from exc
            except requests.RequestException as exc:
                self._count("connection_errors")
                never_sent = _never_sent(exc)
                error = GraphConnectionError(
                    maybe_performed=not never_sent, client_request_id=client_request_id
                )
                logger.warning("Graph %s %s: %s", method, _path(url), type(exc).__name__)
                if not (idempotent or never_sent):
                    raise error from exc
                delay = self._backoff(attempt)
            else:
                request_id = response.headers.get("request-id")
                status = response.status_code
                self._count(f"status_{status}")
                logger.debug("Graph %s %s → %s (%s)", method, _path(url), status, request_id)
                if status < 400:
                    return GraphResponse(
                        status,
                        _parse_body(response),
                        response.headers,
                        request_id,
                        client_request_id,
                    )
                parsed = _parse_body(response)
                if status in (401, 403):
                    claims = _claims_challenge(response)
                    if claims is not None and self.tokens.kind == "delegated":
                        raise InteractionRequired(
                            claims=claims or None, status=status, request_id=request_id
                        )
                if status == 401 and not refreshed_token:
                    # Graph authenticates before doing anything: safe to resend any method.
                    refreshed_token = True
                    self._count("token_refreshes")
                    self.tokens.invalidate(token)
                    continue
                error = error_for_status(
                    status, parsed, response.headers, client_request_id=client_request_id
                )
                if status == 401:
                    self.tokens.invalidate(token)  # refused twice: don't offer it again
                if status not in RETRYABLE_STATUSES:
                    raise error
                if status == 429:
                    retry_after = error.retry_after  # type: ignore[attr-defined]
                    if charge or batch_writes:
                        self.rate_limiter.penalize(retry_after or self._backoff(attempt))
                    else:  # reads are throttled apart from writes (docs/graph-contract.md §7.2)
                        self.read_limiter.penalize(retry_after or self._backoff(attempt))
                elif not idempotent:
                    raise error  # a write's 5xx: performed or not, only Graph's state tells
                retry_after = getattr(error, "retry_after", None)
                delay = retry_after if retry_after is not None else self._backoff(attempt)
            attempt += 1
            elapsed = time.monotonic() - started
            if attempt > self.config.max_retries or elapsed + delay > self.max_wait():
                if isinstance(error, GraphThrottled) and error.retry_after is None:
                    error.retry_after = delay
                raise error
            self._count("retries")
            logger.info(
                "Retrying Graph %s %s in %.2f s (attempt %d): %s",
                method,
                _path(url),
                delay,
                attempt + 1,
                error,
            )
            self._sleep(delay)


def _read_units(req: GraphRequest) -> int:
    """The resource units a GET is charged to the read budget (0 for a write)."""
    return 0 if req.is_write else resource_units(req.method, req.url)


def _path(url: str) -> str:
    """The URL's path without the query string (filters may hold names; keep logs lean)."""
    return urlsplit(url).path


def _parse_body(response: requests.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            return response.json()
        except ValueError:
            return None
    return response.text
