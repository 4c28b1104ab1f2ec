"""Every variable the settings read from the environment is documented: in the README's
configuration table and in .env.example (README "Configuration": ".env.example documents each
one").

The variables are found by running portal/settings.py with an environment that records what is
read, in demo mode and outside it (some are read in one mode only), so a new `env_int(...)` or a
helper that reads `os.environ` another way is found without a list kept by hand.
"""

from __future__ import annotations

import os
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "portal" / "settings.py"


class RecordingEnviron(dict):
    """An environment that remembers every name asked for, set or not."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self.read.add(key)
        return super().__contains__(key)


def variables_read_by_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    read: set[str] = set()
    for demo in ("true", "false"):
        environ = RecordingEnviron(
            PATH=os.environ.get("PATH", ""), LANYARD_DEMO=demo, LANYARD_VAR_DIR=str(tmp_path)
        )
        with monkeypatch.context() as patch:
            patch.setattr(os, "environ", environ)
            runpy.run_path(str(SETTINGS), run_name="settings_under_test")
        read |= environ.read
    # Every text variable may come from a file, NAME_FILE: the README says so once, for all.
    return {name for name in read if not (name.endswith("_FILE") and name[: -len("_FILE")] in read)}


def readme_configuration_variables() -> set[str]:
    """The names in the first column of the README's configuration table (and only there)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.strip("|").split("|", 1)[0]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def env_example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return {match[1] for line in lines if (match := re.match(r"^# ?([A-Z][A-Z0-9_]*)=", line))}


@pytest.fixture
def settings_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    return variables_read_by_settings(monkeypatch, tmp_path)


def test_it_finds_the_variables_the_settings_read(settings_variables: set[str]) -> None:
    # One read through each helper, one only in demo mode, one only through os.environ.
    assert {
        "SECRET_KEY",
        "DEBUG",
        "BULK_SHARE_SECONDS",
        "ALLOWED_HOSTS",
        "GRAPHSIM_PORT",
        "LANYARD_VAR_DIR",
    } <= settings_variables
    assert "PATH" not in settings_variables
    assert not any(name.endswith("_FILE") for name in settings_variables)


def test_the_readme_documents_every_variable_the_settings_read(
    settings_variables: set[str],
) -> None:
    missing = sorted(settings_variables - readme_configuration_variables())
    assert missing == [], f"missing from the README's configuration table: {missing}"


def test_env_example_documents_every_variable_the_settings_read(
    settings_variables: set[str],
) -> None:
    missing = sorted(settings_variables - env_example_variables())
    assert missing == [], f"missing from .env.example: {missing}"
