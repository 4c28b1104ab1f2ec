"""Rebuild the vendored font subsets in this folder (a developer tool, not used at run time).

Needs fontTools (`pip install fonttools`) and the Debian packages fonts-noto-core,
fonts-droid-fallback and fonts-nanum. Run from the repository root:

    .venv/bin/python badges/fonts/build_subsets.py

Why subsets: the upstream files hold scripts badges never print (and hinting, which a 300 dpi
printer does not need); keeping only the ranges below cuts the repository's fonts from ~12 MB
to ~5 MB. Why renamed: Nanum's licence reserves its names for unmodified fonts, and "Noto" and
"Droid" are trademarks, so each subset gets a "Lanyard…" family name (copyright and licence
strings are kept). reportlab embeds a further per-document subset of just the glyphs used.

Why no GSUB/GPOS: reportlab draws characters through the cmap only. Arabic is shaped before
drawing (arabic-reshaper maps letters to their presentation forms, which Noto Sans Arabic maps
in its cmap) so the layout tables would be dead weight.
"""

from __future__ import annotations

from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

HERE = Path(__file__).resolve().parent
NOTO = Path("/usr/share/fonts/truetype/noto")

LATIN_GREEK_CYRILLIC = (
    "0020-007E 00A0-024F 0250-02FF 0300-036F 0370-03FF 0400-052F 1AB0-1AFF 1C80-1C8F 1D00-1DFF "
    "1E00-1FFF 2000-206F 20A0-20CF 2100-214F 2190-21FF 2C60-2C7F 2DE0-2DFF A640-A69F A720-A7FF "
    "FB00-FB06 FFFD"
)
ARABIC = "0020 00A0 0600-06FF 0750-077F 08A0-08FF FB50-FDFF FE70-FEFF 200C-200F"
HEBREW = "0020 00A0 0590-05FF FB1D-FB4F 200C-200F"
# CJK Unified Ideographs (all 20,902 of the URO) and the compatibility block, kana, CJK
# punctuation and full-width forms. Extension A (6,582 rare characters) is left out: it would
# add ~1 MB for characters almost never seen in names.
CJK = "0020 00A0 3000-303F 3040-30FF 31F0-31FF 4E00-9FFF F900-FAFF FF00-FFEF"
HANGUL = "0020 00A0 1100-11FF 3130-318F AC00-D7A3"

SUBSETS = [
    # (output file, source, family name, style, ranges)
    (
        "LanyardSans-Regular.ttf",
        NOTO / "NotoSans-Regular.ttf",
        "Lanyard Sans",
        "Regular",
        LATIN_GREEK_CYRILLIC,
    ),
    (
        "LanyardSans-Bold.ttf",
        NOTO / "NotoSans-Bold.ttf",
        "Lanyard Sans",
        "Bold",
        LATIN_GREEK_CYRILLIC,
    ),
    (
        "LanyardSansArabic-Regular.ttf",
        NOTO / "NotoSansArabic-Regular.ttf",
        "Lanyard Sans Arabic",
        "Regular",
        ARABIC,
    ),
    (
        "LanyardSansArabic-Bold.ttf",
        NOTO / "NotoSansArabic-Bold.ttf",
        "Lanyard Sans Arabic",
        "Bold",
        ARABIC,
    ),
    (
        "LanyardSansHebrew-Regular.ttf",
        NOTO / "NotoSansHebrew-Regular.ttf",
        "Lanyard Sans Hebrew",
        "Regular",
        HEBREW,
    ),
    (
        "LanyardSansHebrew-Bold.ttf",
        NOTO / "NotoSansHebrew-Bold.ttf",
        "Lanyard Sans Hebrew",
        "Bold",
        HEBREW,
    ),
    (
        "LanyardCJK-Regular.ttf",
        Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
        "Lanyard CJK",
        "Regular",
        CJK,
    ),
    (
        "LanyardHangul-Regular.ttf",
        Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf"),
        "Lanyard Hangul",
        "Regular",
        HANGUL,
    ),
]


def _unicodes(ranges: str) -> list[int]:
    out: list[int] = []
    for part in ranges.split():
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo, 16), int(hi or lo, 16) + 1))
    return out


def _rename(font: TTFont, family: str, style: str) -> None:
    name = font["name"]
    full = f"{family} {style}"
    postscript = f"{family.replace(' ', '')}-{style}"
    # 1 family, 2 subfamily, 3 unique id, 4 full name, 6 PostScript name; drop typographic
    # family names (16, 17) and trademark notices of the original names (7).
    for record in list(name.names):
        if record.nameID in (1, 2, 3, 4, 6, 7, 16, 17, 18, 21, 22):
            name.removeNames(nameID=record.nameID)
    for name_id, value in (
        (1, family),
        (2, style),
        (3, f"{postscript};subset"),
        (4, full),
        (6, postscript),
    ):
        name.setName(value, name_id, 3, 1, 0x409)
        name.setName(value, name_id, 1, 0, 0)


def build() -> None:
    for out_name, source, family, style, ranges in SUBSETS:
        options = subset.Options()
        options.hinting = False
        options.layout_features = []
        options.notdef_outline = True
        options.name_IDs = ["*"]
        options.name_languages = ["*"]
        options.drop_tables += [
            "GSUB",
            "GPOS",
            "GDEF",
            "DSIG",
            "TSI0",
            "TSI1",
            "TSI2",
            "TSI3",
            "TSI5",
            "hdmx",
            "VDMX",
            "LTSH",
        ]
        font = subset.load_font(str(source), options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=_unicodes(ranges))
        subsetter.subset(font)
        _rename(font, family, style)
        subset.save_font(font, str(HERE / out_name), options)
        print(f"{out_name}: {(HERE / out_name).stat().st_size:,} bytes from {source.name}")


if __name__ == "__main__":
    build()
