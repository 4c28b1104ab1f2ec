"""Worker memory at retail scale: peak memory of a real `celery -A portal worker` (prefork) doing
the work a worker does at scale, for a 10,000-member (default) and a 100,000-member tenant.

    .venv/bin/python bench/worker_memory.py            # 10,000 workers (what `make bench` runs)
    .venv/bin/python bench/worker_memory.py --large    # 10,000 and 100,000, with 100k/10k ratios
    .venv/bin/python bench/worker_memory.py --sizes 10000,100000 --rows 1000 --concurrency 2

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/lanyard_bench,
created if missing, flushed per size) and Redis as broker and rate limiter (BENCH_REDIS_URL,
default redis://127.0.0.1:6379/13, flushed). graphsim runs in this process over HTTPS with
`retail_tenant` (the demo tenant plus N workers in N / 50 stores) and no added latency, as in
bench/directory_sync.py, so graphsim's memory is not the worker's.

For each size, phases in order through the real task path (`.delay()` to the broker), each with a
fresh worker (`--concurrency` prefork children), so each phase's peak is its own:
- **sync cold**: `provisioning.sync_directory` on an empty database (a full sync);
- **sync warm**: 1 % of the workers change in graphsim (bench/directory_sync.py's changes), then
  `provisioning.sync_directory` again (delta queries);
- **store refresh**: `provisioning.worker_states_refresh` of the largest store;
- **bulk QR**: a `--rows` QR job of the tenant's workers, previewed and confirmed through the
  services the upload page and `bulk_import` use, its rows worked by `provisioning.bulk_job_work`
  (this script sweeps as it polls, as `bulk_import --wait` does).

`sync_directory` then queues one store refresh per store (thousands at 100,000): the phase ends
when the sync task has succeeded; the worker is stopped (warm shutdown: the refreshes it had
started finish, and count) and the refreshes still queued are dropped, so the phase measures the
sync, not N / 50 store refreshes (each a store's worth of memory, measured on its own in "store
refresh").

Memory: every 0.2 s the script reads /proc/<pid>/status of every process in the worker's session
(the main process and the pool children): VmHWM (the kernel's peak resident set of the process)
and VmRSS. It prints per phase the main process's peak, the largest pool child's peak, the
largest sum of the tree's resident sets sampled, and the same figures after the worker's boot
(before the task); then the ratio 100k ÷ 10k of each (docs/architecture.md §9).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _services import database_create, django_setup  # noqa: E402 (bench/)

from bench.directory_sync import _change_workers  # noqa: E402 - after the path is set

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lanyard_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PHASES = ("sync_cold", "sync_warm", "store_refresh", "bulk_qr")


def _status_kb(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of `pid` in kB (empty once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {
        line.split(":")[0]: int(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("VmHWM:", "VmRSS:"))
    }


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session
        if int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


class Worker:
    """One `celery -A portal worker` (prefork) in its own session, its memory sampled."""

    def __init__(self, log_dir: Path, name: str, concurrency: int) -> None:
        self.log_path = log_dir / f"worker-{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRA_TENANT")}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel=INFO",
             f"--concurrency={concurrency}", "--pool=prefork", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
            cwd=ROOT, env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.hwm: dict[int, int] = {}  # pid -> VmHWM (kB), the largest seen
        self.tree_rss_kb = 0  # the largest sum of VmRSS over the session in one sample
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        total = 0
        for pid in _session_pids(self.proc.pid):
            status = _status_kb(pid)
            if status:
                self.hwm[pid] = max(self.hwm.get(pid, 0), status["VmHWM"])
                total += status["VmRSS"]
        self.tree_rss_kb = max(self.tree_rss_kb, total)

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        time.sleep(1)  # the pool children finish booting
        self._sample()

    def figures(self) -> dict[str, float]:
        self._sample()
        main = self.hwm.get(self.proc.pid, 0)
        children = [kb for pid, kb in self.hwm.items() if pid != self.proc.pid]
        return {
            "main_peak_mb": round(main / 1024, 1),
            "child_peak_mb": round(max(children, default=0) / 1024, 1),
            "tree_rss_peak_mb": round(self.tree_rss_kb / 1024, 1),
            "processes": len(self.hwm),
        }

    def stop(self) -> None:
        """Warm shutdown (tasks already started finish), SIGKILL after 120 s."""
        self._stop.set()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _queues_drop() -> None:
    """Drop what is still queued (the stores' refreshes a sync queued) and the claims on them."""
    import redis

    from provisioning.models import AdministrativeUnit

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("*"):
        name = key.decode()
        if name in ("celery", "manager", "unacked", "unacked_index") or name.startswith("_kombu"):
            client.delete(key)
    AdministrativeUnit.objects.update(states_refresh_queued_at=None)


def _run_phase(log_dir: Path, name: str, concurrency: int, work) -> dict:
    """Start a fresh worker, note its memory once booted, run `work` (which sends the task and
    waits for it), then the worker's peaks."""
    worker = Worker(log_dir, name, concurrency)
    try:
        worker.wait_ready()
        booted = worker.figures()
        started = time.monotonic()
        extra = work(worker) or {}
        elapsed = time.monotonic() - started
        peak = worker.figures()
    finally:
        worker.stop()
    _queues_drop()
    return {
        "seconds": round(elapsed, 1),
        **peak,
        "booted": {k: v for k, v in booted.items() if k != "processes"},
        **extra,
    }


def _wait_task(worker: Worker, task_id: str, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        log = worker.log()
        if f"[{task_id}] succeeded" in log:
            return
        if f"[{task_id}] raised" in log or f"[{task_id}] retry" in log.lower():
            raise SystemExit(f"task {task_id} failed:\n{log[-3000:]}")
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker stopped or timed out:\n{log[-3000:]}")
        time.sleep(0.2)


def _sync(worker: Worker) -> dict:
    from provisioning.models import DirectorySync
    from provisioning.tasks.directory import sync_directory

    result = sync_directory.delay()
    _wait_task(worker, result.id)
    run = DirectorySync.objects.order_by("-pk").first()
    return {"mode": run.mode, "summary": run.summary}


def _store_refresh(worker: Worker) -> dict:
    from django.db.models import Count

    from provisioning import worker_state
    from provisioning.models import AdministrativeUnit
    from provisioning.tasks.actions import worker_states_refresh

    unit = AdministrativeUnit.objects.annotate(n=Count("memberships")).order_by("-n").first()
    assert worker_state.worker_states_refresh_claim(unit_id=unit.pk)
    result = worker_states_refresh.delay(unit.pk)
    _wait_task(worker, result.id)
    return {"store_members": unit.n}


def _bulk_qr(rows: int, gs):
    def work(worker: Worker) -> dict:
        from django.db import close_old_connections

        from provisioning.bulk import engine, jobs, preview, selectors
        from provisioning.models import DirectoryUser

        tenant = gs.tenant
        upns = list(
            DirectoryUser.objects.filter(pk__in=[uid for uid, u in tenant.users.items()
                                                 if u.user_type == "Member" and u.licensed
                                                 and u.account_enabled
                                                 and uid not in tenant.qr_methods])
            .order_by("user_principal_name")
            .values_list("user_principal_name", flat=True)[:rows]
        )  # fmt: skip
        inputs = [preview.RowInput(i + 2, upn, {"userPrincipalName": upn})
                  for i, upn in enumerate(upns)]  # fmt: skip
        job = preview.bulk_job_preview(kind="qr", source="csv", source_label="memory.csv",
                                       inputs=inputs, created_by=None)  # fmt: skip
        job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
        while True:
            engine.jobs_sweep()  # what `bulk_import --wait` does as it polls
            counts = selectors.job_counts(job)
            if not counts["pending"] and not counts["running"]:
                break
            close_old_connections()
            time.sleep(0.5)
        return {"rows": len(upns), "succeeded": counts["succeeded"], "failed": counts["failed"]}

    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--large", action="store_true", help="sizes 10,000 and 100,000")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the bulk QR job")
    parser.add_argument("--concurrency", type=int, default=2, help="the worker's pool children")
    parser.add_argument("--changed", type=float, default=0.01, help="share changed before warm")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still stop the workers (finally)
    sizes = [10_000, 100_000] if args.large else [int(s) for s in args.sizes.split(",")]

    import redis

    from graphsim.tenantgen import retail_tenant
    from graphsim.testing import running_graphsim

    database_create(DATABASE_URL)
    redis.Redis.from_url(REDIS_URL).flushdb()
    results = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_graphsim(trust=True, browser=False) as gs,
    ):
        django_setup(
            graphsim_url=gs.base_url,
            ca_bundle=gs.ca_bundle,
            var_dir=workdir,
            database_url=DATABASE_URL,
            broker_url=REDIS_URL,
        )
        from django.core.management import call_command

        from provisioning.graph import _singletons

        log_dir = Path(workdir)
        for size in sizes:
            started = time.perf_counter()
            gs.reset(retail_tenant(workers=size, stores=max(1, size // 50)))
            built = time.perf_counter() - started
            _singletons.clear()
            call_command("flush", interactive=False, verbosity=0)
            redis.Redis.from_url(REDIS_URL).flushdb()
            row: dict = {"workers": size, "stores": max(1, size // 50),
                         "tenant_built_s": round(built, 1)}  # fmt: skip
            phases = {
                "sync_cold": _sync,
                "sync_warm": _sync,
                "store_refresh": _store_refresh,
                "bulk_qr": _bulk_qr(args.rows, gs),
            }
            for phase, work in phases.items():
                if phase == "sync_warm":
                    _change_workers(gs.tenant, max(2, int(size * args.changed)), 0)
                row[phase] = _run_phase(log_dir, f"{phase}-{size}", args.concurrency, work)
                row[phase]["load_avg_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps({"workers": size, "phase": phase, **row[phase]}), flush=True)
            results.append(row)
    if len(results) > 1:
        small, large = results[0], results[-1]
        for phase in PHASES:
            print(json.dumps({
                "phase": phase,
                "workers_ratio": round(large["workers"] / small["workers"], 1),
                **{f"{k}_ratio": round(large[phase][k] / small[phase][k], 2)
                   for k in ("main_peak_mb", "child_peak_mb", "tree_rss_peak_mb", "seconds")},
            }), flush=True)  # fmt: skip
    return 0 if all(r["bulk_qr"]["failed"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
