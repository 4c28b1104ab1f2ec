"""Store refresh: a store's QR and phone columns read through $batch vs one worker at a time.

    .venv/bin/python bench/store_refresh.py [--workers 500] [--latency 80-250]

graphsim runs in this process over HTTPS with a tenant holding one store of `--workers` workers
(a third with a QR method, a third with a mobile phone) and 80–250 ms latency per request. After a
directory sync, the script refreshes the store twice in the same run:

- "per worker": `worker_state_refresh` for each member, the path the store refresh took before
  issue 12 (a GET of the QR method and a GET of the phone methods per worker);
- "batched": `worker_states_refresh_for_unit`, two reads per worker sent 20 to a `$batch`;

and reports HTTP requests per worker (graphsim's counters), the Graph reads they carried, wall time
and the ratio between the two, and checks both passes stored the same columns.
SQLite in a temporary file; no PostgreSQL or Redis needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = ("has_qr_method", "standard_expires", "mobile_phone", "sms_sign_in_state")


def _django(graphsim_url: str, ca_bundle: str, scratch: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        LANYARD_DEMO="true",
        DATABASE_URL=f"sqlite:///{scratch}/bench.sqlite3",
        ENTRA_AUTHORITY_HOST=graphsim_url,
        GRAPH_ENDPOINT=graphsim_url,
        GRAPH_RATE_LIMITER_URL=f"file://{scratch}/rate-limit",
        REQUESTS_CA_BUNDLE=ca_bundle,
        LANYARD_VAR_DIR=scratch,
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    Path(scratch, "staticfiles").mkdir(exist_ok=True)
    import django

    django.setup()
    from django.apps import apps
    from django.db import connection

    with connection.schema_editor() as editor:
        for model in apps.get_models():
            if model._meta.managed:
                editor.create_model(model)


def _seed_methods(gs, user_ids: list[str]) -> None:
    from graphsim.model import PhoneMethod

    tenant = gs.tenant
    template = next(iter(tenant.qr_methods.values()))
    for index, user_id in enumerate(user_ids):
        if index % 3 == 0:
            tenant.qr_methods.setdefault(user_id, template)
        elif index % 3 == 1:
            tenant.phone_methods.setdefault(user_id, {})["mobile"] = PhoneMethod(
                "mobile", f"+1 2065551{index % 1000:03d}"
            )


def _columns() -> dict:
    from provisioning.models import WorkerMethodState

    return {s["user_id"]: s for s in WorkerMethodState.objects.values("user_id", *COLUMNS)}


def _measure(gs, name: str, user_ids: list[str], refresh) -> dict:
    from provisioning.graph import _singletons, get_app_client
    from provisioning.models import WorkerMethodState

    WorkerMethodState.objects.all().delete()
    _singletons.clear()
    client = get_app_client()
    client.get(f"/users/{user_ids[0]}?$select=id")  # the token, outside the measurement
    before = gs.stats
    started = time.monotonic()
    refresh(client)
    elapsed = time.monotonic() - started
    after = gs.stats
    batches = after["batches"] - before["batches"]
    reads = sum(after["requests"].values()) - sum(before["requests"].values())
    # A $batch is one HTTP request; graphsim counts its items as requests, not the batch itself
    # (each strategy sends either only single GETs or only $batch calls).
    http = batches if batches else reads
    return {
        "strategy": name,
        "workers": len(user_ids),
        "http_requests": http,
        "requests_per_worker": round(http / len(user_ids), 3),
        "graph_reads": reads,
        "elapsed_s": round(elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--latency", default="80-250", help="ms, min-max")
    args = parser.parse_args()
    low, high = (int(x) for x in args.latency.split("-"))

    from graphsim.faults import SimConfig
    from graphsim.tenantgen import large_tenant
    from graphsim.testing import running_graphsim

    config = SimConfig(latency_min_ms=low, latency_max_ms=high)
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_graphsim(config=config, trust=True, browser=False) as gs,
    ):
        _django(gs.base_url, gs.ca_bundle, scratch)
        from provisioning.directory import directory_sync
        from provisioning.graph import get_app_client
        from provisioning.models import AdministrativeUnit, DirectoryUser
        from provisioning.worker_state import (
            worker_state_refresh,
            worker_states_refresh_for_unit,
        )

        gs.reset(large_tenant(users=args.workers))
        gs.sim.config.update(config.as_dict())
        directory_sync(client=get_app_client())
        unit = AdministrativeUnit.objects.filter(display_name__startswith="Store 900").get()
        user_ids = list(
            DirectoryUser.objects.filter(memberships__administrative_unit=unit).values_list(
                "id", flat=True
            )
        )
        _seed_methods(gs, user_ids)

        def per_worker(client) -> None:
            for user_id in user_ids:
                worker_state_refresh(client=client, user_id=user_id, with_preferences=False)

        def batched(client) -> None:
            worker_states_refresh_for_unit(client=client, unit=unit)

        old = _measure(gs, "per worker", user_ids, per_worker)
        old_columns = _columns()
        new = _measure(gs, "batched", user_ids, batched)
        same = _columns() == old_columns
        for figures in (old, new):
            figures["latency_ms"] = args.latency
            print(json.dumps(figures), flush=True)
        print(json.dumps({
            "requests_ratio_batched_to_per_worker": round(
                new["http_requests"] / old["http_requests"], 4),
            "time_ratio_batched_to_per_worker": round(new["elapsed_s"] / old["elapsed_s"], 3),
            "same_columns": same,
        }), flush=True)  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
