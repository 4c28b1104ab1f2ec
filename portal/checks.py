"""System checks for Lanyard's configuration (docs/architecture.md §4).

Misconfiguration shows up here, naming the variable and how to fix it, when any management command
or the web server starts — never as a stack trace at the first request.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from provisioning.graph.config import (
    CLOUDS,
    GRAPH_APP_ID,
    GUID_PATTERN,
    cloud_of_authority,
    cloud_of_graph,
    graph_resource_resolve,
)

FERNET_HINT = (
    'Generate a key with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


@register(Tags.security)
def check_environment_values(app_configs, **kwargs) -> list[Error]:
    """Values that could not be read at all (not a number, not a boolean, unreadable file)."""
    return [
        Error(
            f"{name}: {problem}.",
            hint=f"Fix {name} in the environment or .env (see .env.example).",
            id="lanyard.E001",
        )
        for name, problem in settings.CONFIG_PROBLEMS
    ]


@register(Tags.security)
def check_secrets(app_configs, **kwargs) -> list[Error]:
    errors = []
    if settings.SECRET_KEY in ("", settings.SECRET_KEY_MISSING):
        errors.append(
            Error(
                "SECRET_KEY is not set.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random string.",
                id="lanyard.E002",
            )
        )
    if not settings.VAULT_KEYS:
        errors.append(
            Error(
                "VAULT_KEYS is not set: PINs, QR payloads and token caches cannot be encrypted.",
                hint=f"Set VAULT_KEYS to one or more comma-separated Fernet keys. {FERNET_HINT}",
                id="lanyard.E003",
            )
        )
    for position, key in enumerate(settings.VAULT_KEYS, start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            errors.append(
                Error(
                    f"VAULT_KEYS entry {position} is not a valid Fernet key.",
                    hint=f"Each key is 32 url-safe base64-encoded bytes. {FERNET_HINT}",
                    id="lanyard.E003",
                )
            )
    return errors


@register(Tags.security)
def check_production_guard(app_configs, **kwargs) -> list[Error]:
    """Outside demo mode (LANYARD_DEMO=true), refuse what only a demo may do."""
    if settings.DEMO_MODE:
        return []
    errors = []
    if not settings.ENTRA_TENANT_ID:
        errors.append(
            Error(
                "ENTRA_TENANT_ID is not set.",
                hint="Set it to your Entra tenant id, or set LANYARD_DEMO=true to run the demo "
                "against graphsim.",
                id="lanyard.E009",
            )
        )
    if settings.DEBUG:
        errors.append(
            Error(
                "DEBUG is true outside demo mode: error pages would show code and settings.",
                hint="Set DEBUG=false (the default).",
                id="lanyard.E010",
            )
        )
    if settings.SECRET_KEY == settings.DEMO_SECRET_KEY:
        errors.append(
            Error(
                "SECRET_KEY is the published demo key.",
                hint="Set SECRET_KEY to a long random string of your own.",
                id="lanyard.E011",
            )
        )
    if settings.DEMO_VAULT_KEY in settings.VAULT_KEYS:
        errors.append(
            Error(
                "VAULT_KEYS holds the published demo key.",
                hint=f"Set VAULT_KEYS to keys of your own. {FERNET_HINT}",
                id="lanyard.E012",
            )
        )
    if not settings.HTTPS and not settings.HTTPS_ALLOW_OFF:
        errors.append(
            Error(
                "HTTPS is off outside demo mode: cookies would not be Secure and there would be "
                "no HTTPS redirect or HSTS.",
                hint="Serve Lanyard over HTTPS behind your proxy (HTTPS=true, the default), or "
                "set HTTPS_ALLOW_OFF=true if that is really intended.",
                id="lanyard.E013",
            )
        )
    return errors


@register(Tags.security)
def check_entra(app_configs, **kwargs) -> list[Error | Warning]:
    if settings.DEMO_MODE:
        return []
    errors: list[Error | Warning] = []
    if not settings.ENTRA_CLIENT_ID:
        errors.append(
            Error(
                "ENTRA_CLIENT_ID is not set.",
                hint="Set it to the Application (client) ID of Lanyard's Entra app registration.",
                id="lanyard.E004",
            )
        )
    if not settings.ENTRA_CLIENT_SECRET and not settings.ENTRA_CLIENT_CERTIFICATE:
        errors.append(
            Error(
                "Neither ENTRA_CLIENT_SECRET nor ENTRA_CLIENT_CERTIFICATE is set.",
                hint="Set ENTRA_CLIENT_CERTIFICATE to a PEM file holding the private key and "
                "certificate registered on the app (preferred), or ENTRA_CLIENT_SECRET.",
                id="lanyard.E005",
            )
        )
    elif settings.ENTRA_CLIENT_SECRET and settings.ENTRA_CLIENT_CERTIFICATE:
        errors.append(
            Warning(
                "Both ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE are set; "
                "the certificate is used.",
                hint="Remove ENTRA_CLIENT_SECRET to keep one credential.",
                id="lanyard.W005",
            )
        )
    if settings.ENTRA_CLIENT_CERTIFICATE:
        problem = certificate_problem(Path(settings.ENTRA_CLIENT_CERTIFICATE))
        if problem:
            errors.append(
                Error(
                    f"ENTRA_CLIENT_CERTIFICATE: {problem}.",
                    hint="Give the path of one PEM file with the private key (unencrypted) and "
                    "the certificate uploaded to the app registration.",
                    id="lanyard.E006",
                )
            )
    if not settings.LANYARD_ADMIN_GROUP_ID:
        errors.append(
            Error(
                "LANYARD_ADMIN_GROUP_ID is not set: nobody could be an IT admin.",
                hint="Set it to the object id of the Entra group whose members are IT admins.",
                id="lanyard.E008",
            )
        )
    return errors


@register(Tags.security)
def check_endpoints(app_configs, **kwargs) -> list[Error]:
    errors = []
    for name in ("ENTRA_AUTHORITY_HOST", "GRAPH_ENDPOINT"):
        url = urlparse(getattr(settings, name))
        if url.scheme != "https" or not url.netloc or url.path not in ("", "/"):
            errors.append(
                Error(
                    f"{name} must be an https:// URL with no path, "
                    f"not {getattr(settings, name)!r}.",
                    hint="For example https://login.microsoftonline.com and "
                    "https://graph.microsoft.com (or your national cloud's hosts).",
                    id="lanyard.E007",
                )
            )
    return errors


RESOURCE_HINT = (
    "Set GRAPH_RESOURCE to your cloud's Graph resource: https://graph.microsoft.com (global, "
    "GCC), https://graph.microsoft.us (US Government L4, GCC High), https://dod-graph.microsoft.us "
    "(US Government L5, DoD) or https://microsoftgraph.chinacloudapi.cn (China, 21Vianet)."
)


@register(Tags.security)
def check_cloud(app_configs, **kwargs) -> list[Error | Warning]:
    """One Graph resource for app and delegated tokens, in the same cloud as the sign-in host and
    the Graph endpoint (docs/graph-contract.md §8.4)."""
    authority, endpoint = settings.ENTRA_AUTHORITY_HOST, settings.GRAPH_ENDPOINT
    configured = settings.GRAPH_RESOURCE
    resource = graph_resource_resolve(
        authority_host=authority, graph_endpoint=endpoint, configured=configured
    )
    if resource is None:
        return [
            Error(
                f"Lanyard cannot tell which Microsoft cloud ENTRA_AUTHORITY_HOST {authority!r} "
                f"and GRAPH_ENDPOINT {endpoint!r} belong to, so not which Graph resource to ask "
                "tokens for.",
                hint=f"{RESOURCE_HINT} Needed when Entra and Graph are reached through a proxy.",
                id="lanyard.E020",
            )
        ]
    problems: list[Error | Warning] = []
    known_resources = {f"https://{host}" for cloud in CLOUDS for host in cloud.graph_hosts}
    if configured and resource.lower() not in known_resources | {GRAPH_APP_ID}:
        problems.append(
            Warning(
                f"GRAPH_RESOURCE {configured!r} is not a Microsoft Graph resource identifier; "
                "Entra will refuse its scopes (AADSTS500011).",
                hint=f"{RESOURCE_HINT} A proxy's URL belongs in GRAPH_ENDPOINT, not here.",
                id="lanyard.W020",
            )
        )
    clouds = {
        "ENTRA_AUTHORITY_HOST": cloud_of_authority(authority),
        "GRAPH_ENDPOINT": cloud_of_graph(endpoint),
        "GRAPH_RESOURCE": cloud_of_graph(resource),
    }
    named = {name: cloud for name, cloud in clouds.items() if cloud is not None}
    if len({cloud.name for cloud in named.values()}) > 1:
        described = "; ".join(f"{name} is in the {c.name} cloud" for name, c in named.items())
        problems.append(
            Error(
                f"The Entra and Graph settings point at different Microsoft clouds: {described}. "
                "Tokens do not cross clouds, so every Graph call would be refused.",
                hint="Use the sign-in and Graph hosts of one cloud (docs/graph-contract.md §8.4). "
                + RESOURCE_HINT,
                id="lanyard.E021",
            )
        )
    cloud = clouds["GRAPH_RESOURCE"]
    if cloud is not None and not cloud.qr_methods_available:
        problems.append(
            Warning(
                f"Lanyard is configured for the {cloud.name} cloud, where Microsoft Graph does "
                "not offer the QR code + PIN authentication method or its policy (global cloud "
                "only). QR badges, PIN resets and QR bulk jobs will fail; phone numbers work.",
                hint="Use Lanyard for phone methods only in this cloud, or run it against a "
                "global-cloud tenant (docs/graph-contract.md §0).",
                id="lanyard.W021",
            )
        )
    return problems


@register(Tags.security)
def check_tenant(app_configs, **kwargs) -> list[Error]:
    """ENTRA_TENANT_ID: the tenant's GUID, or one of its verified domains (resolved to the GUID at
    the first sign-in, provisioning/graph/tokens.py) — never a multi-tenant alias."""
    tenant = settings.ENTRA_TENANT_ID
    if settings.DEMO_MODE or GUID_PATTERN.match(tenant):
        return []
    if tenant.lower() in ("common", "organizations", "consumers") or not re.fullmatch(
        r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", tenant
    ):
        return [
            Error(
                f"ENTRA_TENANT_ID {tenant!r} is neither a tenant ID nor a domain name.",
                hint="Set ENTRA_TENANT_ID to the Directory (tenant) ID, the GUID on the Overview "
                "page of Lanyard's app registration (or one of the tenant's verified domains, "
                "such as contoso.onmicrosoft.com).",
                id="lanyard.E022",
            )
        ]
    return []


@register(Tags.security)
def check_bulk_engine(app_configs, **kwargs) -> list[Error]:
    """A live task renews its rows' leases every heartbeat: a lease shorter than three heartbeats
    would run out under a live task on a busy machine (provisioning/bulk/engine.py step 1)."""
    lease, beat = settings.BULK_LEASE_SECONDS, settings.BULK_HEARTBEAT_SECONDS
    if lease >= 3 * beat:
        return []
    return [
        Error(
            f"BULK_LEASE_SECONDS ({lease}) is shorter than three BULK_HEARTBEAT_SECONDS ({beat}).",
            hint="Raise BULK_LEASE_SECONDS to at least three heartbeats (defaults: 15 and 1).",
            id="lanyard.E030",
        )
    ]


@register(Tags.security, deploy=True)
def check_not_demo(app_configs, **kwargs) -> list[Warning]:
    if not settings.DEMO_MODE:
        return []
    return [
        Warning(
            "LANYARD_DEMO is true, so Lanyard runs in demo mode against graphsim.",
            hint="Unset LANYARD_DEMO and set ENTRA_TENANT_ID and the other ENTRA_* variables "
            "for production.",
            id="lanyard.W001",
        )
    ]


@register(Tags.database)
def check_admin_group_role_assignable(app_configs, databases=None, **kwargs) -> list[Warning]:
    """The IT admin group should be role-assignable (docs/architecture.md §5).

    Known only from the last `sync_directory` (a system check never calls Graph), so this is a
    database check: `manage.py migrate` and `manage.py check --database default` run it.
    """
    if not databases:
        return []
    from django.db import DatabaseError

    from provisioning.privileged import admin_group_warning

    try:
        warning = admin_group_warning()
    except DatabaseError:  # not migrated yet
        return []
    if not warning:
        return []
    return [
        Warning(
            warning,
            hint="Only a role-assignable group is protected from group administrators; see "
            "README.md, “Registering the Entra app”.",
            id="lanyard.W030",
        )
    ]


def certificate_problem(path: Path) -> str | None:
    """Why the PEM at `path` cannot serve as the client credential, or None if it can."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror})"
    try:
        load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return f"{path} holds no unencrypted PEM private key"
    try:
        x509.load_pem_x509_certificate(data)
    except ValueError:
        return f"{path} holds no PEM certificate"
    return None
