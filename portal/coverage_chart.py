"""The MFA coverage chart of the insights page: pure geometry for a server-rendered SVG
(no script, no chart library). The template draws what this computes; the same numbers are in the
table under the chart, for screen readers and for reading exact values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from provisioning.models import MfaCoverageSnapshot

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 48  # margins for the axes and their labels
Y_TICKS = (0, 25, 50, 75, 100)
MAX_X_LABELS = 6


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # what the point's tooltip and the table say


@dataclass(frozen=True)
class Tick:
    position: float  # x or y in the SVG
    label: str


@dataclass
class CoverageChart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    top: int = TOP
    bottom_edge: int = HEIGHT - BOTTOM
    points: list[Point] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    summary: str = ""

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def x_axis_label_x(self) -> float:
        return (self.left + self.right_edge) / 2

    @property
    def y_axis_label_y(self) -> float:
        return (self.top + self.bottom_edge) / 2


def coverage_chart(snapshots: list[MfaCoverageSnapshot]) -> CoverageChart:
    """Share of member users registered for MFA, per snapshot, over time (oldest left)."""
    chart = CoverageChart()
    plot_w = chart.right_edge - chart.left
    plot_h = chart.bottom_edge - chart.top
    chart.y_ticks = [
        Tick(chart.bottom_edge - plot_h * value / 100, f"{value} %") for value in Y_TICKS
    ]
    if not snapshots:
        chart.summary = "No snapshot yet."
        return chart
    first, last = snapshots[0].taken_at, snapshots[-1].taken_at
    span = (last - first).total_seconds()
    for index, snap in enumerate(snapshots):
        if span:
            x = chart.left + plot_w * (snap.taken_at - first).total_seconds() / span
        else:
            x = chart.left + plot_w * (index + 1) / (len(snapshots) + 1)
        y = chart.bottom_edge - plot_h * snap.percent / 100
        day = timezone.localtime(snap.taken_at)
        chart.points.append(
            Point(x, y, f"{day:%d %b %Y}: {snap.percent:.1f} % "
                        f"({snap.mfa_registered} of {snap.users})")
        )  # fmt: skip
    step = max(1, -(-len(snapshots) // MAX_X_LABELS))
    shown = list(range(0, len(snapshots), step))
    if shown[-1] != len(snapshots) - 1:
        shown.append(len(snapshots) - 1)
    chart.x_ticks = [
        Tick(chart.points[i].x, f"{timezone.localtime(snapshots[i].taken_at):%d %b}") for i in shown
    ]
    chart.summary = (
        f"From {snapshots[0].percent:.1f} % on {timezone.localtime(first):%d %b %Y} to "
        f"{snapshots[-1].percent:.1f} % on {timezone.localtime(last):%d %b %Y}."
    )
    return chart
