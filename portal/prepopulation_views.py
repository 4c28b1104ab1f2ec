"""The IT admin's phone pre-population page: run now (or a dry run), optionally for a staging
group; the schedule (off until an IT admin turns it on; every change audited); the last runs with
their statistics (provisioning/bulk/prepopulation.py)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.http import SignedInRequest, it_admin_required
from provisioning.bulk.prepopulation import (
    prepopulation_runs_recent,
    prepopulation_schedule_get,
    prepopulation_schedule_update,
)
from provisioning.tasks.prepopulation import prepopulation_run_now

TEMPLATE = "portal/admin/prepopulation.html"


class RunForm(forms.Form):
    group_name = forms.CharField(
        label="Staging group (optional)",
        max_length=256,
        required=False,
        help_text="Its display name in Entra ID; empty: every user without MFA.",
    )
    dry_run = forms.BooleanField(label="Dry run (preview only; nothing is written)", required=False)
    overwrite = forms.BooleanField(
        label="Replace an existing mobile number (off: an existing mobile method is kept)",
        required=False,
    )


class ScheduleForm(forms.Form):
    enabled = forms.BooleanField(label="Run every day", required=False)
    hour = forms.IntegerField(label="At (hour, 0–23)", min_value=0, max_value=23)
    group_name = forms.CharField(label="Staging group (optional)", max_length=256, required=False)
    overwrite = forms.BooleanField(label="Replace an existing mobile number", required=False)


def _context(**forms_) -> dict:
    schedule = prepopulation_schedule_get()
    return {
        "runs": prepopulation_runs_recent(),
        "schedule": schedule,
        "run_form": forms_.get("run_form") or RunForm(),
        "schedule_form": forms_.get("schedule_form")
        or ScheduleForm(
            initial={
                "enabled": schedule.enabled,
                "hour": schedule.hour,
                "group_name": schedule.group_name,
                "overwrite": schedule.overwrite,
            }
        ),  # fmt: skip
        "time_zone": settings.TIME_ZONE,
    }


@require_GET
@it_admin_required
def prepopulation_page(request: SignedInRequest) -> HttpResponse:
    return render(request, TEMPLATE, _context())


@require_POST
@it_admin_required
def prepopulation_start(request: SignedInRequest) -> HttpResponse:
    form = RunForm(request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, _context(run_form=form), status=400)
    data = form.cleaned_data
    args = (data["group_name"].strip(), bool(data["dry_run"]), bool(data["overwrite"]),
            request.user.pk)  # fmt: skip
    transaction.on_commit(lambda: prepopulation_run_now.delay(*args))
    messages.success(
        request,
        "The dry run has started: refresh this page to see what it would do."
        if data["dry_run"]
        else "Pre-population has started: its run appears below, with a link to its job.",
    )
    return redirect("itadmin:prepopulation")


@require_POST
@it_admin_required
def prepopulation_schedule(request: SignedInRequest) -> HttpResponse:
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, _context(schedule_form=form), status=400)
    data = form.cleaned_data
    prepopulation_schedule_update(enabled=bool(data["enabled"]), hour=data["hour"],
                                  group_name=data["group_name"], overwrite=bool(data["overwrite"]),
                                  updated_by=request.user)  # fmt: skip
    messages.success(request, "Schedule saved.")
    return redirect("itadmin:prepopulation")
