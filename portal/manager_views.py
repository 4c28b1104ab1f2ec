"""The store manager's pages: store picker, worker list, worker page and its actions, activity.

Every object reaches a view through a `get_<thing>_for_manager` selector, so another store's worker
or action is a 404 at every URL (DESIGN.md §5). Actions are POSTs that record an Operation and
return its progress fragment, which polls until the Celery task is done. PINs are shown in exactly
one never-cached response (`operation_pin`); QR previews and badges come from the vault on
never-cached URLs.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget, trigger_client_event
from django_htmx.middleware import HtmxDetails

from badges.render import BadgeData, render_badges
from portal.manager_forms import (
    PhoneForm,
    QrAddForm,
    QrExpiryForm,
    QrReplaceForm,
    QrTemporaryForm,
)
from portal.models import User
from provisioning import actions, vault
from provisioning.actions import ActionRefused
from provisioning.models import DirectoryUser, Operation, WorkerMethodState
from provisioning.qr_policy import qr_policy_current
from provisioning.rules import PHONE_LABELS, STANDARD_MAX_DAYS
from provisioning.selectors import (
    administrative_unit_list_for_manager,
    audit_event_list_for_administrative_unit,
    audit_event_list_for_worker,
    get_administrative_unit_for_manager,
    get_operation_for_manager,
    get_worker_for_manager,
    operation_list_for_worker,
    worker_search_for_administrative_unit,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
LAST_STORE_SESSION_KEY = "lanyard_last_store"
STORE_SEARCH_THRESHOLD = 8
PIN_REVEALS_PER_MINUTE = 10
BADGE_LAYOUT = "cr80"  # one badge, card-sized, for a download printed at once
KIOSK_LAYOUT = "sheet-a4"  # the store kiosk prints sheets


class ManagerRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


@dataclass(frozen=True)
class WorkerRow:
    """One line of the worker list, computed once in Python (the template stays simple and fast:
    a 5,000-worker store renders pages of 50 within the 30 ms budget, DESIGN §9)."""

    worker: DirectoryUser
    known: bool
    qr_code: str = ""
    qr_label: str = ""
    never_used: bool = False
    phones: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def of(cls, worker: DirectoryUser) -> WorkerRow:
        try:
            state = worker.method_state
        except WorkerMethodState.DoesNotExist:
            return cls(worker=worker, known=False)
        code, label = state.qr_status()
        phones = tuple((label[0], label, number) for _, label, number in state.phones if number)
        return cls(worker, True, code, label, state.qr_never_used, phones)


def manager_required(view):
    """Signed in, or back to sign-in — for htmx requests as a full-page redirect that returns to
    the page the manager was on (an expired session must not swap a sign-in page into a panel)."""

    @functools.wraps(view)
    def wrapper(request: ManagerRequest, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            current = request.htmx.current_url_abs_path or request.get_full_path()
            query = urlencode({"next": current})
            return HttpResponseClientRedirect(f"{reverse('portal:sign-in')}?{query}")
        return redirect_to_login(request.get_full_path())

    return wrapper


def _partial(request: ManagerRequest, template: str, fragment: str) -> str:
    return f"{template}#{fragment}" if request.htmx else template


# -- stores ----------------------------------------------------------------------------------


@require_GET
@manager_required
def store_list(request: ManagerRequest) -> HttpResponse:
    stores = administrative_unit_list_for_manager(user=request.user)
    query = request.GET.get("q", "").strip()
    total = stores.count()
    if query:
        stores = stores.filter(display_name__icontains=query)
    last = request.session.get(LAST_STORE_SESSION_KEY)
    last_store = stores.filter(id=last).first() if last else None
    context = {
        "stores": list(stores),
        "query": query,
        "searchable": total > STORE_SEARCH_THRESHOLD or bool(query),
        "last_store": last_store,
    }
    if not total and not request.user.is_it_admin:
        return render(request, "portal/no_access.html", status=403)
    return render(request, _partial(request, "portal/manager/store_list.html", "stores"), context)


@require_GET
@manager_required
def store_detail(request: ManagerRequest, au_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    if request.session.get(LAST_STORE_SESSION_KEY) != store.id:
        request.session[LAST_STORE_SESSION_KEY] = store.id  # the picker offers it next time
    query = request.GET.get("q", "").strip()
    workers = worker_search_for_administrative_unit(unit=store, query=query)
    page = Paginator(workers, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "store": store,
        "query": query,
        "page": page,
        "rows": [WorkerRow.of(worker) for worker in page.object_list],
        "now": timezone.now(),
        "query_string": urlencode({"q": query}) if query else "",
    }
    return render(
        request, _partial(request, "portal/manager/store_detail.html", "worker-table"), context
    )


@require_POST
@manager_required
def store_refresh(request: ManagerRequest, au_id: str) -> HttpResponse:
    from provisioning.tasks import worker_states_refresh

    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker_states_refresh.delay(store.id)
    if request.htmx:
        return HttpResponse(
            '<p class="message" role="status">Refreshing QR and phone status in the background; '
            "reload the page in a minute.</p>"
        )
    return redirect("manager:store-detail", au_id=store.id)


@require_GET
@manager_required
def store_activity(request: ManagerRequest, au_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    events = Paginator(
        audit_event_list_for_administrative_unit(unit=store).select_related(None), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request, "portal/manager/activity.html", {"store": store, "worker": None, "page": events}
    )


# -- the worker page -------------------------------------------------------------------------


def _worker_context(request: ManagerRequest, store, worker, **extra) -> dict:
    policy = qr_policy_current()
    state: WorkerMethodState | None = getattr(worker, "method_state", None)
    start = state.standard_start if state and state.standard_start else timezone.now()
    lifetime = policy.standard_qr_code_lifetime_in_days or 365
    forms = {
        "add_form": QrAddForm(
            prefix="add", pin_length=policy.pin_length or 8, lifetime_days=lifetime
        ),
        "expiry_form": QrExpiryForm(
            prefix="expiry",
            start=start,
            initial={
                "expiry": timezone.localtime(state.standard_expires).date()
                if state and state.standard_expires
                else None
            },
        ),
        "replace_form": QrReplaceForm(
            prefix="replace",
            start=timezone.now(),
            initial={
                "expiry": timezone.localdate() + timedelta(days=min(lifetime, STANDARD_MAX_DAYS))
            },
        ),
        "temporary_form": QrTemporaryForm(prefix="temporary"),
    }
    phone_forms = {
        phone_type: PhoneForm(
            prefix=phone_type,
            usage_location=worker.usage_location,
            country=worker.country,
            label=label,
        )
        for phone_type, label in PHONE_LABELS.items()
    }
    context = {
        "store": store,
        "worker": worker,
        "state": state,
        "policy": policy,
        "unusable": state.unusable_reasons(account_enabled=worker.account_enabled) if state else [],
        "operations": list(
            operation_list_for_worker(user=request.user, unit=store, worker_id=worker.id)[:5]
        ),
        "phone_forms": phone_forms,
        "resume": request.GET.get("resume"),
        **forms,
    }
    context.update(extra)
    return context


@require_GET
@manager_required
def worker_detail(request: ManagerRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    context = _worker_context(request, store, worker)
    return render(request, "portal/manager/worker_detail.html", context)


@require_GET
@manager_required
def worker_methods(request: ManagerRequest, au_id: str, user_id: str) -> HttpResponse:
    """The QR and phone panel alone (htmx refreshes it after an action finishes)."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    context = _worker_context(request, store, worker)
    if not request.htmx:
        return redirect("manager:worker-detail", au_id=au_id, user_id=user_id)
    return render(request, "portal/manager/worker_detail.html#methods", context)


@require_POST
@manager_required
def worker_refresh(request: ManagerRequest, au_id: str, user_id: str) -> HttpResponse:
    from provisioning.graph import GraphError, InteractionRequired
    from provisioning.token_cache import delegated_client_for
    from provisioning.worker_state import worker_state_refresh

    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    error = ""
    try:
        worker_state_refresh(client=delegated_client_for(user=request.user), user_id=worker.id)
    except InteractionRequired:
        return _sign_in_again(request)
    except GraphError as exc:
        error = f"Could not read the worker's methods from Entra: {exc}"
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    context = _worker_context(request, store, worker, refresh_error=error)
    if request.htmx:
        return render(request, "portal/manager/worker_detail.html#methods", context)
    return redirect("manager:worker-detail", au_id=au_id, user_id=user_id)


def _sign_in_again(request: ManagerRequest) -> HttpResponse:
    """Back through Entra's sign-in to the page the manager was on."""
    current = (request.htmx.current_url_abs_path if request.htmx else None) or request.path
    url = f"{reverse('portal:sign-in')}?{urlencode({'next': current})}"
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_GET
@manager_required
def worker_activity(request: ManagerRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    events = Paginator(
        audit_event_list_for_worker(unit=store, worker_id=worker.id), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request, "portal/manager/activity.html", {"store": store, "worker": worker, "page": events}
    )


@require_GET
@manager_required
def qr_add_page(request: ManagerRequest, au_id: str, user_id: str) -> HttpResponse:
    """Without JavaScript the add form also lives on the worker page; this is its anchor."""
    get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
    return redirect(f"{url}#add-qr")


# -- actions ----------------------------------------------------------------------------------


def _action_response(request: ManagerRequest, store, worker, start_action, form=None, form_name=""):
    """Run the service; answer with the progress fragment (htmx) or back to the worker page."""
    if form is not None and not form.is_valid():
        context = _worker_context(request, store, worker, **{form_name: form})
        if request.htmx:
            return _feedback(
                render(request, "portal/manager/worker_detail.html#form-errors", {"form": form})
            )
        return render(request, "portal/manager/worker_detail.html", context, status=422)
    try:
        operation = start_action(form.cleaned_data if form is not None else {})
    except ActionRefused as exc:
        if request.htmx:
            return _feedback(
                render(request, "portal/manager/worker_detail.html#refused", {"message": str(exc)})
            )
        context = _worker_context(request, store, worker, refused=str(exc))
        return render(request, "portal/manager/worker_detail.html", context, status=422)
    if request.htmx:
        operation = Operation.objects.get(pk=operation.pk)  # the task may already have run
        response = render(
            request,
            "portal/manager/worker_detail.html#operation",
            {"store": store, "worker": worker, "op": operation, "fresh": True},
        )
        return trigger_client_event(response, "operation-started")
    url = reverse("manager:worker-detail", kwargs={"au_id": store.id, "user_id": worker.id})
    return redirect(f"{url}#operations")


def _feedback(response: HttpResponse) -> HttpResponse:
    """A refusal or form error goes to the page's feedback area, not the list of actions."""
    return reswap(retarget(response, "#action-feedback"), "innerHTML")


def _worker_action(view):
    """Resolve the store and worker (404 outside the manager's scope) for an action view."""

    @functools.wraps(view)
    def wrapper(request: ManagerRequest, au_id: str, user_id: str, **kwargs):
        store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
        worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
        return view(request, store, worker, **kwargs)

    return require_POST(manager_required(wrapper))


@_worker_action
def qr_add(request: ManagerRequest, store, worker) -> HttpResponse:
    policy = qr_policy_current()
    form = QrAddForm(
        request.POST,
        prefix="add",
        pin_length=policy.pin_length or 8,
        lifetime_days=policy.standard_qr_code_lifetime_in_days or 365,
    )
    return _action_response(
        request,
        store,
        worker,
        lambda data: actions.qr_method_add(
            worker=worker,
            unit=store,
            requested_by=request.user,
            start=data["start_at"],
            expire=data["expire_at"],
            custom_pin=data.get("pin"),
        ),
        form,
        "add_form",
    )


@_worker_action
def qr_expiry(request: ManagerRequest, store, worker) -> HttpResponse:
    state = getattr(worker, "method_state", None)
    form = QrExpiryForm(
        request.POST, prefix="expiry", start=state.standard_start if state else None
    )
    return _action_response(
        request,
        store,
        worker,
        lambda data: actions.qr_expiry_set(
            worker=worker, unit=store, requested_by=request.user, expire=data["expire_at"]
        ),
        form,
        "expiry_form",
    )


@_worker_action
def qr_replace(request: ManagerRequest, store, worker) -> HttpResponse:
    form = QrReplaceForm(request.POST, prefix="replace", start=timezone.now())
    return _action_response(
        request,
        store,
        worker,
        lambda data: actions.qr_replace(
            worker=worker, unit=store, requested_by=request.user, expire=data["expire_at"]
        ),
        form,
        "replace_form",
    )


@_worker_action
def qr_temporary_add(request: ManagerRequest, store, worker) -> HttpResponse:
    form = QrTemporaryForm(request.POST, prefix="temporary")
    return _action_response(
        request,
        store,
        worker,
        lambda data: actions.qr_temporary_add(
            worker=worker,
            unit=store,
            requested_by=request.user,
            start=data["start_at"],
            hours=data["hours"],
        ),
        form,
        "temporary_form",
    )


def _simple(kind: str):
    def view(request: ManagerRequest, store, worker) -> HttpResponse:
        return _action_response(
            request,
            store,
            worker,
            lambda data: actions.qr_simple(
                kind=kind, worker=worker, unit=store, requested_by=request.user
            ),
        )

    view.__name__ = f"action_{kind}"
    return _worker_action(view)


qr_temporary_delete = _simple(Operation.Kind.QR_TEMPORARY_DELETE)
qr_pin_reset = _simple(Operation.Kind.QR_PIN_RESET)
qr_delete = _simple(Operation.Kind.QR_METHOD_DELETE)


def _phone_type(phone_type: str) -> str:
    if phone_type not in PHONE_LABELS:
        raise Http404("No such phone type.")
    return phone_type


@_worker_action
def phone_set(request: ManagerRequest, store, worker, phone_type: str) -> HttpResponse:
    phone_type = _phone_type(phone_type)
    form = PhoneForm(
        request.POST,
        prefix=phone_type,
        usage_location=worker.usage_location,
        country=worker.country,
        label=PHONE_LABELS[phone_type],
    )
    if not form.is_valid():
        if request.htmx:
            return _feedback(
                render(request, "portal/manager/worker_detail.html#form-errors", {"form": form})
            )
        phone_forms = {phone_type: form}
        context = _worker_context(request, store, worker)
        context["phone_forms"] = {**context["phone_forms"], **phone_forms}
        return render(request, "portal/manager/worker_detail.html", context, status=422)
    return _action_response(
        request,
        store,
        worker,
        lambda data: actions.phone_set(
            worker=worker,
            unit=store,
            requested_by=request.user,
            phone_type=phone_type,
            number=form.cleaned_data["number"],
        ),
    )


@_worker_action
def phone_delete(request: ManagerRequest, store, worker, phone_type: str) -> HttpResponse:
    phone_type = _phone_type(phone_type)
    return _action_response(
        request,
        store,
        worker,
        lambda data: actions.phone_remove(
            worker=worker, unit=store, requested_by=request.user, phone_type=phone_type
        ),
    )


# -- an action's progress and results ----------------------------------------------------------


def _operation(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    operation = get_operation_for_manager(
        user=request.user, au_id=au_id, user_id=user_id, operation_id=op_id
    )
    return store, worker, operation


@require_GET
@never_cache
@manager_required
def operation_status(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    if not request.htmx:
        url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
        return redirect(f"{url}#operations")
    response = render(
        request,
        "portal/manager/worker_detail.html#operation",
        {"store": store, "worker": worker, "op": operation},
    )
    if operation.is_finished:
        response.status_code = 286  # htmx: stop polling (django_htmx HttpResponseStopPolling)
        trigger_client_event(response, "worker-changed")
    return response


def _throttled(request: ManagerRequest, bucket: str, limit: int) -> bool:
    key = f"lanyard:throttle:{bucket}:{request.user.pk}:{int(timezone.now().timestamp() // 60)}"
    count = cache.get_or_set(key, 0, 90)
    if count >= limit:
        return True
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, 90)
    return False


@require_POST
@never_cache
@manager_required
def operation_pin(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    """The new PIN, in this one response only; the vault destroys it as it is read."""
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    if _throttled(request, "pin-reveal", PIN_REVEALS_PER_MINUTE):
        return HttpResponse("Too many PIN requests; wait a minute.", status=429)
    try:
        pin = actions.pin_reveal(operation=operation, requester=request.user)
    except vault.SecretUnavailable:
        pin = None
    operation.refresh_from_db()
    context = {"store": store, "worker": worker, "op": operation, "pin": pin}
    if request.htmx:
        return render(request, "portal/manager/worker_detail.html#pin-reveal", context)
    return render(request, "portal/manager/pin_reveal.html", context)


@require_POST
@manager_required
def operation_handed_over(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    actions.pin_handed_over(operation=operation, requester=request.user)
    operation.refresh_from_db()
    if request.htmx:
        return render(
            request,
            "portal/manager/worker_detail.html#operation",
            {"store": store, "worker": worker, "op": operation},
        )
    url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
    return redirect(f"{url}#operations")


@require_POST
@manager_required
def operation_resume(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    actions.operation_resume(operation=operation, requested_by=request.user)
    operation = Operation.objects.get(pk=operation.pk)
    if request.htmx:
        return render(
            request,
            "portal/manager/worker_detail.html#operation",
            {"store": store, "worker": worker, "op": operation},
        )
    url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
    return redirect(f"{url}#operations")


@require_POST
@manager_required
def operation_kiosk(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    """Queue the new QR code's badge for the store's kiosk (badges: print queue)."""
    from badges import print_jobs as badge_services

    store, worker, operation = _operation(request, au_id, user_id, op_id)
    if not operation.payload_secret_id:
        raise Http404("This action created no QR code.")
    try:
        result = badge_services.print_job_create_from_users(
            unit=store,
            created_by=request.user,
            layout=KIOSK_LAYOUT,
            requests=[
                badge_services.BadgeRequest(
                    user_id=worker.id,
                    payload_secret_id=operation.payload_secret_id,
                    valid_until=operation.result_expires_at,
                    temporary=operation.is_temporary_qr,
                )
            ],
        )
    except badge_services.BadgeError as exc:
        message, job = str(exc), None
    else:
        job = result.job
        message = (
            "Sent to the store's kiosk print queue."
            if job
            else "; ".join(u.reason for u in result.unprintable) or "Nothing to print."
        )
    context = {"store": store, "worker": worker, "op": operation, "message": message, "job": job}
    if request.htmx:
        return render(request, "portal/manager/worker_detail.html#kiosk-result", context)
    url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
    return redirect(f"{url}#operations")


def _payload(operation: Operation) -> bytes:
    try:
        return actions.qr_payload_for_operation(operation=operation)
    except vault.SecretUnavailable as exc:
        raise Http404("This QR code is no longer available.") from exc


@require_GET
@never_cache
@manager_required
def operation_qr(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    """A preview of the new QR code, drawn here from the vault payload (never cached)."""
    _, _, operation = _operation(request, au_id, user_id, op_id)
    image = qrcode.make(
        _payload(operation),
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_L,
        border=4,
    )
    buffer = io.BytesIO()
    image.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type="image/svg+xml")
    response["Content-Disposition"] = "inline"
    return response


@require_GET
@never_cache
@manager_required
def operation_badge(request: ManagerRequest, au_id: str, user_id: str, op_id: int):
    """A single-badge PDF of the new QR code (never cached; never the PIN)."""
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    expires = operation.result.get("expires_at")
    valid_until = datetime.fromisoformat(expires) if expires else timezone.now()
    badge = BadgeData(
        display_name=worker.display_name,
        employee_id=worker.employee_id,
        store_name=store.display_name,
        valid_until=timezone.localtime(valid_until),
        payload=_payload(operation),
        temporary=operation.is_temporary_qr,
    )
    pdf = render_badges([badge], BADGE_LAYOUT)
    response = HttpResponse(pdf, content_type="application/pdf")
    name = f"badge-{worker.employee_id or worker.id[:8]}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
