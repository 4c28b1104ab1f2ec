"""badges.qr builds exactly the symbol the `qrcode` library builds, only faster."""

from __future__ import annotations

import base64
import hashlib

import pytest
import qrcode
from qrcode import constants, util

from badges import qr


def payload(i: int, secret_bytes: int = 32) -> bytes:
    secret = base64.urlsafe_b64encode(hashlib.sha256(f"secret-{i}".encode()).digest() * 4).rstrip(
        b"="
    )[: (secret_bytes * 4 + 2) // 3]
    return (
        f"ms-qrpin:v1|worker{i:05d}@contoso.onmicrosoft.com|"
        f"1a253da5-1c1c-2d2d-3e3e-{i:012x}|".encode()
        + secret
    )


def qrcode_reference(data: bytes, level: int) -> list[list[bool]]:
    symbol = qrcode.QRCode(version=qr.MIN_VERSION, error_correction=level, border=0)
    symbol.add_data(util.QRData(data, mode=util.MODE_8BIT_BYTE))
    symbol.make(fit=True)  # qrcode's own mask search
    return [[bool(module) for module in row] for row in symbol.modules]


@pytest.mark.parametrize("i", range(0, 60, 3))
def test_it_builds_the_same_symbol_as_qrcode(i):
    data = payload(i, secret_bytes=1 + 4 * i)  # versions 6 to ~20

    symbol = qr.encode(data)

    assert symbol.error_correction == "Q"
    assert symbol.matrix() == qrcode_reference(data, constants.ERROR_CORRECT_Q)


def test_it_scores_masks_exactly_like_qrcode():
    data = payload(7)
    symbol = qr.encode(data)
    template = qr._template(symbol.version)

    for matrix in (symbol.matrix(), [[not m for m in row] for row in symbol.matrix()]):
        rows = [sum(1 << c for c, dark in enumerate(row) if dark) for row in matrix]
        assert qr._penalty(qr._big(rows, symbol.size), template) == util.lost_point(matrix)


def test_it_keeps_graphsim_sized_payloads_at_error_correction_q():
    symbol = qr.encode(payload(1))  # 128 bytes, like graphsim's rawContent

    assert symbol.error_correction == "Q"
    assert symbol.version in (9, 10)
    assert symbol.size == symbol.version * 4 + 17


def test_it_steps_down_error_correction_before_modules_get_too_small():
    data = payload(3, secret_bytes=200)
    roomy = qr.encode(data)

    tight = qr.encode(data, max_modules=roomy.size + 2 * qr.QUIET_ZONE_MODULES - 1)

    assert roomy.error_correction == "Q"
    assert tight.error_correction in ("M", "L")
    assert tight.size < roomy.size


def test_it_refuses_a_payload_too_long_to_print_without_echoing_it():
    data = b"s3cr3t" * 200

    with pytest.raises(qr.PayloadTooLong) as caught:
        qr.encode(data, max_modules=60)

    assert b"s3cr3t".decode() not in str(caught.value)


def test_it_covers_exactly_the_dark_modules_with_rectangles():
    symbol = qr.encode(payload(5))

    covered = set()
    for col, row, width, height in qr.rectangles(symbol):
        cells = {(row + dy, col + dx) for dy in range(height) for dx in range(width)}
        assert not covered & cells
        covered |= cells

    dark = {(r, c) for r in range(symbol.size) for c in range(symbol.size) if symbol.is_dark(r, c)}
    assert covered == dark


def test_it_draws_one_filled_path_per_code():
    symbol = qr.encode(payload(2))

    operators = qr.pdf_operators(symbol, 10.0, 20.0, 147.4)

    assert operators.startswith("q 0 g ")
    assert operators.endswith(" re f Q")
    tokens = operators.split()
    assert tokens.count("f") == 1
    assert tokens.count("re") == len(qr.rectangles(symbol))
