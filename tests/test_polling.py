"""Progress fragments poll fast while an action is young, then back off (issue 12, item 4)."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine
from django.utils import timezone

from portal.templatetags.polling import operation_poll_seconds
from provisioning.models import Operation

HTMX = {"HTTP_HX_REQUEST": "true"}


def _trigger(html: str) -> str:
    found = re.search(r'id="op-\d+"[^>]*hx-trigger="([^"]*)"', html)
    assert found, html
    return found.group(1)


def _pending_add(client, worker) -> tuple[Operation, str]:
    expiry = (timezone.localdate() + timedelta(days=30)).isoformat()
    response = client.post(
        worker.url("qr/"),
        {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
        **HTMX,
    )
    return Operation.objects.get(), response.content.decode()


def test_the_delay_grows_with_the_actions_age(settings):
    settings.OPERATION_POLL_FIXED = False
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        now = timezone.now()
        delays = [operation_poll_seconds(now - timedelta(seconds=s)) for s in (0, 2.9, 3, 10, 60)]
    assert delays == [0.15, 0.15, 0.3, 0.6, 1.0]


def test_the_fixed_poll_is_once_a_second_whatever_the_age(settings):
    settings.OPERATION_POLL_FIXED = True
    assert operation_poll_seconds(timezone.now()) == 1.0


def test_an_action_polls_at_150ms_then_backs_off_to_a_second_and_stops_when_done(
    alice_client, alice_worker, eager_tasks, settings
):
    settings.OPERATION_POLL_FIXED = False
    with time_machine.travel(timezone.now(), tick=False) as clock:
        # Without running the on-commit callbacks the task never starts: the action stays pending.
        op, started = _pending_add(alice_client, alice_worker)
        assert _trigger(started) == "load delay:150ms, poll-retry delay:1s"
        status_url = alice_worker.url(f"operations/{op.id}/")

        clock.shift(5)
        assert _trigger(alice_client.get(status_url, **HTMX).content.decode()).startswith(
            "load delay:300ms"
        )
        clock.shift(60)
        young_no_more = alice_client.get(status_url, **HTMX)
        assert _trigger(young_no_more.content.decode()).startswith("load delay:1000ms")
        # The worker page lists the unfinished action with the same schedule.
        page = alice_client.get(alice_worker.url()).content.decode()
        assert _trigger(page).startswith("load delay:1000ms")

    from provisioning.tasks import operation_run

    operation_run.apply(args=[op.id])
    done = alice_client.get(status_url, **HTMX)
    assert done.status_code == 286  # htmx: stop polling
    assert "hx-trigger" not in done.content.decode() and "data-poll" not in done.content.decode()


def test_the_old_fixed_poll_can_be_restored(alice_client, alice_worker, eager_tasks, settings):
    settings.OPERATION_POLL_FIXED = True
    _, started = _pending_add(alice_client, alice_worker)
    assert _trigger(started) == "load delay:1000ms, poll-retry delay:1s"


def test_a_kiosk_polls_its_queue_every_second(alice_kiosk, settings):
    assert 'hx-trigger="every 1s"' in alice_kiosk.get("/badges/kiosk/").content.decode()
    settings.KIOSK_POLL_SECONDS = 10
    assert 'hx-trigger="every 10s"' in alice_kiosk.get("/badges/kiosk/").content.decode()
