"""pytest plugin: the manager portal's fixtures — stores and workers of the personas, and tasks
run in-process (the default suite has no Celery worker; the integration suite starts real ones)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from graphsim.testing import GraphsimHandle


@dataclass
class StoreWorker:
    au_id: str
    user_id: str
    upn: str
    display_name: str

    def url(self, suffix: str = "") -> str:
        return f"/stores/{self.au_id}/workers/{self.user_id}/{suffix}"


def add_qr(client, worker: StoreWorker, run_tasks, *, pin=None, **extra):
    """Add a QR code + PIN method to `worker` through the worker page's form, as `client` (a
    signed-in manager), running the action's task: a generated PIN, or `pin` if given; `extra`
    overrides form fields (prefix "add-"). Returns the htmx response."""
    expiry = (timezone.localdate() + timedelta(days=200)).isoformat()
    data = {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"}
    if pin is not None:
        data.update({"add-pin_mode": "custom", "add-pin": pin})
    data.update(extra)
    with run_tasks():
        response = client.post(worker.url("qr/"), data, HTTP_HX_REQUEST="true")
    return response


@pytest.fixture
def eager_tasks(settings) -> Iterator[None]:
    """Tasks run inside the caller, as soon as the transaction commits."""
    from portal.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks, eager_tasks):
    """`with run_tasks(): client.post(...)` runs the enqueued tasks before returning."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _stores_of(graphsim: GraphsimHandle, manager_id: str) -> list[str]:
    return sorted(
        m.administrative_unit_id
        for m in graphsim.tenant.scoped_role_memberships.values()
        if m.user_id == manager_id
    )


def _fresh_worker(graphsim: GraphsimHandle, au_id: str, index: int = 0) -> StoreWorker:
    """An enabled, licensed worker of the store with no QR method and no phone."""
    tenant = graphsim.tenant
    found = [
        uid
        for uid in tenant.administrative_units[au_id].member_ids
        if uid not in tenant.qr_methods
        and uid not in tenant.phone_methods
        and tenant.users[uid].account_enabled
        and tenant.users[uid].licensed
        and tenant.users[uid].user_type == "Member"
    ]
    user = tenant.users[found[index]]
    return StoreWorker(au_id, user.id, user.user_principal_name, user.display_name)


@pytest.fixture
def alice_store(directory, alice) -> str:
    return _stores_of(directory, alice.user_id)[0]


@pytest.fixture
def bob_store(directory, bob) -> str:
    return _stores_of(directory, bob.user_id)[0]


@pytest.fixture
def alice_worker(directory, alice_store) -> StoreWorker:
    return _fresh_worker(directory, alice_store)


@pytest.fixture
def bob_worker(directory, bob_store) -> StoreWorker:
    return _fresh_worker(directory, bob_store)


@pytest.fixture
def known_pin() -> str:
    return "73914862"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Throttle counters and the cached QR policy must not leak from one test into the next."""
    from tests.conftest import cache_clear

    cache_clear()
    yield
    cache_clear()
