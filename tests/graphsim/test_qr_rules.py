"""The QR code + PIN domain rules as plain functions (docs/graph-contract.md §1.2, §1.6, §9.3)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from PIL import Image, ImageDraw

from graphsim.errors import GraphError
from graphsim.model import QrCode, QrMethod, QrPin
from graphsim.qrmethods import (
    RuleViolation,
    check_standard_lifetime,
    check_temporary_lifetime,
    format_datetime,
    generate_pin,
    method_is_expired,
    parse_datetime,
    pin_problem,
    qr_payload,
    render_qr_svg,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "pin",
    # 12124545: a 2-digit group twice is not the documented "121212"/"123123" repeat.
    ["48207315", "58316094", "48207315482073154820", "12124545", "73920486", "01234567"],
)
def test_it_accepts_valid_pins(pin: str) -> None:
    assert pin_problem(pin, 8) is None


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("4820731a", "digits"),
        ("4820 7315", "digits"),
        ("4820-7315", "digits"),
        ("４８２０７３１５", "digits"),  # full-width digits are not 0-9
        ("٤٨٢٠٧٣١٥", "digits"),  # Arabic-Indic digits either
        ("", "digits"),
        ("4820731", "8 to 20"),
        ("482073154820731548207", "8 to 20"),
        ("50123456789", "0123456789"),
        ("79876543210", "9876543210"),
        ("90121212", "repeat"),  # 12 three times
        ("81231234", "repeat"),  # 123 twice
        ("34234270", "repeat"),  # 342 twice
        ("11111111", "repeat"),
    ],
)
def test_it_rejects_invalid_pins(pin: str, why: str) -> None:
    problem = pin_problem(pin, 8)
    assert problem is not None
    assert why in problem


def test_it_rejects_a_non_string_pin() -> None:
    assert pin_problem(48207315, 8) is not None


def test_it_applies_the_policy_pin_length_as_a_minimum() -> None:
    assert "at least 10" in pin_problem("48207315", 10)
    assert pin_problem("4820731569", 10) is None


def test_it_generates_valid_pins_of_the_policy_length() -> None:
    for length in (8, 12, 20):
        for _ in range(50):
            pin = generate_pin(length)
            assert len(pin) == length
            assert pin_problem(pin, length) is None


def test_standard_lifetime_is_at_most_395_days_and_positive() -> None:
    check_standard_lifetime(T0, T0 + timedelta(days=395))
    with pytest.raises(RuleViolation):
        check_standard_lifetime(T0, T0 + timedelta(days=395, seconds=1))
    with pytest.raises(RuleViolation):
        check_standard_lifetime(T0, T0)


def test_temporary_lifetime_is_one_to_twelve_hours() -> None:
    check_temporary_lifetime(T0, T0 + timedelta(hours=1))
    check_temporary_lifetime(T0, T0 + timedelta(hours=12))
    for bad in (timedelta(minutes=59), timedelta(hours=12, seconds=1), timedelta(0)):
        with pytest.raises(RuleViolation):
            check_temporary_lifetime(T0, T0 + bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T08:00:00Z", T0),
        ("2026-01-05T10:00:00+02:00", T0),
        ("2026-01-05T08:00:00.0000000Z", T0),
        ("2026-01-05t08:00:00z", T0),
    ],
)
def test_it_parses_iso_dates_with_an_offset(text: str, expected: datetime) -> None:
    assert parse_datetime(text, "x") == expected


@pytest.mark.parametrize(
    "text", ["2026-01-05T08:00:00", "2026-13-05T08:00:00Z", "05/01/2026", "", 12, None]
)
def test_it_rejects_malformed_dates(text: object) -> None:
    with pytest.raises(GraphError) as info:
        parse_datetime(text, "x")
    assert info.value.status == 400


def test_it_formats_dates_like_graph() -> None:
    assert format_datetime(T0) == "2026-01-05T08:00:00Z"
    assert format_datetime(T0.replace(microsecond=447109)) == "2026-01-05T08:00:00.4471090Z"
    assert format_datetime(None) == "0001-01-01T00:00:00Z"


def _method(standard: QrCode | None, temporary: QrCode | None) -> QrMethod:
    pin = QrPin(id="p", code="48207315", force_change_pin_next_sign_in=True,
                created_date_time=T0, updated_date_time=T0)  # fmt: skip
    return QrMethod(id="m", created_date_time=T0, standard=standard, temporary=temporary, pin=pin)


def _code(expire: datetime) -> QrCode:
    return QrCode(id="c", start_date_time=T0, expire_date_time=expire, created_date_time=T0)


def test_a_method_is_expired_only_when_every_code_it_holds_has_expired() -> None:
    now = T0 + timedelta(days=2)
    past, future = T0 + timedelta(days=1), T0 + timedelta(days=30)
    assert method_is_expired(_method(_code(past), None), now)
    assert method_is_expired(_method(_code(past), _code(past)), now)
    assert not method_is_expired(_method(_code(past), _code(future)), now)
    assert not method_is_expired(_method(_code(future), None), now)
    # No code at all (standard deleted): still an active method, PUT must not replace it.
    assert not method_is_expired(_method(None, None), now)


def test_the_svg_renders_the_payload_as_a_readable_qr_code() -> None:
    payload = qr_payload(
        "avery.howard@contoso.com", "5f0e6b8a-3c2d-4e7f-9a1b-2c3d4e5f6a7b", "s" * 43
    )
    svg, version = render_qr_svg(payload)
    assert svg.startswith('<svg version="1.1" baseProfile="full" shape-rendering="crispEdges"')
    assert version >= 1
    assert decode_svg(base64.b64encode(svg.encode()).decode()) == payload


_RUN = re.compile(r"M(\d+) (\d+)h(\d+)v(\d+)h-\d+z")


def decode_svg(binary_value: str) -> str:
    """Rasterise graphsim's QR SVG (its black runs) and read it with zxing-cpp."""
    svg = base64.b64decode(binary_value).decode("utf-8")
    size = int(re.search(r'width="(\d+)"', svg).group(1))
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in _RUN.findall(re.search(r'<path d="([^"]*)"', svg).group(1)):
        x, y, w, h = int(x), int(y), int(w), int(h)
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=0)
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1, f"expected one QR code, found {len(results)}"
    return results[0].text
