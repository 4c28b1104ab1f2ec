"""The IT admin's tenant pages: the QR code + PIN policy, the audit log and readiness.

IT admins only (others get a 403; not signed in → sign-in). Graph is read and written with the
app identity (docs/graph-contract.md §2, §11).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from portal.admin_tenant_forms import AuditFilterForm, QrPolicyForm
from portal.http import SignedInRequest, download, it_admin_required
from provisioning import audit, readiness
from provisioning.graph import GraphError
from provisioning.qr_policy import (
    ALL_USERS_NAME,
    POLICY_UNREADABLE,
    PolicyChangeRefused,
    qr_policy_change,
    qr_policy_fresh,
    qr_policy_targets,
    qr_policy_unreadable,
)

AUDIT_EVENTS_PER_PAGE = 50


# -- QR code + PIN policy --------------------------------------------------------------------


def _policy_context(form: QrPolicyForm | None) -> dict:
    policy = qr_policy_fresh()
    if qr_policy_unreadable(policy):
        return {"policy_unreadable": POLICY_UNREADABLE, "form": None}
    include = qr_policy_targets(targets=policy.include_targets)
    exclude = qr_policy_targets(targets=policy.exclude_targets)
    if form is None:
        form = QrPolicyForm(
            initial={
                "state": policy.state,
                "pin_length": policy.pin_length,
                "lifetime_days": policy.standard_qr_code_lifetime_in_days,
                "include_groups": "\n".join(t.name for t in include if t.target_type == "group"),
                "exclude_groups": "\n".join(t.name for t in exclude if t.target_type == "group"),
            }
        )
    return {
        "policy": policy,
        "include": include,
        "exclude": exclude,
        "form": form,
        "all_users_name": ALL_USERS_NAME,
    }


@require_http_methods(["GET", "POST"])
@it_admin_required
def qr_policy(request: SignedInRequest) -> HttpResponse:
    """View and change the tenant's QR code + PIN policy."""
    template = "portal/admin/qr_policy.html"
    if request.method == "GET":
        return render(request, template, _policy_context(None))
    form = QrPolicyForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            qr_policy_change(
                actor=request.user,
                state=data["state"],
                pin_length=data["pin_length"],
                lifetime_days=data["lifetime_days"],
                include_groups=data["include_groups"],
                exclude_groups=data["exclude_groups"],
            )
        except PolicyChangeRefused as exc:
            for field, message in exc.errors.items():
                form.add_error(None if field == "__all__" else field, message)
        except GraphError as exc:
            form.add_error(None, f"Entra refused the change: {exc}")
        else:
            messages.success(request, "The QR code + PIN policy was saved.")
            return redirect("itadmin:qr-policy")
    return render(request, template, _policy_context(form), status=400)


# -- audit log -------------------------------------------------------------------------------


def _audit_filters(request: SignedInRequest) -> tuple[AuditFilterForm, audit.AuditFilter]:
    form = AuditFilterForm(request.GET or None, action_names=audit.audit_action_names())
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = audit.AuditFilter(
            actor=data["actor"].strip(),
            action=data["action"],
            store=data["store"],
            worker=data["worker"].strip(),
            since=data["since"],
            until=data["until"],
        )
    else:
        filters = audit.AuditFilter()
    return form, filters


@require_GET
@it_admin_required
def audit_log(request: SignedInRequest) -> HttpResponse:
    """The audit log, filtered and paginated; the same filter exports as CSV."""
    form, filters = _audit_filters(request)
    events = audit.audit_event_list(filters=filters)
    page = Paginator(events, AUDIT_EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = {k: v for k, v in request.GET.items() if k != "page" and v}
    return render(
        request,
        "portal/admin/audit_log.html",
        {"form": form, "page": page, "query": urlencode(query)},
    )


@require_GET
@it_admin_required
def audit_log_csv(request: SignedInRequest) -> HttpResponse:
    _form, filters = _audit_filters(request)
    return download(
        audit.audit_events_csv(filters=filters),
        content_type="text/csv; charset=utf-8",
        filename="lanyard-audit-log.csv",
    )


# -- readiness -------------------------------------------------------------------------------


@require_GET
@it_admin_required
def readiness_page(request: SignedInRequest) -> HttpResponse:
    """What Graph can tell about the tenant's readiness, and the steps it cannot check."""
    checks = readiness.readiness_checks(user=request.user)
    return render(
        request,
        "portal/admin/readiness.html",
        {
            "checks": checks,
            "problems": sum(1 for check in checks if not check.ok),
            "manual_steps": readiness.MANUAL_STEPS,
        },
    )
