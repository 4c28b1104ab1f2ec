"""Forms of the IT admin's bulk pages: an upload, a group or store as source, a confirmation."""

from __future__ import annotations

from django import forms
from django.conf import settings

from provisioning.models import AdministrativeUnit, BulkJob


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=BulkJob.Kind.choices, widget=forms.RadioSelect, initial="qr")
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 or UTF-16 (Excel), comma or semicolon separated.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.BULK_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // 1024:,} KB; the limit is "
                f"{settings.BULK_MAX_UPLOAD_BYTES // 1024:,} KB. Split it into smaller files."
            )
        return upload


class GroupSourceForm(forms.Form):
    group_id = forms.CharField(
        label="Group object id",
        max_length=64,
        help_text="Every member of the group, nested groups included, gets a QR code + PIN.",
    )


class StoreSourceForm(forms.Form):
    au_id = forms.ChoiceField(label="Store")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["au_id"].choices = list(
            AdministrativeUnit.objects.order_by("display_name").values_list("id", "display_name")
        )


class ConfirmForm(forms.Form):
    preview_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)
