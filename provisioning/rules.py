"""The rules Lanyard checks before anything is sent to Graph, and the small shared definitions.

One definition of each: the QR PIN rules and lifetimes (the same ones Graph enforces,
docs/graph-contract.md §1), the phone types and their labels, which phone a default MFA method uses,
and the backoff of retried work. Date-times in Graph's form are written and read by
`format_datetime` and
`parse_datetime` (provisioning/graph/models.py). Nothing here touches the database or Graph.
"""

from __future__ import annotations

import random
import re
import secrets

PIN_MIN_LENGTH = 8
PIN_MAX_LENGTH = 20
# A standard QR code is valid for at most this many days after its start (docs/graph-contract.md
# §1.1).
STANDARD_MAX_DAYS = 395
TEMPORARY_MIN_HOURS = 1
TEMPORARY_MAX_HOURS = 12

# Phone types in the order they are shown and written, with their labels in sentences.
PHONE_LABELS = {"mobile": "mobile", "alternateMobile": "alternate mobile", "office": "office phone"}
# Which phone a default MFA method uses (signInPreferences, docs/graph-contract.md §3.1).
DEFAULT_METHOD_PHONE = {
    "sms": "mobile",
    "voiceMobile": "mobile",
    "voiceAlternateMobile": "alternateMobile",
    "voiceOffice": "office",
}


def pin_problem(pin: str, *, min_length: int) -> str | None:
    """Why `pin` breaks the QR PIN rules (docs/graph-contract.md §1.2), or None."""
    if not re.fullmatch(r"[0-9]+", pin or ""):
        return "The PIN may contain only the digits 0–9."
    low = max(PIN_MIN_LENGTH, min_length)
    if not low <= len(pin) <= PIN_MAX_LENGTH:
        return f"The PIN must be {low} to {PIN_MAX_LENGTH} digits long."
    if "0123456789" in pin or "9876543210" in pin:
        return "The PIN must not contain 0123456789 or 9876543210."
    for start in range(len(pin) - 5):
        window = pin[start : start + 6]
        if window[:2] * 3 == window or window[:3] * 2 == window:
            return "The PIN must not repeat a group of 2 or 3 digits (like 121212 or 123123)."
    return None


def pin_generate(*, min_length: int) -> str:
    """A random PIN that obeys every QR PIN rule (docs/graph-contract.md §1.2), from `secrets`.

    It is `max(8, min_length)` digits long (at most 20). Used for a PIN reset, whose documented
    request carries the new `code` (§1.7). The result is a secret: vault it, never log it.
    """
    length = min(PIN_MAX_LENGTH, max(PIN_MIN_LENGTH, min_length))
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(length))
        if pin_problem(pin, min_length=length) is None:
            return pin


def backoff_seconds(*, attempt: int, retry_after: float | None, base: float, cap: float) -> float:
    """How long to wait before retrying: Graph's Retry-After when it gave one, else exponential.

    `attempt` counts from 0; the delay doubles from `base` up to `cap`, with full jitter in its
    upper half so retrying workers spread out.
    """
    if retry_after:
        return retry_after + random.uniform(0, 1)  # noqa: S311 - jitter, not a secret
    delay = min(cap, base * 2 ** max(0, attempt))
    return random.uniform(delay / 2, delay)  # noqa: S311
