"""pytest plugin: the portal wired to the test session's graphsim, and named personas.

Personas of graphsim's demo tenant (docs/conventions.md "Tests"):
- alice: a store manager (AU-scoped Authentication Administrator) of two stores;
- bob: the manager of another store;
- charlie: the IT admin (member of the Lanyard admin group).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

import provisioning.graph
from graphsim.demo import DEMO_CLIENT_ID
from graphsim.testing import GraphsimHandle
from portal.models import User

TEST_REDIRECT_URI = "http://testserver/auth/callback"


def reset_graph_clients() -> None:
    """Forget the per-process Graph clients so the next call reads the current settings."""
    provisioning.graph._singletons.clear()


@pytest.fixture
def portal_graph(graphsim: GraphsimHandle, settings, tmp_path) -> Iterator[GraphsimHandle]:
    """graphsim as the portal's Entra and Graph (the demo configuration, on the test port)."""
    settings.ENTRA_AUTHORITY_HOST = graphsim.base_url
    settings.GRAPH_ENDPOINT = graphsim.base_url
    settings.GRAPH_RATE_LIMITER_URL = f"file://{tmp_path / 'rate-limit'}"
    settings.SECURE_CSP = {
        **settings.SECURE_CSP,
        "form-action": ["'self'", graphsim.base_url],
    }
    graphsim.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(TEST_REDIRECT_URI)
    reset_graph_clients()
    yield graphsim
    reset_graph_clients()


@pytest.fixture
def directory(portal_graph: GraphsimHandle, db) -> GraphsimHandle:
    """The directory cache filled from graphsim's demo tenant, as `sync_directory` does."""
    from provisioning.directory import directory_sync
    from provisioning.graph import get_app_client

    directory_sync(client=get_app_client())
    return portal_graph


@dataclass
class Persona:
    user_id: str  # Entra object id
    upn: str
    display_name: str


def _persona(graphsim: GraphsimHandle, user_id: str) -> Persona:
    user = graphsim.tenant.users[user_id]
    return Persona(user.id, user.user_principal_name, user.display_name)


@pytest.fixture
def alice(portal_graph: GraphsimHandle) -> Persona:
    return _persona(portal_graph, portal_graph.people.managers[0])


@pytest.fixture
def bob(portal_graph: GraphsimHandle) -> Persona:
    return _persona(portal_graph, portal_graph.people.managers[1])


@pytest.fixture
def charlie(portal_graph: GraphsimHandle) -> Persona:
    return _persona(portal_graph, portal_graph.people.it_admin)


def sign_in(client: Client, persona: Persona) -> User:
    """The real sign-in: portal → graphsim's authorize page (pick the persona) → callback."""
    start = client.get("/auth/sign-in")
    assert start.status_code == 302, start
    picked = requests.post(start["Location"], data={"user": persona.user_id}, allow_redirects=False)
    assert picked.status_code == 302, picked.text
    callback = urlsplit(picked.headers["Location"])
    response = client.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 302, response.content.decode()
    return User.objects.get(entra_object_id=persona.user_id)


@pytest.fixture
def alice_client(client: Client, alice: Persona, directory, db) -> Client:
    sign_in(client, alice)
    return client
