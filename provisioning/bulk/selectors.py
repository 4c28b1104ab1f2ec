"""What a bulk job's progress looks like: counts by status, rate, time left, a summary line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone

from provisioning.models import BulkJob, BulkJobRow

Row = BulkJobRow


def job_counts(job: BulkJob) -> dict[str, Any]:
    """Counts by status, rate over the last minute and time left (for the progress bar)."""
    by_status = dict(
        Row.objects.filter(job=job).values_list("status").annotate(n=Count("id")).order_by()
    )
    counts: dict[str, Any] = {s: by_status.get(s, 0) for s in Row.Status.values}
    counts["total"] = sum(by_status.values())
    counts["done"] = counts["total"] - counts["pending"] - counts["running"]
    window = 60
    recent = Row.objects.filter(
        job=job, finished_at__gte=timezone.now() - timedelta(seconds=window)
    ).count()
    if job.confirmed_at:
        elapsed = max(1.0, (timezone.now() - job.confirmed_at).total_seconds())
        window = min(window, elapsed)
    rate = recent / window if window else 0.0
    left = counts["pending"] + counts["running"]
    counts["rate"] = round(rate, 1)
    counts["seconds_left"] = round(left / rate) if rate and left else None
    counts["percent"] = round(100 * counts["done"] / counts["total"]) if counts["total"] else 100
    return counts


def summary_line(counts: dict[str, Any]) -> str:
    """One line for a job's outcome: '45 rows: 40 succeeded, 2 failed, 3 skipped'."""
    skipped = counts["skipped"] + counts["cancelled"]
    return (
        f"{counts['total']} rows: {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{skipped} skipped"
    )
