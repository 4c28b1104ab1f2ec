"""Crash recovery: a 1,000-row QR job undisturbed, with its worker SIGKILLed 4 times, and with Redis
killed and restarted empty — total time of each as a ratio to the undisturbed run.

    .venv/bin/python bench/crash_recovery.py [--rows 1000] [--runs undisturbed,kill4,redis]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/lanyard_bench,
created if missing) and `redis-server` on the PATH: the script starts its OWN Redis on a private
port (BENCH_REDIS_PORT, default 6394; nothing persisted) as broker and rate limiter, so that it may
kill it. graphsim runs in this process over HTTPS with 80–250 ms latency and Graph's documented
write limit (20 writes/s, docs/graph-contract.md §7.3); one `celery -A portal worker
--concurrency=4` process works the job with the engine's default lease and heartbeat
(BULK_LEASE_SECONDS, BULK_HEARTBEAT_SECONDS), and this script follows the job like
`bulk_import --wait` (sweeping as it polls; no celery beat).

Runs, in one invocation so the ratios share the machine's load:
- `undisturbed`;
- `kill4`: the worker process group is SIGKILLed at 15 %, 35 %, 55 % and 75 % of the rows done,
  and started again at once each time;
- `redis`: at 40 % of the rows done Redis is SIGKILLed and started again, empty, 5 s later (every
  queued message and every unacknowledged task is gone, and so is the rate limiter's bucket);
- `kill4of2`: as `kill4` with two worker processes, one of them killed (and restarted) each time,
  as when a deployment runs more than one worker: what the engine's recovery costs without a
  worker's boot in the way.

Each crash's line says when rows were done again, and how long the new worker took to boot.

Per run: total time (confirmation to the job's end), its ratio to the undisturbed run (target
≤ 1.20, docs/architecture.md §9), rows lost (no method) and duplicated (two creates) by graphsim's
own counters, stale (the vault's payload or PIN is not Graph's), and the share of requests
answered 429.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _services import database_create, django_setup  # noqa: E402 (bench/)

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lanyard_bench"
)
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6394"))
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"


class OwnRedis:
    """A private redis-server this script may kill and restart (never the system one)."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not shutil.which("redis-server"):
            raise SystemExit("redis-server is not on the PATH")
        log = (self.log_dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.log_dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise SystemExit(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class Worker:
    """One `celery -A portal worker` process (group), killed with SIGKILL like a crash."""

    def __init__(self, log_dir: Path, name: str = "crash") -> None:
        self.log_dir = log_dir
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRA_TENANT")}
        env["PYTHONUNBUFFERED"] = "1"
        self.starts += 1
        self.started_wall = time.time()
        self.log_path = self.log_dir / f"worker-{self.name}-{self.starts}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel=INFO",
             "--concurrency=4", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{self.name}{self.starts}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def boot_seconds(self) -> float | None:
        """Seconds from starting the process to Celery's "ready" log line (None while it boots)."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.endswith(" ready.") and line.startswith("["):
                stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp() - self.started_wall
        return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def _stale(job) -> int:
    """Succeeded rows whose vaulted payload or PIN is not the one Graph holds now."""
    from provisioning import vault
    from provisioning.models import VaultSecret

    return 0 if job is None else sum(not _matches(vault, VaultSecret, row) for row in
                                     job.rows.filter(status="succeeded"))  # fmt: skip


def _matches(vault, VaultSecret, row) -> bool:  # noqa: N803 - the model class, passed in
    method = _TENANT["tenant"].qr_methods.get(row.user_id)
    if method is None or method.standard is None:
        return False
    payload = vault.secret_read(secret_id=row.payload_secret_id, kind=VaultSecret.Kind.QR_PAYLOAD,
                                owner_id=row.user_id)  # fmt: skip
    pin = vault.secret_read(secret_id=row.pin_secret_id, kind=VaultSecret.Kind.PIN,
                            owner_id=row.user_id)  # fmt: skip
    return payload.split("|")[2] == method.standard.id and pin == method.pin.code


_TENANT: dict = {}


def _run(gs, redis_server: OwnRedis, *, kind: str, rows: int, log_dir: Path) -> dict:
    from django.db import close_old_connections

    from graphsim.tenantgen import large_tenant
    from provisioning import directory
    from provisioning.bulk import engine, jobs, preview, selectors
    from provisioning.graph import _singletons, get_app_client
    from provisioning.models import BulkJob, BulkJobRow, DirectoryUser, VaultSecret

    gs.reset(large_tenant(users=int(rows * 1.3) + 200))
    _TENANT["tenant"] = gs.tenant
    _singletons.clear()
    BulkJob.objects.all().delete()
    VaultSecret.objects.all().delete()
    import redis

    redis.Redis(port=redis_server.port).flushdb()
    directory.directory_sync(client=get_app_client())
    tenant = gs.tenant
    fresh = [
        u.user_principal_name
        for uid, u in sorted(tenant.users.items())
        if u.user_type == "Member" and u.account_enabled and u.licensed
        and uid not in tenant.qr_methods and DirectoryUser.objects.filter(pk=uid).exists()
    ][:rows]  # fmt: skip
    inputs = [preview.RowInput(i + 2, upn, {"userPrincipalName": upn}) for i, upn in
              enumerate(fresh)]  # fmt: skip
    job = preview.bulk_job_preview(kind="qr", source="csv", source_label="crash.csv",
                                   inputs=inputs, created_by=None)  # fmt: skip
    workers = [Worker(log_dir, f"{kind}w{i}") for i in range(2 if kind == "kill4of2" else 1)]
    for worker in workers:
        worker.start()
    time.sleep(8)  # start-up (system checks, Django) before the job is enqueued
    before = gs.stats
    kills = {"redis": [0.40]}.get(kind, [0.15, 0.35, 0.55, 0.75] if "kill4" in kind else [])
    events: list[str] = []
    resumed: tuple[float, int] | None = None  # since when, and from how many rows done
    try:
        started = time.monotonic()
        job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
        while True:
            engine.jobs_sweep()  # what `bulk_import --wait` does as it polls
            counts = selectors.job_counts(job)
            if not counts["pending"] and not counts["running"]:
                break
            if resumed is not None and counts["done"] > resumed[1]:
                boot = worker.boot_seconds() if "kill4" in kind else None
                events.append(
                    f"progress again {time.monotonic() - resumed[0]:.1f} s later"
                    + (f" (the new worker booted in {boot:.1f} s)" if boot else "")
                )
                resumed = None
            if kills and counts["done"] >= kills[0] * len(fresh):
                kills.pop(0)
                at = round(time.monotonic() - started, 1)
                if "kill4" in kind:
                    worker = workers[len(kills) % len(workers)]
                    worker.kill()
                    worker.start()
                    events.append(f"worker SIGKILLed and restarted at {at} s ({counts['done']})")
                else:
                    redis_server.kill()
                    time.sleep(5)
                    redis_server.start()
                    events.append(f"Redis killed at {at} s ({counts['done']}), empty 5 s later")
                resumed = (time.monotonic(), selectors.job_counts(job)["done"])
            close_old_connections()
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    job.refresh_from_db()
    stats = gs.stats
    created = stats["qr_method_creations"]
    requests = sum(stats["requests"].values()) - sum(before["requests"].values())
    throttled = stats["throttled"] - before["throttled"]
    return {
        "run": kind,
        "rows": len(fresh),
        "total_s": round(elapsed, 1),
        "succeeded": counts["succeeded"],
        "failed": counts["failed"],
        "lost": len(fresh) - len(created),
        "duplicated": sum(1 for n in created.values() if n > 1),
        "stale": _stale(job),
        "requests_incl_batch_items": requests,
        "share_429": round(throttled / max(requests, 1), 4),
        # Where a crash's time goes besides the gaps in `events`: rows claimed more than once
        # (their task died), and of those the rows re-issued — created by Graph but their answer
        # lost, so three more writes each (delete the code, set a new one, reset the PIN).
        "rows_claimed_again": BulkJobRow.objects.filter(job=job, attempts__gt=1).count(),
        "rows_reissued": BulkJobRow.objects.filter(job=job, phase="reissue").count(),
        "events": events,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--runs", default="undisturbed,kill4,redis,kill4of2")
    parser.add_argument("--latency", default="80-250", help="ms, min-max")
    args = parser.parse_args()
    # Stopped early (SIGTERM): still stop the workers and the private Redis (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    low, high = (int(x) for x in args.latency.split("-"))
    budget = float(os.environ.get("GRAPH_WRITES_PER_SECOND", "20"))

    from graphsim.faults import SimConfig
    from graphsim.testing import running_graphsim

    database_create(DATABASE_URL)
    config = SimConfig(
        latency_min_ms=low, latency_max_ms=high, write_budget_per_s=budget,
        write_burst=budget * 150,
    )  # fmt: skip
    results = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_graphsim(config=config, trust=True, browser=False) as gs,
    ):
        redis_server = OwnRedis(REDIS_PORT, Path(workdir))
        redis_server.start()
        try:
            django_setup(
                graphsim_url=gs.base_url,
                ca_bundle=gs.ca_bundle,
                var_dir=workdir,
                database_url=DATABASE_URL,
                broker_url=REDIS_URL,
                GRAPH_WRITES_PER_SECOND=os.environ.get("GRAPH_WRITES_PER_SECOND", "20"),
            )
            for kind in args.runs.split(","):
                gs.sim.config.update(config.as_dict())
                figures = _run(gs, redis_server, kind=kind, rows=args.rows, log_dir=Path(workdir))
                base = next((r for r in results if r["run"] == "undisturbed"), None)
                if base:
                    figures["ratio_to_undisturbed"] = round(figures["total_s"] / base["total_s"], 2)
                figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(figures), flush=True)
                results.append(figures)
        finally:
            redis_server.kill()
    ok = all(r["lost"] == 0 and r["duplicated"] == 0 and r["stale"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
