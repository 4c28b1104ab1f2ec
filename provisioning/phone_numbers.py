"""Phone numbers as people type them → the form Graph requires (docs/graph-contract.md §3, gotcha
8).

Graph wants `+{country code} {number}[x{extension}]` — a space after the country code, not E.164.
Numbers are parsed with `phonenumbers`; a number written without a country code is read in the
worker's own country (usageLocation, else country, else LANYARD_DEFAULT_REGION).

A phone number is a credential (an MFA factor), so nothing is guessed (docs/architecture.md §7):
a number is taken either in international form (`+…` or `00…`, or the region's own international
prefix) or in the region's national form *as people there write it*, which carries the national
(trunk) prefix where the region has one (`030 1234567` in Germany, not `301234567`). A national
number missing that prefix — typically a foreign number that lost its `+1` — and a country code
written without `+` are refused with the reason. The bulk import and the manager's phone form
apply the same rule.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from django.conf import settings


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
        number = phonenumbers.parse(text, region, keep_raw_input=True)
    except phonenumbers.NumberParseException as exc:
        raise PhoneNumberInvalid(f"“{raw.strip()}” is not a phone number.") from exc
    guess = _guessed(number, text, region=region)
    if guess:
        raise PhoneNumberInvalid(f"“{raw.strip()}” {guess}")
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


def _guessed(number: phonenumbers.PhoneNumber, text: str, *, region: str) -> str:
    """Why reading `text` as `number` would be a guess (the end of a sentence), or ""."""
    source = number.country_code_source
    sources = phonenumbers.CountryCodeSource
    if source in (sources.FROM_NUMBER_WITH_PLUS_SIGN, sources.FROM_NUMBER_WITH_IDD):
        return ""
    digits = phonenumbers.normalize_digits_only(text)
    if number.extension and digits.endswith(number.extension):
        digits = digits[: -len(number.extension)]
    without_extension = phonenumbers.PhoneNumber(
        country_code=number.country_code, national_number=number.national_number,
        italian_leading_zero=number.italian_leading_zero,
        number_of_leading_zeros=number.number_of_leading_zeros,
    )  # fmt: skip
    national = phonenumbers.normalize_digits_only(
        phonenumbers.format_number(without_extension, phonenumbers.PhoneNumberFormat.NATIONAL)
    )
    significant = phonenumbers.national_significant_number(without_extension)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = (metadata.national_prefix if metadata else None) or ""
    if digits in (national, prefix + significant):
        return ""  # the national form, prefix included ("1 425 555 0100" in the US is one too)
    if source == sources.FROM_NUMBER_WITHOUT_PLUS_SIGN:
        return (
            f"starts with a country code ({number.country_code}) but has no “+”: "
            f"write it as +{number.country_code} …, or in the national form of "
            f"{phone_region_name(region)}."
        )
    if prefix and not digits.startswith(prefix):
        return (
            f"has no country code and lacks the national prefix “{prefix}” of "
            f"{phone_region_name(region)}: if it is a number of {phone_region_name(region)}, "
            f"write it with the “{prefix}”; if not, write it with its country code (+1 …)."
        )
    return (
        f"cannot be read as a number of {phone_region_name(region)} without guessing: "
        "write it with its country code (+44 …)."
    )


_GRAPH_FORM = re.compile(r"^\+(?P<cc>[0-9]{1,3}) (?P<number>[0-9X]+)(x(?P<ext>[0-9X]+))?$")


def phone_number_mask(number: str) -> str:
    """`number` as Entra shows it to an Authentication Administrator: country code kept, the rest
    X except the number's last two digits ("+1 XXXXXXXX23", "+1 XXXXXXXX34xXXX").

    Used on every number Lanyard stores for the worker list (provisioning/worker_state.py), so a
    number read with the app identity (which Graph returns in full) is never shown to a manager
    in full. DOC-GAP (docs/graph-contract.md §3, §9.9): the masked format is not documented; this
    is the format graphsim answers with. Masking a masked number changes nothing.
    """
    if not number:
        return ""
    found = _GRAPH_FORM.match(number.strip())
    if not found:
        digits = [i for i, ch in enumerate(number) if ch.isdigit()]
        keep = set(digits[-2:])
        return "".join("X" if ch.isdigit() and i not in keep else ch for i, ch in enumerate(number))
    national = found["number"]
    masked = f"+{found['cc']} {'X' * (len(national) - 2)}{national[-2:]}"
    if found["ext"]:
        masked += "x" + "X" * len(found["ext"])
    return masked


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


def _geocoder():
    """phonenumbers' geocoder, imported when first needed: loading its data takes about a second,
    which every `manage.py` command (bulk_import among them) would otherwise pay at start-up."""
    from phonenumbers import geocoder

    return geocoder


def phone_region_name(region: str) -> str:
    """The region's English country name ("Germany" for DE), or the code itself."""
    geocoder = _geocoder()
    example = phonenumbers.example_number(region)
    return (geocoder.country_name_for_number(example, "en") if example else "") or region


@functools.cache
def _region_by_name() -> dict[str, str]:
    """English country names → region codes, for Entra's free-text `country` field (built once)."""
    geocoder = _geocoder()
    names = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        name = geocoder.country_name_for_number(example, "en") if example else ""
        if name:
            names[name.lower()] = region
    names.update({"usa": "US", "uk": "GB", "united states of america": "US"})
    return names
