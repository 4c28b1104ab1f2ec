"""Phone numbers typed any common way become Graph's `+CC NUMBER[xEXT]`."""

from __future__ import annotations

import pytest

from provisioning.phone_numbers import PhoneNumberInvalid, phone_number_normalise, phone_region_for


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(425) 555-0100", "US", "+1 4255550100"),
        ("+1 425 555 0100 ext 12", "US", "+1 4255550100x12"),
        ("+14255550100", "DE", "+1 4255550100"),
        ("0049 151 23456789", "US", "+49 15123456789"),
        (" 06-12345678 ", "NL", "+31 612345678"),
        ("030 1234567", "DE", "+49 301234567"),
        ("07911 123456", "GB", "+44 7911123456"),
    ],
)
def test_it_normalises_common_formats(raw, region, expected):
    assert phone_number_normalise(raw, region=region) == expected


@pytest.mark.parametrize("raw", ["", "not a number", "12", "+1 555"])
def test_it_explains_what_is_not_a_number(raw):
    with pytest.raises(PhoneNumberInvalid) as error:
        phone_number_normalise(raw, region="US")
    assert str(error.value)


def test_a_national_number_is_read_in_the_workers_country():
    assert phone_region_for(usage_location="nl") == "NL"
    assert phone_region_for(usage_location="", country="Germany") == "DE"
    assert phone_region_for(usage_location="", country="") == "US"  # LANYARD_DEFAULT_REGION


def test_the_default_region_is_a_setting(settings):
    settings.LANYARD_DEFAULT_REGION = "FR"
    assert phone_region_for() == "FR"
