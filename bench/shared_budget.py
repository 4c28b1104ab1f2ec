"""Many processes, one budget (issue 12, item 6): real Celery worker processes sharing the Redis
limiters, two IT admin jobs at once, and a manager's action while a large job runs.

    .venv/bin/python bench/shared_budget.py [--rows 600] [--big-rows 3000] [--actions 10]
        [--manager-jobs 3] [--runs 2x2,4x1] [--latency 80-250] [--parts scale,fair,manager]

Needs PostgreSQL and Redis, like `make test-integration` (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/lanyard_bench, created if missing; BENCH_BROKER_URL, default
redis://127.0.0.1:6379/13, flushed). graphsim runs in this process over HTTPS with 80–250 ms
latency and Graph's documented write window (3,000 writes per 150 s per app and tenant,
docs/graph-contract.md §7.3). Three parts, each printing one JSON line per figure:

- **scale**: for each `PROCESSESxCONCURRENCY` run, that many `celery -A portal worker` processes
  work one QR job of `--rows` fresh workers; combined writes per second as a share of the budget,
  and the share of requests answered 429 (≥ 95 %, < 1 %).
- **fair**: two IT admin jobs of `--rows` rows each, confirmed together, on 2 processes; each
  job's share of the rows done in every 10-second interval while both run, and when each finished
  (no starvation: both shares well above 0 in every interval).
- **manager**: the deployment of docker-compose.yml — bulk workers (`-Q celery`, 2 processes) and
  `worker-manager` (`-Q manager`, 2 processes). A signed-in manager (the real sign-in against
  graphsim) adds a QR code + PIN to `--actions` fresh workers one after the other through the
  service the worker page calls (`qr_method_add` → `operation_run` on the worker), and runs
  `--manager-jobs` 20-row manager jobs (`manager_job_start`) one after the other, first with
  nothing else running, then while a `--big-rows` job is writing at the budget; the median and
  p95 of each, and the ratios loaded/idle. The large job is stopped once the manager's work is
  measured.

Figures, not assertions; record them in docs/BENCHMARKS.md ("Many processes, one budget").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _services import child_env, django_setup, services_prepare, workers_stop  # noqa: E402 (bench/)

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lanyard_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
REDIRECT_URI = "http://testserver/auth/callback"


def _start_workers(specs: list[tuple[str, int]], log_dir: Path) -> list[subprocess.Popen]:
    """One `celery -A portal worker` per (queues, concurrency); queues "" = the defaults."""
    env = child_env()
    workers = []
    for index, (queues, concurrency) in enumerate(specs):
        log = (log_dir / f"worker-{time.monotonic_ns()}-{index}.log").open("wb")
        command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel=WARNING",
                   f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
                   "-n", f"bench{index}@%h"]  # fmt: skip
        if queues:
            command += ["-Q", queues]
        workers.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
    time.sleep(6)  # start-up (system checks, Django) before work is enqueued
    return workers


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _steady_rate(job) -> float:
    """Rows finished per second between the 5th and the 95th percentile of the job's finish times:
    the combined rate once every process is writing, without the start and the final sweep."""
    from provisioning.models import BulkJobRow

    stamps = sorted(
        t.timestamp()
        for t in BulkJobRow.objects.filter(job=job, status="succeeded").values_list(
            "finished_at", flat=True
        )
    )
    if len(stamps) < 40:
        return 0.0
    low, high = round(len(stamps) * 0.05), round(len(stamps) * 0.95)
    return (high - low) / max(stamps[high] - stamps[low], 1e-9)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Bench:
    def __init__(self, gs, *, budget: float, log_dir: Path, need: int) -> None:
        from graphsim.demo import DEMO_CLIENT_ID
        from graphsim.tenantgen import demo_tenant_with_people
        from provisioning import directory
        from provisioning.graph import _singletons, get_app_client
        from provisioning.models import AdministrativeUnit, BulkJob, DirectoryUser, VaultSecret

        self.gs = gs
        self.budget = budget
        self.log_dir = log_dir
        tenant, self.people = demo_tenant_with_people(big_store_workers=int(need * 1.2) + 200)
        tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(REDIRECT_URI)
        gs.reset(tenant)
        _singletons.clear()
        BulkJob.objects.all().delete()
        VaultSecret.objects.all().delete()
        started = time.monotonic()
        directory.directory_sync(client=get_app_client())
        self.sync_s = time.monotonic() - started
        big = next(u for u in tenant.administrative_units.values() if u.display_name.startswith(
            "Store 900"))  # fmt: skip
        self.unit = AdministrativeUnit.objects.get(pk=big.id)
        known = set(
            DirectoryUser.objects.filter(pk__in=big.member_ids).values_list("pk", flat=True)
        )
        self.fresh = [
            uid for uid in big.member_ids
            if uid in known and uid not in tenant.qr_methods and tenant.users[uid].licensed
            and tenant.users[uid].account_enabled and tenant.users[uid].user_type == "Member"
        ]  # fmt: skip
        self.taken = 0

    def take(self, count: int) -> list[str]:
        ids = self.fresh[self.taken : self.taken + count]
        if len(ids) < count:
            raise SystemExit("the tenant has too few fresh workers for these sizes")
        self.taken += count
        return ids

    def it_job(self, count: int, label: str):
        from provisioning.bulk import preview
        from provisioning.models import DirectoryUser

        upns = DirectoryUser.objects.filter(pk__in=self.take(count)).values_list(
            "user_principal_name", flat=True
        )
        inputs = [preview.RowInput(i + 2, upn, {"userPrincipalName": upn})
                  for i, upn in enumerate(sorted(upns))]  # fmt: skip
        return preview.bulk_job_preview(kind="qr", source="csv", source_label=label,
                                        inputs=inputs, created_by=None)  # fmt: skip

    def writes_and_429(self) -> tuple[int, int, int]:
        stats = self.gs.stats
        writes = sum(n for key, n in stats["requests"].items()
                     if key.split()[0] in ("PUT", "PATCH", "DELETE", "POST")
                     and not key.endswith(" 429") and key != "POST 200")  # fmt: skip
        return writes, sum(stats["requests"].values()), stats["throttled"]

    # -- part 1: combined rate ----------------------------------------------------------------

    def scale(self, runs: list[tuple[int, int]], rows: int) -> list[dict]:
        from provisioning.bulk import engine, jobs, selectors

        out = []
        for processes, concurrency in runs:
            job = self.it_job(rows, f"scale-{processes}x{concurrency}.csv")
            workers = _start_workers([("", concurrency)] * processes, self.log_dir)
            w0, r0, t0 = self.writes_and_429()
            try:
                started = time.monotonic()
                jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
                while True:
                    counts = selectors.job_counts(job)
                    if not counts["pending"] and not counts["running"]:
                        break
                    engine.jobs_sweep()
                    time.sleep(1.0)
                elapsed = time.monotonic() - started
            finally:
                workers_stop(workers)
            w1, r1, t1 = self.writes_and_429()
            out.append({
                "part": "scale", "worker_processes": processes, "concurrency_each": concurrency,
                "rows": rows, "succeeded": counts["succeeded"], "skipped": counts["skipped"],
                "failed": counts["failed"], "elapsed_s": round(elapsed, 1),
                "writes_per_s": round((w1 - w0) / elapsed, 2),
                "share_of_budget": round((w1 - w0) / elapsed / self.budget, 3),
                "steady_share_of_budget": round(_steady_rate(job) / self.budget, 3),
                "requests": r1 - r0, "answered_429": t1 - t0,
                "share_429": round((t1 - t0) / max(r1 - r0, 1), 4), "load": _load(),
            })  # fmt: skip
            print(json.dumps(out[-1]), flush=True)
        return out

    # -- part 2: two jobs at once -------------------------------------------------------------

    def fair(self, rows: int, interval: float = 10.0) -> dict:
        from django.db import transaction

        from provisioning.bulk import engine, jobs, selectors

        first = self.it_job(rows, "fair-a.csv")
        second = self.it_job(rows, "fair-b.csv")
        workers = _start_workers([("", 2)] * 2, self.log_dir)
        w0, r0, t0 = self.writes_and_429()
        samples: list[tuple[float, int, int]] = []
        finished: dict[str, float] = {}
        try:
            started = time.monotonic()
            with transaction.atomic():  # both enqueued on the same commit
                first = jobs.bulk_job_confirm(job=first, previewed_hash=first.preview_hash,
                                              confirmed_by=None)  # fmt: skip
                second = jobs.bulk_job_confirm(job=second, previewed_hash=second.preview_hash,
                                               confirmed_by=None)  # fmt: skip
            while len(finished) < 2:
                now = time.monotonic() - started
                a, b = selectors.job_counts(first), selectors.job_counts(second)
                samples.append((now, a["succeeded"], b["succeeded"]))
                for name, counts in (("a", a), ("b", b)):
                    if name not in finished and not counts["pending"] and not counts["running"]:
                        finished[name] = now
                engine.jobs_sweep()
                time.sleep(1.0)
            elapsed = time.monotonic() - started
        finally:
            workers_stop(workers)
        w1, r1, t1 = self.writes_and_429()
        shares = []
        both_until = min(finished.values())
        edge = interval
        last = (0.0, 0, 0)
        for stamp, a, b in samples:
            if stamp >= edge and stamp <= both_until:
                done = (a - last[1]) + (b - last[2])
                shares.append(round((a - last[1]) / done, 2) if done else None)
                last = (stamp, a, b)
                edge += interval
        figures = {
            "part": "fair", "rows_each": rows, "worker_processes": 2, "concurrency_each": 2,
            "finished_a_s": round(finished["a"], 1), "finished_b_s": round(finished["b"], 1),
            "share_a_per_10s_while_both_run": shares,
            "min_share": min((s for s in shares if s is not None), default=None),
            "max_share": max((s for s in shares if s is not None), default=None),
            "writes_per_s": round((w1 - w0) / elapsed, 2),
            "share_of_budget": round((w1 - w0) / elapsed / self.budget, 3),
            "share_429": round((t1 - t0) / max(r1 - r0, 1), 4), "load": _load(),
        }  # fmt: skip
        print(json.dumps(figures), flush=True)
        return figures

    # -- part 3: a manager while a large job runs ---------------------------------------------

    def _manager(self):
        import requests
        from django.test import Client

        from portal.models import User

        manager_id = self.people.managers[0]  # manages the big store (Store 900)
        client = Client()
        start = client.get("/auth/sign-in")
        assert start.status_code == 302, start
        picked = requests.post(start["Location"], data={"user": manager_id},
                               allow_redirects=False, timeout=30)  # fmt: skip
        callback = urlsplit(picked.headers["Location"])
        done = client.get(f"{callback.path}?{callback.query}")
        assert done.status_code == 302, done.content[:500]
        return User.objects.get(entra_object_id=manager_id)

    def _one_action(self, manager, worker_id: str) -> float:
        from provisioning.actions import qr_method_add
        from provisioning.models import DirectoryUser, Operation

        worker = DirectoryUser.objects.get(pk=worker_id)
        start = datetime.now(UTC).replace(microsecond=0)
        clicked = time.monotonic()
        operation = qr_method_add(worker=worker, unit=self.unit, requested_by=manager,
                                  start=start, expire=start + timedelta(days=90),
                                  custom_pin=None)  # fmt: skip
        while True:
            status = Operation.objects.filter(pk=operation.pk).values_list("status", flat=True)[0]
            if status in (Operation.Status.SUCCEEDED, Operation.Status.FAILED):
                break
            if time.monotonic() - clicked > 120:
                raise SystemExit(f"action {operation.pk} still {status} after 120 s")
            time.sleep(0.02)
        if status != Operation.Status.SUCCEEDED:
            raise SystemExit(f"action {operation.pk} failed")
        return time.monotonic() - clicked

    def _manager_job(self, manager, count: int) -> float:
        from provisioning.bulk import selectors
        from provisioning.bulk.manager_jobs import manager_job_start

        clicked = time.monotonic()
        job = manager_job_start(user=manager, unit=self.unit, user_ids=self.take(count),
                                action="create")  # fmt: skip
        while True:
            counts = selectors.job_counts(job)
            if not counts["pending"] and not counts["running"]:
                break
            if time.monotonic() - clicked > 300:
                raise SystemExit("manager job still running after 300 s")
            time.sleep(0.05)
        if counts["succeeded"] != count:
            raise SystemExit(f"manager job: {counts}")
        return time.monotonic() - clicked

    def manager(self, big_rows: int, actions: int, jobs_each: int, job_rows: int = 20) -> dict:
        from provisioning.bulk import jobs, selectors
        from provisioning.models import BulkJob

        manager = self._manager()
        big = self.it_job(big_rows, "big.csv")
        workers = _start_workers([("celery", 2), ("manager", 2)], self.log_dir)
        figures: dict = {"part": "manager", "big_rows": big_rows, "actions": actions,
                         "manager_job_rows": job_rows}  # fmt: skip
        try:
            self._one_action(manager, self.take(1)[0])  # warm-up: tokens, connections
            idle = [self._one_action(manager, uid) for uid in self.take(actions)]
            idle_job = [self._manager_job(manager, job_rows) for _ in range(jobs_each)]
            w0, r0, t0 = self.writes_and_429()
            started = time.monotonic()
            jobs.bulk_job_confirm(job=big, previewed_hash=big.preview_hash, confirmed_by=None)
            while selectors.job_counts(big)["succeeded"] < 100:  # writing at the budget
                time.sleep(0.5)
            loaded = [self._one_action(manager, uid) for uid in self.take(actions)]
            loaded_job = [self._manager_job(manager, job_rows) for _ in range(jobs_each)]
            elapsed = time.monotonic() - started
            w1, r1, t1 = self.writes_and_429()
            big_counts = selectors.job_counts(big)
        finally:
            BulkJob.objects.filter(pk=big.pk).update(status=BulkJob.Status.CANCELLED)
            workers_stop(workers)
        figures.update({
            "action_idle_median_s": round(statistics.median(idle), 3),
            "action_idle_p95_s": round(_p95(idle), 3),
            "action_loaded_median_s": round(statistics.median(loaded), 3),
            "action_loaded_p95_s": round(_p95(loaded), 3),
            "action_ratio_median": round(statistics.median(loaded) / statistics.median(idle), 2),
            "action_ratio_p95": round(_p95(loaded) / _p95(idle), 2),
            "job20_idle_s": [round(x, 2) for x in idle_job],
            "job20_loaded_s": [round(x, 2) for x in loaded_job],
            "job20_ratio_median": round(
                statistics.median(loaded_job) / statistics.median(idle_job), 2
            ),
            "job20_ratio_p95": round(_p95(loaded_job) / _p95(idle_job), 2),
            "big_job_rows_done_meanwhile": big_counts["succeeded"],
            "writes_per_s_meanwhile": round((w1 - w0) / elapsed, 2),
            "share_of_budget_meanwhile": round((w1 - w0) / elapsed / self.budget, 3),
            "share_429_meanwhile": round((t1 - t0) / max(r1 - r0, 1), 4), "load": _load(),
        })  # fmt: skip
        print(json.dumps(figures), flush=True)
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600, help="rows of each scale/fair job")
    parser.add_argument("--big-rows", type=int, default=3000, help="the job a manager waits on")
    parser.add_argument("--actions", type=int, default=10, help="single actions idle and loaded")
    parser.add_argument("--manager-jobs", type=int, default=3, help="20-row jobs idle and loaded")
    parser.add_argument("--runs", default="2x2,4x1", help="PROCESSESxCONCURRENCY, comma-separated")
    parser.add_argument("--parts", default="scale,fair,manager")
    parser.add_argument("--latency", default="80-250", help="ms, min-max")
    parser.add_argument("--budget", type=float, default=20.0, help="writes per second")
    parser.add_argument("--window", type=float, default=150.0, help="graphsim's write window, s")
    args = parser.parse_args()
    low, high = (int(x) for x in args.latency.split("-"))
    parts = set(args.parts.split(","))
    runs = [tuple(int(x) for x in run.split("x")) for run in args.runs.split(",")]

    from graphsim.faults import SimConfig
    from graphsim.testing import running_graphsim

    services_prepare(DATABASE_URL, BROKER_URL)
    config = SimConfig(latency_min_ms=low, latency_max_ms=high, write_budget_per_s=args.budget,
                       write_burst=args.budget * args.window)  # fmt: skip
    need = 0
    need += args.rows * len(runs) if "scale" in parts else 0
    need += args.rows * 2 if "fair" in parts else 0
    need += (
        args.big_rows + 2 * args.actions + 1 + 2 * 20 * args.manager_jobs
        if "manager" in parts
        else 0
    )
    print(json.dumps({"load_before": _load(), "cpus": os.cpu_count()}), flush=True)
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
            GRAPH_READ_UNITS_PER_10S="8000",  # graphsim's tier (a tenant above 500 users)
            ALLOWED_HOSTS="testserver,127.0.0.1,localhost",
        )
        gs.sim.config.update(config.as_dict())
        bench = Bench(gs, budget=args.budget, log_dir=Path(workdir), need=need)
        if "scale" in parts:
            bench.scale(runs, args.rows)
        if "fair" in parts:
            bench.fair(args.rows)
        if "manager" in parts:
            bench.manager(args.big_rows, args.actions, args.manager_jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
