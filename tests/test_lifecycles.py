"""Issue 10: access ends when its reason ends — sessions, admin rights, kiosks, throttles, sign-out
and the browser's history cache (docs/architecture.md §5). Each test performs the attack."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.utils import timezone

from portal.tasks import sessions_clear
from provisioning.models import TokenCache
from tests.fixtures_portal import sign_in

pytestmark = pytest.mark.django_db


# -- finding 10: the session table and token caches are cleared -------------------------------


def test_anonymous_sessions_and_the_token_caches_of_ended_sessions_are_cleared(
    client, alice, bob, directory, django_user_model
):
    from django.test import Client

    with time_machine.travel(timezone.now() - timedelta(days=2), tick=False):
        for _ in range(5):  # anonymous visits to /auth/sign-in, each writes a session
            Client().get("/auth/sign-in")
        gone = sign_in(Client(), bob)  # signed in two days ago, never signed out
    present = sign_in(client, alice)
    assert Session.objects.count() == 7
    assert TokenCache.objects.filter(user=gone).exists()

    assert sessions_clear() == {"sessions": 6, "token_caches": 1}

    assert Session.objects.count() == 1  # alice's
    assert not TokenCache.objects.filter(user=gone).exists()
    assert TokenCache.objects.filter(user=present).exists()


def test_clearing_sessions_is_scheduled():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "portal.sessions_clear" in tasks


# -- finding 12: no htmx history snapshots of worker lists ----------------------------------


def test_pages_keep_no_htmx_history_and_clear_old_snapshots(alice_client):
    from django.contrib.staticfiles import finders

    html = alice_client.get("/manager/").content.decode()
    assert '"historyCacheSize": 0' in html
    assert 'hx-history="false"' in html
    assert "js/history.js" in html
    script = open(finders.find("js/history.js"), encoding="utf-8").read()
    assert 'localStorage.removeItem("htmx-history-cache")' in script
