"""Worker-list benchmark (docs/architecture.md §9: AU of 5,000 workers, page of 50 with search: p95
server time ≤ 30 ms, a constant number of queries per page).

Seeds one store with 5,000 DirectoryUser + AUMembership + WorkerMethodState rows, signs a manager
in with Django's test client, and requests the store page (`manager:store-detail`) with a search
and a page number ≥ 200 times, timing the whole request/response cycle in-process (URL routing,
middleware, session, scope check, count, page query, template) and counting SQL queries.

    .venv/bin/python bench/worker_list.py [--workers 5000] [--requests 300]

SQLite in a temporary file by default; set DATABASE_URL=postgres://… to measure PostgreSQL (the
script creates and drops its own tables in that database — use a scratch database).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE one request")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="lanyard-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/bench.sqlite3")
    os.environ["LANYARD_VAR_DIR"] = scratch
    Path(scratch, "staticfiles").mkdir()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LANYARD_DEMO", "true")  # graphsim's demo tenant
    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.db import connection

    settings.ALLOWED_HOSTS = ["testserver"]
    models = [m for m in apps.get_models() if m._meta.managed]
    with connection.schema_editor() as editor:
        for model in models:
            editor.create_model(model)
    try:
        run(args)
    finally:
        if connection.vendor != "sqlite":
            with connection.schema_editor() as editor:
                for model in reversed(models):
                    editor.delete_model(model)


def run(args) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from portal.models import User
    from provisioning.models import (
        AdministrativeUnit,
        AUMembership,
        DirectoryUser,
        ScopedRoleAssignment,
        WorkerMethodState,
    )
    from provisioning.roles import AUTHENTICATION_ADMINISTRATOR

    now = timezone.now()
    unit = AdministrativeUnit.objects.create(id="bench-au", display_name="Store 900", synced_at=now)
    manager = User.objects.create(username="bench-manager", entra_object_id="bench-manager")
    ScopedRoleAssignment.objects.create(
        id="bench-role",
        administrative_unit=unit,
        principal_id="bench-manager",
        role_template_id=AUTHENTICATION_ADMINISTRATOR,
        synced_at=now,
    )
    rng = random.Random(7)
    first = ["Ana", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
    last = ["Martin", "Nguyen", "Okafor", "Petrov", "Quinn", "Rossi", "Sato", "Tanaka", "Umar"]
    users = DirectoryUser.objects.bulk_create(
        [
            DirectoryUser(
                id=f"00000000-0000-4000-8000-{i:012d}",
                user_principal_name=f"worker{i}@contoso.example",
                display_name=f"{rng.choice(first)} {rng.choice(last)} {i}",
                employee_id=f"E{i:05d}",
                job_title=rng.choice(["Cashier", "Stocker", "Baker", "Shift lead"]),
                synced_at=now,
            )
            for i in range(args.workers)
        ],
        batch_size=1000,
    )
    AUMembership.objects.bulk_create(
        [AUMembership(administrative_unit=unit, user=u) for u in users], batch_size=1000
    )
    WorkerMethodState.objects.bulk_create(
        [
            WorkerMethodState(
                user=u,
                has_qr_method=i % 5 != 0,
                standard_start=now - timedelta(days=30),
                standard_expires=now + timedelta(days=rng.randint(-20, 360)),
                standard_last_used=None if i % 7 == 0 else now - timedelta(days=2),
                mobile_phone="+44 XXXXXXXX" + f"{i % 100:02d}" if i % 3 == 0 else "",
                refreshed_at=now,
            )
            for i, u in enumerate(users)
        ],
        batch_size=1000,
    )

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would after a directory sync
    client = Client()
    client.force_login(manager)
    url = f"/stores/{unit.id}/"
    client.get(url)  # warm caches, session, templates
    searches = [
        ("broad name search, random page", lambda: {"q": "a", "page": rng.randint(1, 60)}),
        ("employee ID prefix", lambda: {"q": f"E0{rng.randint(0, 4)}", "page": rng.randint(1, 20)}),
        ("sign-in name, one hit", lambda: {"q": f"worker{rng.randint(0, args.workers - 1)}@"}),
        ("no search, random page", lambda: {"page": rng.randint(1, args.workers // 50)}),
    ]
    times: list[float] = []
    per_kind: dict[str, list[float]] = {name: [] for name, _ in searches}
    query_counts: set[int] = set()
    sql_times: list[float] = []
    for n in range(args.requests):
        name, params = searches[n % len(searches)]
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, params())
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.status_code
        times.append(elapsed)
        per_kind[name].append(elapsed)
        query_counts.add(len(queries.captured_queries))
        sql_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)

    def pct(values, p):
        return statistics.quantiles(values, n=100, method="inclusive")[p - 1]

    vendor = connection.vendor
    print(f"database: {vendor}; workers: {args.workers}; requests: {len(times)}; page size 50")
    print(f"{'request':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, values in per_kind.items():
        print(f"{name:34} {pct(values, 50):8.1f} {pct(values, 95):8.1f} {max(values):8.1f}")
    print(f"{'all':34} {pct(times, 50):8.1f} {pct(times, 95):8.1f} {max(times):8.1f}")
    print(f"{'  of which SQL':34} {pct(sql_times, 50):8.1f} {pct(sql_times, 95):8.1f}")
    print(f"queries per request: {sorted(query_counts)}")
    if args.explain:
        with CaptureQueriesContext(connection) as queries:
            client.get(url, {"q": "a", "page": 40})
        with connection.cursor() as cursor:
            for query in queries.captured_queries:
                cursor.execute("EXPLAIN ANALYZE " + query["sql"])
                plan = [row[0] for row in cursor.fetchall()]
                print(query["sql"][:100], "→", plan[-1])
                if "LIMIT" in query["sql"]:
                    print("\n".join(plan))
    budget_ok = pct(times, 95) <= 30 and len(query_counts) == 1
    print("budget (p95 <= 30 ms, constant queries):", "met" if budget_ok else "NOT met")


if __name__ == "__main__":
    main()
