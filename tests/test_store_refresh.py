"""A store's QR and phone columns are refreshed through $batch (issue 12, item 3)."""

from __future__ import annotations

import math

import pytest
from django.utils import timezone

import provisioning.graph
from provisioning.models import AdministrativeUnit, DirectoryUser, WorkerMethodState
from provisioning.phone_numbers import phone_number_mask
from provisioning.worker_state import worker_states_refresh_for_unit

pytestmark = pytest.mark.django_db


def _largest_store() -> AdministrativeUnit:
    units = AdministrativeUnit.objects.all()
    return max(units, key=lambda u: DirectoryUser.objects.filter(
        memberships__administrative_unit=u).count())  # fmt: skip


def _members(unit: AdministrativeUnit) -> list[str]:
    return list(
        DirectoryUser.objects.filter(memberships__administrative_unit=unit).values_list(
            "id", flat=True
        )
    )


def _assert_states_match_graph(graphsim, user_ids: list[str]) -> None:
    tenant = graphsim.tenant
    states = {s.user_id: s for s in WorkerMethodState.objects.filter(user_id__in=user_ids)}
    assert set(states) == set(user_ids)
    for user_id in user_ids:
        state = states[user_id]
        method = tenant.qr_methods.get(user_id)
        assert state.has_qr_method is (method is not None)
        if method is not None and method.standard is not None:
            assert state.standard_expires == method.standard.expire_date_time
        else:
            assert state.standard_expires is None
        phones = tenant.phone_methods.get(user_id, {})
        mobile = phones.get("mobile")
        assert state.mobile_phone == (phone_number_mask(mobile.phone_number) if mobile else "")
        assert state.sms_sign_in_state == (mobile.sms_sign_in_state if mobile else "")
        assert state.refresh_error == ""


def _with_methods(graphsim, user_ids: list[str]) -> None:
    """Give a third of the store a QR method and a third a mobile phone, as Entra would hold."""
    from graphsim.model import PhoneMethod

    tenant = graphsim.tenant
    template = next(iter(tenant.qr_methods.values()), None)
    for index, user_id in enumerate(user_ids):
        if index % 3 == 0 and template is not None:
            tenant.qr_methods.setdefault(user_id, template)
        if index % 3 == 1:
            tenant.phone_methods.setdefault(user_id, {})["mobile"] = PhoneMethod(
                "mobile", f"+1 2065550{index:03d}"
            )


def test_store_refresh_sends_two_reads_per_worker_twenty_to_a_batch(bulk_graph):
    unit = _largest_store()
    user_ids = _members(unit)
    _with_methods(bulk_graph, user_ids)
    before = bulk_graph.sim.stats.snapshot()

    counts = worker_states_refresh_for_unit(client=provisioning.graph.get_app_client(), unit=unit)

    after = bulk_graph.sim.stats.snapshot()
    batches = math.ceil(2 * len(user_ids) / 20)
    assert counts == {"refreshed": len(user_ids), "failed": 0}
    assert after["batches"] - before["batches"] == batches
    sent = sum(after["requests"].values()) - sum(before["requests"].values())
    # graphsim counts each $batch item as a request (and each $batch in "batches"): the two
    # reads per worker, and no request outside those batches.
    assert sent == 2 * len(user_ids)
    _assert_states_match_graph(bulk_graph, user_ids)


def test_store_refresh_resends_reads_graph_failed_transiently(bulk_graph):
    unit = _largest_store()
    user_ids = _members(unit)
    _with_methods(bulk_graph, user_ids)
    bulk_graph.sim.config.error_5xx_rate = 0.3

    counts = worker_states_refresh_for_unit(client=provisioning.graph.get_app_client(), unit=unit)

    assert counts == {"refreshed": len(user_ids), "failed": 0}
    assert bulk_graph.sim.stats.snapshot()["faults"].get("503", 0) > 0
    _assert_states_match_graph(bulk_graph, user_ids)


def test_a_worker_gone_from_entra_is_marked_failed_and_the_rest_refreshed(bulk_graph):
    unit = _largest_store()
    user_ids = _members(unit)
    gone = user_ids[0]
    WorkerMethodState.objects.create(user_id=gone, has_qr_method=True, refreshed_at=timezone.now())
    del bulk_graph.tenant.users[gone]
    bulk_graph.tenant.qr_methods.pop(gone, None)

    counts = worker_states_refresh_for_unit(client=provisioning.graph.get_app_client(), unit=unit)

    assert counts == {"refreshed": len(user_ids) - 1, "failed": 1}
    assert WorkerMethodState.objects.get(user_id=gone).refresh_error != ""
    _assert_states_match_graph(bulk_graph, user_ids[1:])
