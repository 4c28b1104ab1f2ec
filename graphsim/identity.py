"""The Entra ID v2.0 identity endpoints MSAL Python talks to (docs/graph-contract.md §8).

All live under `/{tenant}/` (tenant id or verified domain):
- `v2.0/.well-known/openid-configuration` and `discovery/v2.0/keys`;
- `oauth2/v2.0/token`: client credentials (secret in the body or HTTP Basic, or a certificate
  client assertion), authorization code with PKCE S256, refresh token;
- `oauth2/v2.0/authorize`: a small server-rendered "who signs in?" page (no JavaScript);
- `oauth2/v2.0/logout`.
Access tokens are RS256 JWTs signed with the simulator's key; Graph verifies them the same way.
Errors follow docs/graph-examples/token-error.response.json (AADSTS codes, trace and correlation
ids).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.wrappers import Request, Response

from graphsim.errors import GraphError
from graphsim.http import Principal
from graphsim.model import ROLE_NAMES, AppRegistration, Tenant, User

if TYPE_CHECKING:
    from graphsim.app import Simulator

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# DOC-GAP (docs/graph-contract.md §8.2 gives no skew): Entra tolerates a few minutes of clock skew
# on client assertions; we allow 5 minutes, and none on Graph access tokens (clients refresh early
# anyway).
ASSERTION_SKEW_S = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """The simulator's token-signing key, published in the JWKS with a self-signed certificate."""

    def __init__(self, pem: bytes | None = None) -> None:
        if pem:
            key = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key = key
        now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graphsim token signing")])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        # x5t is SHA-1 by definition (RFC 7515 §4.1.7); Entra's kid equals it.
        self.kid = b64url(hashlib.sha1(der).digest())  # noqa: S324
        self._der = der

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(self._der).decode()],
            "issuer": issuer,
        }

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims,
            self.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.kid, "x5t": self.kid},
        )


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    user_id: str
    scopes: list[str]  # granted Graph scopes (names, e.g. "User.Read")
    requested_scope: str  # as the client asked, echoed in the token response
    code_challenge: str
    nonce: str | None
    expires: dt.datetime
    used: bool = False
    auth_contexts: tuple[str, ...] = ()  # `acrs` satisfied at this sign-in (claims request)
    client_capabilities: tuple[str, ...] = ()  # `xms_cc` the client declared (e.g. "cp1")


@dataclass
class RefreshGrant:
    client_id: str
    user_id: str
    scopes: list[str]
    requested_scope: str
    auth_contexts: tuple[str, ...] = ()


@dataclass
class AuthState:
    """Issued authorization codes and refresh tokens (the simulated session store)."""

    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def register_certificate(app: AppRegistration, certificate_pem: str | bytes) -> None:
    """Register a certificate credential on an app (as uploading it in the Entra portal)."""
    pem = certificate_pem.decode() if isinstance(certificate_pem, bytes) else certificate_pem
    cert = x509.load_pem_x509_certificate(pem.encode())
    app.certificate_pem = pem
    app.certificate_thumbprint_sha1 = b64url(cert.fingerprint(hashes.SHA1()))  # noqa: S303


# -- helpers ---------------------------------------------------------------------------------


def find_tenant(sim: Simulator, segment: str) -> Tenant | None:
    tenant = sim.tenant
    if segment.lower() in (tenant.id.lower(), tenant.domain.lower()):
        return tenant
    return None


def issuer_for(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/v2.0"


def https_base(request: Request) -> str:
    return f"https://{request.host}"


def mint_access_token(
    sim: Simulator,
    *,
    client_id: str,
    roles: list[str] | None = None,
    user_id: str | None = None,
    scopes: list[str] | None = None,
    lifetime_s: int | None = None,
    audience: str | None = None,
    tenant_id: str | None = None,
    auth_contexts: tuple[str, ...] = (),
    client_capabilities: tuple[str, ...] = (),
) -> str:
    """A Graph access token like Entra's v1 Graph tokens: `roles` for apps, `scp` for users.

    `client_capabilities` become the `xms_cc` claim: Graph sends claims challenges only to a client
    that declared `cp1` (docs/graph-contract.md §8.6).
    """
    now = int(sim.now().timestamp())
    lifetime = sim.config.token_lifetime_s if lifetime_s is None else lifetime_s
    tid = tenant_id or sim.tenant.id
    claims: dict[str, Any] = {
        # The Graph resource of the cloud graphsim plays (docs/graph-contract.md §8.4).
        "aud": audience or sim.config.graph_resource,
        "iss": f"https://sts.windows.net/{tid}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client_id,
        "azp": client_id,
        "tid": tid,
        "ver": "1.0",
        "uti": b64url(secrets.token_bytes(16)),
    }
    if client_capabilities:
        claims["xms_cc"] = list(client_capabilities)
    if user_id is not None:
        user = sim.tenant.users.get(user_id)
        claims.update(
            {
                "oid": user_id,
                "sub": user_id,
                "scp": " ".join(scopes or []),
                "idtyp": "user",
                "upn": user.user_principal_name if user else None,
                "name": user.display_name if user else None,
            }
        )
        if auth_contexts:
            # Conditional Access authentication contexts this sign-in satisfied (e.g. fresh MFA).
            claims["acrs"] = list(auth_contexts)
    else:
        claims.update({"oid": client_id, "sub": client_id, "idtyp": "app"})
        if roles:
            claims["roles"] = list(roles)
    return sim.keys.sign(claims)


def _unauthenticated(message: str) -> GraphError:
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={
            "WWW-Authenticate": (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                f'oauth2/authorize", client_id="{GRAPH_APP_ID}"'
            )
        },
    )


def requested_auth_contexts(claims_parameter: str | None) -> tuple[str, ...]:
    """The authentication contexts a `claims` request asks for ({"access_token": {"acrs": …}}).

    A person signing in at graphsim's page is taken to satisfy them (as if they had just done the
    MFA or other step the Conditional Access policy demands).
    """
    if not claims_parameter:
        return ()
    try:
        acrs = json.loads(claims_parameter).get("access_token", {}).get("acrs", {})
    except (ValueError, AttributeError):
        return ()
    values = acrs.get("values") or ([acrs["value"]] if "value" in acrs else [])
    return tuple(str(value) for value in values)


def requested_client_capabilities(claims_parameter: str | None) -> tuple[str, ...]:
    """The client capabilities declared in a `claims` request ({"access_token": {"xms_cc":
    {"values": ["cp1"]}}}), as MSAL sends them on authorize and token requests when the app is
    built with `client_capabilities` (docs/graph-contract.md §8.6)."""
    if not claims_parameter:
        return ()
    try:
        xms_cc = json.loads(claims_parameter).get("access_token", {}).get("xms_cc", {})
        values = xms_cc.get("values") or []
    except (ValueError, AttributeError):
        return ()
    return tuple(sorted({str(value) for value in values}))


def auth_context_unsatisfied(context: str) -> GraphError:
    """The answer to a client that did not declare `cp1` when an authentication context is
    required: Graph cannot challenge it (docs/graph-contract.md §8.6), so the call is refused.

    DOC-GAP: Entra's claims-challenge page says Graph sends challenges only to clients that declare
    their capabilities, and names no answer for the others; graphsim refuses with a 403.
    """
    return GraphError(
        403,
        "Authorization_RequestDenied",
        f"This operation requires the Conditional Access authentication context '{context}'. "
        "The access token does not satisfy it and the client did not declare the 'cp1' "
        "capability, so it cannot be challenged.",
    )


def auth_context_challenge(context: str) -> GraphError:
    """Graph's answer when a Conditional Access auth context is required and the token lacks it.

    A 401 whose WWW-Authenticate carries `error="insufficient_claims"` and the base64 `claims` to
    request at the next sign-in (Continuous Access Evaluation / claims challenge).
    """
    claims = json.dumps({"access_token": {"acrs": {"essential": True, "value": context}}})
    encoded = base64.b64encode(claims.encode()).decode()
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        "Continuous access evaluation resulted in claims challenge.",
        headers={
            "WWW-Authenticate": (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                f'oauth2/authorize", error="insufficient_claims", claims="{encoded}"'
            )
        },
    )


def principal_from_bearer(sim: Simulator, authorization: str | None) -> Principal:
    """Verify a Graph bearer token (signature, lifetime, audience, tenant) → the caller."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("Access token is empty.")
    try:
        claims = jwt.decode(
            token.strip(),
            sim.keys.private_key.public_key(),
            algorithms=["RS256"],
            # Times are checked below against the simulator's clock, which tests may shift.
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise _unauthenticated("Access token validation failure. Invalid signature.") from exc
    except jwt.InvalidTokenError as exc:
        raise _unauthenticated("Access token validation failure. Malformed token.") from exc
    resource = sim.config.graph_resource.rstrip("/")
    if claims.get("aud") not in (resource, resource + "/", GRAPH_APP_ID):
        raise _unauthenticated("Access token validation failure. Invalid audience.")
    now = sim.now().timestamp()
    if not isinstance(claims.get("exp"), int) or now >= claims["exp"]:
        raise _unauthenticated("Lifetime validation failed, the token is expired.")
    if isinstance(claims.get("nbf"), int) and now < claims["nbf"]:
        raise _unauthenticated("Lifetime validation failed, the token is not yet valid.")
    if claims.get("tid") != sim.tenant.id:
        raise _unauthenticated("Access token validation failure. Invalid tenant.")
    app_id = claims.get("appid", "")
    if "scp" in claims:
        user = sim.tenant.users.get(claims.get("oid", ""))
        if user is None or not user.account_enabled:
            raise _unauthenticated("Access token validation failure. User not found or disabled.")
        return Principal(
            kind="delegated",
            app_id=app_id,
            tenant_id=claims["tid"],
            user_id=user.id,
            scopes=frozenset(claims["scp"].split()),
            auth_contexts=frozenset(claims.get("acrs") or ()),
            client_capabilities=frozenset(claims.get("xms_cc") or ()),
        )
    return Principal(
        kind="app",
        app_id=app_id,
        tenant_id=claims["tid"],
        roles=frozenset(claims.get("roles", [])),
        client_capabilities=frozenset(claims.get("xms_cc") or ()),
    )


# -- errors ----------------------------------------------------------------------------------


class TokenError(Exception):
    """An OAuth error answered with Entra's JSON error body."""

    def __init__(self, status: int, error: str, aadsts: int, message: str) -> None:
        super().__init__(f"{error} AADSTS{aadsts}: {message}")
        self.status, self.error, self.aadsts, self.message = status, error, aadsts, message


def token_error_response(sim: Simulator, request: Request, exc: TokenError) -> Response:
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    timestamp = sim.now().strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": exc.error,
        "error_description": (
            f"AADSTS{exc.aadsts}: {exc.message}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [exc.aadsts],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    }
    if exc.error == "invalid_client" and exc.status == 401:
        pass  # Entra answers invalid_client with 401.
    return _json(body, exc.status)


def _json(body: Any, status: int = 200) -> Response:
    response = Response(
        json.dumps(body), status=status, content_type="application/json; charset=utf-8"
    )
    response.headers["Cache-Control"] = "no-store, no-cache"
    response.headers["Pragma"] = "no-cache"
    return response


# -- dispatch --------------------------------------------------------------------------------


def handle(sim: Simulator, request: Request, *, browser: bool) -> Response:
    """Route an identity request. The browser (HTTP) listener serves only authorize/logout."""
    parts = request.path.strip("/").split("/")
    if request.path == "/graphsim-static/authorize.css":
        return Response(_CSS, content_type="text/css; charset=utf-8")
    if len(parts) < 2:
        return _json({"error": "not_found"}, 404)
    tenant = find_tenant(sim, parts[0])
    rest = "/".join(parts[1:]).lower()
    if tenant is None:
        exc = TokenError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{parts[0]}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud.",
        )
        return token_error_response(sim, request, exc)
    if rest == "oauth2/v2.0/authorize" and request.method in ("GET", "POST"):
        return authorize(sim, tenant, request)
    if rest == "oauth2/v2.0/logout" and request.method in ("GET", "POST"):
        return logout(sim, tenant, request)
    if browser:
        return _json({"error": "not_found", "error_description": "HTTPS only"}, 404)
    if rest == "v2.0/.well-known/openid-configuration" and request.method == "GET":
        with sim.stats.lock:
            sim.stats.discovery_requests[parts[0].lower()] += 1
        return _json(openid_configuration(sim, tenant, https_base(request)))
    if rest == "discovery/v2.0/keys" and request.method == "GET":
        issuer = issuer_for(https_base(request), tenant.id)
        return _json({"keys": [sim.keys.jwk(issuer)]})
    if rest == "oauth2/v2.0/token":
        if request.method != "POST":
            exc = TokenError(
                400, "invalid_request", 900561, "The endpoint only accepts POST requests."
            )
            return token_error_response(sim, request, exc)
        return token(sim, tenant, request)
    return _json({"error": "not_found"}, 404)


def openid_configuration(sim: Simulator, tenant: Tenant, base: str) -> dict[str, Any]:
    """The discovery document (docs/graph-examples/openid-configuration.response.json, our host)."""
    login = f"{base}/{tenant.id}"
    browser = f"{sim.browser_url or base}/{tenant.id}"
    return {
        "token_endpoint": f"{login}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{login}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer_for(base, tenant.id),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{browser}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{login}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{browser}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],  # fmt: skip
        "kerberos_endpoint": f"{login}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


# -- token endpoint --------------------------------------------------------------------------


def _graph_resource(accepted: str, resource: str) -> bool:
    """Whether `resource` names Microsoft Graph in the cloud graphsim plays (`accepted`, the
    config's `graph_resource`, global by default) or by Graph's app id — never graphsim's own URL,
    which Entra would not know either (docs/graph-contract.md §8.2, §8.4)."""
    return resource.rstrip("/").lower() in (accepted.rstrip("/").lower(), GRAPH_APP_ID)


def _unknown_resource(tenant: Tenant, resource: str) -> TokenError:
    """Entra's answer to a scope on a resource it does not know (AADSTS500011)."""
    return TokenError(
        400,
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant named "
        f"{tenant.display_name}. This can happen if the application has not been installed by "
        "the administrator of the tenant or consented to by any user in the tenant. You might "
        "have sent your authentication request to the wrong tenant.",
    )


def _authenticate_client(
    sim: Simulator, tenant: Tenant, request: Request, base: str
) -> AppRegistration:
    """Who is calling: client_id + secret (body or Basic) or certificate assertion."""
    form = request.form
    basic = request.authorization if request.authorization else None
    client_id = form.get("client_id") or (basic.username if basic else None)
    if not client_id:
        raise TokenError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    app = tenant.apps.get(client_id)
    if app is None:
        raise TokenError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.display_name}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant.",
        )
    secret = form.get("client_secret")
    if basic is not None and basic.password is not None:
        if basic.username != client_id:
            raise TokenError(401, "invalid_client", 7000215, "Invalid client secret provided.")
        secret = basic.password
    assertion = form.get("client_assertion")
    if secret is not None:
        if not app.client_secret or not secrets.compare_digest(secret, app.client_secret):
            raise TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        return app
    if assertion is not None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type: expected "
                "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            )
        _verify_assertion(sim, tenant, app, assertion, base, request)
        return app
    raise TokenError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )


def _verify_assertion(
    sim: Simulator,
    tenant: Tenant,
    app: AppRegistration,
    assertion: str,
    base: str,
    request: Request,
) -> None:
    """A certificate client assertion (docs/graph-contract.md §8.2): signature, thumbprint, aud,
    iss, time."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError as exc:
        raise TokenError(
            400, "invalid_request", 50027, "Invalid JWT token. The token is malformed."
        ) from exc
    if not app.certificate_pem:
        raise TokenError(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. No certificate is registered on "
            f"application '{app.client_id}'.",
        )
    cert = x509.load_pem_x509_certificate(app.certificate_pem.encode())
    known = {
        "x5t": b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 (x5t is SHA-1)
        "x5t#S256": b64url(cert.fingerprint(hashes.SHA256())),
    }
    presented = [name for name in known if name in header]
    # MSAL sends the thumbprint base64url-encoded *with* padding; RFC 7515 says without. Entra
    # accepts both, so compare without padding.
    if not presented or any(str(header[name]).rstrip("=") != known[name] for name in presented):
        raise TokenError(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered "
            f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{header.get('x5t') or header.get('x5t#S256')}']",
        )
    valid_audiences = {
        f"{base}/{tenant.id}/oauth2/v2.0/token",
        f"{base}/{tenant.domain}/oauth2/v2.0/token",
        request.base_url,
    }
    try:
        claims = jwt.decode(
            assertion,
            cert.public_key(),
            algorithms=["RS256", "PS256"],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["aud", "iss", "sub", "exp"],
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(400, "invalid_request", 50027, f"Invalid JWT token. {exc}.") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(
            401, "invalid_client", 700027, "Client assertion failed signature validation."
        ) from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if not any(a.lower() in {v.lower() for v in valid_audiences} for a in audiences):
        raise TokenError(
            401,
            "invalid_client",
            700212,
            f"The audience claim value '{claims['aud']}' is invalid for the client assertion. "
            "The audience must be the token endpoint URL.",
        )
    if claims["iss"] != app.client_id or claims["sub"] != app.client_id:
        raise TokenError(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    now = sim.now().timestamp()
    nbf = claims.get("nbf", claims.get("iat", now))
    if now > claims["exp"] + ASSERTION_SKEW_S or now + ASSERTION_SKEW_S < nbf:
        raise TokenError(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range. Ensure that the nbf and exp "
            "claims are correct.",
        )


def token(sim: Simulator, tenant: Tenant, request: Request) -> Response:
    grant = request.form.get("grant_type", "")
    try:
        if not request.mimetype == "application/x-www-form-urlencoded":
            raise TokenError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        base = https_base(request)
        app = _authenticate_client(sim, tenant, request, base)
        if grant == "client_credentials":
            body = _client_credentials(sim, tenant, app, request, base)
        elif grant == "authorization_code":
            body = _authorization_code(sim, tenant, app, request, base)
        elif grant == "refresh_token":
            body = _refresh_token(sim, tenant, app, request, base)
        else:
            raise TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
    except TokenError as exc:
        with sim.stats.lock:
            sim.stats.token_requests[f"{grant or '-'} {exc.status}"] += 1
        return token_error_response(sim, request, exc)
    with sim.stats.lock:
        sim.stats.token_requests[f"{grant} 200"] += 1
    return _json(body)


def _invalid_scope(scope: str) -> TokenError:
    return TokenError(
        400,
        "invalid_scope",
        70011,
        f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is "
        "not valid.",
    )


def _client_credentials(
    sim: Simulator, tenant: Tenant, app: AppRegistration, request: Request, base: str
) -> dict[str, Any]:
    scopes = request.form.get("scope", "").split()
    # Client credentials take exactly one `{resource}/.default` scope (docs/graph-contract.md §8.2).
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise _invalid_scope(request.form.get("scope", ""))
    resource = scopes[0][: -len("/.default")]
    if not _graph_resource(sim.config.graph_resource, resource):
        raise _unknown_resource(tenant, resource)
    access_token = mint_access_token(
        sim,
        client_id=app.client_id,
        roles=sorted(app.application_permissions),
        client_capabilities=requested_client_capabilities(request.form.get("claims")),
    )
    lifetime = sim.config.token_lifetime_s
    return {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }


def parse_delegated_scopes(
    base: str,
    app: AppRegistration,
    scope: str,
    tenant: Tenant | None = None,
    graph_resource: str = GRAPH_AUDIENCE,
) -> list[str]:
    """The `scp` of a delegated token asked for with `scope` (docs/graph-contract.md §8.3).

    Every Graph permission named must have been consented for the app, otherwise AADSTS65001
    (`consent_required` at authorize). As the v2 endpoint does, the token then carries every
    delegated Graph permission consented for the app, not only those named. A scope on any
    resource but Graph's (graphsim's own URL included) is refused as Entra refuses an unknown
    resource (AADSTS500011).
    """
    granted: set[str] = set()
    for item in scope.split():
        if item in OIDC_SCOPES:
            continue
        if item.endswith("/.default"):
            if not _graph_resource(graph_resource, item[: -len("/.default")]):
                raise _unknown_resource_or_scope(tenant, item, item[: -len("/.default")])
            granted |= app.delegated_permissions
            continue
        name = item
        if "/" in item:
            resource, _, name = item.rpartition("/")
            if not _graph_resource(graph_resource, resource):
                raise _unknown_resource_or_scope(tenant, item, resource)
        if name not in app.delegated_permissions:
            raise TokenError(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}' named '{app.display_name}'. Send an interactive authorization "
                f"request for this user and resource. (scope {item})",
            )
        granted.add(name)
    # Asked for Graph at all → every consented Graph permission (v2 behaviour).
    return sorted(app.delegated_permissions) if granted else []


def _unknown_resource_or_scope(tenant: Tenant | None, item: str, resource: str) -> TokenError:
    if tenant is None:
        return _invalid_scope(item)
    return _unknown_resource(tenant, resource)


def _user_tokens(
    sim: Simulator,
    tenant: Tenant,
    app: AppRegistration,
    user: User,
    scopes: list[str],
    requested_scope: str,
    base: str,
    nonce: str | None,
    auth_contexts: tuple[str, ...] = (),
    client_capabilities: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Access, refresh and id tokens for a signed-in user (auth code and refresh grants)."""
    if not user.account_enabled:
        raise TokenError(400, "invalid_grant", 50057, "The user account is disabled.")
    lifetime = sim.config.token_lifetime_s
    access_token = mint_access_token(
        sim,
        client_id=app.client_id,
        user_id=user.id,
        scopes=scopes,
        auth_contexts=auth_contexts,
        client_capabilities=client_capabilities,
    )
    now = int(sim.now().timestamp())
    id_claims: dict[str, Any] = {
        "aud": app.client_id,
        "iss": issuer_for(base, tenant.id),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "sub": b64url(hashlib.sha256(f"{user.id}:{app.client_id}".encode()).digest()),
        "tid": tenant.id,
        "ver": "2.0",
        "uti": b64url(secrets.token_bytes(16)),
    }
    if nonce:
        id_claims["nonce"] = nonce
    refresh_token = "0.graphsim." + secrets.token_urlsafe(48)
    with sim.auth_state.lock:
        sim.auth_state.refresh_tokens[refresh_token] = RefreshGrant(
            app.client_id, user.id, scopes, requested_scope, auth_contexts
        )
    echoed = " ".join(s for s in requested_scope.split() if s != "offline_access")
    client_info = {"uid": user.id, "utid": tenant.id}
    return {
        "token_type": "Bearer",
        "scope": echoed,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
        "refresh_token": refresh_token,
        "id_token": sim.keys.sign(id_claims),
        "client_info": b64url(json.dumps(client_info).encode()),
    }


def _authorization_code(
    sim: Simulator, tenant: Tenant, app: AppRegistration, request: Request, base: str
) -> dict[str, Any]:
    form = request.form
    code_value = form.get("code", "")
    with sim.auth_state.lock:
        code = sim.auth_state.codes.get(code_value)
        if code is None or code.client_id != app.client_id:
            raise TokenError(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'code' parameter is not valid.",
            )
        if code.used:
            raise TokenError(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, "
                "please retry with a new valid code or use an existing refresh token.",
            )
        # DOC-GAP (docs/graph-contract.md §8.3 does not say): a code is spent by any redemption
        # attempt, successful or not, so a wrong verifier cannot be retried against the same code.
        code.used = True
    if sim.now() >= code.expires:
        raise TokenError(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource.",
        )
    if form.get("redirect_uri") != code.redirect_uri:
        raise TokenError(
            400,
            "invalid_grant",
            50011,
            "The redirect URI specified in the request does not match the redirect URI used to "
            "request the authorization code.",
        )
    verifier = form.get("code_verifier")
    if not verifier:
        raise TokenError(
            400,
            "invalid_grant",
            50148,
            "The code_verifier does not match the code_challenge supplied in the authorization "
            "request for PKCE.",
        )
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    if not secrets.compare_digest(challenge, code.code_challenge):
        raise TokenError(
            400,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization "
            "request.",
        )
    user = tenant.users.get(code.user_id)
    if user is None:
        raise TokenError(400, "invalid_grant", 50034, "The user account does not exist.")
    return _user_tokens(
        sim,
        tenant,
        app,
        user,
        code.scopes,
        code.requested_scope,
        base,
        code.nonce,
        code.auth_contexts,
        tuple(
            sorted(
                set(code.client_capabilities)
                | set(requested_client_capabilities(form.get("claims")))
            )
        ),
    )


def _refresh_token(
    sim: Simulator, tenant: Tenant, app: AppRegistration, request: Request, base: str
) -> dict[str, Any]:
    with sim.auth_state.lock:
        grant = sim.auth_state.refresh_tokens.get(request.form.get("refresh_token", ""))
    if grant is None or grant.client_id != app.client_id:
        raise TokenError(
            400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
        )
    requested = request.form.get("scope") or grant.requested_scope
    scopes = parse_delegated_scopes(base, app, requested, tenant, sim.config.graph_resource)
    user = tenant.users.get(grant.user_id)
    if user is None:
        raise TokenError(400, "invalid_grant", 50034, "The user account does not exist.")
    # MSAL declares the client's capabilities on every token request, refreshes included.
    capabilities = requested_client_capabilities(request.form.get("claims"))
    return _user_tokens(
        sim, tenant, app, user, scopes, requested, base, None, grant.auth_contexts, capabilities
    )


# -- authorize and logout pages --------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/graphsim-static/authorize.css"></head>'
        f'<body><main><p class="brand">graphsim · simulated Microsoft Entra sign-in</p>{body}'
        "</main></body></html>\n"
    )
    response = Response(document, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; form-action 'self' http: https:"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(code: int, message: str, status: int = 400) -> Response:
    return _page(
        "Sign in error",
        f"<h1>Sorry, but we’re having trouble signing you in.</h1>"
        f'<p class="error">AADSTS{code}: {html.escape(message)}</p>',
        status,
    )


def _redirect(uri: str, params: dict[str, str], mode: str = "query") -> Response:
    """Deliver the authorize result: a 302 with a query string, or (form_post) a page whose
    form posts the fields to the redirect URI. Entra auto-submits that form with a script;
    graphsim's pages carry no script, so a person presses "Continue" (tests post it)."""
    if mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        return _page(
            "Continue",
            f'<h1>Signed in</h1><form method="post" action="{html.escape(uri)}">{fields}'
            '<button type="submit">Continue</button></form>',
        )
    separator = "&" if "?" in uri else "?"
    response = Response(status=302)
    response.headers["Location"] = uri + separator + urlencode(params)
    return response


def sign_in_candidates(tenant: Tenant) -> list[tuple[User, list[str]]]:
    """Who the authorize page offers: store managers, role holders, IT-admin-group members."""
    notes: dict[str, list[str]] = {}

    def holders(principal_id: str) -> list[tuple[str, str]]:
        """(user id, how) for a principal: the user, or each member of a role-assignable group."""
        group = tenant.groups.get(principal_id)
        if group is None:
            return [(principal_id, "")]
        return [(m, f" through {group.display_name}") for m in group.member_ids]

    for membership in tenant.scoped_role_memberships.values():
        unit = tenant.administrative_units.get(membership.administrative_unit_id)
        role = tenant.directory_roles.get(membership.role_id)
        if unit and role:
            for user_id, how in holders(membership.user_id):
                notes.setdefault(user_id, []).append(
                    f"{role.display_name} · {unit.display_name}{how}"
                )
    for role in tenant.directory_roles.values():
        for member_id in role.member_ids:
            for user_id, how in holders(member_id):
                notes.setdefault(user_id, []).append(f"{role.display_name} (tenant-wide){how}")
    for eligibility in tenant.role_eligibilities.values():
        name = ROLE_NAMES.get(eligibility.role_template_id, eligibility.role_template_id)
        for user_id, how in holders(eligibility.principal_id):
            notes.setdefault(user_id, []).append(f"{name}: PIM-eligible, not activated{how}")
    from graphsim.demo import DEMO_ADMIN_GROUP_ID

    admin_group = tenant.groups.get(DEMO_ADMIN_GROUP_ID)
    for member_id in admin_group.member_ids if admin_group else []:
        notes.setdefault(member_id, []).append(f"Member of {admin_group.display_name}")
    people = [(tenant.users[uid], n) for uid, n in notes.items() if uid in tenant.users]
    return sorted(people, key=lambda item: item[0].display_name)


def authorize(sim: Simulator, tenant: Tenant, request: Request) -> Response:
    """The authorize endpoint: validate, let a person pick who signs in, redirect with a code."""
    args = request.args
    client_id = args.get("client_id", "")
    app = tenant.apps.get(client_id)
    if app is None:
        return _error_page(
            700016, f"Application with identifier '{client_id}' was not found in the directory."
        )
    redirect_uri = args.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            f"redirect URIs configured for the application '{client_id}'.",
        )
    state = args.get("state")
    mode = args.get("response_mode") or "query"

    def fail(error: str, description: str) -> Response:
        params = {"error": error, "error_description": description}
        if state is not None:
            params["state"] = state
        return _redirect(redirect_uri, params, mode if mode == "form_post" else "query")

    if args.get("response_type") != "code":
        return fail(
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is the only one graphsim supports.",
        )
    if mode not in ("query", "form_post"):
        # docs/graph-contract.md §8.3 lists query|fragment|form_post; a fragment cannot reach a
        # server-side app, so graphsim refuses it loudly rather than half-implementing it.
        return fail("invalid_request", "AADSTS900144: graphsim supports response_mode query or "
                    "form_post.")  # fmt: skip
    # DOC-GAP (docs/graph-contract.md §8.3): Entra makes PKCE optional for confidential web apps.
    # graphsim requires S256 so that a client that stops sending it fails in tests, not in
    # production.
    if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
        return fail(
            "invalid_request",
            "AADSTS501491: Invalid size of Code_Challenge parameter, or code_challenge_method "
            "is not S256.",
        )
    base = (
        https_base(request)
        if request.scheme == "https"
        else (f"https://{urlsplit(request.host_url).netloc}")
    )
    requested_scope = args.get("scope", "openid")
    try:
        scopes = parse_delegated_scopes(
            base, app, requested_scope, tenant, sim.config.graph_resource
        )
    except TokenError as exc:
        error = "consent_required" if exc.aadsts == 65001 else exc.error
        return fail(error, f"AADSTS{exc.aadsts}: {exc.message}")

    hint = args.get("login_hint")
    hinted = tenant.user_by_id_or_upn(hint) if hint else None
    remembered = _sso_user(tenant, request)
    prompt = args.get("prompt")
    chosen: User | None = None
    if request.method == "POST":
        key = request.form.get("user") or request.form.get("login", "").strip()
        chosen = tenant.user_by_id_or_upn(key) if key else None
        if chosen is None:
            return _error_page(50034, "The user account does not exist in this directory.")
    elif prompt == "none":
        # Silent: the browser's signed-in person (or, as graphsim's shortcut, a hinted user).
        chosen = hinted or remembered
        if chosen is None:
            return fail(
                "login_required",
                "AADSTS50058: A silent sign-in request was sent but no user is signed in.",
            )
    elif (
        prompt not in ("select_account", "login")
        and remembered is not None
        and (hinted is None or hinted.id == remembered.id)
    ):
        # Single sign-on, as Entra does: the browser's session signs its person in again without
        # asking. That is why a shared PC needs prompt=select_account and the logout endpoint.
        chosen = remembered
    if chosen is None:
        return _chooser(tenant, request, app, hinted or remembered)
    if not chosen.account_enabled:
        return _error_page(50057, "The user account is disabled.")
    code = secrets.token_urlsafe(48)
    with sim.auth_state.lock:
        sim.auth_state.codes[code] = AuthCode(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            user_id=chosen.id,
            scopes=scopes,
            requested_scope=requested_scope,
            code_challenge=args["code_challenge"],
            nonce=args.get("nonce"),
            expires=sim.now() + dt.timedelta(seconds=sim.config.auth_code_lifetime_s),
            auth_contexts=requested_auth_contexts(args.get("claims")),
            client_capabilities=requested_client_capabilities(args.get("claims")),
        )
    params = {"code": code}
    if state is not None:
        params["state"] = state
    params["session_state"] = str(uuid.uuid5(uuid.NAMESPACE_URL, chosen.id))
    response = _redirect(redirect_uri, params, mode)
    response.set_cookie(_sso_cookie(tenant), chosen.id, httponly=True, samesite="Lax")
    return response


def _sso_cookie(tenant: Tenant) -> str:
    """The browser's session with the tenant: who signed in last (Entra's ESTSAUTH, simplified)."""
    return f"graphsim-sso-{tenant.id}"


def _sso_user(tenant: Tenant, request: Request) -> User | None:
    user_id = request.cookies.get(_sso_cookie(tenant))
    user = tenant.user_by_id_or_upn(user_id) if user_id else None
    return user if user is not None and user.account_enabled else None


def _chooser(tenant: Tenant, request: Request, app: AppRegistration, hinted: User | None):
    action = html.escape(request.full_path if request.query_string else request.path)
    people = sign_in_candidates(tenant)
    if hinted is not None:
        people.sort(key=lambda item: item[0].id != hinted.id)
    buttons = []
    for user, notes in people:
        selected = hinted is not None and user.id == hinted.id
        details = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        buttons.append(
            f'<li class="person{" selected" if selected else ""}">'
            f'<button type="submit" name="user" value="{html.escape(user.id)}"'
            f"{' autofocus' if selected else ''}>"
            f"<strong>{html.escape(user.display_name)}</strong>"
            f"<span>{html.escape(user.user_principal_name)}</span></button>"
            f'<ul class="notes">{details}</ul></li>'
        )
    hint_value = html.escape(hinted.user_principal_name) if hinted else ""
    body = (
        f"<h1>Pick an account</h1><p>to continue to <strong>{html.escape(app.display_name)}"
        f"</strong> in <strong>{html.escape(tenant.display_name)}</strong></p>"
        f'<form method="post" action="{action}"><ul class="people">{"".join(buttons)}</ul></form>'
        f'<form method="post" action="{action}" class="other"><label for="login">Another account '
        f'(user principal name)</label><input id="login" name="login" value="{hint_value}" '
        'autocomplete="username"><button type="submit">Sign in</button></form>'
    )
    return _page("Sign in to your account", body)


def logout(sim: Simulator, tenant: Tenant, request: Request) -> Response:
    """End-session: forget the browser's signed-in person, then redirect to
    post_logout_redirect_uri when it belongs to a registered app."""
    target = request.values.get("post_logout_redirect_uri")
    if target:
        origin = urlsplit(target)
        registered_origins = {
            (urlsplit(uri).scheme, urlsplit(uri).netloc)
            for app in tenant.apps.values()
            for uri in app.redirect_uris
        }
        if (origin.scheme, origin.netloc) not in registered_origins:
            return _error_page(
                50011, "The post_logout_redirect_uri does not belong to a registered application."
            )
        response = Response(status=302)
        response.headers["Location"] = target
    else:
        response = _page(
            "Signed out",
            "<h1>You signed out of your account</h1>"
            "<p>It’s a good idea to close all browser windows.</p>",
        )
    response.delete_cookie(_sso_cookie(tenant), httponly=True, samesite="Lax")
    return response


_CSS = """\
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0;color:#1b1b1b}
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;
box-shadow:0 2px 6px #0003}
.brand{color:#666;font-size:.85rem;margin-top:0}
h1{font-size:1.5rem;font-weight:600}
ul{list-style:none;padding:0;margin:0}
.person{border-top:1px solid #e5e5e5;padding:.5rem 0}
.person button{display:block;width:100%;text-align:left;background:none;border:0;padding:.4rem;
cursor:pointer;font:inherit}
.person button:hover,.person button:focus,.selected button{background:#e8f0fb}
.person span{display:block;color:#555;font-size:.9rem}
.notes li{color:#666;font-size:.8rem;padding-left:.4rem}
.other{margin-top:1.5rem;display:flex;gap:.5rem;flex-wrap:wrap}
.other label{width:100%;font-size:.9rem}
.other input{flex:1;padding:.4rem}
.error{color:#a80000}
"""
