"""`python -m graphsim serve`: run the simulator as its own process (demo, integration tests,
benchmarks).

    python -m graphsim serve --port 8443 --browser-port 8444 --tls-dir var/graphsim \\
        --state var/graphsim/state.json --tenant demo --latency-ms 80-250 --write-budget 20 \\
        --redirect-uri http://127.0.0.1:8000/auth/callback

Creates the CA and server certificate in --tls-dir if missing, writes <tls-dir>/ca-bundle.pem
(system CAs + graphsim CA) for REQUESTS_CA_BUNDLE, loads --state if present (else generates the
tenant), registers each --redirect-uri on the demo app (where the portal is served), saves it
after writes (debounced) and on exit, prints one line with the URLs, and stops
cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from graphsim import demo, persist, tenantgen
from graphsim.app import Simulator
from graphsim.faults import SimConfig
from graphsim.model import Tenant
from graphsim.server import ServerThread
from graphsim.tls import ensure_tls


def _range_ms(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        low_ms, high_ms = int(low), int(high or low)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected MS or MIN-MAX, e.g. 80-250") from exc
    if low_ms < 0 or high_ms < low_ms:
        raise argparse.ArgumentTypeError("expected 0 <= MIN <= MAX")
    return low_ms, high_ms


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_redirect_uris(tenant: Tenant, uris: list[str]) -> Tenant:
    """The tenant, its demo app registration also accepting `uris` (the portal's callbacks)."""
    app = tenant.apps.get(demo.DEMO_CLIENT_ID)
    if app is not None:
        app.redirect_uris.extend(uri for uri in uris if uri not in app.redirect_uris)
    return tenant


def _with_demo_consent(tenant: Tenant) -> Tenant:
    """The tenant, its demo app registration consented as `tenantgen` says (the README's table)."""
    app = tenant.apps.get(demo.DEMO_CLIENT_ID)
    if app is not None:
        app.delegated_permissions = set(tenantgen.DELEGATED_PERMISSIONS)
        app.application_permissions = set(tenantgen.APPLICATION_PERMISSIONS)
    return tenant


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m graphsim", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run graphsim over HTTPS")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="HTTPS port (0: any free port)")
    serve.add_argument("--browser-port", type=int, default=8444,
                       help="plain-HTTP port for the authorize page (-1: disabled)")  # fmt: skip
    serve.add_argument("--redirect-uri", action="append", default=[], metavar="URI",
                       help="a redirect URI the demo app also accepts (repeatable)")  # fmt: skip
    serve.add_argument("--tls-dir", default="var/graphsim")
    serve.add_argument("--state", default="var/graphsim/state.json",
                       help="tenant state file ('' to keep state in memory only)")  # fmt: skip
    serve.add_argument("--tenant", choices=("demo", "large"), default="demo")
    serve.add_argument("--users", type=int, default=10_000, help="workers in the large store")
    serve.add_argument("--seed", type=int, default=20261101)
    serve.add_argument("--latency-ms", type=_range_ms, default=(0, 0), metavar="MIN-MAX")
    serve.add_argument("--write-budget", type=float, default=20.0, help="writes per second")
    serve.add_argument("--read-units", type=float, default=8000.0, help="RU per 10 seconds")
    serve.add_argument("--token-lifetime", type=int, default=3599, help="seconds")
    serve.add_argument("--max-page-size", type=int, default=999)
    serve.add_argument("--error-rate", type=float, default=0.0, help="injected 503/504 rate")
    serve.add_argument("--reset-rate", type=float, default=0.0, help="dropped connections")
    serve.add_argument("--lost-response-rate", type=float, default=0.0)
    serve.add_argument("--no-throttle", action="store_true")
    serve.add_argument(
        "--control-key",
        default=os.environ.get("GRAPHSIM_CONTROL_KEY"),
        help="required in X-Graphsim-Control-Key (env GRAPHSIM_CONTROL_KEY)",
    )
    return parser


def serve(args: argparse.Namespace) -> int:
    if not _is_loopback(args.host) and not args.control_key:
        print("graphsim: refusing to expose an open control API on a non-loopback address; "
              "pass --control-key", file=sys.stderr)  # fmt: skip
        return 2
    tls = ensure_tls(args.tls_dir)
    key_file = Path(args.tls_dir) / "token-signing-key.pem"
    signing_key = key_file.read_bytes() if key_file.is_file() else None

    def fresh_tenant():
        now = datetime.now(UTC)
        if args.tenant == "large":
            tenant = tenantgen.demo_tenant(args.seed, big_store_workers=args.users, now=now)
        else:
            tenant = tenantgen.demo_tenant(args.seed, now=now)
        return _with_redirect_uris(tenant, args.redirect_uri)

    state = Path(args.state) if args.state else None
    if state and state.is_file():
        # A saved state may come from a run on another port, or from before the README's
        # permission table changed: the demo registration's consent follows today's table.
        tenant = _with_redirect_uris(persist.load(state), args.redirect_uri)
        _with_demo_consent(tenant)
    else:
        tenant = fresh_tenant()
    config = SimConfig(
        token_lifetime_s=args.token_lifetime,
        max_page_size=args.max_page_size,
        throttle_enabled=not args.no_throttle,
        write_budget_per_s=args.write_budget,
        read_units_per_10s=args.read_units,
        latency_min_ms=args.latency_ms[0],
        latency_max_ms=args.latency_ms[1],
        error_5xx_rate=args.error_rate,
        reset_rate=args.reset_rate,
        lost_response_rate=args.lost_response_rate,
    )
    browser = (
        ServerThread(lambda e, s: sim.browser_app(e, s), args.host, args.browser_port)
        if args.browser_port >= 0
        else None
    )
    https = ServerThread(lambda e, s: sim.wsgi_app(e, s), args.host, args.port,
                         tls.server_ssl_context())  # fmt: skip
    sim = Simulator(
        tenant,
        config=config,
        tenant_factory=fresh_tenant,
        browser_url=browser.url("http") if browser else None,
        control_key=args.control_key,
        signing_key_pem=signing_key,
    )
    if signing_key is None:
        key_file.write_bytes(sim.keys.private_pem())
        key_file.chmod(0o600)
    saver = persist.DebouncedSaver(lambda: sim.tenant, state) if state else None
    if saver is not None:
        sim.on_write = saver.schedule
        if not state.is_file():
            saver.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    https.start()
    if browser is not None:
        browser.start()
    base = https.url("https")
    print(
        f"graphsim: {base} authority {base}/{sim.tenant.id} "
        f"browser {browser.url('http') if browser else '-'} "
        f"ca-bundle {tls.bundle} tenant {sim.tenant.domain} ({len(sim.tenant.users)} users)",
        flush=True,
    )
    stop.wait()
    https.stop()
    if browser is not None:
        browser.stop()
    if saver is not None:
        saver.flush()
    print("graphsim: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
