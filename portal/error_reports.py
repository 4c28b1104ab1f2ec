"""What an error report (Django's debug page, a mailed 500) may show of the settings.

Django hides settings whose names contain API, TOKEN, KEY, SECRET, PASS or SIGNATURE. Lanyard's
connection URLs carry passwords too (DATABASE_URL, the broker's and the rate limiter's Redis URL),
and the vault keys and client certificate path are secrets: hide every setting whose name says
it is one of those (issue 10, finding 7; docs/architecture.md §5).
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretsHidingExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DATABASE|BROKER|RATE_LIMITER|CACHE"
        "|CERTIFICATE|VAULT|DSN|CREDENTIAL",
        flags=re.IGNORECASE,
    )
