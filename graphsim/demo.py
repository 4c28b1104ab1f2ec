"""Fixed identifiers of the demo tenant, shared by graphsim and the portal's demo-mode settings.

These are demo values, not secrets: the demo tenant exists only inside graphsim. The portal uses
them when ENTRA_TENANT_ID is unset (docs/architecture.md §3), so production and demo run the same
code path with different configuration.
"""

from __future__ import annotations

DEMO_TENANT_ID = "8f4b2c1e-6a7d-4e3f-9b2a-1c5d7e9f0a3b"
DEMO_TENANT_DOMAIN = "lanyard-demo.onmicrosoft.com"
DEMO_TENANT_NAME = "Lanyard Demo Retail"

# The portal's app registration in the demo tenant.
DEMO_CLIENT_ID = "5e1d9c3a-2b7f-4a6e-8d0c-9f3b1a7e5c24"
DEMO_CLIENT_SECRET = "demo-client-secret-not-for-production"

# Entra group whose members are Lanyard IT admins (LANYARD_ADMIN_GROUP_ID in demo mode).
DEMO_ADMIN_GROUP_ID = "a7c3e9f1-4d2b-4f8a-b6e0-3c9d1f5a7b82"

# Where `make run` serves graphsim's HTTPS API and token endpoint unless GRAPHSIM_PORT says
# otherwise (scripts/run-demo; its plain-HTTP sign-in page is on GRAPHSIM_BROWSER_PORT, default
# 8444, so a person's browser needs no demo CA). The portal's demo settings read the same variable.
DEMO_GRAPHSIM_PORT = 8443
# graphsim's authority and Graph are on 127.0.0.1, so the demo names the Graph resource
# explicitly: the global one, the only identifier graphsim issues tokens for
# (docs/graph-contract.md §8.4).
DEMO_GRAPH_RESOURCE = "https://graph.microsoft.com"


def demo_graphsim_url(port: int = DEMO_GRAPHSIM_PORT) -> str:
    """graphsim's HTTPS base URL (API, authority and token endpoint) when it listens on `port`."""
    return f"https://127.0.0.1:{port}"
