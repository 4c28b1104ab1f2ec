"""Badge PDF benchmark (docs/architecture.md §9: 1,000 badges in ≤ 2 s and ≤ 3 MB on one core).

For every layout: render 1,000 badges with `badges.render.render_badges` and report wall time,
PDF size and pages; then, in the same run, the naive approach for comparison — `qrcode.make()`
(pure-Python mask search, PIL image) → PNG → `canvas.drawImage` — with the same text.

    .venv/bin/python bench/badge_pdf.py [--count 1000] [--naive-count 1000] [--layouts cr80,...]

The process pins itself to one CPU. Font registration (parsing the vendored TTFs, once per
process) is timed separately and excluded from the per-layout figures; a long-running worker
pays it once.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qrcode  # noqa: E402
from reportlab.lib.utils import ImageReader  # noqa: E402

from badges import layouts, render  # noqa: E402
from badges.render import BadgeData  # noqa: E402

FIRST = {
    "latin": ["Zoë", "José", "Łukasz", "Ingrid", "François", "Şule", "Nguyễn Thị", "Ana", "Jürgen"],
    "cyrillic": ["Дмитрий", "Анна", "Ольга", "Сергей"],
    "greek": ["Αλέξανδρος", "Ελένη", "Νίκος"],
    "cjk": ["王", "李", "山田", "佐藤", "陳"],
    "hangul": ["김", "이", "박"],
    "arabic": ["محمد", "فاطمة", "علي"],
}
LAST = {
    "latin": [
        "Ångström",
        "Müller-Lüdenscheidt",
        "Kowalczyk",
        "García Márquez",
        "Øvergård",
        "Dupont",
    ],
    "cyrillic": ["Иванов", "Смирнова", "Соколов"],
    "greek": ["Παπαδόπουλος", "Οικονόμου"],
    "cjk": ["小明", "太郎", "美咲", "偉", "淑芬"],
    "hangul": ["민준", "서연", "지호"],
    "arabic": ["عبد الله", "الحسن", "يوسف"],
}
# A plausible frontline workforce: mostly Latin-script names, some of every other script.
MIX = ["latin"] * 14 + ["cyrillic"] * 2 + ["greek", "cjk", "cjk", "hangul", "arabic"]


def make_badges(count: int, seed: int = 4) -> list[BadgeData]:
    rng = random.Random(seed)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        script = rng.choice(MIX)
        name = f"{rng.choice(FIRST[script])} {rng.choice(LAST[script])}"
        if script in ("cjk",):
            name = name.replace(" ", "")
        upn = f"worker{i:05d}@contoso-retail.onmicrosoft.com"
        # The shape graphsim returns: prefix | UPN | qrCodeId | 43-character secret.
        code_id = f"{rng.getrandbits(32):08x}-1c1c-2d2d-3e3e-{rng.getrandbits(48):012x}"
        payload = f"ms-qrpin:v1|{upn}|{code_id}|{secrets.token_urlsafe(32)}".encode()
        temporary = i % 10 == 9
        until = now + (timedelta(hours=8) if temporary else timedelta(days=365))
        out.append(
            BadgeData(
                display_name=name,
                employee_id=f"{100000 + i}",
                store_name=f"Store {i % 40:03d} – {rng.choice(['Rivoli', 'Zürich HB', 'Kraków'])}",
                valid_until=until,
                payload=payload,
                temporary=temporary,
            )
        )
    return out


def render_naive(badges: list[BadgeData], layout: str) -> bytes:
    """The obvious way: qrcode's default image (its own mask search, PIL), PNG, drawImage."""
    page = layouts.page_layout(layout)
    geometries = {t: layouts.badge_geometry(layout, temporary=t) for t in (False, True)}
    buffer = io.BytesIO()
    canvas = render._new_canvas(buffer, (page.page_width, page.page_height), "Badges")
    for start in range(0, len(badges), page.per_page):
        for badge, cell in zip(badges[start : start + page.per_page], page.cells, strict=False):
            geometry = geometries[badge.temporary]
            image = qrcode.make(badge.payload, error_correction=qrcode.constants.ERROR_CORRECT_Q)
            png = io.BytesIO()
            image.save(png, format="PNG")
            png.seek(0)
            box = geometry.qr.moved(cell.x, cell.y)
            canvas.drawImage(ImageReader(png), box.x, box.y, box.width, box.height)
            texts = render.badge_texts(badge)
            for slot in geometry.slots:
                render._draw_text(canvas, texts.get(slot.role, ""), slot, cell.x, cell.y)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def verify(pdf: bytes, badges: list[BadgeData], layout: str, dpi: int = 300) -> tuple[int, int]:
    """Rasterise every page with pdftoppm and read every code with zxing-cpp; returns (codes
    that decoded to exactly their payload, codes expected)."""
    import subprocess
    import tempfile

    import zxingcpp
    from PIL import Image

    per_page = layouts.page_layout(layout).per_page
    good = 0
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", str(dpi), "-gray", str(source), str(Path(tmp) / "p")], check=True
        )
        for index, path in enumerate(sorted(Path(tmp).glob("p-*.pgm"))):
            wanted = [b.payload for b in badges[index * per_page : (index + 1) * per_page]]
            found = [
                r.bytes
                for r in zxingcpp.read_barcodes(
                    Image.open(path), formats=zxingcpp.BarcodeFormat.QRCode
                )
            ]
            good += sum(1 for payload in wanted if payload in found)
    return good, len(badges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--naive-count", type=int, default=1000)
    parser.add_argument("--layouts", default=",".join(layouts.LAYOUT_NAMES))
    parser.add_argument("--output-dir", type=Path, help="keep the PDFs here")
    parser.add_argument(
        "--verify", action="store_true", help="also rasterise at 300 dpi and decode every code"
    )
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    started = time.perf_counter()
    render.register_fonts()
    fonts_s = time.perf_counter() - started

    badges = make_badges(args.count)
    render.render_badges(badges[:6], layouts.LAYOUT_NAMES[0])  # warm caches (QR templates)
    print(f"font registration (once per process): {fonts_s:.2f} s")
    print(f"{args.count} badges per layout, one core; budget ≤ 2 s and ≤ 3 MB")
    header = (
        f"{'layout':<13} {'pages':>5} {'time s':>7} {'ms/badge':>8} {'size MB':>8} "
        f"{'budget':>7} | {'naive n':>7} {'naive s':>8} {'naive MB':>9} {'per 1000 s':>10}"
    )
    print(header)
    print("-" * len(header))
    for layout in args.layouts.split(","):
        started = time.perf_counter()
        pdf = render.render_badges(badges, layout)
        elapsed = time.perf_counter() - started
        pages = layouts.page_layout(layout).pages_needed(len(badges))
        size_mb = len(pdf) / 1e6
        ok = "ok" if elapsed <= 2.0 and size_mb <= 3.0 else "OVER"
        naive_n = min(args.naive_count, len(badges))
        naive_s = naive_mb = per_1000 = float("nan")
        if naive_n:
            started = time.perf_counter()
            naive = render_naive(badges[:naive_n], layout)
            naive_s = time.perf_counter() - started
            naive_mb = len(naive) / 1e6
            per_1000 = naive_s * 1000 / naive_n
        print(
            f"{layout:<13} {pages:>5} {elapsed:>7.2f} {elapsed * 1000 / len(badges):>8.2f} "
            f"{size_mb:>8.2f} {ok:>7} | {naive_n:>7} {naive_s:>8.2f} {naive_mb:>9.2f} "
            f"{per_1000:>10.1f}"
        )
        if args.verify:
            good, total = verify(pdf, badges, layout)
            print(f"{'':<13} decoded at 300 dpi: {good}/{total} byte-exact")
        if args.output_dir:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            (args.output_dir / f"{layout}.pdf").write_bytes(pdf)
            if naive_n:
                (args.output_dir / f"{layout}-naive.pdf").write_bytes(naive)


if __name__ == "__main__":
    main()
