"""Lanyard's Microsoft Graph client: every Graph call the product makes goes through here.

- `config.GraphConfig` — where Entra and Graph are and how to authenticate (no Django needed).
- `tokens` — MSAL apps and token providers for the app identity and for a signed-in manager.
- `client.GraphClient` — timeouts, request ids, retries, paging and $batch.
- `ratelimit` — the write and read budgets shared by all workers (Redis, or a file in demo mode).
- `operations` — one function per Graph operation; `models` — typed results; `errors`.

`get_app_client()` is the per-process client for the app identity, built from Django settings;
`delegated_client(provider)` is a client acting as one manager. A manager's work is interactive: its
client takes its share of the budgets ahead of bulk work (`ratelimit.INTERACTIVE`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import requests

from provisioning.graph.client import BatchResult, GraphClient, GraphRequest, GraphResponse
from provisioning.graph.config import GraphConfig
from provisioning.graph.errors import (
    GraphBadRequest,
    GraphConflict,
    GraphConnectionError,
    GraphError,
    GraphFailedDependency,
    GraphForbidden,
    GraphNotFound,
    GraphServerError,
    GraphThrottled,
    GraphUnauthorized,
    GraphUnavailable,
    InteractionRequired,
    TokenError,
    is_undocumented_refusal,
)
from provisioning.graph.ratelimit import (
    BULK,
    INTERACTIVE,
    RECOVERY,
    RateLimiter,
    build_rate_limiter,
)
from provisioning.graph.tokens import (
    APPLICATION_PERMISSIONS,
    DELEGATED_SCOPES,
    AppTokenProvider,
    DelegatedTokenProvider,
    build_msal_app,
)

__all__ = [
    "BULK",
    "INTERACTIVE",
    "RECOVERY",
    "APPLICATION_PERMISSIONS",
    "DELEGATED_SCOPES",
    "AppTokenProvider",
    "BatchResult",
    "DelegatedTokenProvider",
    "GraphBadRequest",
    "GraphClient",
    "GraphConfig",
    "GraphConflict",
    "GraphConnectionError",
    "GraphError",
    "GraphFailedDependency",
    "GraphForbidden",
    "GraphNotFound",
    "GraphRequest",
    "GraphResponse",
    "GraphServerError",
    "GraphThrottled",
    "GraphUnauthorized",
    "GraphUnavailable",
    "InteractionRequired",
    "TokenError",
    "build_client",
    "build_msal_app",
    "delegated_client",
    "delegated_token_provider",
    "get_app_client",
    "get_config",
    "get_rate_limiter",
    "get_read_limiter",
    "is_undocumented_refusal",
]

_lock = threading.RLock()
# Per process: a Celery prefork child must not reuse the parent's sockets or MSAL app, so the
# singletons are keyed by pid and rebuilt after a fork.
_singletons: dict[str, tuple[int, object]] = {}


def _per_process(name: str, build: Callable[[], object]) -> object:
    with _lock:
        pid = os.getpid()
        held = _singletons.get(name)
        if held is None or held[0] != pid:
            held = (pid, build())
            _singletons[name] = held
        return held[1]


def get_config() -> GraphConfig:
    """The app identity's configuration from Django settings (cached per process)."""
    return _per_process("config", GraphConfig.from_django_settings)  # type: ignore[return-value]


def get_rate_limiter(config: GraphConfig | None = None) -> RateLimiter:
    """The write budget shared by every worker for this tenant and app."""
    config = config or get_config()
    return _per_process(  # type: ignore[return-value]
        f"limiter:{config.limiter_key}",
        lambda: _write_limiter(config),
    )


def _write_limiter(config: GraphConfig) -> RateLimiter:
    """The write limiter with Graph's window, the burst, the interactive room and the horizon
    (GraphConfig.limiter_window): every client builds it the same way, so all of them keep to one
    window and a $batch's writes always fit in one reservation."""
    return build_rate_limiter(
        config.rate_limiter_url,
        config.limiter_key,
        config.limiter_rate,
        config.limiter_capacity,
        room=config.limiter_room,
        horizon=config.limiter_horizon,
        window=config.limiter_window,
    )


def get_read_limiter(config: GraphConfig | None = None) -> RateLimiter:
    """The read budget (resource units) shared by every worker for this tenant and app."""
    config = config or get_config()
    return _per_process(  # type: ignore[return-value]
        f"limiter:{config.read_limiter_key}",
        lambda: _read_limiter(config),
    )


def _read_limiter(config: GraphConfig) -> RateLimiter:
    return build_rate_limiter(
        config.rate_limiter_url,
        config.read_limiter_key,
        config.read_limiter_rate,
        config.read_limiter_capacity,
    )


def build_client(
    config: GraphConfig,
    token_provider=None,
    rate_limiter: RateLimiter | None = None,
    *,
    read_limiter: RateLimiter | None = None,
    priority: str = BULK,
) -> GraphClient:
    """A client for `config` without Django (graphsim tests, benchmarks, scripts)."""
    if rate_limiter is None:
        rate_limiter = _write_limiter(config)
    return GraphClient(
        config,
        token_provider or AppTokenProvider(config),
        rate_limiter,
        read_limiter=read_limiter if read_limiter is not None else _read_limiter(config),
        priority=priority,
    )


def get_app_client(*, interactive: bool = False) -> GraphClient:
    """The per-process client acting as Lanyard's app identity (client credentials): bulk
    priority (IT admins' jobs, syncs, refreshes), or `interactive` for a call a web request waits
    on. Both share the process's tokens and connections."""

    def build() -> GraphClient:
        config = get_config()
        session = _per_process("session", requests.Session)
        tokens = _per_process("app_tokens", lambda: AppTokenProvider(config))
        return GraphClient(
            config,
            tokens,  # type: ignore[arg-type]
            get_rate_limiter(config),
            read_limiter=get_read_limiter(config),
            priority=INTERACTIVE if interactive else BULK,
            session=session,
        )

    name = "app_client:interactive" if interactive else "app_client"
    return _per_process(name, build)  # type: ignore[return-value]


def delegated_token_provider(
    *,
    home_account_id: str,
    load: Callable[[], str | None],
    save: Callable[[str], None],
    config: GraphConfig | None = None,
    scopes: list[str] | None = None,
) -> DelegatedTokenProvider:
    """Tokens for one manager from their stored MSAL cache (`load`/`save` the serialized cache).

    `scopes` default to the ones the manager consented to at sign-in: DELEGATED_SCOPES on the
    cloud's Graph resource (`GraphConfig.scopes_for`).
    """
    return DelegatedTokenProvider(
        config or get_config(),
        home_account_id=home_account_id,
        load=load,
        save=save,
        scopes=scopes,
    )


def delegated_client(
    token_provider: DelegatedTokenProvider, *, priority: str = INTERACTIVE
) -> GraphClient:
    """A client acting as one manager; it shares the app's budgets (same app and tenant) and, as a
    manager's action or job is waited for by a person, takes its tokens ahead of bulk work."""
    config = token_provider.config
    # Reuse the process's connection pool: a manager's action should not pay a TLS handshake.
    session = _per_process("session", requests.Session)
    return GraphClient(
        config,
        token_provider,
        get_rate_limiter(config),
        read_limiter=get_read_limiter(config),
        priority=priority,
        session=session,
    )
