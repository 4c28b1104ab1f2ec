"""The developer entry points: scripts/find-python, the Makefile targets and the shell scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIND_PYTHON = ROOT / "scripts" / "find-python"

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def python_version(interpreter: str) -> tuple[int, int]:
    out = run(interpreter, "-c", "import sys; print(*sys.version_info[:2])").stdout
    major, minor = out.split()
    return int(major), int(minor)


def test_it_finds_a_python_of_at_least_3_12() -> None:
    result = run(FIND_PYTHON)
    assert result.returncode == 0, result.stderr
    interpreter = result.stdout.strip()
    assert Path(interpreter).is_absolute()
    assert python_version(interpreter) >= (3, 12)


def test_it_skips_a_pyenv_shim_that_does_not_run(tmp_path: Path) -> None:
    # A pyenv shim with no version selected exits 127 ("command not found").
    shim = tmp_path / "python3.13"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    (tmp_path / "python3.12").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    env.pop("PYTHON", None)

    result = run(FIND_PYTHON, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "python3.12")


def test_it_uses_the_python_variable_when_set() -> None:
    result = run(FIND_PYTHON, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert python_version(result.stdout.strip()) >= (3, 12)


def test_it_names_what_to_install_when_the_python_is_too_old(tmp_path: Path) -> None:
    old = tmp_path / "python3.11"
    old.write_text("#!/bin/sh\nexit 1\n")  # what the version check sees from Python 3.11
    old.chmod(0o755)

    result = run(FIND_PYTHON, env={**os.environ, "PYTHON": str(old)})

    assert result.returncode == 1
    assert result.stdout == ""
    assert "older than 3.12" in result.stderr


@needs_make
def test_it_runs_the_default_suite_without_integration_tests() -> None:
    result = run("make", "--dry-run", "test")
    assert result.returncode == 0, result.stderr
    assert '.venv/bin/pytest -m "not integration and not slow" -n auto' in result.stdout
    assert "-u DATABASE_URL -u CELERY_BROKER_URL" in result.stdout


@needs_make
def test_it_points_the_integration_suite_at_local_services() -> None:
    result = run("make", "--dry-run", "test-integration")
    assert result.returncode == 0, result.stderr
    assert "DATABASE_URL='postgres://postgres@127.0.0.1:5432/lanyard'" in result.stdout
    assert "CELERY_BROKER_URL='redis://127.0.0.1:6379/14'" in result.stdout
    assert '.venv/bin/pytest -m "integration or slow"' in result.stdout


FAKE_PIP_LOG = "pip-calls.log"


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """The Makefile in an empty directory with a stand-in .venv: `make` runs its real recipes,
    but pytest and pip are scripts that answer at once (no suite run, no install, no network).
    The stand-in pytest exits with $FAKE_PYTEST_STATUS; python records its pip calls."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "pytest": 'echo "pytest $*"; exit "${FAKE_PYTEST_STATUS:-0}"\n',
        "python": (
            'if [ "$1" = -m ] && [ "$2" = pip ]; then shift 2; echo "$*" >> '
            f'"{tmp_path / FAKE_PIP_LOG}"; fi\nexit 0\n'
        ),
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    for lock in ("requirements.lock", "requirements-dev.lock"):
        (tmp_path / lock).write_text("# a lock\n")
        os.utime(tmp_path / lock, (1_000_000, 1_000_000))
    (tmp_path / ".venv" / ".lanyard-requirements").touch()  # installed after the locks
    return tmp_path


def make(sandbox: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=sandbox,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pip_calls(sandbox: Path) -> list[str]:
    log = sandbox / FAKE_PIP_LOG
    return log.read_text().splitlines() if log.exists() else []


@needs_make
@pytest.mark.parametrize("status", [0, 1, 3])
def test_make_test_fails_exactly_when_pytest_fails(sandbox: Path, status: int) -> None:
    result = make(sandbox, "test", FAKE_PYTEST_STATUS=str(status))
    assert (result.returncode == 0) == (status == 0), result.stderr
    if status:
        assert f"Error {status}" in result.stderr  # pytest's own status, reported by make
    assert "pytest -m not integration and not slow -n auto" in result.stdout
    assert pip_calls(sandbox) == []  # the venv is up to date: nothing installed


@needs_make
def test_it_fails_make_test_when_no_tests_are_collected(sandbox: Path) -> None:
    result = make(sandbox, "test", "PYTEST_ARGS=-k no_test_has_this_name", FAKE_PYTEST_STATUS="5")
    assert result.returncode != 0
    assert "pytest collected no tests; treating that as a failure" in result.stderr


@needs_make
@pytest.mark.parametrize("changed", ["requirements.lock", "requirements-dev.lock"])
def test_make_venv_installs_the_dev_lock_when_either_lock_changes(
    sandbox: Path, changed: str
) -> None:
    assert make(sandbox, "venv").returncode == 0
    assert pip_calls(sandbox) == []

    (sandbox / changed).write_text("# a new pin\n")  # now newer than the stamp
    result = make(sandbox, "venv")

    assert result.returncode == 0, result.stderr
    assert pip_calls(sandbox) == [
        "install --disable-pip-version-check --quiet -r requirements-dev.lock"
    ]
    assert make(sandbox, "venv").returncode == 0
    assert len(pip_calls(sandbox)) == 1  # installed once, then up to date again


@needs_make
def test_it_lints_with_ruff_check_and_format() -> None:
    result = run("make", "--dry-run", "lint")
    assert ".venv/bin/ruff check ." in result.stdout
    assert ".venv/bin/ruff format --check ." in result.stdout


@pytest.mark.parametrize(
    ("shell", "script"),
    [("bash", "scripts/run-demo"), ("bash", ".ci/run"), ("sh", "scripts/find-python")],
)
def test_it_has_scripts_with_valid_syntax(shell: str, script: str) -> None:
    assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
    result = run(shell, "-n", ROOT / script)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        result = run("shellcheck", ROOT / script)
        assert result.returncode == 0, result.stdout
