"""Celery tasks for badges: thin, safe to run twice, no arguments (docs/conventions.md "Celery
tasks")."""

from __future__ import annotations

from celery import shared_task

from badges import print_jobs


@shared_task(name="badges.print_jobs_expire")
def print_jobs_expire() -> int:
    """Close sheets not printed in time and destroy their QR payloads (beat, every 10 minutes)."""
    return print_jobs.print_jobs_expire()
