"""Bulk import end to end: `manage.py bulk_import FILE --kind qr --wait` from start to summary line.

    .venv/bin/python bench/bulk_end_to_end.py [--rows 1000] [--workers 1x4] [--latency 80-250]
                                              [--error-rate 0.01] [--poll 2.0] [--baseline TREE]

Needs PostgreSQL and Redis, like bench/bulk_provisioning.py (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/lanyard_bench, created if missing; BENCH_BROKER_URL, default
redis://127.0.0.1:6379/13, flushed). graphsim runs in this process over HTTPS with a large tenant,
80–250 ms latency per request, 1 % of requests answered 503/504 and Graph's documented write limit
(3,000 writes per 150 s per app and tenant = 20/s, docs/graph-contract.md §7.3).

For each size the script syncs the directory (bulk jobs write only to members of synced stores,
docs/architecture.md §5), then makes the directory cache *cold* for the CSV's users: their cached
user principal names are changed, so no DirectoryUser row matches a UPN of the file and every row is
resolved through Graph ($batch reads) while the store memberships, keyed by object id, still say
they are frontline workers. The record of privileged accounts is dropped too (the preview re-reads
it). Real `celery -A portal worker` processes are started (they stay up, as in production), then
the real command runs as a subprocess:

    manage.py bulk_import FILE --kind qr --wait

With `--baseline TREE` the same sizes run first with the command and the workers of another
checkout (the code before a change; its `.venv` may be a link to this one), against the same
database (its migrations are a prefix of ours), graphsim and Redis: the old flow on the same
machine, in the same run. For each flow the script reports the rows, the time from starting the
process to its summary line, the ratio (rows ÷ write budget) ÷ elapsed (docs/architecture.md §9:
≥ 0.95), the requests answered 429 (count and share of all requests, $batch items included), lost
and duplicated methods by graphsim's own counters, and the time from the start to graphsim's first
QR method creation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _services import child_env, django_setup, services_prepare, workers_stop  # noqa: E402 (bench/)

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lanyard_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
SUMMARY = re.compile(r"^(\d+) rows: (\d+) succeeded, (\d+) failed, (\d+) skipped")


def _start_workers(
    processes: int, concurrency: int, log_dir: Path, tree: Path
) -> list[subprocess.Popen]:
    workers = []
    for index in range(processes):
        log = (log_dir / f"worker-{tree.name}-{index}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel=WARNING",
                 f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
                 "-n", f"e2e{index}@%h"],
                cwd=tree, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip
    _wait_workers_ready(processes)
    return workers


def _wait_workers_ready(processes: int, timeout: float = 60.0) -> None:
    """Wait until every worker answers a ping (they are up before the command starts, as in
    production), instead of a fixed sleep."""
    from portal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= processes:
            return
    raise RuntimeError("the Celery workers did not start")


def _prepare_tenant(gs, rows: int) -> list[str]:
    """A synced directory, then a cache cold for the rows' users; returns the CSV's UPNs."""
    from django.core.cache import caches
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from graphsim.tenantgen import large_tenant
    from provisioning import directory
    from provisioning.graph import _singletons, get_app_client
    from provisioning.models import (
        BulkJob,
        DirectoryUser,
        PrivilegedAccountsSnapshot,
        VaultSecret,
    )

    gs.reset(large_tenant(users=int(rows * 1.25) + 200))  # some have a method or no licence
    _singletons.clear()
    BulkJob.objects.all().delete()
    VaultSecret.objects.all().delete()
    directory.directory_sync(client=get_app_client())
    tenant = gs.tenant
    fresh = [
        u
        for uid, u in sorted(tenant.users.items())
        if u.user_type == "Member" and u.account_enabled and u.licensed
        and uid not in tenant.qr_methods and DirectoryUser.objects.filter(pk=uid).exists()
    ][:rows]  # fmt: skip
    if len(fresh) < rows:
        raise RuntimeError(f"the tenant has only {len(fresh)} fresh workers")
    # Cold cache for the file's users: no cached UPN matches, memberships (by id) stay.
    DirectoryUser.objects.filter(pk__in=[u.id for u in fresh]).update(
        user_principal_name=Concat(Value("renamed."), F("user_principal_name"))
    )
    PrivilegedAccountsSnapshot.objects.all().delete()
    caches["shared"].clear()
    return [u.user_principal_name for u in fresh]


def _run(gs, *, rows: int, budget: float, poll: float, workdir: Path, tree: Path) -> dict:
    upns = _prepare_tenant(gs, rows)
    csv_path = workdir / f"workers-{rows}.csv"
    csv_path.write_text("userPrincipalName\n" + "\n".join(upns) + "\n", encoding="utf-8")
    before = gs.stats
    first_write: list[float] = []
    done = threading.Event()

    def watch_first_write(started: float) -> None:
        while not done.is_set():
            if gs.sim.stats.snapshot()["qr_method_creations"]:
                first_write.append(time.monotonic() - started)
                return
            time.sleep(0.02)

    command = [sys.executable, "manage.py", "bulk_import", str(csv_path), "--kind", "qr", "--wait"]
    if os.environ.get("BENCH_PROFILE"):  # a cProfile of the command, to see where time goes
        command[1:1] = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
    if poll:
        command += ["--poll", str(poll)]
    started = time.monotonic()
    watcher = threading.Thread(target=watch_first_write, args=(started,), daemon=True)
    watcher.start()
    process = subprocess.Popen(command, cwd=tree, env=child_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    elapsed = None
    summary = ""
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line.rstrip())
        if elapsed is None and SUMMARY.match(line.strip()):
            elapsed = time.monotonic() - started
            summary = line.strip()
    process.wait()
    done.set()
    if elapsed is None:
        tail = "\n".join(output[-20:])
        raise RuntimeError(f"no summary line (exit {process.returncode}):\n{tail}\n"
                           f"{process.stderr.read() if process.stderr else ''}")  # fmt: skip
    stats = gs.stats
    created = stats["qr_method_creations"]
    requests = sum(stats["requests"].values()) - sum(before["requests"].values())
    throttled = stats["throttled"] - before["throttled"]
    matched = SUMMARY.match(summary)
    assert matched is not None
    ids = {u.id for u in gs.tenant.users.values() if u.user_principal_name in set(upns)}
    return {
        "rows": rows,
        "elapsed_s": round(elapsed, 2),
        "budget_s": round(rows / budget, 2),
        "ratio_to_budget": round(rows / budget / elapsed, 3),
        "first_write_s": round(first_write[0], 2) if first_write else None,
        "succeeded": int(matched.group(2)),
        "failed": int(matched.group(3)),
        "skipped": int(matched.group(4)),
        "requests_incl_batch_items": requests,
        "answered_429": throttled,
        "share_429": round(throttled / max(requests, 1), 4),
        # Which requests got them ("GET 429", "PUT 429"…; $batch items included), this run only.
        "429_by_method": {
            key: n - before["requests"].get(key, 0)
            for key, n in stats["requests"].items()
            if key.endswith(" 429") and n > before["requests"].get(key, 0)
        },
        "lost": sum(1 for uid in ids if not created.get(uid)),
        "duplicated": sum(1 for uid in ids if created.get(uid, 0) > 1),
        "exit_status": process.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000", help="comma-separated sizes, e.g. 1000,10000")
    parser.add_argument("--workers", default="1x4", help="PROCESSESxCONCURRENCY")
    parser.add_argument("--latency", default="80-250", help="ms, min-max")
    parser.add_argument("--error-rate", type=float, default=0.01, help="share of 503/504 answers")
    parser.add_argument("--budget", type=float, default=20.0, help="writes per second")
    parser.add_argument("--window", type=float, default=150.0, help="graphsim's write window, s")
    parser.add_argument("--baseline", metavar="TREE",
                        help="first run the command and workers of this checkout (e.g. a "
                        "`git archive` of the code before a change), in the same run")  # fmt: skip
    parser.add_argument("--poll", type=float, default=0.0,
                        help="pass --poll to bulk_import (0: the command's default)")  # fmt: skip
    args = parser.parse_args()
    low, high = (int(x) for x in args.latency.split("-"))
    processes, concurrency = (int(x) for x in args.workers.split("x"))

    from graphsim.faults import SimConfig
    from graphsim.testing import running_graphsim

    services_prepare(DATABASE_URL, BROKER_URL)
    config = SimConfig(
        latency_min_ms=low,
        latency_max_ms=high,
        error_5xx_rate=args.error_rate,
        write_budget_per_s=args.budget,
        write_burst=args.budget * args.window,
    )
    results: list[dict] = []
    load = os.getloadavg()
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
            GRAPH_WRITES_PER_SECOND=str(int(args.budget)),
        )
        flows = [("baseline", Path(args.baseline).resolve())] if args.baseline else []
        flows.append(("current", ROOT))
        for flow, tree in flows:
            # Each flow's own workers: the baseline's code runs the baseline's job.
            workers = _start_workers(processes, concurrency, Path(workdir), tree)
            try:
                for size in (int(x) for x in args.rows.split(",")):
                    gs.sim.config.update(config.as_dict())
                    figures = _run(gs, rows=size, budget=args.budget, poll=args.poll,
                                   workdir=Path(workdir), tree=tree)  # fmt: skip
                    figures.update(flow=flow, latency_ms=args.latency,
                                   error_rate=args.error_rate, workers=args.workers,
                                   load_avg_1m_before=round(load[0], 2))  # fmt: skip
                    print(json.dumps(figures), flush=True)
                    results.append(figures)
                    load = os.getloadavg()
            finally:
                workers_stop(workers)
        for size in (int(x) for x in args.rows.split(",")):
            runs = {r["flow"]: r for r in results if r["rows"] == size}
            if "baseline" in runs:
                speedup = runs["baseline"]["elapsed_s"] / runs["current"]["elapsed_s"]
                print(
                    json.dumps({"rows": size, "baseline_elapsed_over_current": round(speedup, 2)})
                )
    ok = all(r["lost"] == 0 and r["duplicated"] == 0 and r["failed"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
