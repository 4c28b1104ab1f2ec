"""Forms of the IT admin's tenant pages: the QR code + PIN policy and the audit log filter."""

from __future__ import annotations

from django import forms

from provisioning.models import AdministrativeUnit
from provisioning.qr_policy import (
    LIFETIME_DAYS_MAX,
    LIFETIME_DAYS_MIN,
    PIN_LENGTH_MAX,
    PIN_LENGTH_MIN,
)


def _names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class QrPolicyForm(forms.Form):
    """Parses what the admin typed; the rules Graph enforces are checked by
    provisioning.qr_policy.qr_policy_change, which reports them per field."""

    state = forms.ChoiceField(
        choices=[("enabled", "Enabled"), ("disabled", "Disabled")], widget=forms.RadioSelect
    )
    pin_length = forms.IntegerField(
        label="Minimum PIN length",
        help_text=f"{PIN_LENGTH_MIN}–{PIN_LENGTH_MAX} digits.",
        widget=forms.NumberInput(attrs={"min": PIN_LENGTH_MIN, "max": PIN_LENGTH_MAX}),
    )
    lifetime_days = forms.IntegerField(
        label="Standard QR code lifetime (days)",
        help_text=f"{LIFETIME_DAYS_MIN}–{LIFETIME_DAYS_MAX} days: the expiry of a new standard "
        "QR code unless its creator picks a date.",
        widget=forms.NumberInput(attrs={"min": LIFETIME_DAYS_MIN, "max": LIFETIME_DAYS_MAX}),
    )
    include_groups = forms.CharField(
        label="Included groups",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One group name (or object id) per line; “All users” for everyone.",
    )
    exclude_groups = forms.CharField(
        label="Excluded groups",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One group name (or object id) per line.",
    )

    def clean_include_groups(self) -> list[str]:
        return _names(self.cleaned_data["include_groups"])

    def clean_exclude_groups(self) -> list[str]:
        return _names(self.cleaned_data["exclude_groups"])


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label="Actor", required=False, max_length=320)
    action = forms.ChoiceField(label="Action", required=False)
    store = forms.ChoiceField(label="Store", required=False)
    worker = forms.CharField(label="Worker", required=False, max_length=320)
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, action_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "any"), *((name, name) for name in action_names)]
        self.fields["store"].choices = [
            ("", "any"),
            *AdministrativeUnit.objects.order_by("display_name").values_list("id", "display_name"),
        ]

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned
