"""Bulk QR provisioning end to end: a 10,000-row job worked by real Celery worker processes.

    .venv/bin/python bench/bulk_provisioning.py [--users 10000] [--runs 1x4,4x2] [--latency 80-250]

Needs PostgreSQL and Redis, like `make test-integration` (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/lanyard_bench, created if missing; BENCH_BROKER_URL, default
redis://127.0.0.1:6379/13, flushed). graphsim runs in this process over HTTPS with a large tenant,
80–250 ms latency per request and Graph's documented write limit (3,000 writes per 150 s per app and
tenant = 20/s, docs/graph-contract.md §7.3). For each run (`PROCESSESxCONCURRENCY`) the script
starts that many `celery -A portal worker` processes sharing one Redis rate limiter, previews and
confirms a QR job for `--users` fresh workers exactly as the upload page does, follows it like
`bulk_import --wait`, and reports writes per second as a share of the budget, the share of requests
answered 429, total time, and graphsim's own count of lost and duplicated methods
(docs/architecture.md §9: ≥ 95 % of the budget, < 1 % 429s, 0 lost, 0 duplicated).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _services import child_env, django_setup, services_prepare, workers_stop  # noqa: E402 (bench/)

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lanyard_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")


def _start_workers(processes: int, concurrency: int, log_dir: Path) -> list[subprocess.Popen]:
    env = child_env()
    workers = []
    for index in range(processes):
        log = (log_dir / f"worker-{index}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel=WARNING",
                 f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
                 "-n", f"bench{index}@%h"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
    time.sleep(6)  # start-up (system checks, Django) before the job is enqueued
    return workers


def _run(gs, *, users: int, processes: int, concurrency: int, budget: float, log_dir: Path):
    from graphsim.tenantgen import large_tenant
    from provisioning import directory
    from provisioning.bulk import engine, jobs, preview, selectors
    from provisioning.graph import _singletons, get_app_client
    from provisioning.models import BulkJob, DirectoryUser, VaultSecret

    gs.reset(large_tenant(users=int(users * 1.2) + 200))
    _singletons.clear()
    BulkJob.objects.all().delete()
    VaultSecret.objects.all().delete()
    directory.directory_sync(client=get_app_client())  # the upload page resolves UPNs from it
    tenant = gs.tenant
    fresh = [
        u.user_principal_name
        for uid, u in sorted(tenant.users.items())
        if u.user_type == "Member" and u.account_enabled and u.licensed
        and uid not in tenant.qr_methods and DirectoryUser.objects.filter(pk=uid).exists()
    ][:users]  # fmt: skip
    inputs = [preview.RowInput(i + 2, upn, {"userPrincipalName": upn}) for i, upn in
              enumerate(fresh)]  # fmt: skip
    prepared = time.monotonic()
    job = preview.bulk_job_preview(kind="qr", source="csv", source_label="bench.csv",
                                   inputs=inputs, created_by=None)  # fmt: skip
    preview_s = time.monotonic() - prepared
    workers = _start_workers(processes, concurrency, log_dir)
    before = gs.stats
    try:
        started = time.monotonic()
        job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
        while True:
            engine.jobs_sweep()
            counts = selectors.job_counts(job)
            if not counts["pending"] and not counts["running"]:
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
    finally:
        workers_stop(workers)
    stats = gs.stats
    created = stats["qr_method_creations"]
    requests = sum(stats["requests"].values()) - sum(before["requests"].values())
    writes = sum(n for key, n in stats["requests"].items()
                 if key.split()[0] in ("PUT", "PATCH", "DELETE", "POST")
                 and not key.endswith(" 429") and key != "POST 200")  # fmt: skip
    throttled = stats["throttled"] - before["throttled"]
    return {
        "users": len(fresh),
        "worker_processes": processes,
        "concurrency_each": concurrency,
        "preview_s": round(preview_s, 1),
        "elapsed_s": round(elapsed, 1),
        "succeeded": counts["succeeded"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "writes_accepted": writes,
        "writes_per_s": round(writes / elapsed, 2),
        "share_of_budget": round(writes / elapsed / budget, 3),
        "requests_incl_batch_items": requests,
        "answered_429": throttled,
        "share_429": round(throttled / max(requests, 1), 4),
        "lost": len(fresh) - len(created),
        "duplicated": sum(1 for n in created.values() if n > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", default="1x4,4x2", help="PROCESSESxCONCURRENCY, comma-separated")
    parser.add_argument("--latency", default="80-250", help="ms, min-max")
    parser.add_argument("--budget", type=float, default=20.0, help="writes per second")
    parser.add_argument("--window", type=float, default=150.0, help="graphsim's write window, s")
    args = parser.parse_args()
    low, high = (int(x) for x in args.latency.split("-"))
    os.environ["GRAPH_WRITES_PER_SECOND"] = str(int(args.budget))

    from graphsim.faults import SimConfig
    from graphsim.testing import running_graphsim

    services_prepare(DATABASE_URL, BROKER_URL)
    config = SimConfig(
        latency_min_ms=low,
        latency_max_ms=high,
        write_budget_per_s=args.budget,
        write_burst=args.budget * args.window,
    )
    results = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_graphsim(config=config, trust=True, browser=False) as gs,
    ):
        django_setup(
            graphsim_url=gs.base_url,
            ca_bundle=gs.ca_bundle,
            var_dir=workdir,
            database_url=DATABASE_URL,
            broker_url=BROKER_URL,
            GRAPH_WRITES_PER_SECOND=os.environ.get("GRAPH_WRITES_PER_SECOND", "20"),
        )
        for run in args.runs.split(","):
            processes, concurrency = (int(x) for x in run.split("x"))
            gs.sim.config.update(config.as_dict())
            figures = _run(gs, users=args.users, processes=processes, concurrency=concurrency,
                           budget=args.budget, log_dir=Path(workdir))  # fmt: skip
            figures["latency_ms"] = args.latency
            print(json.dumps(figures), flush=True)
            results.append(figures)
    ok = all(r["lost"] == 0 and r["duplicated"] == 0 and r["failed"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
