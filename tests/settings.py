"""Settings of the test suite: portal.settings in demo mode, chosen explicitly as production
requires (LANYARD_DEMO, docs/architecture.md §4)."""

import os

os.environ.setdefault("LANYARD_DEMO", "true")

from portal.settings import *  # noqa: E402, F403
