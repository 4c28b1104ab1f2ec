"""Badge sheets from a manager's selection of workers: queue, download, print, expire."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from badges import print_jobs
from badges.models import PrintJob
from badges.tasks import print_jobs_expire
from provisioning.models import (
    AdministrativeUnit,
    AuditEvent,
    AUMembership,
    DirectoryUser,
    VaultSecret,
)
from tests.fixtures_badges import Badged, decoded_qr_codes, pdf_text, store_payload
from tests.fixtures_manager import add_qr

HTMX = {"HTTP_HX_REQUEST": "true"}


def _queue(client, au_id, user_ids, **extra):
    data = {"user_id": user_ids, "layout": "sheet-a4", **extra}
    return client.post(f"/badges/stores/{au_id}/sheets/new", data)


def _destroyed(secret_id: int) -> bool:
    return VaultSecret.objects.get(pk=secret_id).destroyed_at is not None


def test_it_queues_a_sheet_of_the_selected_workers(alice_client, alice_store, alice_badged):
    response = _queue(alice_client, alice_store, [b.user_id for b in alice_badged])
    assert response.status_code == 200
    job = PrintJob.objects.get()
    assert job.store_id == alice_store and job.status == "queued" and job.layout == "sheet-a4"
    assert [i.worker_id for i in job.items.all()] == [b.user_id for b in alice_badged]
    assert "3 badges queued" in response.content.decode()
    event = AuditEvent.objects.get(action="badge-sheet-queued")
    assert event.administrative_unit_id == alice_store
    for badged in alice_badged:
        assert badged.payload.decode() not in event.detail
        assert not _destroyed(badged.secret_id)  # kept until printed


def test_workers_without_a_payload_are_listed_with_a_one_click_replace(
    alice_client, alice_store, alice_badged
):
    gone = alice_badged[0]
    print_jobs.print_job_mark_printed(
        job=print_jobs.print_job_create_from_users(
            unit=AUMembership.objects.get(user_id=gone.user_id).administrative_unit,
            created_by=None,
            layout="cr80",
            user_ids=[gone.user_id],
        ).job
    )
    response = _queue(alice_client, alice_store, [b.user_id for b in alice_badged])
    body = response.content.decode()
    assert response.status_code == 200
    assert "Replace the QR code to print" in body
    assert f'action="/stores/{alice_store}/workers/{gone.user_id}/qr/replace"' in body
    assert 'name="replace-expiry"' in body
    job = PrintJob.objects.filter(status="queued").get()
    assert gone.user_id not in {i.worker_id for i in job.items.all()}


def test_nothing_printable_queues_nothing(alice_client, alice_store, directory):
    member = AUMembership.objects.filter(administrative_unit_id=alice_store).first()
    response = _queue(alice_client, alice_store, [member.user_id])
    assert response.status_code == 422
    assert "replace the QR code to print" in response.content.decode()
    assert not PrintJob.objects.exists()


def test_another_stores_worker_is_not_printed(alice_client, alice_store, bob_badged):
    response = _queue(alice_client, alice_store, [bob_badged[0].user_id])
    assert response.status_code == 422
    assert "Not a worker of this store" in response.content.decode()
    assert not PrintJob.objects.exists()
    assert "/qr/replace" not in response.content.decode()  # replacing would not help


def test_the_replace_button_follows_the_reason_code_not_its_words(rf, alice_store):
    from django.template.loader import render_to_string

    from badges.print_jobs import Unprintable, UnprintableReason
    from provisioning.models import AdministrativeUnit

    store = AdministrativeUnit.objects.get(id=alice_store)
    unprintable = [
        Unprintable("worker-a", "A", UnprintableReason.NO_PAYLOAD),
        Unprintable("worker-b", "B", UnprintableReason.NO_EXPIRY),
        Unprintable("worker-c", "C", UnprintableReason.NOT_IN_STORE),
    ]
    html = render_to_string(
        "badges/sheet_result.html#result",
        {"store": store, "unprintable": unprintable, "replace_url_name": "manager:qr-replace"},
        rf.get("/"),
    )
    assert html.count("/qr/replace") == 1
    assert f"/stores/{alice_store}/workers/worker-a/qr/replace" in html
    assert UnprintableReason.NO_EXPIRY.label in html  # the words stay, for the manager


def test_another_store_is_a_404_at_every_url(alice_client, bob_store, bob_badged):
    assert _queue(alice_client, bob_store, [bob_badged[0].user_id]).status_code == 404
    job = print_jobs.print_job_create_from_users(
        unit=AUMembership.objects.get(user_id=bob_badged[0].user_id).administrative_unit,
        created_by=None,
        layout="cr80",
        user_ids=[bob_badged[0].user_id],
    ).job
    base = f"/badges/stores/{bob_store}/sheets/{job.pk}/"
    assert alice_client.get(f"/badges/stores/{bob_store}/sheets/").status_code == 404
    assert alice_client.get(base).status_code == 404
    assert alice_client.get(base + "sheet.pdf").status_code == 404
    assert alice_client.post(base + "printed").status_code == 404
    assert alice_client.post(base + "cancel").status_code == 404
    job.refresh_from_db()
    assert job.status == "queued"
    assert not _destroyed(bob_badged[0].secret_id)


def test_alices_sheet_under_bobs_store_url_is_a_404(
    alice_client, alice_store, alice_badged, bob_store
):
    _queue(alice_client, alice_store, [alice_badged[0].user_id])
    job = PrintJob.objects.get()
    # The sheet's id with a store alice does not manage: no leak through the URL.
    assert alice_client.get(f"/badges/stores/{bob_store}/sheets/{job.pk}/").status_code == 404


def test_signed_out_visitors_go_to_sign_in(client, alice_store, alice_badged):
    for url in (f"/badges/stores/{alice_store}/sheets/", "/badges/kiosks/"):
        response = client.get(url)
        assert response.status_code == 302 and "/auth/sign-in" in response["Location"]
    response = _queue(client, alice_store, [alice_badged[0].user_id])
    assert response.status_code == 302 and "/auth/sign-in" in response["Location"]
    htmx = client.post(f"/badges/stores/{alice_store}/sheets/new", {}, **HTMX)
    assert htmx.status_code == 200 and "HX-Redirect" in htmx
    assert not PrintJob.objects.exists()


def test_wrong_methods_are_refused(alice_client, alice_store, alice_badged):
    assert alice_client.get(f"/badges/stores/{alice_store}/sheets/new").status_code == 405
    assert alice_client.post(f"/badges/stores/{alice_store}/sheets/").status_code == 405
    _queue(alice_client, alice_store, [alice_badged[0].user_id])
    job = PrintJob.objects.get()
    base = f"/badges/stores/{alice_store}/sheets/{job.pk}/"
    assert alice_client.post(base + "sheet.pdf").status_code == 405
    assert alice_client.get(base + "printed").status_code == 405
    assert alice_client.get(f"/badges/stores/{alice_store}/pin-slips").status_code == 405


def test_htmx_gets_fragments(alice_client, alice_store, alice_badged):
    response = _queue(alice_client, alice_store, [alice_badged[0].user_id])
    assert "<html" in response.content.decode()
    fragment = alice_client.post(
        f"/badges/stores/{alice_store}/sheets/new",
        {"user_id": [alice_badged[1].user_id], "layout": "cr80"},
        **HTMX,
    )
    body = fragment.content.decode()
    assert fragment.status_code == 200
    assert 'id="badge-sheet-result"' in body and "<html" not in body
    assert "badge-sheet-queued" in fragment["HX-Trigger"]
    listing = alice_client.get(f"/badges/stores/{alice_store}/sheets/", **HTMX)
    assert 'id="sheets"' in listing.content.decode()
    assert "<html" not in listing.content.decode()
    assert 'hx-trigger="every 10s"' in listing.content.decode()


def test_a_downloaded_sheet_decodes_to_the_payloads_then_is_printed_once(
    alice_client, alice_store, alice_badged
):
    response = _queue(
        alice_client, alice_store, [b.user_id for b in alice_badged], destination="download"
    )
    job = PrintJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/badges/stores/{alice_store}/sheets/{job.pk}/"
    page = alice_client.get(response["Location"])
    assert page.status_code == 200 and "Download PDF" in page.content.decode()

    pdf = alice_client.get(f"/badges/stores/{alice_store}/sheets/{job.pk}/sheet.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert "no-store" in pdf["Cache-Control"]
    codes = decoded_qr_codes(pdf.content)
    assert Counter(codes) == Counter(b.payload for b in alice_badged)
    text = pdf_text(pdf.content)
    for worker in DirectoryUser.objects.filter(id__in=[b.user_id for b in alice_badged]):
        assert worker.employee_id and worker.employee_id in text

    printed = alice_client.post(f"/badges/stores/{alice_store}/sheets/{job.pk}/printed", **HTMX)
    assert printed.status_code == 200 and "printed" in printed.content.decode()
    job.refresh_from_db()
    assert job.status == "printed" and job.printed_at is not None
    assert all(_destroyed(b.secret_id) for b in alice_badged)
    assert VaultSecret.objects.get(pk=alice_badged[0].secret_id).ciphertext in (
        b"",
        memoryview(b""),
    )
    again = alice_client.get(f"/badges/stores/{alice_store}/sheets/{job.pk}/sheet.pdf")
    assert again.status_code == 409
    assert AuditEvent.objects.filter(action="badge-sheet-printed").count() == 1


def test_a_cancelled_sheet_keeps_its_payloads(alice_client, alice_store, alice_badged):
    _queue(alice_client, alice_store, [alice_badged[0].user_id])
    job = PrintJob.objects.get()
    response = alice_client.post(f"/badges/stores/{alice_store}/sheets/{job.pk}/cancel")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert not _destroyed(alice_badged[0].secret_id)
    assert AuditEvent.objects.filter(action="badge-sheet-cancelled").exists()


def test_sheets_not_printed_in_time_expire_and_their_payloads_are_destroyed(
    alice_client, alice_store, alice_badged, settings
):
    _queue(alice_client, alice_store, [b.user_id for b in alice_badged])
    job = PrintJob.objects.get()
    later = job.expires_at + timedelta(minutes=1)
    with time_machine.travel(later):
        assert print_jobs_expire.apply().get() == 1
    job.refresh_from_db()
    assert job.status == "expired"
    assert all(_destroyed(b.secret_id) for b in alice_badged)
    assert VaultSecret.objects.get(pk=alice_badged[0].secret_id).destroyed_reason == "expired"
    assert AuditEvent.objects.filter(action="badge-sheet-expired").exists()
    # Running it again is harmless.
    with time_machine.travel(later):
        assert print_jobs_expire.apply().get() == 0


def test_the_beat_schedule_runs_the_expiry(settings):
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "badges.print_jobs_expire" in entries
    assert "provisioning.vault_purge_expired" in entries


def test_a_temporary_code_shortens_the_sheets_life(alice_store, alice_badged):
    until = timezone.now() + timedelta(hours=3)
    result = print_jobs.print_job_create_from_users(
        unit=AUMembership.objects.get(user_id=alice_badged[0].user_id).administrative_unit,
        created_by=None,
        layout="cr80",
        requests=[
            print_jobs.BadgeRequest(
                user_id=alice_badged[0].user_id, valid_until=until, temporary=True
            )
        ],
    )
    assert result.job.expires_at == until
    assert result.job.items.get().temporary


def test_an_unknown_layout_is_refused(alice_client, alice_store, alice_badged):
    response = alice_client.post(
        f"/badges/stores/{alice_store}/sheets/new",
        {"user_id": [alice_badged[0].user_id], "layout": "poster"},
    )
    assert response.status_code == 422
    with pytest.raises(print_jobs.BadgeError):
        print_jobs.print_job_create_from_users(
            unit=None, created_by=None, layout="poster", user_ids=[alice_badged[0].user_id]
        )


# -- the badge_sheet command -------------------------------------------------------------------


def test_badge_sheet_for_some_upns(alice_badged, tmp_path, capsys):
    upns = list(
        DirectoryUser.objects.filter(id__in=[b.user_id for b in alice_badged]).values_list(
            "user_principal_name", flat=True
        )
    )
    output = tmp_path / "out.pdf"
    call_command("badge_sheet", "--upn", *upns, "--layout", "cr80", "--output", str(output))
    codes = decoded_qr_codes(output.read_bytes())
    assert Counter(codes) == Counter(b.payload for b in alice_badged)
    assert "3 badge(s) written" in capsys.readouterr().out
    # The file is now the only copy: the payloads are gone and the sheet is recorded as printed.
    assert all(_destroyed(b.secret_id) for b in alice_badged)
    assert PrintJob.objects.get().status == "printed"
    assert AuditEvent.objects.filter(actor_label="badge_sheet command").exists()
    with pytest.raises(CommandError, match="No badge could be printed"):
        call_command("badge_sheet", "--upn", *upns, "--layout", "cr80", "--output", str(output))


def _upn(user_id: str) -> str:
    return DirectoryUser.objects.get(id=user_id).user_principal_name


def test_badge_sheet_takes_upns_after_one_flag_or_repeated(alice_badged, tmp_path, capsys):
    upns = [_upn(b.user_id) for b in alice_badged]
    output = tmp_path / "out.pdf"
    call_command(
        "badge_sheet",
        *("--upn", upns[0], "--upn", upns[1], upns[2]),
        *("--layout", "cr80", "--output", str(output)),
    )
    assert Counter(decoded_qr_codes(output.read_bytes())) == Counter(
        b.payload for b in alice_badged
    )
    assert "3 badge(s) written" in capsys.readouterr().out
    assert PrintJob.objects.get().items.count() == 3


def test_badge_sheet_names_every_upn_it_cannot_print(alice_store, alice_badged, tmp_path, capsys):
    badged = {b.user_id for b in alice_badged}
    no_payload = next(
        _upn(m.user_id)
        for m in AUMembership.objects.filter(administrative_unit_id=alice_store)
        if m.user_id not in badged
    )
    unknown = "nobody@contoso.example"
    output = tmp_path / "out.pdf"
    call_command(  # exit status 0: the file is written
        "badge_sheet",
        *("--upn", _upn(alice_badged[0].user_id), no_payload, "--upn", unknown),
        *("--layout", "cr80", "--output", str(output)),
    )
    assert decoded_qr_codes(output.read_bytes()) == [alice_badged[0].payload]
    printed = capsys.readouterr()
    refusals = printed.err.splitlines()
    assert f"{unknown}: not in the directory cache (run sync_directory?)" in refusals
    assert any(
        line.startswith(no_payload) and "replace the QR code to print" in line for line in refusals
    )
    assert "1 badge(s) written" in printed.out and "2 could not be printed" in printed.out

    # Nothing printable: exit status 1, and no file.
    nothing = tmp_path / "nothing.pdf"
    with pytest.raises(CommandError, match="No badge could be printed") as refused:
        call_command(
            "badge_sheet",
            "--upn",
            unknown,
            no_payload,
            "--layout",
            "cr80",
            "--output",
            str(nothing),
        )
    assert refused.value.returncode == 1
    assert not nothing.exists()
    assert unknown in capsys.readouterr().err


def test_badge_sheet_destroys_nothing_when_the_file_cannot_be_written(alice_badged, tmp_path):
    output = tmp_path / "missing-directory" / "out.pdf"
    with pytest.raises(CommandError, match="Cannot write"):
        call_command(
            "badge_sheet",
            *("--upn", _upn(alice_badged[0].user_id), "--layout", "cr80", "--output", str(output)),
        )
    assert not _destroyed(alice_badged[0].secret_id)
    assert not PrintJob.objects.exists()


def test_badge_sheet_for_a_store_lists_who_cannot_be_printed(
    alice_store, alice_badged, tmp_path, capsys
):
    from provisioning.models import AdministrativeUnit

    name = AdministrativeUnit.objects.get(pk=alice_store).display_name
    output = tmp_path / "store.pdf"
    call_command("badge_sheet", "--au", name, "--layout", "sheet-letter", "--output", str(output))
    codes = decoded_qr_codes(output.read_bytes())
    assert Counter(codes) == Counter(b.payload for b in alice_badged)
    assert "replace the QR code to print" in capsys.readouterr().err


def test_badge_sheet_needs_a_source_and_a_known_store(tmp_path, db):
    with pytest.raises(CommandError):
        call_command("badge_sheet", "--layout", "cr80", "--output", str(tmp_path / "x.pdf"))
    with pytest.raises(CommandError, match="No store named"):
        call_command(
            "badge_sheet", "--au", "Nowhere", "--layout", "cr80", "--output", str(tmp_path / "x")
        )


def test_a_sheet_per_store_for_workers_of_several_stores(alice_badged, bob_badged):
    result = print_jobs.print_jobs_create_by_store(
        created_by=None,
        layout="cr80",
        user_ids=[alice_badged[0].user_id, bob_badged[0].user_id, alice_badged[1].user_id],
    )
    assert len(result.jobs) == 2
    assert {job.store_id for job in result.jobs} == {alice_badged[0].au_id, bob_badged[0].au_id}
    assert sorted(job.items.count() for job in result.jobs) == [1, 2]


def test_a_sheet_reads_its_payload_from_the_vault_each_time(alice_store, alice_badged):
    job = print_jobs.print_job_create_from_users(
        unit=AUMembership.objects.get(user_id=alice_badged[0].user_id).administrative_unit,
        created_by=None,
        layout="cr80",
        user_ids=[alice_badged[0].user_id],
    ).job
    assert decoded_qr_codes(print_jobs.print_job_pdf(job=job)) == [alice_badged[0].payload]
    VaultSecret.objects.filter(pk=alice_badged[0].secret_id).update(
        destroyed_at=timezone.now(), ciphertext=b""
    )
    with pytest.raises(print_jobs.PrintJobUnavailable, match="replace the QR code"):
        print_jobs.print_job_pdf(job=job)


def test_the_newest_payload_is_printed(alice_store, alice_badged):
    newer = store_payload(alice_badged[0].user_id, payload=b"ms-qrpin:v1|newer|0002")
    job = print_jobs.print_job_create_from_users(
        unit=AUMembership.objects.get(user_id=newer.user_id).administrative_unit,
        created_by=None,
        layout="cr80",
        user_ids=[newer.user_id],
    ).job
    assert job.items.get().payload_secret_id == newer.secret_id
    assert decoded_qr_codes(print_jobs.print_job_pdf(job=job)) == [newer.payload]


def test_the_sheets_page_offers_the_workers_ready_to_print(
    alice_client, alice_store, alice_badged, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        page = alice_client.get(f"/badges/stores/{alice_store}/sheets/")
    body = page.content.decode()
    assert page.status_code == 200
    for badged in alice_badged:
        assert f'name="user_id" value="{badged.user_id}"' in body
    assert f'action="/badges/stores/{alice_store}/sheets/new"' in body
    # A store's list page costs the same number of queries with more sheets.
    for _ in range(3):
        _queue(alice_client, alice_store, [alice_badged[0].user_id])
    with django_assert_max_num_queries(12):
        assert alice_client.get(f"/badges/stores/{alice_store}/sheets/").status_code == 200


def test_badge_sheet_for_a_bulk_jobs_results(alice_badged, bob_badged, tmp_path, capsys):
    from provisioning.models.bulk import BulkJob, BulkJobRow

    job = BulkJob.objects.create(
        kind="qr", source="csv", source_label="new-starters.csv", preview_hash="0" * 64
    )
    expires = timezone.now() + timedelta(days=90)
    everyone = [*alice_badged, bob_badged[0]]
    for line, badged in enumerate(everyone, start=2):
        BulkJobRow.objects.create(
            job=job,
            line=line,
            upn=f"worker{line}@example.test",
            user_id=badged.user_id,
            action="create",
            status="succeeded",
            payload_secret_id=badged.secret_id,
            result={"expires_at": expires.isoformat()},
        )
    output = tmp_path / "job.pdf"
    call_command("badge_sheet", "--job", str(job.pk), "--layout", "cr80", "--output", str(output))
    codes = decoded_qr_codes(output.read_bytes())
    assert Counter(codes) == Counter(b.payload for b in everyone)
    # One sheet per store, each with the expiry the bulk job recorded.
    assert PrintJob.objects.filter(source="command", status="printed").count() == 2
    items = [item for sheet in PrintJob.objects.all() for item in sheet.items.all()]
    assert {item.valid_until for item in items} == {expires}
    assert all(_destroyed(b.secret_id) for b in everyone)
    assert BulkJobRow.objects.filter(badge_printed_at__isnull=False).count() == len(everyone)
    with pytest.raises(CommandError, match="No badge could be printed"):
        call_command(
            "badge_sheet", "--job", str(job.pk), "--layout", "cr80", "--output", str(output)
        )


def test_the_one_click_replace_makes_the_worker_printable_again(
    alice_client, alice_worker, run_tasks
):
    import re

    add_qr(alice_client, alice_worker, run_tasks)
    first = _queue(alice_client, alice_worker.au_id, [alice_worker.user_id])
    assert first.status_code == 200
    job = PrintJob.objects.get()
    alice_client.post(f"/badges/stores/{alice_worker.au_id}/sheets/{job.pk}/printed")

    refused = _queue(alice_client, alice_worker.au_id, [alice_worker.user_id])
    body = refused.content.decode()
    assert refused.status_code == 422 and "Replace QR code" in body
    action = re.search(r'<form method="post" action="([^"]+/qr/replace)"', body).group(1)
    expiry = re.search(r'name="replace-expiry" value="([^"]+)"', body).group(1)
    with run_tasks():
        replaced = alice_client.post(action, {"replace-expiry": expiry})
    assert replaced.status_code == 302

    again = _queue(alice_client, alice_worker.au_id, [alice_worker.user_id])
    assert again.status_code == 200
    sheet = PrintJob.objects.filter(status="queued").get()
    pdf = print_jobs.print_job_pdf(job=sheet)
    assert decoded_qr_codes(pdf)[0].startswith(b"ms-qrpin")


# -- query counts ------------------------------------------------------------------------------

# A sheet's queries do not grow with its badges. Queueing: the workers, their memberships, their
# payloads, the code facts (manager actions, bulk job rows, method states), then the sheet, its
# badges and the audit event in a savepoint. Rendering: waiting badges, the badges, their
# payloads. Printing: close the sheet, destroy the payloads, count and audit, in a savepoint.
QUEUE_QUERIES = 11
RENDER_QUERIES = 3
PRINTED_QUERIES = 7


def _store_badged(au_id: str, count: int, created_by=None) -> list[Badged]:
    members = AUMembership.objects.filter(administrative_unit_id=au_id).order_by("user_id")
    user_ids = list(members.values_list("user_id", flat=True)[:count])
    assert len(user_ids) == count
    return [store_payload(user_id, created_by=created_by) for user_id in user_ids]


@pytest.mark.parametrize("count", [1, 12])
def test_a_sheet_costs_the_same_queries_for_one_badge_or_twelve(
    alice_store, directory, count, django_assert_num_queries
):
    badged = _store_badged(alice_store, count)
    unit = AdministrativeUnit.objects.get(pk=alice_store)

    with django_assert_num_queries(QUEUE_QUERIES):
        job = print_jobs.print_job_create_from_users(
            unit=unit, created_by=None, layout="sheet-a4", user_ids=[b.user_id for b in badged]
        ).job
    with django_assert_num_queries(RENDER_QUERIES):
        print_jobs.print_job_pdf(job=job)
    with django_assert_num_queries(PRINTED_QUERIES):
        assert print_jobs.print_job_mark_printed(job=job)

    assert job.items.count() == count
    assert all(_destroyed(b.secret_id) for b in badged)


def test_a_managers_sheet_costs_the_same_queries_for_one_badge_or_twelve(
    alice_client, alice_store, directory, alice_user
):
    def queries(count: int) -> tuple[int, int, int]:
        badged = _store_badged(alice_store, count, created_by=alice_user)
        with CaptureQueriesContext(connection) as queued:
            _queue(alice_client, alice_store, [b.user_id for b in badged], destination="download")
        job = PrintJob.objects.latest("id")
        assert job.items.count() == count
        sheet = f"/badges/stores/{alice_store}/sheets/{job.pk}/"
        with CaptureQueriesContext(connection) as downloaded:
            assert alice_client.get(sheet + "sheet.pdf").status_code == 200
        with CaptureQueriesContext(connection) as printed:
            assert alice_client.post(sheet + "printed").status_code == 302
        return len(queued), len(downloaded), len(printed)

    queries(1)  # the first requests of a session cost more (session, user): not counted
    assert queries(1) == queries(12)
