"""Badge geometry, checked as numbers: no database, no drawing."""

from __future__ import annotations

import itertools

import pytest

from badges import layouts, qr
from badges.layouts import LAYOUT_NAMES, POINTS_PER_INCH, badge_geometry, mm, page_layout

TWO_INCHES = 2 * POINTS_PER_INCH
GEOMETRIES = [
    pytest.param(name, temporary, id=f"{name}-{'temporary' if temporary else 'standard'}")
    for name in LAYOUT_NAMES
    for temporary in (False, True)
]


@pytest.mark.parametrize(("name", "temporary"), GEOMETRIES)
def test_it_gives_every_qr_code_at_least_two_inches_with_its_quiet_zone(name, temporary):
    geometry = badge_geometry(name, temporary=temporary)

    assert geometry.qr.width == pytest.approx(geometry.qr.height)
    assert geometry.qr.width >= TWO_INCHES


@pytest.mark.parametrize(("name", "temporary"), GEOMETRIES)
def test_it_gives_the_symbol_itself_two_inches_where_the_badge_has_room(name, temporary):
    geometry = badge_geometry(name, temporary=temporary)
    smallest_symbol = qr.MIN_VERSION * 4 + 17

    symbol = layouts.qr_symbol_size(geometry.qr.width, smallest_symbol)

    if name == layouts.CR80:
        # The card is 54 mm tall: the quiet zone is kept and the symbol gives way (see
        # badges/layouts.py). It stays far above what a phone camera resolves.
        assert not geometry.symbol_meets_2in
        assert symbol >= 1.6 * POINTS_PER_INCH
    else:
        assert geometry.symbol_meets_2in
        assert symbol >= TWO_INCHES


def test_it_keeps_cr80_codes_as_large_as_the_card_allows():
    geometry = badge_geometry(layouts.CR80)

    assert geometry.qr.y >= mm(1.0) - 1e-6
    assert geometry.qr.top <= layouts.CR80_HEIGHT - mm(1.0) + 1e-6
    assert geometry.qr.height >= layouts.CR80_HEIGHT - mm(2.0) - 1e-6


@pytest.mark.parametrize(("name", "temporary"), GEOMETRIES)
def test_it_lets_nothing_overlap_the_qr_code_or_each_other(name, temporary):
    geometry = badge_geometry(name, temporary=temporary)
    boxes = [("qr", geometry.qr)] + [(slot.role, slot.rect) for slot in geometry.slots]

    for (role_a, a), (role_b, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"{role_a} overlaps {role_b}"


@pytest.mark.parametrize(("name", "temporary"), GEOMETRIES)
def test_it_keeps_everything_inside_the_badge(name, temporary):
    geometry = badge_geometry(name, temporary=temporary)
    # The QR box may come within 1 mm of the edge (its own quiet zone is white); text keeps
    # 2 mm so a cut that wanders does not clip it.
    assert geometry.bounds.inset(mm(1.0)).contains(geometry.qr)
    for slot in geometry.slots:
        assert geometry.bounds.inset(mm(2.0)).contains(slot.rect), slot.role
        assert slot.rect.height >= slot.min_size, slot.role
        assert slot.min_size <= slot.size


@pytest.mark.parametrize(("name", "temporary"), GEOMETRIES)
def test_it_has_a_place_for_every_required_field(name, temporary):
    geometry = badge_geometry(name, temporary=temporary)
    roles = {slot.role for slot in geometry.slots}

    required = {
        layouts.NAME,
        layouts.EMPLOYEE_ID,
        layouts.STORE,
        layouts.VALID_UNTIL,
        layouts.INSTRUCTION,
    }
    assert required <= roles
    assert (layouts.TEMPORARY in roles) is temporary
    assert (layouts.EXPIRY in roles) is temporary


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_it_sets_the_temporary_expiry_larger_than_anything_else(name):
    geometry = badge_geometry(name, temporary=True)
    expiry = geometry.slot(layouts.EXPIRY)

    others = [slot.size for slot in geometry.slots if slot.role != layouts.EXPIRY]
    assert expiry.size > max(others)
    assert geometry.slot(layouts.TEMPORARY).reverse


@pytest.mark.parametrize(
    ("name", "per_page", "pages_for_1000"),
    [
        (layouts.CR80, 1, 1000),
        (layouts.LABEL_4X3, 1, 1000),
        (layouts.SHEET_A4, 6, 167),
        (layouts.SHEET_LETTER, 6, 167),
    ],
)
def test_it_places_n_badges_per_page(name, per_page, pages_for_1000):
    page = page_layout(name)

    assert page.per_page == per_page
    assert page.pages_needed(1000) == pages_for_1000
    assert page.pages_needed(per_page) == 1
    assert page.pages_needed(per_page + 1) == 2


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_it_fits_every_badge_in_the_printable_part_of_the_page(name):
    page = page_layout(name)

    for cell in page.cells:
        assert page.printable.contains(cell)
        assert cell.width == pytest.approx(badge_geometry(name).width)
        assert cell.height == pytest.approx(badge_geometry(name).height)
    for a, b in itertools.combinations(page.cells, 2):
        assert not a.overlaps(b)


@pytest.mark.parametrize("name", [layouts.SHEET_A4, layouts.SHEET_LETTER])
def test_it_marks_every_cut_line_outside_the_badges(name):
    page = page_layout(name)

    for mark in page.cut_marks:
        assert page.printable.contains(mark.bounds)
        for cell in page.cells:
            # A mark stays clear of every badge, not merely off its interior.
            assert not mark.bounds.inset(-mm(1.0)).overlaps(cell)
    xs = {round(x, 3) for cell in page.cells for x in (cell.x, cell.right)}
    ys = {round(y, 3) for cell in page.cells for y in (cell.y, cell.top)}
    for x in xs:
        vertical = [m for m in page.cut_marks if m.x1 == m.x2 and round(m.x1, 3) == x]
        assert len(vertical) == 2, f"cut at x={x} needs a mark above and below"
    for y in ys:
        horizontal = [m for m in page.cut_marks if m.y1 == m.y2 and round(m.y1, 3) == y]
        assert len(horizontal) == 2, f"cut at y={y} needs a mark left and right"


@pytest.mark.parametrize("name", [layouts.CR80, layouts.LABEL_4X3])
def test_it_prints_single_badges_edge_to_edge_without_cut_marks(name):
    page = page_layout(name)

    assert page.cut_marks == ()
    assert page.cells[0] == page.printable
    assert (page.page_width, page.page_height) == (page.cells[0].width, page.cells[0].height)


def test_it_uses_the_standard_card_and_paper_sizes():
    assert page_layout(layouts.CR80).page_width == pytest.approx(mm(85.6))
    assert page_layout(layouts.CR80).page_height == pytest.approx(mm(54.0))
    assert page_layout(layouts.SHEET_A4).page_width == pytest.approx(mm(210.0))
    assert page_layout(layouts.SHEET_A4).page_height == pytest.approx(mm(297.0))
    assert page_layout(layouts.SHEET_LETTER).page_width == pytest.approx(8.5 * 72)
    assert page_layout(layouts.SHEET_LETTER).page_height == pytest.approx(11 * 72)
    assert page_layout(layouts.LABEL_4X3).page_width == pytest.approx(4 * 72)
    assert page_layout(layouts.LABEL_4X3).page_height == pytest.approx(3 * 72)


def test_it_refuses_an_unknown_layout():
    with pytest.raises(ValueError, match="unknown badge layout"):
        page_layout("poster")
    with pytest.raises(ValueError, match="unknown badge layout"):
        badge_geometry("poster")
