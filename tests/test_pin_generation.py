"""Lanyard's own PINs (for resets) and the rule for Graph's undocumented refusals."""

from __future__ import annotations

import pytest

from provisioning.graph import GraphError, is_undocumented_refusal
from provisioning.rules import PIN_MAX_LENGTH, pin_generate, pin_problem


@pytest.mark.parametrize("min_length", [0, 8, 10, 14, 20, 25])
def test_generated_pins_obey_every_rule_and_the_minimum(min_length):
    expected = min(PIN_MAX_LENGTH, max(8, min_length))
    pins = {pin_generate(min_length=min_length) for _ in range(300)}
    assert all(len(pin) == expected and pin.isdigit() for pin in pins)
    assert all(pin_problem(pin, min_length=expected) is None for pin in pins)
    assert len(pins) > 290  # random, not a fixed or short-cycled value


@pytest.mark.parametrize(
    ("status", "undocumented"),
    [(400, True), (409, True), (422, True), (401, False), (403, False), (404, False),
     (429, False), (500, False), (None, False)],
)  # fmt: skip
def test_which_refusals_are_classified_from_graphs_state(status, undocumented):
    assert is_undocumented_refusal(GraphError(status=status)) is undocumented
