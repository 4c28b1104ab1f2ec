"""The store manager's pages: store picker, worker list, worker page and its actions, activity.

Every object reaches a view through a `get_<thing>_for_manager` selector, so another store's worker
or action is a 404 at every URL (docs/architecture.md §5). Actions are POSTs that record an
Operation and return its progress fragment, which polls until the Celery task is done. PINs are
shown in exactly one never-cached response (`operation_pin`); QR previews and badges come from the
vault on never-cached URLs.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape as _escape
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseStopPolling,
    reswap,
    retarget,
    trigger_client_event,
)

from badges.render import BadgeData, render_badges
from portal.http import (
    PIN_REVEALS,
    STORE_REFRESHES,
    SignedInRequest,
    download,
    manager_required,
    partial,
)
from portal.manager_forms import (
    PhoneForm,
    QrAddForm,
    QrExpiryForm,
    QrReplaceForm,
    QrTemporaryForm,
)
from provisioning import actions, vault
from provisioning.actions import ActionRefused
from provisioning.bulk import manager_jobs
from provisioning.bulk.jobs import JobRefused, bulk_job_rerun_failed
from provisioning.bulk.selectors import job_counts
from provisioning.models import DirectoryUser, Operation, WorkerMethodState
from provisioning.phone_numbers import phone_region_name
from provisioning.qr_policy import POLICY_UNREADABLE, qr_policy_current, qr_policy_unreadable
from provisioning.rules import PHONE_LABELS, STANDARD_MAX_DAYS
from provisioning.selectors import (
    WORKER_STATE_FILTERS,
    administrative_unit_list_for_manager,
    audit_event_list_for_administrative_unit,
    audit_event_list_for_worker,
    get_administrative_unit_for_manager,
    get_bulk_job_for_manager,
    get_operation_for_manager,
    get_worker_for_manager,
    operation_list_for_worker,
    worker_role_assignable_group,
    worker_search_for_administrative_unit,
)
from provisioning.worker_state import worker_states_refresh_claim

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
LAST_STORE_SESSION_KEY = "lanyard_last_store"
STORE_SEARCH_THRESHOLD = 8
BADGE_LAYOUT = "cr80"  # one badge, card-sized, for a download printed at once
KIOSK_LAYOUT = "sheet-a4"  # the store kiosk prints sheets
EXPIRING_DEFAULT_DAYS = 30


@dataclass(frozen=True)
class WorkerRow:
    """One line of the worker list, computed once in Python (the template stays simple and fast:
    a 5,000-worker store renders pages of 50 within the 30 ms budget, docs/architecture.md §9)."""

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


# -- stores ----------------------------------------------------------------------------------


@require_GET
@manager_required
def store_list(request: SignedInRequest) -> HttpResponse:
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
    return render(request, partial(request, "portal/manager/store_list.html", "stores"), context)


@require_GET
@manager_required
def store_detail(request: SignedInRequest, au_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    if request.session.get(LAST_STORE_SESSION_KEY) != store.id:
        request.session[LAST_STORE_SESSION_KEY] = store.id  # the picker offers it next time
    query = request.GET.get("q", "").strip()
    state = request.GET.get("state", "")
    state = state if state in WORKER_STATE_FILTERS else ""
    days = _expiring_days(request.GET.get("days", ""))
    workers = worker_search_for_administrative_unit(unit=store, query=query, state=state, days=days)
    page = Paginator(workers, PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {"q": query, "state": state, "days": days if state == "expiring" else ""}
    context = {
        "store": store,
        "query": query,
        "state": state,
        "state_label": WORKER_STATE_FILTERS.get(state, "").replace("N days", f"{days} days"),
        "states": WORKER_STATE_FILTERS,
        "days": days,
        "page": page,
        "rows": [WorkerRow.of(worker) for worker in page.object_list],
        "now": timezone.now(),
        "query_string": urlencode({k: v for k, v in kept.items() if v}),
    }
    return render(
        request, partial(request, "portal/manager/store_detail.html", "worker-table"), context
    )


def _expiring_days(value: str) -> int:
    """The "expiring within N days" filter's N: 1–395 (a standard code's longest life), else 30."""
    try:
        days = int(value)
    except ValueError:
        return EXPIRING_DEFAULT_DAYS
    return days if 1 <= days <= STANDARD_MAX_DAYS else EXPIRING_DEFAULT_DAYS


@require_POST
@manager_required
def store_refresh(request: SignedInRequest, au_id: str) -> HttpResponse:
    from provisioning.tasks import worker_states_refresh

    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    # Each pass reads every worker's methods with the app identity: one pending per store, and a
    # few per manager per hour, so nobody can starve bulk jobs of the queue or the Graph budget.
    if STORE_REFRESHES.exceeded(request.user.pk):
        message, status = "You refreshed stores often in the last hour; try again later.", 429
    elif not worker_states_refresh_claim(unit_id=store.id):
        message, status = "A refresh of this store is already running; reload in a minute.", 200
    else:
        STORE_REFRESHES.count(request.user.pk)
        worker_states_refresh.delay(store.id)
        message = "Refreshing QR and phone status in the background; reload the page in a minute."
        status = 200
    if request.htmx:
        return HttpResponse(f'<p class="message" role="status">{message}</p>', status=status)
    if status != 200:
        return HttpResponse(message, status=status, content_type="text/plain")
    return redirect("manager:store-detail", au_id=store.id)


@require_GET
@manager_required
def store_activity(request: SignedInRequest, au_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    events = Paginator(
        audit_event_list_for_administrative_unit(unit=store).select_related(None), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request, "portal/manager/activity.html", {"store": store, "worker": None, "page": events}
    )


# -- the worker page -------------------------------------------------------------------------


def _worker_context(request: SignedInRequest, store, worker, **extra) -> dict:
    policy = qr_policy_current()
    state: WorkerMethodState | None = getattr(worker, "method_state", None)
    start = state.standard_start if state and state.standard_start else timezone.now()
    # None when the policy cannot be read: the forms then guess nothing (qr_policy.py).
    lifetime = policy.standard_qr_code_lifetime_in_days
    forms = {
        "add_form": QrAddForm(prefix="add", pin_length=policy.pin_length, lifetime_days=lifetime),
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
                if lifetime
                else None
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
            phone_type=phone_type,
        )
        for phone_type, label in PHONE_LABELS.items()
    }
    phone_forms.update(extra.pop("phone_forms", {}))  # a form with errors replaces its blank one
    numbers = {phone_type: number for phone_type, _, number in state.phones} if state else {}
    context = {
        "store": store,
        "worker": worker,
        "state": state,
        "policy": policy,
        "policy_unreadable": POLICY_UNREADABLE if qr_policy_unreadable(policy) else "",
        "unusable": state.unusable_reasons(account_enabled=worker.account_enabled) if state else [],
        "protected_group": worker_role_assignable_group(
            user=request.user, unit=store, worker=worker
        ),
        "operations": list(
            operation_list_for_worker(user=request.user, unit=store, worker_id=worker.id)[:5]
        ),
        "phone_forms": phone_forms,
        # (phone type, its form, the current number or ""): Remove only for a number that exists.
        "phone_rows": [
            (phone_type, form, numbers.get(phone_type) or "")
            for phone_type, form in phone_forms.items()
        ],
        "phone_region": phone_region_name(phone_forms["mobile"].region),
        "resume": request.GET.get("resume"),
        **forms,
    }
    context.update(extra)
    return context


@require_GET
@manager_required
def worker_detail(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    context = _worker_context(request, store, worker)
    return render(request, "portal/manager/worker_detail.html", context)


@require_GET
@manager_required
def worker_methods(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    """The QR and phone panel alone (htmx refreshes it after an action finishes)."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    context = _worker_context(request, store, worker)
    if not request.htmx:
        return redirect("manager:worker-detail", au_id=au_id, user_id=user_id)
    return render(request, "portal/manager/worker_detail.html#methods", context)


@require_POST
@manager_required
def worker_refresh(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
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


def _sign_in_again(request: SignedInRequest) -> HttpResponse:
    """Back through Entra's sign-in to the page the manager was on."""
    current = (request.htmx.current_url_abs_path if request.htmx else None) or request.path
    url = f"{reverse('portal:sign-in')}?{urlencode({'next': current})}"
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_GET
@manager_required
def worker_activity(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
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
def qr_add_page(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    """Without JavaScript the add form also lives on the worker page; this is its anchor."""
    get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
    return redirect(f"{url}#add-qr")


# -- actions ----------------------------------------------------------------------------------


def _action_started(request: SignedInRequest, store, worker, operation: Operation) -> HttpResponse:
    """The new action's progress fragment (htmx), or back to the worker page."""
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


def _form_invalid(request: SignedInRequest, store, worker, form, **forms_on_page) -> HttpResponse:
    """The form's errors: in the page's feedback area (htmx), or the worker page with the form."""
    if request.htmx:
        return _feedback(
            render(request, "portal/manager/worker_detail.html#form-errors", {"form": form})
        )
    context = _worker_context(request, store, worker, **forms_on_page)
    return render(request, "portal/manager/worker_detail.html", context, status=422)


def _refused(request: SignedInRequest, store, worker, refusal: ActionRefused) -> HttpResponse:
    """Why the service refused, in the page's feedback area (htmx) or on the worker page."""
    if request.htmx:
        return _feedback(
            render(request, "portal/manager/worker_detail.html#refused", {"message": str(refusal)})
        )
    context = _worker_context(request, store, worker, refused=str(refusal))
    return render(request, "portal/manager/worker_detail.html", context, status=422)


def _feedback(response: HttpResponse) -> HttpResponse:
    """A refusal or form error goes to the page's feedback area, not the list of actions."""
    return reswap(retarget(response, "#action-feedback"), "innerHTML")


@require_POST
@manager_required
@sensitive_post_parameters()
def qr_add(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    policy = qr_policy_current()
    form = QrAddForm(
        request.POST,
        prefix="add",
        pin_length=policy.pin_length,
        lifetime_days=policy.standard_qr_code_lifetime_in_days,
    )
    if not form.is_valid():
        return _form_invalid(request, store, worker, form, add_form=form)
    try:
        operation = actions.qr_method_add(
            worker=worker,
            unit=store,
            requested_by=request.user,
            start=form.cleaned_data["start_at"],
            expire=form.cleaned_data["expire_at"],
            custom_pin=form.cleaned_data.get("pin"),
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
def qr_expiry(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    state = getattr(worker, "method_state", None)
    form = QrExpiryForm(
        request.POST, prefix="expiry", start=state.standard_start if state else None
    )
    if not form.is_valid():
        return _form_invalid(request, store, worker, form, expiry_form=form)
    try:
        operation = actions.qr_expiry_set(
            worker=worker,
            unit=store,
            requested_by=request.user,
            expire=form.cleaned_data["expire_at"],
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
@sensitive_post_parameters()
def qr_replace(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    form = QrReplaceForm(request.POST, prefix="replace", start=timezone.now())
    if not form.is_valid():
        return _form_invalid(request, store, worker, form, replace_form=form)
    try:
        operation = actions.qr_replace(
            worker=worker,
            unit=store,
            requested_by=request.user,
            expire=form.cleaned_data["expire_at"],
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
def qr_temporary_add(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    form = QrTemporaryForm(request.POST, prefix="temporary")
    if not form.is_valid():
        return _form_invalid(request, store, worker, form, temporary_form=form)
    try:
        operation = actions.qr_temporary_add(
            worker=worker,
            unit=store,
            requested_by=request.user,
            start=form.cleaned_data["start_at"],
            hours=form.cleaned_data["hours"],
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
def qr_temporary_delete(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    try:
        operation = actions.qr_simple(
            kind=Operation.Kind.QR_TEMPORARY_DELETE,
            worker=worker,
            unit=store,
            requested_by=request.user,
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
@sensitive_post_parameters()
def qr_pin_reset(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    try:
        operation = actions.qr_simple(
            kind=Operation.Kind.QR_PIN_RESET, worker=worker, unit=store, requested_by=request.user
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
def qr_delete(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    try:
        operation = actions.qr_simple(
            kind=Operation.Kind.QR_METHOD_DELETE,
            worker=worker,
            unit=store,
            requested_by=request.user,
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


def _phone_type(phone_type: str) -> str:
    if phone_type not in PHONE_LABELS:
        raise Http404("No such phone type.")
    return phone_type


@require_POST
@manager_required
@sensitive_post_parameters()
def phone_set(request: SignedInRequest, au_id: str, user_id: str, phone_type: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    phone_type = _phone_type(phone_type)
    form = PhoneForm(
        request.POST,
        prefix=phone_type,
        usage_location=worker.usage_location,
        country=worker.country,
        label=PHONE_LABELS[phone_type],
        phone_type=phone_type,
    )
    if not form.is_valid():
        return _form_invalid(request, store, worker, form, phone_forms={phone_type: form})
    try:
        operation = actions.phone_set(
            worker=worker,
            unit=store,
            requested_by=request.user,
            phone_type=phone_type,
            number=form.cleaned_data["number"],
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


@require_POST
@manager_required
def phone_delete(
    request: SignedInRequest, au_id: str, user_id: str, phone_type: str
) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    phone_type = _phone_type(phone_type)
    try:
        operation = actions.phone_remove(
            worker=worker, unit=store, requested_by=request.user, phone_type=phone_type
        )
    except ActionRefused as exc:
        return _refused(request, store, worker, exc)
    return _action_started(request, store, worker, operation)


# -- an action's progress and results ----------------------------------------------------------


def _operation(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
    """(store, worker, operation) of an action this manager requested; otherwise 404.
    Two queries: the progress fragment is polled every second."""
    operation = get_operation_for_manager(
        user=request.user, au_id=au_id, user_id=user_id, operation_id=op_id
    )
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    return operation.administrative_unit, worker, operation


@require_GET
@never_cache
@manager_required
def operation_status(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
    """An action's progress fragment, polled every second until the action is finished."""
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    if not request.htmx:
        url = reverse("manager:worker-detail", kwargs={"au_id": au_id, "user_id": user_id})
        return redirect(f"{url}#operations")
    context = {"store": store, "worker": worker, "op": operation}
    if not operation.is_finished:
        return render(request, "portal/manager/worker_detail.html#operation", context)
    fragment = render_to_string("portal/manager/worker_detail.html#operation", context, request)
    return trigger_client_event(HttpResponseStopPolling(fragment), "worker-changed")


@require_POST
@never_cache
@manager_required
@sensitive_post_parameters()
def operation_pin(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
    """The new PIN, in this one response only; the vault destroys it as it is read."""
    store, worker, operation = _operation(request, au_id, user_id, op_id)
    if PIN_REVEALS.exceeded(request.user.pk):
        return HttpResponse("Too many PIN requests; wait a minute.", status=429)
    PIN_REVEALS.count(request.user.pk)
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
def operation_handed_over(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
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
def operation_resume(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
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
def operation_kiosk(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
    """Queue the new QR code's badge for the store's kiosk (badges: print queue)."""
    from badges import print_jobs

    store, worker, operation = _operation(request, au_id, user_id, op_id)
    if not operation.payload_secret_id:
        raise Http404("This action created no QR code.")
    try:
        result = print_jobs.print_job_create_from_users(
            unit=store,
            created_by=request.user,
            layout=KIOSK_LAYOUT,
            requests=[
                print_jobs.BadgeRequest(
                    user_id=worker.id,
                    payload_secret_id=operation.payload_secret_id,
                    valid_until=operation.result_expires_at,
                    temporary=operation.is_temporary_qr,
                )
            ],
        )
    except print_jobs.BadgeError as exc:
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
def operation_qr(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
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
    response["Content-Disposition"] = content_disposition_header(False, "qr.svg")
    return response


@require_GET
@never_cache
@manager_required
def operation_badge(request: SignedInRequest, au_id: str, user_id: str, op_id: int):
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
    name = f"badge-{worker.employee_id or worker.id[:8]}.pdf"
    return download(pdf, content_type="application/pdf", filename=name)


# -- many workers at once (a manager's job) ---------------------------------------------------


def _job_context(request: SignedInRequest, store, job, **extra) -> dict:
    counts = job_counts(job)
    done = job.status in (job.Status.FINISHED, job.Status.CANCELLED)
    sign_in = done and job.rows.filter(outcome=manager_jobs.SIGN_IN_AGAIN).exists()
    return {
        "store": store,
        "job": job,
        "counts": counts,
        "done": done,
        "sign_in_again": sign_in,
        "problems": job.rows.exclude(status__in=["succeeded", "pending", "running"])[:50]
        if done
        else [],
        **extra,
    }


@require_POST
@manager_required
def store_job_start(request: SignedInRequest, au_id: str) -> HttpResponse:
    """Start one job for the workers selected on the store page, with the manager's own token.
    Any selected id that is not a worker of this store refuses the whole request."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    try:
        job = manager_jobs.manager_job_start(
            user=request.user,
            unit=store,
            user_ids=request.POST.getlist("worker"),
            action=request.POST.get("action", ""),
        )
    except JobRefused as exc:
        if request.htmx:
            return HttpResponse(
                f'<p class="message message-error" role="alert">{_escape(str(exc))}</p>',
                status=400,
            )
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    if request.htmx:
        return render(
            request, "portal/manager/store_job.html#job", _job_context(request, store, job)
        )
    return redirect("manager:store-job", au_id=store.id, job_id=job.pk)


@require_GET
@never_cache
@manager_required
def store_job(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    """A manager's job: its progress (polled every second until it is done), then the one badge
    sheet queued for the store's kiosk and the PIN slips."""
    from badges import print_jobs

    job = get_bulk_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    extra = {}
    if job.status == job.Status.FINISHED and job.sheet_queued_at is None:
        queued = print_jobs.manager_job_sheet_queue(job=job, unit=store)
        job.refresh_from_db()
        if queued is not None:
            extra = {"sheet": queued.job, "unprintable": queued.unprintable}
    context = _job_context(request, store, job, **extra)
    if not request.htmx:
        return render(request, "portal/manager/store_job.html", context)
    if not context["done"]:
        return render(request, "portal/manager/store_job.html#job", context)
    fragment = render_to_string("portal/manager/store_job.html#job", context, request)
    return HttpResponseStopPolling(fragment)


@require_POST
@manager_required
def store_job_rerun(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    """Re-run the failed rows (after signing in again, say); Graph is re-checked first."""
    job = get_bulk_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    try:
        bulk_job_rerun_failed(job=job, requested_by=request.user)
    except JobRefused as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    url = reverse("manager:store-job", kwargs={"au_id": au_id, "job_id": job.pk})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@never_cache
@manager_required
def store_job_pin_slips(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    """The job's PIN slips, printable once: the PINs leave the vault with this PDF."""
    from badges.pin_slips import bulk_job_pin_slips_pdf
    from badges.print_jobs import BadgeError

    job = get_bulk_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    try:
        result = bulk_job_pin_slips_pdf(job=job, requester=request.user)
    except BadgeError as exc:
        return HttpResponse(str(exc), status=410, content_type="text/plain")
    return download(
        result.pdf, content_type="application/pdf", filename=f"pin-slips-job-{job.pk}.pdf"
    )
