"""pytest plugin: bulk jobs — fresh workers of graphsim's tenant, CSV builders, running a job
in-process, and the exactly-once check against graphsim's own state."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import provisioning.graph
from graphsim.testing import GraphsimHandle

DATA = Path(__file__).parent / "data" / "bulk"


def fresh_workers(graphsim: GraphsimHandle, n: int | None = None) -> list:
    """Enabled, licensed member workers with no QR method and no phone, in a stable order."""
    tenant = graphsim.tenant
    # Store members Lanyard can read (a hidden-membership AU's members are not synced).
    in_store = {
        uid
        for unit in tenant.administrative_units.values()
        if unit.visibility != "HiddenMembership"
        for uid in unit.member_ids
    }
    found = [
        user
        for uid, user in sorted(tenant.users.items())
        if uid in in_store
        and uid not in tenant.qr_methods
        and uid not in tenant.phone_methods
        and user.account_enabled
        and user.licensed
        and user.user_type == "Member"
    ]
    return found if n is None else found[:n]


def qr_csv(upns: list[str], *, header: str = "userPrincipalName,startDateTime,expireDateTime,pin",
           extra: list[str] | None = None) -> bytes:  # fmt: skip
    lines = [header] + [f"{upn},,," for upn in upns] + list(extra or [])
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


@pytest.fixture
def bulk_graph(portal_graph: GraphsimHandle, settings, db) -> GraphsimHandle:
    """graphsim with a write budget high enough for fast tests (the budget has its own tests)."""
    settings.GRAPH_WRITES_PER_SECOND = 2000
    settings.BULK_BACKOFF_MAX_SECONDS = 0.2
    portal_graph.sim.config.write_budget_per_s = 2000.0
    # Bulk jobs write only to members of synced stores (docs/architecture.md §5): sync first, as
    # `make run` and the hourly task do, then start from a fresh client (its own request counts).
    from provisioning.directory import directory_sync

    directory_sync(client=provisioning.graph.get_app_client())
    provisioning.graph._singletons.clear()
    from django.core.cache import cache

    cache.delete("lanyard:qr-policy")
    return portal_graph


def run_job(job_id: int, *, timeout: float = 120) -> None:
    """Work a job in this process until no row is pending or running (the sweeper included)."""
    from provisioning.bulk import engine
    from provisioning.models import BulkJobRow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait = engine.job_work(job_id=job_id, budget_s=timeout)
        engine.jobs_sweep(enqueue=lambda _job_id: None)
        if (
            wait is None
            and not BulkJobRow.objects.filter(
                job_id=job_id, status__in=["pending", "running"]
            ).exists()
        ):
            engine.job_finish_if_done(job_id=job_id)
            return
        time.sleep(min(wait or 0.05, 1.0))
    raise AssertionError(f"bulk job {job_id} did not finish within {timeout} s")


def assert_qr_exactly_once(graphsim: GraphsimHandle, job) -> dict[str, int]:
    """Every succeeded row's worker has exactly one method, created once, whose current QR code
    and PIN are the ones in Lanyard's vault; no row's worker is left with a method Lanyard
    created but holds no secrets for. Returns the job's counts."""
    from provisioning import vault
    from provisioning.bulk import selectors
    from provisioning.models import VaultSecret

    tenant = graphsim.tenant
    creations = graphsim.sim.stats.snapshot()["qr_method_creations"]
    for row in job.rows.all():
        method = tenant.qr_methods.get(row.user_id)
        made = creations.get(row.user_id, 0)
        assert made <= 1, f"{row.upn}: {made} methods created"
        if row.status == "succeeded":
            assert method is not None, f"{row.upn}: succeeded but no method"
            assert made == 1, f"{row.upn}: succeeded but created {made} times"
            payload = vault.secret_read(
                secret_id=row.payload_secret_id,
                kind=VaultSecret.Kind.QR_PAYLOAD,
                owner_id=row.user_id,
            )
            pin = vault.secret_read(secret_id=row.pin_secret_id, kind=VaultSecret.Kind.PIN,
                                    owner_id=row.user_id)  # fmt: skip
            assert payload.split("|")[2] == method.standard.id, f"{row.upn}: stale QR payload"
            assert pin == method.pin.code, f"{row.upn}: stale PIN"
        elif made:
            raise AssertionError(f"{row.upn}: a method was created but the row is {row.status}")
    counts = selectors.job_counts(job)
    succeeded = sum(1 for r in job.rows.all() if creations.get(r.user_id))
    assert counts["succeeded"] == succeeded
    return counts


@pytest.fixture
def make_qr_job(bulk_graph: GraphsimHandle) -> Callable:
    """Preview and confirm a QR job for `upns` (as the IT admin persona or nobody)."""
    from provisioning.bulk import csvfile, jobs, preview

    def make(upns: list[str], *, user=None, confirm: bool = True):
        rows = csvfile.read_rows(qr_csv(upns), kind="qr")
        inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
        job = preview.bulk_job_preview(
            kind="qr", source="csv", source_label="test.csv", inputs=inputs, created_by=user
        )
        if confirm:
            job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash,
                                        confirmed_by=user)  # fmt: skip
        return job

    return make


def payload_code_id(payload: str) -> str:
    return payload.split("|")[2]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def qr_policy_unreadable(portal_graph: GraphsimHandle) -> GraphsimHandle:
    """The app may not read the QR policy (its policy permissions are not granted): Graph 403."""
    from django.core.cache import cache

    from graphsim.demo import DEMO_CLIENT_ID

    app = portal_graph.tenant.apps[DEMO_CLIENT_ID]
    app.application_permissions -= {
        "Policy.Read.All",
        "Policy.Read.AuthenticationMethod",
        "Policy.ReadWrite.AuthenticationMethod",
    }
    provisioning.graph._singletons.clear()  # a new app token, without the permissions
    cache.delete("lanyard:qr-policy")
    return portal_graph
