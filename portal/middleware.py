"""Sessions end when their reason ends (docs/architecture.md §5 "Sign-in", "Web").

Django's session expiry slides: any request extends it by SESSION_COOKIE_AGE, so a busy or
scripted browser would stay signed in for ever, and admin rights read at sign-in would last as
long. `SessionLifetimeMiddleware` adds what sliding cannot:

- an absolute lifetime: SESSION_ABSOLUTE_HOURS after sign-in the person signs in again, whatever
  they did meanwhile;
- a fresh IT-admin check: an IT admin's membership of LANYARD_ADMIN_GROUP_ID is re-read with the
  app identity when it is older than ROLES_RECHECK_MINUTES, so removal from the group ends their
  admin access within minutes, not at their next sign-in.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import logout, user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from provisioning.directory import user_it_admin_refresh
from provisioning.graph import GraphError, get_app_client

logger = logging.getLogger(__name__)

SIGNED_IN_AT_SESSION_KEY = "lanyard_signed_in_at"


@receiver(user_logged_in)
def _session_start_record(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT_SESSION_KEY] = int(time.time())


class SessionLifetimeMiddleware:
    """Ends sessions past their absolute lifetime; re-checks a stale IT-admin flag.

    Goes after AuthenticationMiddleware.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            signed_in_at = request.session.get(SIGNED_IN_AT_SESSION_KEY)
            lifetime = settings.SESSION_ABSOLUTE_HOURS * 3600
            if not isinstance(signed_in_at, int) or time.time() - signed_in_at > lifetime:
                logger.info("Session of user %s reached its absolute lifetime", user.pk)
                logout(request)  # request.user is now anonymous: views send to sign-in
            elif user.is_it_admin and self._roles_stale(user):
                self._it_admin_recheck(user)
        return self.get_response(request)

    @staticmethod
    def _roles_stale(user) -> bool:
        refreshed = user.roles_refreshed_at
        limit = timedelta(minutes=settings.ROLES_RECHECK_MINUTES)
        return refreshed is None or timezone.now() - refreshed > limit

    @staticmethod
    def _it_admin_recheck(user) -> None:
        try:
            still_admin = user_it_admin_refresh(user=user, client=get_app_client(interactive=True))
        except GraphError as exc:
            # Fail closed for this request: admin pages wait until Entra answers again.
            logger.warning("IT-admin membership of user %s not re-checked: %s", user.pk, exc)
            user.is_it_admin = False
            return
        if not still_admin:
            logger.info("User %s is no longer in the IT-admin group", user.pk)
