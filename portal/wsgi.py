"""WSGI entry point (gunicorn portal.wsgi).

gunicorn does not run Django's system checks, so this does: a misconfigured production portal
refuses to start with the checks' plain messages instead of failing at the first request.
"""

import os
import sys

from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()
try:
    call_command("check", fail_level="ERROR")
except SystemCheckError as exc:
    sys.stderr.write(f"Lanyard will not start until its configuration is fixed:\n{exc}\n")
    sys.exit(1)
