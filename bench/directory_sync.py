"""Directory sync at retail scale: cold, warm through delta queries, and warm re-reading every
store, for 10,000 (default) and 100,000 workers.

    .venv/bin/python bench/directory_sync.py            # 10,000 workers (what `make bench` runs)
    .venv/bin/python bench/directory_sync.py --large    # 10,000 and 100,000, with 100k/10k ratios
    .venv/bin/python bench/directory_sync.py --sizes 10000,100000 --changed 0.01

graphsim runs in this process over HTTPS with `retail_tenant` (the demo tenant plus N workers in
N / 50 stores, 2,000 stores at 100,000) and no added latency; each sync runs in a child process,
so the child's peak memory (ru_maxrss, and tracemalloc's peak of the Python heap) is the sync's
alone, not graphsim's. For each size, against one SQLite database:
- **cold**: the first `sync_directory` (every store read; delta links saved, docs/graph-contract.md
  §4.6);
- **delta**: `--changed` of the workers (1 %) change in graphsim — half move to another store,
  half are renamed — and `sync_directory` follows the saved delta links;
- **full re-read**: the same number of other changes, then `sync_directory --full`, the warm sync
  as it was before delta queries (every store read again);
- **scratch rounds**: for comparison with cold, the requests and time of reading the initial delta
  rounds (`users/delta` and `administrativeUnits/delta` from scratch) without writing anything.
It prints per phase the wall time, graphsim's count of requests, the changed rows the command
reported and the peak memory; then ratios measured in the same run: delta ÷ full re-read, and
100k ÷ 10k (docs/architecture.md §9: memory stays flat as the tenant grows).
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


def child(database: str, extra: list[str]) -> None:
    """One sync in this process (env: graphsim's URL and CA bundle); prints its figures as JSON.
    `extra`: sync_directory's arguments, or ["scratch"] to read the initial delta rounds only."""
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
    if extra == ["scratch"]:
        _scratch_rounds(out)
    else:
        call_command("sync_directory", *extra, stdout=out)
    elapsed = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines = out.getvalue().splitlines()
    print(json.dumps({
        "seconds": round(elapsed, 1),
        "heap_peak_mb": round(heap_peak / 2**20, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_sync_mb": round(baseline_rss / 1024, 1),
        "progress_lines": sum(line.startswith(("stores ", "users delta")) for line in lines),
        "summary": next((line for line in lines if line.startswith(("Directory synced",
                                                                     "read "))), ""),
    }))  # fmt: skip


def _scratch_rounds(out) -> None:
    """Read the initial users and stores delta rounds (no token) to their deltaLinks."""
    from provisioning.graph import get_app_client, operations

    client = get_app_client()
    counts = {}
    for name, req in (("users", operations.user_delta_request()),
                      ("stores", operations.administrative_unit_delta_request())):  # fmt: skip
        items = members = 0
        for page in operations.delta_pages(client, req):
            items += len(page.get("value") or [])
            members += sum(len(i.get("members@delta") or []) for i in page.get("value") or [])
        counts[name] = (items, members)
    out.write(f"read {counts['users'][0]} users, {counts['stores'][0]} stores with "
              f"{counts['stores'][1]} members\n")  # fmt: skip


def _phase(gs, database: str, workdir: str, *extra: str) -> dict:
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
        [sys.executable, __file__, "--child", database, *extra],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["requests"] = sum(gs.stats["requests"].values()) - before
    return figures


def _change_workers(tenant, count: int, round_: int) -> None:
    """What a warm sync must pick up: `count` workers change, half of them move to the next
    store, half are renamed. Each round picks other stores and workers."""
    units = [u for u in tenant.administrative_units.values() if len(u.member_ids) > 10]
    for n in range(count):
        unit = units[(n + round_ * count) % len(units)]
        if n % 2 == 0:
            worker = unit.member_ids.pop()
            units[(n + round_ * count + 1) % len(units)].member_ids.append(worker)
        else:
            worker = unit.member_ids[round_ % len(unit.member_ids)]
            tenant.users[worker].display_name += f" r{round_}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--large", action="store_true", help="sizes 10,000 and 100,000")
    parser.add_argument("--changed", type=float, default=0.01, help="share of workers changed")
    parser.add_argument("--child")
    args, extra = parser.parse_known_args()
    if args.child:
        child(args.child, extra)
        return
    sizes = [10_000, 100_000] if args.large else [int(s) for s in args.sizes.split(",")]

    from graphsim.tenantgen import retail_tenant
    from graphsim.testing import running_graphsim

    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for size in sizes:
            started = time.perf_counter()
            tenant = retail_tenant(workers=size, stores=max(1, size // 50))
            built = time.perf_counter() - started
            changed = max(2, int(size * args.changed))
            with running_graphsim(tenant=lambda t=tenant: t, browser=False) as gs:
                database = f"sqlite:///{workdir}/sync-{size}.sqlite3"
                scratch = _phase(gs, database, workdir, "scratch")
                cold = _phase(gs, database, workdir)
                _change_workers(gs.tenant, changed, 0)
                delta = _phase(gs, database, workdir)
                _change_workers(gs.tenant, changed, 1)
                full = _phase(gs, database, workdir, "--full")
            row = {"workers": size, "stores": size // 50, "changed_workers": changed,
                   "tenant_built_s": round(built, 1), "cold": cold, "delta": delta,
                   "full_reread": full, "scratch_rounds": scratch}  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    for row in results:
        print(json.dumps({
            "workers": row["workers"],
            "delta_vs_full_reread_time": round(
                row["delta"]["seconds"] / row["full_reread"]["seconds"], 3),
            "delta_vs_full_reread_requests": round(
                row["delta"]["requests"] / row["full_reread"]["requests"], 3),
            "scratch_vs_cold_requests": round(
                row["scratch_rounds"]["requests"] / row["cold"]["requests"], 3),
        }))  # fmt: skip
    if len(results) > 1:
        small, large = results[0], results[-1]
        for phase in ("cold", "delta", "full_reread"):
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
