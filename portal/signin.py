"""Sign-in with Entra: authorization code flow with PKCE through MSAL (docs/architecture.md §5).

The flow state (PKCE verifier, nonce, state) lives in the server-side session between the redirect
and the callback. The manager's MSAL token cache is stored encrypted (provisioning/token_cache.py)
so the worker can later act with the manager's delegated token (`acquire_token_silent`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

import msal
import requests
from django.db import transaction
from django.utils import timezone

from portal.models import User
from provisioning import audit
from provisioning.directory import manager_scope_refresh
from provisioning.graph import DELEGATED_SCOPES, GraphError, build_msal_app, get_config
from provisioning.graph.tokens import TenantNotResolved, tenant_guid_resolve
from provisioning.models import TokenCache
from provisioning.tasks import sync_administrative_unit
from provisioning.token_cache import delegated_client_for, token_cache_save

logger = logging.getLogger(__name__)

FLOW_SESSION_KEY = "lanyard_auth_flow"


class SignInError(Exception):
    """Sign-in could not complete; the message is for the person signing in."""


@dataclass(frozen=True)
class SignInStart:
    auth_uri: str
    flow: dict


def signin_start(
    *, redirect_uri: str, login_hint: str | None = None, claims_challenge: str | None = None
) -> SignInStart:
    """The Entra authorize URL to send the browser to, and the flow to keep in the session.

    `claims_challenge` is the `claims` of a Graph claims challenge (for example a fresh-MFA
    requirement): Entra then asks for exactly what Graph demanded.
    """
    config = get_config()
    app = build_msal_app(config)
    flow = app.initiate_auth_code_flow(
        # The same Graph resource as the app identity's scope (docs/graph-contract.md §8.4).
        scopes=config.scopes_for(DELEGATED_SCOPES),
        redirect_uri=redirect_uri,
        login_hint=login_hint,
        claims_challenge=claims_challenge,
        response_mode="query",
        # Always let the person pick the account: on a shared back-office PC Entra's session may
        # still belong to whoever signed in before.
        prompt="select_account",
    )
    return SignInStart(auth_uri=flow["auth_uri"], flow=flow)


def signin_complete(*, flow: dict | None, auth_response: dict[str, str]) -> User:
    """Redeem the authorization code, record the user and their token cache, refresh their scope."""
    if not flow:
        raise SignInError("The sign-in took too long or was started in another tab.")
    config = get_config()
    cache = msal.SerializableTokenCache()
    app = build_msal_app(config, token_cache=cache)
    try:
        result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    except ValueError as exc:  # MSAL: state mismatch, or a response that is not for this flow
        logger.info("Sign-in rejected by MSAL: %s", type(exc).__name__)
        raise SignInError("The sign-in response did not match this browser session.") from exc
    if "error" in result:
        logger.info("Sign-in failed: %s", result.get("error"))
        raise SignInError(
            _describe_error(result.get("error", ""), result.get("error_description", ""))
        )
    claims = result.get("id_token_claims") or {}
    try:
        # ENTRA_TENANT_ID may be a domain; tokens carry the GUID (docs/graph-contract.md §8.1).
        tenant_guid = tenant_guid_resolve(config=config)
    except TenantNotResolved as exc:
        logger.error("Sign-in refused: %s", exc)
        raise SignInError(f"Lanyard is not configured correctly: {exc}") from exc
    if claims.get("tid", "").lower() != tenant_guid:
        raise SignInError("That account belongs to another organisation.")
    accounts = app.get_accounts()
    home_account_id = accounts[0]["home_account_id"] if accounts else ""

    with transaction.atomic():
        user, _ = User.objects.update_or_create(
            entra_object_id=claims["oid"].lower(),
            defaults={
                "username": claims["oid"].lower(),
                "user_principal_name": claims.get("preferred_username", ""),
                "display_name": claims.get("name", ""),
            },
        )
        token_cache_save(user=user, home_account_id=home_account_id, serialized=cache.serialize())

    try:
        new_units = manager_scope_refresh(user=user, client=delegated_client_for(user=user))
    except GraphError as exc:
        audit.record(
            actor=user,
            action="sign-in",
            outcome="failed",
            detail=str(exc),
            graph_request_id=exc.request_id or "",
        )
        raise SignInError(
            f"Lanyard could not read your store assignments from Entra: {exc}"
        ) from exc
    for unit_id in new_units:
        # A store this manager was just given: fetch its workers in the background.
        transaction.on_commit(lambda unit_id=unit_id: sync_administrative_unit.delay(unit_id))
    audit.record(actor=user, action="sign-in", outcome="succeeded")
    return user


def signout(*, user: User) -> None:
    """Forget the user's tokens so no worker can act for them any more."""
    TokenCache.objects.filter(user=user).delete()
    User.objects.filter(pk=user.pk).update(roles_refreshed_at=timezone.now())
    audit.record(actor=user, action="sign-out", outcome="succeeded")


_end_session_endpoints: dict[str, str] = {}


def _end_session_endpoint(authority: str) -> str:
    """The tenant's end_session_endpoint from OIDC discovery (remembered per process)."""
    if authority not in _end_session_endpoints:
        response = requests.get(
            f"{authority}/v2.0/.well-known/openid-configuration", timeout=get_config().timeout
        )
        response.raise_for_status()
        _end_session_endpoints[authority] = response.json()["end_session_endpoint"]
    return _end_session_endpoints[authority]


def signout_url(*, post_logout_redirect_uri: str) -> str:
    """Where the browser goes after Lanyard's own sign-out: Entra's end-session endpoint, which
    ends the browser's Entra session too (so the next person on a shared PC is not signed in
    silently as this one), then returns to `post_logout_redirect_uri` (an origin registered for the
    app). If discovery cannot be read, `post_logout_redirect_uri` itself: Lanyard's session is
    over either way."""
    try:
        endpoint = _end_session_endpoint(get_config().authority)
    except (requests.RequestException, ValueError, KeyError) as exc:
        logger.warning("Entra end-session endpoint unknown (%s): local sign-out only", exc)
        return post_logout_redirect_uri
    query = urlencode({"post_logout_redirect_uri": post_logout_redirect_uri})
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def _describe_error(error: str, description: str) -> str:
    if error == "access_denied":
        return "The sign-in was cancelled."
    if error in ("login_required", "interaction_required", "consent_required"):
        return "Microsoft Entra needs you to sign in again."
    if error == "invalid_grant":
        return "The sign-in code expired or was already used. Please sign in again."
    # The AADSTS code is what an Entra admin needs; the description never holds a secret.
    code = description.split(":", 1)[0] if description.startswith("AADSTS") else error
    return f"Microsoft Entra refused the sign-in ({code})."
