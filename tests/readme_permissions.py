"""README.md's "Registering the Entra app" permission table, parsed: the one source of truth for
what the app registration holds (docs/graph-contract.md §11, §12).

The default suite runs graphsim with exactly these grants (tests/fixtures_graphsim.py), and
tests/test_readme_permissions.py checks the demo tenant's registration (graphsim/tenantgen.py) and
the product's delegated scopes against them, so none of them can drift from the README.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_HEADER = "| permission | delegated (managers) | application (bulk and scheduled jobs) | for |"


@dataclass(frozen=True)
class ReadmeGrants:
    """Required grants (✓) and optional ones, per permission type."""

    delegated: frozenset[str]
    application: frozenset[str]
    optional_delegated: frozenset[str]
    optional_application: frozenset[str]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_permission_table(text: str) -> ReadmeGrants:
    """The grants listed in the table under `_HEADER`; refuses a cell it cannot read."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == _HEADER)
    found: dict[str, set[str]] = {"d": set(), "a": set(), "od": set(), "oa": set()}
    for line in lines[start + 2 :]:
        if not line.strip().startswith("|"):
            break
        name_cell, delegated, application, _purpose = _cells(line)
        name = re.fullmatch(r"`([A-Za-z0-9.\-]+)`", name_cell)
        if name is None:
            raise ValueError(f"README permission table: unreadable permission {name_cell!r}")
        for cell, required, optional in ((delegated, "d", "od"), (application, "a", "oa")):
            if cell == "✓":
                found[required].add(name.group(1))
            elif cell == "optional":
                found[optional].add(name.group(1))
            elif cell:
                raise ValueError(f"README permission table: unreadable cell {cell!r}")
    return ReadmeGrants(
        delegated=frozenset(found["d"]),
        application=frozenset(found["a"]),
        optional_delegated=frozenset(found["od"]),
        optional_application=frozenset(found["oa"]),
    )


@functools.cache
def readme_grants() -> ReadmeGrants:
    """README.md's table (cached for the session)."""
    return parse_permission_table(README.read_text(encoding="utf-8"))
