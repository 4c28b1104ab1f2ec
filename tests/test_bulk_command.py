"""`manage.py bulk_import`: the same engine as the upload page, from the command line."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from provisioning.models import BulkJob
from tests.fixtures_bulk import DATA, assert_qr_exactly_once, fresh_workers, qr_csv


def test_it_runs_a_file_and_prints_the_summary(bulk_graph, eager_tasks, tmp_path,
                                               django_capture_on_commit_callbacks):  # fmt: skip
    workers = fresh_workers(bulk_graph, 25)
    path = tmp_path / "workers.csv"
    path.write_bytes(qr_csv([w.user_principal_name for w in workers]))
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("bulk_import", str(path), "--kind", "qr", "--wait", "--poll", "0.05",
                     "--results", str(tmp_path / "out.csv"), stdout=out)  # fmt: skip
    assert "25 rows: 25 succeeded, 0 failed, 0 skipped" in out.getvalue()
    job = BulkJob.objects.get()
    assert_qr_exactly_once(bulk_graph, job)
    results = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text("utf-8-sig"))))
    assert {r["result"] for r in results} == {"succeeded"}
    assert all(r["expireDateTime"] for r in results)


def test_a_dry_run_writes_nothing(bulk_graph, tmp_path):
    out = io.StringIO()
    call_command("bulk_import", str(DATA / "qr_mixed.csv"), "--kind", "qr", "--dry-run",
                 stdout=out)  # fmt: skip
    text = out.getvalue()
    assert "4 to create, 0 to update, 3 to skip, 3 invalid" in text
    assert "line 8 nobody.here@" in text
    assert "Dry run: nothing was written." in text
    assert not bulk_graph.stats["qr_method_creations"]


def test_failed_rows_make_the_exit_status_non_zero(bulk_graph, eager_tasks, tmp_path,
                                                   django_capture_on_commit_callbacks):  # fmt: skip
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_, django_capture_on_commit_callbacks(execute=True):
        call_command("bulk_import", str(DATA / "qr_mixed.csv"), "--kind", "qr", "--wait",
                     "--poll", "0.05", stdout=out)  # fmt: skip
    assert exit_.value.code == 1
    assert "10 rows: 3 succeeded, 3 failed, 4 skipped" in out.getvalue()


@pytest.mark.parametrize("name", ["empty.csv", "binary.xlsx", "qr_missing_column.csv"])
def test_a_file_level_error_exits_non_zero(bulk_graph, name):
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("bulk_import", str(DATA / name), "--kind", "qr", stderr=err)
    assert exit_.value.code == 2
    assert "File not accepted" in err.getvalue()
    assert not BulkJob.objects.exists()
