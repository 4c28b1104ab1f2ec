"""Template hygiene that rendering alone would not reveal until a page is looked at."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_no_single_line_comment_spans_lines() -> None:
    """Django's `{# … #}` ends at the line's end: one left open is printed on the page as text."""
    open_comments = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.count("{#") > line.count("#}")
    ]
    assert open_comments == []


def test_the_home_page_shows_no_template_comment(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "{#" not in response.content.decode()
