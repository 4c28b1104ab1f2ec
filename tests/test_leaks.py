"""Acceptance: PINs and QR payloads never leak (docs/architecture.md §5).

The flows run with a known custom PIN (and the PINs Entra generates, read from graphsim's state),
and the QR payloads Lanyard received. Then every place a secret could end up is searched: the log
output, every table of the database (raw bytes too), the task messages, and every page served
after the PIN was shown. The only response that may hold a PIN is the one reveal.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from kombu.utils.json import dumps as kombu_dumps

from provisioning import actions
from provisioning.models import Operation

HTMX = {"HTTP_HX_REQUEST": "true"}
CUSTOM_PIN = "58203917"


def _db_dump() -> bytes:
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from Django
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview | bytes | bytearray):
                        chunks.append(bytes(value))
                    else:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def test_no_pin_or_qr_payload_leaks(
    alice_client, alice_worker, directory, run_tasks, caplog, monkeypatch
):
    from provisioning.tasks import operation_run, worker_states_refresh

    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    for task in (operation_run, worker_states_refresh):
        original = task.apply_async

        def recording(args=None, kwargs=None, _original=original, **options):
            messages.append(kombu_dumps({"args": args, "kwargs": kwargs}))
            return _original(args=args, kwargs=kwargs, **options)

        monkeypatch.setattr(task, "apply_async", recording)

    url = alice_worker.url
    expiry = (timezone.localdate() + timedelta(days=60)).isoformat()
    served: list[str] = []

    def post(path, data=None):
        with run_tasks():
            response = alice_client.post(url(path), data or {}, **HTMX)
        served.append(response.content.decode())
        return response

    post("qr/", {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "custom",
                 "add-pin": CUSTOM_PIN})  # fmt: skip
    post("qr/temporary", {"temporary-activation": "now", "temporary-hours": "2"})
    post("qr/replace", {"replace-expiry": expiry})
    post("qr/pin-reset")
    tenant = directory.tenant
    reset_pin = tenant.qr_methods[alice_worker.user_id].pin.code

    ops = list(Operation.objects.filter(worker_id=alice_worker.user_id).order_by("id"))
    assert [op.status for op in ops] == ["succeeded"] * 4, [op.error for op in ops]
    payloads = [
        actions.qr_payload_for_operation(operation=op).decode()
        for op in ops
        if op.payload_secret_id
    ]
    assert len(payloads) == 3
    secrets = [CUSTOM_PIN, reset_pin]
    for payload in payloads:
        secrets += [
            payload,
            payload.rsplit("|", 1)[-1],
            base64.b64encode(payload.encode()).decode(),
        ]

    # The PINs are shown once each; those two responses are the only ones allowed to hold them.
    for op in ops:
        if op.pin_secret_id:
            reveal = alice_client.post(url(f"operations/{op.id}/pin"), **HTMX).content.decode()
            assert CUSTOM_PIN in reveal or reset_pin in reveal
            served.append(
                alice_client.post(url(f"operations/{op.id}/pin"), **HTMX).content.decode()
            )
            served.append(
                alice_client.post(url(f"operations/{op.id}/handed-over"), **HTMX).content.decode()
            )
        served.append(alice_client.get(url(f"operations/{op.id}/"), **HTMX).content.decode())
    for path in ("", "methods", "activity/"):
        served.append(
            alice_client.get(
                url(path), **({"HTTP_HX_REQUEST": "true"} if path == "methods" else {})
            ).content.decode()
        )  # noqa: E501
    served.append(alice_client.get(f"/stores/{alice_worker.au_id}/").content.decode())
    served.append(alice_client.get(f"/stores/{alice_worker.au_id}/activity/").content.decode())

    logs = caplog.text
    dump = _db_dump()
    broker = "\n".join(messages)
    assert messages, "the tasks' messages were captured"
    assert all(json.loads(m)["args"] and isinstance(json.loads(m)["args"][0], int | str)
               for m in messages)  # fmt: skip
    for secret in secrets:
        assert secret not in logs, "a secret is in the log output"
        assert secret.encode() not in dump, "a secret is in the database"
        assert secret not in broker, "a secret is in a task message"
        for html in served:
            assert secret not in html, "a secret is in a page served after the reveal"
