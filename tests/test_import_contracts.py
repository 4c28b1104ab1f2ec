"""The import-direction contracts (pyproject.toml, run by `make lint`) keep covering the code."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _contract(name_start: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["name"].startswith(name_start))


def test_every_other_provisioning_module_is_forbidden_to_provisioning_graph() -> None:
    # import-linter cannot say "everything in provisioning except graph", so the contract lists
    # the modules: a new one must be added there, or provisioning.graph could import it unseen.
    forbidden = set(_contract("provisioning.graph is the bottom layer")["forbidden_modules"])
    package = ROOT / "provisioning"
    siblings = {
        f"provisioning.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    siblings.discard("provisioning.graph")
    assert siblings - forbidden == set()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lint_runs_the_import_contracts() -> None:
    result = subprocess.run(
        ["make", "--dry-run", "lint"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert ".venv/bin/lint-imports" in result.stdout
