"""Run-time configuration of the simulator: limits, token lifetime and injected faults.

One `SimConfig` per simulator. Tests change it in place through the handle
(`graphsim.sim.config.latency_max_ms = 50`), other processes through `PATCH /_graphsim/config`.
The fault decisions are drawn from a seeded random generator so a run is repeatable when requests
arrive in the same order.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class SimConfig:
    """Every knob of the simulator. Rates are fractions of requests in [0, 1]."""

    # Identity platform. `graph_resource` is the Graph resource of the cloud graphsim plays: the
    # only resource (with Graph's app id) its scopes may name, and its tokens' `aud`
    # (docs/graph-contract.md §8.4). Tests set https://graph.microsoft.us etc. to play a
    # national cloud.
    graph_resource: str = "https://graph.microsoft.com"
    token_lifetime_s: int = 3599
    auth_code_lifetime_s: int = 600  # "about 10 minutes" (docs/graph-contract.md §8.3)

    # Paging: Graph's default page is 100 and $top may go to 999 (docs/graph-contract.md §4.1).
    # Lowering max_page_size is the "small page sizes" fault: clients must follow nextLink, never
    # assume.
    default_page_size: int = 100
    max_page_size: int = 999

    # Conditional Access: an authentication context (e.g. "c1", "fresh MFA") that delegated
    # writes require. A token without it gets a claims challenge (401 insufficient_claims) until
    # the user signs in again with the `claims` request the challenge carries.
    require_auth_context: str | None = None

    # The status that refuses the member list of a hidden-membership AU to a caller without
    # Member.Read.Hidden. DOC-GAP (docs/graph-contract.md §4.3): undocumented; 403 by default, and
    # tests also run 400 and 404 so the client is right whichever a real tenant answers.
    hidden_membership_status: int = 403

    # Throttling (docs/graph-contract.md §7.3): 3,000 writes per 150 s per app and tenant, as Graph
    # documents it: at most `write_burst` writes in any window of write_burst / write_budget_per_s
    # seconds. Tests that need a strict per-second limit set write_burst=20 (a 1-second window).
    # Reads cost resource units: 8,000 RU per 10 s (large tenant).
    throttle_enabled: bool = True
    write_budget_per_s: float = 20.0
    write_burst: float | None = 3000.0  # None: one second's worth (a 1-second window)
    read_units_per_10s: float = 8000.0
    retry_after_integer: bool = False  # round Retry-After up to whole seconds

    # 429 storm: while active, this fraction of Graph requests is answered 429.
    storm_fraction: float = 1.0
    storm_retry_after_s: float = 2.0

    # Faults on Graph requests (not on the identity endpoints).
    latency_min_ms: int = 0
    latency_max_ms: int = 0
    error_5xx_rate: float = 0.0
    error_504_share: float = 0.0  # of the injected 5xx, this share are 504 (the rest 503)
    error_503_retry_after_s: float | None = None  # Retry-After sent with an injected 503
    reset_rate: float = 0.0  # close the connection without any response, before handling
    lost_response_rate: float = 0.0  # apply the write, then lose the response
    lost_response_mode: str = "drop"  # "drop" (close the connection) | "504"

    # DOC-GAP switches (docs/graph-contract.md §1.2, §1.3, §1.6, §2): Graph documents no status
    # for "already has a QR method", "a temporary code already exists", "the policy does not target
    # this user" or "invalid PIN". 409 (the default) answers the two "already exists" cases with
    # 409 conflict; 400 answers them with 400 badRequest like the other rule errors, so the suite
    # can prove the product classifies from Graph's state, not from the status.
    undocumented_conflict_status: int = 409
    # Reset the PIN (docs/graph-contract.md §1.7): the documented request carries a `code`.
    # pin_reset_requires_code: a body without `code` is refused with 400 (the strict reading).
    # pin_reset_uses_code: the `code` sent becomes the new PIN (validated against the PIN rules)
    # instead of a generated one (the default, as the pages describe a reset). Either way the
    # answer carries the PIN that is now in force.
    pin_reset_requires_code: bool = False
    pin_reset_uses_code: bool = False

    # Delta queries (docs/graph-contract.md §4.6, graphsim/delta.py). A state token dies when it is
    # older than `delta_token_max_age_s` (seven days for directory objects), when the bounded
    # change log no longer reaches back to it, or when `delta_epoch` changes (the switch tests and
    # benchmarks flip to expire every token at once). Graph then answers `delta_expired_status`
    # with code syncStateNotFound (410 Gone carries a Location header with the initial query).
    # `delta_page_size`: objects per delta page (DOC-GAP: Graph says only that it varies).
    delta_token_max_age_s: int = 7 * 24 * 3600
    delta_epoch: int = 0
    delta_expired_status: int = 410
    delta_page_size: int = 200

    # Seed of the fault generator (re-seeded on reset).
    fault_seed: int = 1

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, rejecting unknown names and values of the wrong type."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown config field {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool) and not isinstance(value, bool):
                raise ValueError(f"{name} must be a boolean")
            is_number = isinstance(current, int | float) and not isinstance(current, bool)
            wrong = value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            )
            if is_number and wrong:
                raise ValueError(f"{name} must be a number")
            if name == "lost_response_mode" and value not in ("drop", "504"):
                raise ValueError("lost_response_mode must be 'drop' or '504'")
            if name == "undocumented_conflict_status" and value not in (400, 409):
                raise ValueError("undocumented_conflict_status must be 400 or 409")
        for name, value in changes.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FaultInjector:
    """Draws fault decisions from a seeded generator and keeps the 429-storm window."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        # Replaceable, like Throttle.clock, so a test can end a storm without sleeping.
        self.clock = clock
        self._lock = threading.Lock()
        self._random = random.Random(config.fault_seed)
        self._storm_until = 0.0  # a self.clock() deadline

    def reseed(self) -> None:
        with self._lock:
            self._random = random.Random(self.config.fault_seed)
            self._storm_until = 0.0

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def latency_s(self) -> float:
        low, high = self.config.latency_min_ms, max(self.config.latency_max_ms, 0)
        if high <= 0:
            return 0.0
        with self._lock:
            return self._random.uniform(min(low, high), high) / 1000

    def start_storm(self, seconds: float) -> None:
        self._storm_until = self.clock() + seconds

    def storm_active(self) -> bool:
        return self.clock() < self._storm_until

    def storm_remaining_s(self) -> float:
        return max(0.0, self._storm_until - self.clock())

    def storm_hits(self) -> bool:
        return self.storm_active() and self._roll(self.config.storm_fraction)

    def reset_hits(self) -> bool:
        return self._roll(self.config.reset_rate)

    def error_5xx(self) -> int | None:
        """503 or 504 when a server error is to be injected, else None."""
        if not self._roll(self.config.error_5xx_rate):
            return None
        return 504 if self._roll(self.config.error_504_share) else 503

    def lose_response(self) -> bool:
        return self._roll(self.config.lost_response_rate)
