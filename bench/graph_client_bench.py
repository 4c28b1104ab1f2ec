"""Graph client throughput: QR-method creations through $batch against graphsim.

    .venv/bin/python bench/graph_client_bench.py [--users 1000] [--workers 2] [--latency 80-250]

Runs graphsim in-process over HTTPS with a large tenant, Graph's write budget (20/s) and the given
latency, then creates a QR method for `--users` users through $batch from `--workers` threads that
share one rate limiter (as Celery workers share Redis). Reports the sustained write rate against
the budget, the share of requests answered 429, and checks graphsim's counters for lost or
duplicated creations (docs/architecture.md §9: ≥ 95 % of the budget, < 1 % 429s, 0 lost, 0
duplicated).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphsim import demo  # noqa: E402
from graphsim.faults import SimConfig  # noqa: E402
from graphsim.tenantgen import large_tenant  # noqa: E402
from graphsim.testing import running_graphsim  # noqa: E402
from provisioning.graph import AppTokenProvider, GraphConfig, build_client  # noqa: E402
from provisioning.graph import operations as ops  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", default="80-250", help="ms, min-max")
    parser.add_argument("--budget", type=float, default=20.0, help="writes per second")
    parser.add_argument(
        "--window",
        type=float,
        default=150.0,
        help="graphsim's write window in seconds (Graph: 3,000 writes per 150 s)",
    )
    args = parser.parse_args()
    low, high = (int(x) for x in args.latency.split("-"))

    config = SimConfig(
        latency_min_ms=low,
        latency_max_ms=high,
        write_budget_per_s=args.budget,
        write_burst=args.budget * args.window,
    )
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_graphsim(
            tenant=large_tenant(max(args.users, 1000)), config=config, trust=True, browser=False
        ) as gs,
    ):
        graph = GraphConfig(
            tenant_id=gs.tenant.id,
            client_id=demo.DEMO_CLIENT_ID,
            client_secret=demo.DEMO_CLIENT_SECRET,
            authority_host=gs.base_url,
            graph_endpoint=gs.base_url,
            writes_per_second=args.budget,
            rate_limiter_url=workdir,
        )
        tokens = AppTokenProvider(graph)
        clients = [build_client(graph, tokens) for _ in range(args.workers)]
        users = [
            u.id
            for u in gs.tenant.users.values()
            if u.user_type == "Member"
            and u.account_enabled
            and u.licensed
            and u.id not in gs.tenant.qr_methods
        ][: args.users]
        start = datetime.now(UTC).replace(microsecond=0)
        expire = start + timedelta(days=365)
        shares = [users[i :: args.workers] for i in range(args.workers)]
        statuses: dict[int | None, int] = {}
        lock = threading.Lock()

        def work(client, mine):
            for i in range(0, len(mine), 20):
                reqs = [
                    ops.qr_method_create_request(u, start=start, expire=expire)
                    for u in mine[i : i + 20]
                ]
                for result in client.batch(reqs):
                    with lock:
                        statuses[result.status] = statuses.get(result.status, 0) + 1

        started = time.monotonic()
        threads = [
            threading.Thread(target=work, args=(c, s)) for c, s in zip(clients, shares, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

        stats = gs.stats
        created = stats["qr_method_creations"]
        requests = sum(stats["requests"].values())
        figures = {
            "users": len(users),
            "workers": args.workers,
            "latency_ms": args.latency,
            "graph_write_window_s": args.window,
            "elapsed_s": round(elapsed, 2),
            "writes_per_s": round(len(created) / elapsed, 2),
            "share_of_budget": round(len(created) / elapsed / args.budget, 3),
            "requests_incl_batch_items": requests,
            "answered_429": stats["throttled"],
            "share_429": round(stats["throttled"] / max(requests, 1), 4),
            "item_statuses": {str(k): v for k, v in statuses.items()},
            "lost": len(users) - len(created),
            "duplicated": sum(1 for n in created.values() if n > 1),
            "tokens": tokens.tokens_acquired,
        }
        print(json.dumps(figures, indent=2))
        return 0 if figures["duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
