"""Access tokens for Graph through MSAL (docs/graph-contract.md §8): the app identity and a
manager's own.

One MSAL ConfidentialClientApplication per process holds the app identity's token cache
(docs/conventions.md). MSAL treats a cached token with less than five minutes left as expired, so a
provider also remembers the token it last handed out and reuses it until shortly before it expires;
this keeps short-lived tokens (graphsim can issue 60-second ones) from costing a token request per
call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from provisioning.graph.config import GUID_PATTERN, GraphConfig
from provisioning.graph.errors import GraphConnectionError, InteractionRequired, TokenError

logger = logging.getLogger(__name__)

# Hosts for which MSAL's instance discovery is meaningful (docs/graph-contract.md §8.5). For any
# other host (graphsim, a proxy) discovery would call login.microsoftonline.com, so it is turned
# off.
WELL_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login-us.microsoftonline.com",
        "login.partner.microsoftonline.cn",
    }
)

# "cp1": Lanyard handles claims challenges (docs/graph-contract.md §8.6).
CLIENT_CAPABILITIES = ["cp1"]

# MSAL's HTTP cache, shared by every MSAL app in the process: OIDC and instance metadata, and the
# token endpoint's error answers that MSAL replays for a while instead of asking again (its
# throttling). It holds no tokens.
_HTTP_CACHE: dict[Any, Any] = {}


def http_cache_clear() -> None:
    """Forget MSAL's cached metadata and replayed error answers: after the tenant or the cloud
    changed under a running process (tests, where each test gets a fresh graphsim tenant)."""
    _HTTP_CACHE.clear()


# Delegated permissions a manager consents to: the delegated column of README.md's permission table
# (docs/graph-contract.md §11, §12). Bare names: `GraphConfig.scopes_for` puts the cloud's Graph
# resource in front, as for the app's `.default`.
DELEGATED_SCOPES = (
    "User.Read",
    "AdministrativeUnit.Read.All",
    "RoleManagement.Read.Directory",
    "UserAuthMethod-QR.ReadWrite.All",
    "UserAuthMethod-Phone.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
)
# Application permissions the app identity needs: the ✓ rows of the application column of
# README.md's permission table (a test keeps them equal). The readiness page compares them with
# the `roles` claim of the app's token.
APPLICATION_PERMISSIONS = (
    "User.Read.All",
    "AdministrativeUnit.Read.All",
    "RoleManagement.Read.Directory",
    "GroupMember.Read.All",
    "UserAuthMethod-QR.ReadWrite.All",
    "UserAuthMethod-Phone.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "Policy.ReadWrite.AuthenticationMethod",
    "AuditLog.Read.All",
)


def build_msal_app(
    config: GraphConfig, token_cache: msal.TokenCache | None = None
) -> msal.ConfidentialClientApplication:
    """A ConfidentialClientApplication for `config`, with a certificate (preferred) or a secret.

    The sign-in views use it with a per-user SerializableTokenCache for
    `initiate_auth_code_flow` / `acquire_token_by_auth_code_flow`.
    """
    cert = config.certificate
    if cert is not None:
        # RS256 with an SHA-1 x5t (docs/graph-contract.md §8.2): pass the thumbprint, not the
        # certificate, which would make MSAL sign with PS256 and x5t#S256.
        credential: Any = {"private_key": cert.private_key_pem, "thumbprint": cert.thumbprint_sha1}
    else:
        credential = config.client_secret
    host = (urlsplit(config.authority_host).hostname or "").lower()
    return msal.ConfidentialClientApplication(
        config.client_id,
        # Continuous access evaluation: Graph sends claims challenges (revoked session, a
        # Conditional Access authentication context) only to clients that declare cp1
        # (docs/graph-contract.md §8.6). A manager's challenge leads to a new sign-in carrying the
        # claims (portal/signin.py); the app identity answers a 401 with a fresh token.
        client_capabilities=CLIENT_CAPABILITIES,
        client_credential=credential,
        authority=config.authority,
        instance_discovery=host in WELL_KNOWN_AUTHORITY_HOSTS,
        token_cache=token_cache,
        http_cache=_HTTP_CACHE,
        timeout=config.timeout,
    )


class _TokenMemo:
    """The last token handed out, reused until `margin` before it expires."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: str | None = None
        self.expires_at = 0.0
        self.acquired = 0  # tokens fetched from MSAL (cache or network), for figures and tests

    def fresh(self) -> str | None:
        if self.token and time.time() < self.expires_at:
            return self.token
        return None

    def remember(self, result: dict[str, Any]) -> str:
        lifetime = float(result.get("expires_in") or 0)
        margin = min(120.0, lifetime / 4)
        self.token = result["access_token"]
        self.expires_at = time.time() + lifetime - margin
        self.acquired += 1
        return self.token

    def forget(self, token: str | None) -> None:
        if token is None or token == self.token:
            self.token = None
            self.expires_at = 0.0


def _drop_cached_access_token(cache: msal.TokenCache, token: str) -> None:
    """Remove `token` from MSAL's cache so the next call fetches a new one (after a 401)."""
    for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
        if entry.get("secret") == token:
            cache.remove_at(entry)


class AppTokenProvider:
    """Tokens for the app identity (client credentials). Thread-safe; one per process."""

    kind = "app"

    def __init__(self, config: GraphConfig, app: msal.ConfidentialClientApplication | None = None):
        self.config = config
        self.app = app or build_msal_app(config)
        self._memo = _TokenMemo()

    @property
    def tokens_acquired(self) -> int:
        return self._memo.acquired

    def get_token(self) -> str:
        """A bearer token for Graph, fetched from Entra only when the last one nears expiry."""
        with self._memo.lock:
            token = self._memo.fresh()
            if token:
                return token
            try:
                result = self.app.acquire_token_for_client(scopes=[self.config.app_scope])
            except (OSError, ValueError) as exc:  # requests errors are OSErrors
                raise GraphConnectionError(
                    "Lanyard could not reach Microsoft Entra to get a token", maybe_performed=False
                ) from exc
            if not result or "access_token" not in result:
                raise _token_error(result)
            return self._memo.remember(result)

    def invalidate(self, token: str) -> None:
        """Graph refused `token` (401): never hand it out again."""
        with self._memo.lock:
            self._memo.forget(token)
            _drop_cached_access_token(self.app.token_cache, token)


class DelegatedTokenProvider:
    """Tokens for a signed-in manager, from their MSAL cache (stored encrypted by the portal).

    `load()` returns the serialized cache (or None); `save(serialized)` is called whenever MSAL
    changed it (a refreshed token), so the portal can write it back. Raises InteractionRequired
    when the manager must sign in again.
    """

    kind = "delegated"

    def __init__(
        self,
        config: GraphConfig,
        *,
        home_account_id: str,
        load: Callable[[], str | None],
        save: Callable[[str], None],
        scopes: tuple[str, ...] | list[str] | None = None,
        app_factory: Callable[..., msal.ConfidentialClientApplication] = build_msal_app,
    ) -> None:
        self.config = config
        self.home_account_id = home_account_id
        self.scopes = list(scopes) if scopes is not None else config.scopes_for(DELEGATED_SCOPES)
        self._load = load
        self._save = save
        self._app_factory = app_factory
        self._memo = _TokenMemo()
        self._force_refresh = False

    @property
    def tokens_acquired(self) -> int:
        return self._memo.acquired

    def get_token(self) -> str:
        with self._memo.lock:
            token = self._memo.fresh()
            if token:
                return token
            cache = msal.SerializableTokenCache()
            serialized = self._load()
            if serialized:
                cache.deserialize(serialized)
            app = self._app_factory(self.config, token_cache=cache)
            account = next(
                (a for a in app.get_accounts() if a.get("home_account_id") == self.home_account_id),
                None,
            )
            if account is None:
                raise InteractionRequired("Your Microsoft sign-in has ended; please sign in again")
            try:
                result = app.acquire_token_silent_with_error(
                    self.scopes, account, force_refresh=self._force_refresh
                )
            except (OSError, ValueError) as exc:
                raise GraphConnectionError(
                    "Lanyard could not reach Microsoft Entra to get a token", maybe_performed=False
                ) from exc
            finally:
                if cache.has_state_changed:
                    self._save(cache.serialize())
            if not result or "access_token" not in result:
                if result and result.get("error") not in (None, "interaction_required"):
                    logger.info("Silent token acquisition failed: %s", result.get("error"))
                raise InteractionRequired(
                    "Your Microsoft sign-in has ended; please sign in again",
                    claims=(result or {}).get("claims"),
                )
            self._force_refresh = False
            return self._memo.remember(result)

    def invalidate(self, token: str) -> None:
        with self._memo.lock:
            self._memo.forget(token)
            self._force_refresh = True


class TenantNotResolved(ValueError):
    """ENTRA_TENANT_ID is a domain that could not be resolved to the tenant's GUID; the message
    says what to configure instead."""


# Per process: a tenant domain resolved once (docs/graph-contract.md §8.1).
_TENANT_GUIDS: dict[tuple[str, str], str] = {}


def tenant_guid_resolve(*, config: GraphConfig) -> str:
    """The tenant's GUID (what tokens carry in `tid`), lower case.

    Admins often configure a verified domain (`contoso.onmicrosoft.com`) instead of the GUID. The
    tenant's OpenID metadata at `{authority}/v2.0/.well-known/openid-configuration` names its
    issuer, `https://{login host}/{tenant GUID}/v2.0` (docs/graph-contract.md §8.1): the GUID is
    read from there once per process. Raises TenantNotResolved with what to put in
    ENTRA_TENANT_ID when that fails.
    """
    if config.tenant_is_guid:
        return config.tenant_id.lower()
    key = (config.authority_host, config.tenant_id.lower())
    if key in _TENANT_GUIDS:
        return _TENANT_GUIDS[key]
    url = f"{config.authority}/v2.0/.well-known/openid-configuration"
    advice = (
        "Set ENTRA_TENANT_ID to the Directory (tenant) ID, the GUID on the Overview page of "
        "Lanyard's app registration in the Entra admin center."
    )
    try:
        response = requests.get(url, timeout=config.timeout)
        issuer = response.json().get("issuer", "") if response.ok else ""
    except (OSError, ValueError) as exc:  # requests errors are OSErrors; bad JSON a ValueError
        raise TenantNotResolved(
            f"ENTRA_TENANT_ID {config.tenant_id!r} is not a tenant ID, and Lanyard could not "
            f"reach {url} to look it up ({type(exc).__name__}). {advice}"
        ) from exc
    guid = next((part for part in issuer.split("/") if GUID_PATTERN.match(part)), None)
    if guid is None:
        raise TenantNotResolved(
            f"ENTRA_TENANT_ID {config.tenant_id!r} is not a tenant ID, and Microsoft Entra did "
            f"not resolve it as one of a tenant's domains (HTTP {response.status_code} from "
            f"{url}). {advice}"
        )
    _TENANT_GUIDS[key] = guid.lower()
    logger.info("ENTRA_TENANT_ID %s is tenant %s", config.tenant_id, guid)
    return _TENANT_GUIDS[key]


def _token_error(result: dict[str, Any] | None) -> TokenError:
    """A TokenError from MSAL's error dict; the description may name the app, never a secret."""
    result = result or {}
    error = result.get("error") or "no_token"
    codes = result.get("error_codes") or []
    transient = error in ("temporarily_unavailable", "server_error") or any(
        c in (50196, 90033)
        for c in codes  # AADSTS loop / service busy
    )
    return TokenError(
        code=error,
        request_id=result.get("correlation_id") or result.get("trace_id"),
        permanent=not transient,
    )
