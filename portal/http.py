"""What every view of the portal shares: typed requests, who may come in, partial templates,
downloads and throttles. Views read top to bottom: decorators say who may call them, the body
reads the request, calls one selector or service, and renders."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import caches
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from badges import kiosks
from badges.models import Kiosk
from portal.models import User


class SignedInRequest(HttpRequest):
    """A request of a signed-in person (a store manager or an IT admin)."""

    user: User
    htmx: HtmxDetails


class KioskRequest(HttpRequest):
    """A request of a paired kiosk: `kiosk` is set by `kiosk_required`; there is no person."""

    kiosk: Kiosk
    htmx: HtmxDetails


# -- who may come in ---------------------------------------------------------------------------


def _to_sign_in(request: HttpRequest) -> HttpResponse:
    """Back to sign-in, returning afterwards to the page the person was on. For htmx a full-page
    redirect: an expired session must not swap a sign-in page into a panel."""
    if request.htmx:
        current = request.htmx.current_url_abs_path or request.get_full_path()
        query = urlencode({"next": current})
        return HttpResponseClientRedirect(f"{reverse('portal:sign-in')}?{query}")
    return redirect_to_login(request.get_full_path())


def manager_required(view):
    """Signed in, or back to sign-in. Which stores the person manages the selectors decide."""

    @functools.wraps(view)
    def wrapper(request: SignedInRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return _to_sign_in(request)
        return view(request, *args, **kwargs)

    return wrapper


def it_admin_required(view):
    """Signed in (else to sign-in) and an IT admin (else 403)."""

    @functools.wraps(view)
    def wrapper(request: SignedInRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return _to_sign_in(request)
        if not request.user.is_it_admin:
            return render(request, "portal/admin/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def _kiosk_cookie_delete(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(
        settings.KIOSK_COOKIE_NAME, path=reverse("badges:kiosk-home"), samesite="Strict"
    )
    return response


def kiosk_required(view):
    """The request carries a valid device credential; `request.kiosk` is its kiosk.

    Deliberately ignores any user session: a kiosk is not a person, and a person's session is
    not a kiosk.
    """

    @functools.wraps(view)
    def wrapper(request: KioskRequest, *args, **kwargs):
        credential = request.COOKIES.get(settings.KIOSK_COOKIE_NAME, "")
        kiosk = kiosks.kiosk_authenticate(credential=credential)
        if kiosk is None:
            pair_url = reverse("badges:kiosk-pair")
            if credential:
                pair_url += "?" + urlencode({"reason": "revoked"})
            if request.htmx:
                response = HttpResponseClientRedirect(pair_url)
            elif request.method == "GET":
                response = redirect(pair_url)
            else:
                response = HttpResponse("This kiosk is not paired.", status=403)
            return _kiosk_cookie_delete(response) if credential else response
        request.kiosk = kiosk
        return view(request, *args, **kwargs)

    return wrapper


# -- responses ---------------------------------------------------------------------------------


def partial(request: HttpRequest, template: str, fragment: str) -> str:
    """The template's `fragment` for htmx, the whole page otherwise (django-template-partials)."""
    return f"{template}#{fragment}" if request.htmx else template


def download(
    content: bytes | str, *, content_type: str, filename: str, inline: bool = False
) -> HttpResponse:
    """A file the browser saves as `filename` (or shows, `inline`). The header is built by
    Django's helper, which quotes and escapes the name (it may hold a worker's employee id)."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(not inline, filename)
    return response


# -- uploads -----------------------------------------------------------------------------------

# Room for the multipart framing and the small form fields around an uploaded file.
UPLOAD_FORM_OVERHEAD_BYTES = 64 * 1024


class CappedUploadHandler(FileUploadHandler):
    """Stops reading an upload as soon as its file data passes `max_bytes`, before Django has
    buffered or spooled the rest (a request without a truthful Content-Length included); the
    view then reports the file as too large (`exceeded`)."""

    def __init__(self, max_bytes: int, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers (memory, then temporary file) build the file


def upload_body_too_large(request: HttpRequest, max_bytes: int) -> bool:
    """True when the request says its body is larger than an upload of `max_bytes` can be; read
    from the headers only, before anything reads the body."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    return length > max_bytes + UPLOAD_FORM_OVERHEAD_BYTES


# -- throttles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    """At most `limit` counted events per key within `window_seconds` of the first one.

    Counts live in the "shared" cache (Redis or a database table, settings.CACHES), so every web
    process sees the same counts. The window starts at
    the first counted event (not on a clock boundary), so a burst is never split in two.
    """

    name: str
    limit: int
    window_seconds: int

    @property
    def cache(self):
        return caches["shared"]

    def key(self, who: object) -> str:
        return f"lanyard:throttle:{self.name}:{who}"

    def exceeded(self, who: object) -> bool:
        """`who` has used up its events in the current window."""
        return self.cache.get(self.key(who), 0) >= self.limit

    def count(self, who: object) -> None:
        """One more event of `who`."""
        key = self.key(who)
        now = time.time()
        if self.cache.add(key, 1, self.window_seconds):
            self.cache.set(f"{key}:until", now + self.window_seconds, self.window_seconds)
            return
        try:
            self.cache.incr(key)
        except ValueError:  # expired between add and incr
            self.cache.set(key, 1, self.window_seconds)
            self.cache.set(f"{key}:until", now + self.window_seconds, self.window_seconds)
            return
        # Redis keeps the expiry on INCR; the database cache rewrites the row with the default
        # timeout. Put the window's end back so the window still starts at the first event.
        until = self.cache.get(f"{key}:until") or now + self.window_seconds
        self.cache.touch(key, max(1, math.ceil(until - now)))

    def reset(self, who: object) -> None:
        self.cache.delete_many([self.key(who), f"{self.key(who)}:until"])


# A PIN is shown once; revealing many in a row is someone scraping (per manager).
PIN_REVEALS = Throttle("pin-reveal", limit=10, window_seconds=60)
# A store refresh reads every worker's methods with the app identity (per manager).
STORE_REFRESHES = Throttle("store-refresh", limit=10, window_seconds=3600)
# A pairing code has ~40 bits and lives minutes; wrong codes are counted per client address
# (`client_address`: behind a proxy REMOTE_ADDR is the proxy, and one wrong typist must not block
# every store), and all wrong codes together are capped too, so guessing from many addresses stays
# hopeless: at most KIOSK_PAIR_FAILURES_GLOBAL.limit guesses per window against 32^8 codes. A wrong
# code matches no pairing, so it cannot be counted against one.
KIOSK_PAIR_FAILURES = Throttle("kiosk-pair-failures", limit=10, window_seconds=600)
KIOSK_PAIR_FAILURES_GLOBAL = Throttle("kiosk-pair-failures-all", limit=200, window_seconds=600)


def client_address(request: HttpRequest) -> str:
    """The address of the browser, not of the reverse proxy in front of Lanyard.

    With TRUSTED_PROXY_COUNT = n, each of our n proxies appended the address it received the
    request from to X-Forwarded-For, so the n-th entry from the right is the client's; anything
    further left was sent by the client and may be forged. With 0 (no proxy), REMOTE_ADDR.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    forwarded = [
        entry.strip()
        for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if entry.strip()
    ]
    if len(forwarded) < trusted:  # not through all our proxies: the nearest one is the client
        return forwarded[0] if forwarded else remote
    return forwarded[-trusted]
