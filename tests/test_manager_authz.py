"""docs/architecture.md §5: another store's worker is a 404 at every URL of the portal, htmx or not.

The test walks every URL pattern of the `manager` and `portal` namespaces that names a store,
worker or action, and requests it as bob (the manager of another store) against alice's store,
worker and action: GET and POST, plain and htmx. Each answer is 404, or 405 for a wrong method,
and nothing changes in Entra or in the database.
"""

from __future__ import annotations

from datetime import timedelta

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from provisioning.models import BulkJob, Operation
from tests.fixtures_portal import sign_in

HTMX = {"HTTP_HX_REQUEST": "true"}
NAMESPACES = {"manager", "portal"}
OBJECT_KWARGS = {"au_id", "user_id", "op_id", "job_id"}


def _patterns(resolver=None, namespace=None):
    """(namespaced name, route kwargs) of every named pattern, through includes."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, entry.namespace or namespace)
        elif isinstance(entry, URLPattern) and entry.name and namespace in NAMESPACES:
            yield f"{namespace}:{entry.name}", set(entry.pattern.converters)


def test_every_portal_url_is_a_404_for_another_stores_manager(
    client, alice_client, alice_worker, bob, bob_worker, run_tasks, directory
):
    # Alice gives her worker a QR code + PIN: the action bob will try to reach.
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-pin_mode": "generated",
             "add-expiry": (timezone.localdate() + timedelta(days=30)).isoformat()},
            **HTMX,
        )  # fmt: skip
    op = Operation.objects.get(worker_id=alice_worker.user_id)
    assert op.status == "succeeded"
    before = directory.tenant.qr_methods[alice_worker.user_id]
    # ... and starts a job for several workers from her store page (not run: bob only tries it).
    alice_client.post(
        f"/stores/{alice_worker.au_id}/jobs/",
        {"worker": [alice_worker.user_id], "action": "renew"},
        **HTMX,
    )
    job = BulkJob.objects.get()
    alice_client.logout()

    sign_in(client, bob)
    targets = [
        # alice's store, worker and action
        {
            "au_id": alice_worker.au_id,
            "user_id": alice_worker.user_id,
            "op_id": op.id,
            "job_id": job.pk,
        },
        # bob's own store, with alice's worker, action and job inside it
        {
            "au_id": bob_worker.au_id,
            "user_id": alice_worker.user_id,
            "op_id": op.id,
            "job_id": job.pk,
        },
        # bob's own store and worker, with alice's action and job
        {
            "au_id": bob_worker.au_id,
            "user_id": bob_worker.user_id,
            "op_id": op.id,
            "job_id": job.pk,
        },
    ]
    walked = []
    for name, converters in _patterns():
        if not converters & OBJECT_KWARGS:
            continue
        for target in targets:
            kwargs = {key: target[key] for key in converters if key in target}
            if "phone_type" in converters:
                kwargs["phone_type"] = "mobile"
            if kwargs.keys() == {"au_id"} and kwargs["au_id"] == bob_worker.au_id:
                continue  # bob's own store page (and its "start a job") is his to use
            if "op_id" not in converters and kwargs.get("user_id") == bob_worker.user_id:
                continue  # bob's own worker is his to manage
            url = reverse(name, kwargs=kwargs)
            statuses = set()
            for method in ("get", "post"):
                for extra in ({}, HTMX):
                    response = getattr(client, method)(url, **extra)
                    assert response.status_code in (404, 405), (name, url, method, extra)
                    assert "Traceback" not in response.content.decode(errors="replace")
                    statuses.add(response.status_code)
            assert 404 in statuses, (name, url)
            walked.append(name)
    assert len(set(walked)) >= 20, sorted(set(walked))
    # Nothing happened: no action by bob, alice's worker untouched in Entra.
    assert not Operation.objects.exclude(pk=op.pk).exists()
    assert not BulkJob.objects.exclude(pk=job.pk).exists()
    assert job.rows.get().status == "pending"
    walked_jobs = {"manager:store-job", "manager:store-job-rerun", "manager:store-job-pin-slips"}
    assert walked_jobs <= set(walked)
    assert directory.tenant.qr_methods[alice_worker.user_id] is before
    assert alice_worker.user_id not in directory.tenant.phone_methods


def test_signed_out_every_url_goes_to_sign_in(client, alice_worker, directory):
    for name, converters in _patterns():
        if not converters & OBJECT_KWARGS:
            continue
        kwargs = {
            "au_id": alice_worker.au_id,
            "user_id": alice_worker.user_id,
            "op_id": 1,
            "job_id": 1,
        }
        kwargs = {key: kwargs[key] for key in converters if key in kwargs}
        if "phone_type" in converters:
            kwargs["phone_type"] = "mobile"
        url = reverse(name, kwargs=kwargs)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (302, 405), (name, method)
            if response.status_code == 302:
                assert response["Location"].startswith("/auth/sign-in")
