"""Phone numbers as people type them → the form Graph requires (docs/graph-contract.md §3, gotcha
8).

Graph wants `+{country code} {number}[x{extension}]` — a space after the country code, not E.164.
Numbers are parsed with `phonenumbers`; a number written without a country code is read in the
worker's own country (usageLocation, else country, else LANYARD_DEFAULT_REGION).
"""

from __future__ import annotations

import functools

import phonenumbers
from django.conf import settings
from phonenumbers import geocoder


class PhoneNumberInvalid(ValueError):
    """The text is not a phone number we can write to Entra; the message says why, plainly."""


def phone_region_for(*, usage_location: str = "", country: str = "") -> str:
    """The region a national-format number is read in, for a worker."""
    for candidate in (usage_location, country):
        code = (candidate or "").strip().upper()
        if len(code) == 2 and code in phonenumbers.SUPPORTED_REGIONS:
            return code
        if candidate:
            # `country` is free text in Entra ("Germany"); match a region's English name.
            region = _region_by_name().get(candidate.strip().lower())
            if region:
                return region
    return settings.LANYARD_DEFAULT_REGION


def phone_number_normalise(raw: str, *, region: str) -> str:
    """`raw` in Graph's format, or PhoneNumberInvalid with a reason a person understands."""
    text = (raw or "").strip()
    if not text:
        raise PhoneNumberInvalid("The phone number is empty.")
    # People write international numbers with a 00 prefix; phonenumbers reads those only when the
    # region's international prefix is 00, so turn a leading 00 into + first.
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneNumberInvalid(f"“{raw.strip()}” is not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_country_code(number.country_code)
        raise PhoneNumberInvalid(
            f"“{raw.strip()}” is not a valid phone number for {where}; "
            "check the digits, or write it with its country code (+44 …)."
        )
    formatted = f"+{number.country_code} {phonenumbers.national_significant_number(number)}"
    if number.extension:
        formatted += f"x{number.extension}"
    return formatted


def phone_number_examples(*, region: str, mobile: bool = True) -> tuple[str, str]:
    """An example number of `region`, written nationally and internationally (for a form's
    placeholder and hint: they must match the region national numbers are read in)."""
    kind = (
        phonenumbers.PhoneNumberType.MOBILE if mobile else phonenumbers.PhoneNumberType.FIXED_LINE
    )
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(
        region
    )
    if example is None:
        return "", ""
    return (
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL),
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
    )


def phone_region_name(region: str) -> str:
    """The region's English country name ("Germany" for DE), or the code itself."""
    example = phonenumbers.example_number(region)
    return (geocoder.country_name_for_number(example, "en") if example else "") or region


@functools.cache
def _region_by_name() -> dict[str, str]:
    """English country names → region codes, for Entra's free-text `country` field (built once)."""
    names = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        name = geocoder.country_name_for_number(example, "en") if example else ""
        if name:
            names[name.lower()] = region
    names.update({"usa": "US", "uk": "GB", "united states of america": "US"})
    return names
