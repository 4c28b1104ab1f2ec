"""Directory sync at retail scale: cold and warm `sync_directory` of 10,000 and 100,000 workers.

    .venv/bin/python bench/directory_sync.py [--sizes 10000,100000] [--stores-per-10k 200]

graphsim runs in this process over HTTPS with `retail_tenant` (the demo tenant plus N workers in
N / 50 stores, 2,000 stores at 100,000) and no added latency; the sync runs in a child process per
size and phase, so the child's peak memory (ru_maxrss, and tracemalloc's peak of the Python heap)
is the sync's alone, not graphsim's. For each size: a cold sync into an empty SQLite database, then
one worker moves to another store in graphsim and a warm sync runs against the filled database.
It prints, per phase, the wall time, graphsim's count of requests, the changed rows the command
reported and the peak memory; then the 100k/10k ratios, measured in the same run
(docs/architecture.md §11: memory stays flat as the tenant grows).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(database: str) -> None:
    """One sync in this process (env: graphsim's URL and CA bundle); prints its figures as JSON."""
    import tracemalloc

    os.environ.update(DJANGO_SETTINGS_MODULE="portal.settings", DATABASE_URL=database)
    import django

    django.setup()
    from io import StringIO

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = StringIO()
    tracemalloc.start()
    started = time.perf_counter()
    call_command("sync_directory", stdout=out)
    elapsed = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines = out.getvalue().splitlines()
    print(json.dumps({
        "seconds": round(elapsed, 1),
        "heap_peak_mb": round(heap_peak / 2**20, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_sync_mb": round(baseline_rss / 1024, 1),
        "progress_lines": sum(line.startswith("stores ") for line in lines),
        "summary": next((line for line in lines if line.startswith("Directory synced")), ""),
    }))  # fmt: skip


def _phase(gs, database: str, workdir: str) -> dict:
    env = dict(
        os.environ,
        LANYARD_DEMO="true",
        ENTRA_AUTHORITY_HOST=gs.base_url,
        GRAPH_ENDPOINT=gs.base_url,
        REQUESTS_CA_BUNDLE=str(gs.ca_bundle),
        LANYARD_VAR_DIR=workdir,
        LOG_LEVEL="WARNING",
    )
    for name in ("CELERY_BROKER_URL", "GRAPH_RATE_LIMITER_URL", "ENTRA_TENANT_ID"):
        env.pop(name, None)
    before = sum(gs.stats["requests"].values())
    done = subprocess.run(
        [sys.executable, __file__, "--child", database],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["requests"] = sum(gs.stats["requests"].values()) - before
    return figures


def _move_one_worker(tenant) -> None:
    """The change the warm sync must pick up: one worker moves to the next store."""
    units = [u for u in tenant.administrative_units.values() if len(u.member_ids) > 10]
    worker = units[0].member_ids.pop()
    units[1].member_ids.append(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    from graphsim.tenantgen import retail_tenant
    from graphsim.testing import running_graphsim

    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for size in (int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            tenant = retail_tenant(workers=size, stores=max(1, size // 50))
            built = time.perf_counter() - started
            with running_graphsim(tenant=lambda t=tenant: t, browser=False) as gs:
                database = f"sqlite:///{workdir}/sync-{size}.sqlite3"
                cold = _phase(gs, database, workdir)
                _move_one_worker(gs.tenant)
                warm = _phase(gs, database, workdir)
            row = {"workers": size, "stores": size // 50, "tenant_built_s": round(built, 1),
                   "cold": cold, "warm": warm}  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    if len(results) > 1:
        small, large = results[0], results[-1]
        for phase in ("cold", "warm"):
            print(json.dumps({
                "phase": phase,
                "workers_ratio": round(large["workers"] / small["workers"], 1),
                "time_ratio": round(large[phase]["seconds"] / small[phase]["seconds"], 2),
                "requests_ratio": round(large[phase]["requests"] / small[phase]["requests"], 2),
                "heap_peak_ratio": round(
                    large[phase]["heap_peak_mb"] / small[phase]["heap_peak_mb"], 2),
                "rss_peak_ratio": round(
                    large[phase]["rss_peak_mb"] / small[phase]["rss_peak_mb"], 2),
            }))  # fmt: skip


if __name__ == "__main__":
    main()
