"""Forms for badge sheets, PIN slips and kiosks. The services check the same rules again."""

from __future__ import annotations

from django import forms

from badges.layouts import CR80, LAYOUT_NAMES
from provisioning.rules import TEMPORARY_MAX_HOURS, TEMPORARY_MIN_HOURS

LAYOUT_LABELS = {
    "cr80": "CR80 card (card printer)",
    "sheet-a4": "A4 sheet with cut marks",
    "sheet-letter": "Letter sheet with cut marks",
    "label-4x3": "4 × 3 in label (thermal printer)",
}
LAYOUT_CHOICES = [(name, LAYOUT_LABELS.get(name, name)) for name in LAYOUT_NAMES]
MAX_WORKERS_PER_SHEET = 1000


class WorkerSelectionForm(forms.Form):
    """Workers picked on the store page (`user_id` checkboxes), and the layout."""

    user_id = forms.MultipleChoiceField(required=True, label="Workers")
    layout = forms.ChoiceField(choices=LAYOUT_CHOICES, initial=CR80, label="Layout", required=False)
    destination = forms.ChoiceField(
        choices=[("kiosk", "Send to the store's kiosk"), ("download", "Download the PDF")],
        initial="kiosk",
        required=False,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any id is accepted here; the service checks each worker belongs to the store.
        self.fields["user_id"].valid_value = lambda value: bool(value) and len(value) <= 36

    def clean_layout(self):
        return self.cleaned_data.get("layout") or CR80

    def clean_user_id(self):
        ids = list(dict.fromkeys(self.cleaned_data["user_id"]))
        if len(ids) > MAX_WORKERS_PER_SHEET:
            raise forms.ValidationError(f"At most {MAX_WORKERS_PER_SHEET} workers per sheet.")
        return ids


class PinSlipForm(forms.Form):
    user_id = forms.MultipleChoiceField(required=True, label="Workers")
    page = forms.ChoiceField(
        choices=[("a4", "A4"), ("letter", "Letter")], initial="a4", required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user_id"].valid_value = lambda value: bool(value) and len(value) <= 36

    def clean_page(self):
        return self.cleaned_data.get("page") or "a4"


class ForgottenBadgeForm(forms.Form):
    hours = forms.TypedChoiceField(
        coerce=int,
        choices=[(h, f"{h} hour{'s' if h > 1 else ''}") for h in range(1, 13)],
        initial=8,
        label="Valid for",
    )
    layout = forms.ChoiceField(choices=LAYOUT_CHOICES, initial=CR80, label="Layout")

    def clean_hours(self):
        hours = self.cleaned_data["hours"]
        if not TEMPORARY_MIN_HOURS <= hours <= TEMPORARY_MAX_HOURS:
            raise forms.ValidationError("A temporary QR code lasts 1 to 12 hours.")
        return hours


class KioskRegisterForm(forms.Form):
    name = forms.CharField(max_length=100, label="Kiosk name", help_text="e.g. “Back office PC”")
    stores = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, label="Stores it prints for"
    )

    def __init__(self, *args, stores, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stores"].queryset = stores


class KioskPairForm(forms.Form):
    code = forms.CharField(
        max_length=20,
        label="Pairing code",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )
