"""System checks for Lanyard's configuration (docs/architecture.md §4).

Misconfiguration shows up here, naming the variable and how to fix it, when any management command
or the web server starts — never as a stack trace at the first request.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

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


@register(Tags.security, deploy=True)
def check_not_demo(app_configs, **kwargs) -> list[Warning]:
    if not settings.DEMO_MODE:
        return []
    return [
        Warning(
            "ENTRA_TENANT_ID is not set, so Lanyard runs in demo mode against graphsim.",
            hint="Set ENTRA_TENANT_ID and the other ENTRA_* variables for production.",
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
            id="lanyard.W020",
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
