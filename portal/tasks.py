"""Session housekeeping (docs/architecture.md §5 "Web"): thin, idempotent, no arguments."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone

from portal.middleware import SIGNED_IN_AT_SESSION_KEY
from provisioning.models import TokenCache

logger = logging.getLogger(__name__)


def sessions_clear() -> dict[str, int]:
    """Delete expired sessions (and signed-in ones past SESSION_ABSOLUTE_HOURS), then the token
    caches of people with no live session left.

    Every anonymous visit to /auth/sign-in writes a session; without this the table only grows.
    A token cache lets a worker act as its person; once nobody is signed in as them (session
    expired, ended by sign-out or by the absolute lifetime) it has no reason to exist.
    """
    expired = Session.objects.filter(expire_date__lte=timezone.now()).count()
    call_command("clearsessions")
    signed_in: set[str] = set()
    oldest_sign_in = time.time() - settings.SESSION_ABSOLUTE_HOURS * 3600
    past_lifetime = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        data = session.get_decoded()
        user_id = data.get(SESSION_KEY)
        if user_id is None:
            continue
        signed_in_at = data.get(SIGNED_IN_AT_SESSION_KEY)
        if not isinstance(signed_in_at, int) or signed_in_at < oldest_sign_in:
            past_lifetime.append(session.pk)  # over, whatever its sliding expiry says
        else:
            signed_in.add(str(user_id))
    expired += Session.objects.filter(pk__in=past_lifetime).delete()[0]
    orphans = TokenCache.objects.exclude(user_id__in=signed_in)
    token_caches, _ = orphans.delete()
    logger.info("Cleared %s expired sessions and %s token caches", expired, token_caches)
    return {"sessions": expired, "token_caches": token_caches}


@shared_task(name="portal.sessions_clear")
def sessions_clear_task() -> dict[str, int]:
    """sessions_clear, every hour from Celery beat."""
    return sessions_clear()
