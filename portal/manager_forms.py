"""Forms of the manager's worker page. They check what a person can fix before anything is sent;
the services check the same rules again (provisioning/actions.py)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from provisioning.phone_numbers import (
    PhoneNumberInvalid,
    phone_number_examples,
    phone_number_normalise,
    phone_region_for,
)
from provisioning.rules import (
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    STANDARD_MAX_DAYS,
    TEMPORARY_MAX_HOURS,
    TEMPORARY_MIN_HOURS,
    pin_problem,
)

ACTIVATION_CHOICES = [("now", "Now"), ("later", "Later, at a date and time")]


class _ActivationMixin:
    """`activation` now/later and an optional `start` (local date and time)."""

    def clean_start_value(self, cleaned: dict) -> datetime:
        if cleaned.get("activation") == "later":
            start = cleaned.get("start")
            if start is None:
                self.add_error("start", "Choose when the QR code becomes usable.")
                return timezone.now()
            if timezone.is_naive(start):
                start = timezone.make_aware(start)
            if start <= timezone.now():
                self.add_error("start", "Choose a time in the future, or activate it now.")
            return start
        return timezone.now()


def _expiry_at(day, start: datetime) -> datetime:
    """The end of `day` (local time), never more than 395 days after `start`."""
    end = timezone.make_aware(datetime.combine(day, time(23, 59)))
    return min(end, start + timedelta(days=STANDARD_MAX_DAYS))


class QrAddForm(_ActivationMixin, forms.Form):
    activation = forms.ChoiceField(
        choices=ACTIVATION_CHOICES, initial="now", widget=forms.RadioSelect, label="Activation"
    )
    start = forms.DateTimeField(
        required=False,
        label="Activation date and time",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    expiry = forms.DateField(label="Expires on", widget=forms.DateInput(attrs={"type": "date"}))
    pin_mode = forms.ChoiceField(
        choices=[("generated", "Generate a PIN"), ("custom", "Type a PIN")],
        initial="generated",
        widget=forms.RadioSelect,
        label="PIN",
    )
    pin = forms.CharField(
        required=False,
        label="PIN (digits only)",
        strip=True,
        widget=forms.PasswordInput(
            attrs={"inputmode": "numeric", "autocomplete": "off", "pattern": "[0-9]*"}
        ),
    )

    def __init__(
        self, *args, pin_length: int | None = PIN_MIN_LENGTH, lifetime_days: int | None = 365, **kw
    ):
        """`pin_length` / `lifetime_days` None: the QR policy could not be read (qr_policy.py),
        so a custom PIN is refused and no expiry is suggested."""
        super().__init__(*args, **kw)
        self.policy_unreadable = pin_length is None
        self.pin_length = max(PIN_MIN_LENGTH, pin_length or PIN_MIN_LENGTH)
        lifetime = min(STANDARD_MAX_DAYS, lifetime_days) if lifetime_days else None
        today = timezone.localdate()
        self.fields["expiry"].initial = today + timedelta(days=lifetime) if lifetime else None
        self.fields["expiry"].widget.attrs.update(
            {"min": (today + timedelta(days=1)).isoformat(),
             "max": (today + timedelta(days=STANDARD_MAX_DAYS)).isoformat()}
        )  # fmt: skip
        self.fields["pin"].widget.attrs.update(
            {"minlength": self.pin_length, "maxlength": PIN_MAX_LENGTH}
        )
        self.fields["pin"].help_text = (
            f"{self.pin_length}–{PIN_MAX_LENGTH} digits; not 0123456789 or 9876543210; no repeated "
            "group like 121212 or 123123. The worker must change it at first sign-in."
        )
        self.fields["expiry"].help_text = (
            f"Standard lifetime: {lifetime} days; at most {STANDARD_MAX_DAYS} days."
            if lifetime
            else f"The tenant's standard lifetime is unknown (its QR policy could not be read): "
            f"choose the date; at most {STANDARD_MAX_DAYS} days."
        )
        if self.policy_unreadable:
            self.fields["pin"].help_text = (
                "Custom PINs are refused while the tenant's QR policy cannot be read (its minimum "
                "PIN length is unknown): choose “Generate a PIN”."
            )

    def clean(self):
        cleaned = super().clean()
        start = self.clean_start_value(cleaned)
        cleaned["start_at"] = start
        if cleaned.get("expiry"):
            expire = _expiry_at(cleaned["expiry"], start)
            if expire <= start:
                self.add_error("expiry", "The expiry must be after the activation.")
            cleaned["expire_at"] = expire
        if cleaned.get("pin_mode") == "custom" and self.policy_unreadable:
            self.add_error(
                "pin",
                "The tenant's QR policy cannot be read, so a custom PIN cannot be checked against "
                "its minimum length: choose “Generate a PIN”.",
            )
        elif cleaned.get("pin_mode") == "custom":
            problem = pin_problem(cleaned.get("pin") or "", min_length=self.pin_length)
            if problem:
                self.add_error("pin", problem)
        else:
            cleaned["pin"] = None
        return cleaned


class QrExpiryForm(forms.Form):
    expiry = forms.DateField(
        label="New expiry date", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, start: datetime | None = None, **kw):
        super().__init__(*args, **kw)
        self.start = start or timezone.now()
        latest = timezone.localtime(self.start + timedelta(days=STANDARD_MAX_DAYS)).date()
        self.fields["expiry"].widget.attrs.update({"max": latest.isoformat()})
        self.fields[
            "expiry"
        ].help_text = f"At the latest {latest:%d %b %Y} ({STANDARD_MAX_DAYS} days)."

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("expiry"):
            cleaned["expire_at"] = _expiry_at(cleaned["expiry"], self.start)
        return cleaned


class QrReplaceForm(QrExpiryForm):
    pass


class QrTemporaryForm(_ActivationMixin, forms.Form):
    activation = forms.ChoiceField(
        choices=ACTIVATION_CHOICES, initial="now", widget=forms.RadioSelect, label="Activation"
    )
    start = forms.DateTimeField(
        required=False,
        label="Activation date and time",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    hours = forms.TypedChoiceField(
        coerce=int,
        choices=[(h, f"{h} hour{'s' if h > 1 else ''}") for h in range(1, 13)],
        initial=8,
        label="Valid for",
    )

    def clean(self):
        cleaned = super().clean()
        cleaned["start_at"] = self.clean_start_value(cleaned)
        hours = cleaned.get("hours")
        if hours is not None and not TEMPORARY_MIN_HOURS <= hours <= TEMPORARY_MAX_HOURS:
            self.add_error("hours", "A temporary QR code lasts 1 to 12 hours.")
        return cleaned


class PhoneForm(forms.Form):
    number = forms.CharField(
        label="Phone number",
        max_length=40,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off", "inputmode": "tel"}),
    )

    def __init__(
        self,
        *args,
        usage_location: str = "",
        country: str = "",
        label: str = "",
        phone_type: str = "mobile",
        **kw,
    ):
        super().__init__(*args, **kw)
        if label:
            self.fields["number"].label = f"New {label} number"
        self.region = phone_region_for(usage_location=usage_location, country=country)
        # The examples come from the region the number will be read in (DE for a Berlin worker).
        national, international = phone_number_examples(
            region=self.region, mobile=phone_type != "office"
        )
        if national:
            self.fields["number"].widget.attrs["placeholder"] = national
            self.fields["number"].help_text = f"Any common format: {national}, {international} …"

    def clean_number(self) -> str:
        try:
            return phone_number_normalise(self.cleaned_data["number"], region=self.region)
        except PhoneNumberInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc
