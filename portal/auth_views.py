"""Sign-in, callback and sign-out (portal/signin.py does the work)."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from portal import signin

NEXT_SESSION_KEY = "lanyard_next"


@require_GET
def sign_in(request: HttpRequest) -> HttpResponse:
    start = signin.signin_start(
        redirect_uri=request.build_absolute_uri(reverse("portal:auth-callback")),
        login_hint=request.GET.get("login_hint") or None,
        claims_challenge=request.GET.get("claims") or None,
    )
    request.session[signin.FLOW_SESSION_KEY] = start.flow
    next_url = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        request.session[NEXT_SESSION_KEY] = next_url
    return HttpResponseRedirect(start.auth_uri)


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    flow = request.session.pop(signin.FLOW_SESSION_KEY, None)
    next_url = request.session.pop(NEXT_SESSION_KEY, "") or reverse("portal:home")
    try:
        user = signin.signin_complete(flow=flow, auth_response=request.GET.dict())
    except signin.SignInError as exc:
        return render(request, "portal/sign_in_error.html", {"message": str(exc)}, status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect(next_url)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        signin.signout(user=request.user)
    logout(request)
    # Then end the Entra session of this browser too (docs/architecture.md §5 "Sign-in").
    home = request.build_absolute_uri(reverse("portal:home"))
    return HttpResponseRedirect(signin.signout_url(post_logout_redirect_uri=home))
