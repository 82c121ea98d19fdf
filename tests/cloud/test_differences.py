"""The price-difference report: the pure comparison, and the service against a real Azurite."""

from datetime import timedelta

import pytest

from branchsync_cloud.catalog import IndexEntry, Segment, VersionRow
from branchsync_cloud.differences import current_products, price_differences, voided_seqs, wanted_versions
from branchsync_cloud.http import time_param
from shared.errors import ContractError
from shared.models import AppliedSale, PriceDifference
from tests.builders import T0, make_batch, make_line, make_product, make_sale, make_void
from tests.cloud.test_service import enroll, import_products, push


def applied(*sales, branch="dhaka-1"):
    return [AppliedSale(branch=branch, sale=s, applied_at=T0) for s in sales]


# --- the pure comparison ---------------------------------------------------------------------


def test_a_line_sold_at_the_current_price_is_no_difference():
    sales = applied(make_sale(1, [make_line("RICE", "2", 5000)]))
    assert price_differences(sales, {"RICE": IndexEntry(3)}, {"RICE": make_product("RICE", 5000)}) == []


def test_a_repriced_sku_shows_both_prices_and_the_difference_over_the_quantity():
    sales = applied(make_sale(1, [make_line("SOAP", "1", 4500), make_line("RICE", "1.5", 5000)]))
    [d] = price_differences(sales, {"RICE": IndexEntry(4), "SOAP": IndexEntry(2)},
                            {"RICE": make_product("RICE", 5500), "SOAP": make_product("SOAP", 4500)})
    assert (d.seq, d.line, d.sku, d.status) == (1, 2, "RICE", "price_differs")
    assert (d.sold_price, d.current_price, str(d.qty), d.difference) == (5000, 5500, "1.5", -750)


def test_a_difference_far_beyond_any_sale_amount_is_reported_exactly():
    # 30,000 sold at 10 taka, repriced to 100,000.00 taka: qty x current price is 3 x 10**11 paisa.
    sales = applied(make_sale(1, [make_line("BOLT", "30000", 1000)]))
    [d] = price_differences(sales, {"BOLT": IndexEntry(2)}, {"BOLT": make_product("BOLT", 10_000_000)})
    assert d.difference == 30_000_000 - 300_000_000_000
    assert PriceDifference.model_validate_json(d.model_dump_json()) == d


def test_a_deleted_sku_and_one_the_catalog_never_knew_are_told_apart():
    sales = applied(make_sale(7, [make_line("OLD", "3", 1000), make_line("GHOST", "1", 200)]))
    found = price_differences(sales, {"OLD": IndexEntry(9, deleted=True)}, {})
    assert [(d.sku, d.status, d.current_price, d.difference) for d in found] == [
        ("OLD", "deleted", None, None), ("GHOST", "unknown", None, None)]


def test_voids_and_sales_recorded_before_since_are_left_out():
    old = make_sale(1, [make_line("OLD", "1", 1000)], recorded_at=T0 - timedelta(days=2))
    new = make_sale(2, [make_line("OLD", "1", 1000)])
    found = price_differences(applied(old, new, make_void(3, old)), {"OLD": IndexEntry(5, deleted=True)}, {},
                              since=T0 - timedelta(days=3))
    assert [d.seq for d in found] == [1, 2]
    assert [d.seq for d in found if d.seq not in voided_seqs([make_void(3, old)])] == [2]


def test_the_lines_of_a_voided_sale_are_left_out():
    sold, kept = make_sale(1, [make_line("OLD", "1", 1000)]), make_sale(2, [make_line("OLD", "1", 1000)])
    found = price_differences(applied(sold, kept, make_void(3, sold)), {"OLD": IndexEntry(5, deleted=True)}, {},
                              voided={("dhaka-1", 1), ("other", 2)})
    assert [(d.branch, d.seq) for d in found] == [("dhaka-1", 2)]


def test_only_live_skus_sold_need_their_product_read():
    index = {"A": IndexEntry(1), "B": IndexEntry(2, deleted=True), "C": IndexEntry(3)}
    assert wanted_versions(["A", "B", "Z", "A"], index) == {"A": 1}


def test_the_current_product_is_the_row_at_the_indexed_version_not_a_superseded_one():
    old, new, other = make_product("A", 100), make_product("A", 200), make_product("B", 300)
    segments = [Segment(1, 2, (VersionRow(1, "A", old), VersionRow(2, "B", other))),
                Segment(3, 3, (VersionRow(3, "A", new),))]
    assert current_products(segments, {"A": 3}) == {"A": new}


def test_reading_segments_stops_once_every_wanted_product_is_found():
    def segments():
        yield Segment(1, 1, (VersionRow(1, "A", make_product("A", 100)),))
        raise AssertionError("read past the last wanted product")

    assert current_products(segments(), {"A": 1})["A"].price == 100


# --- the service on Azurite --------------------------------------------------------------------


def test_the_report_lists_exactly_the_deleted_and_repriced_lines_of_applied_sales(service):
    secret = enroll(service)
    import_products(service, [make_product("RICE", 5000), make_product("SOAP", 4500), make_product("DAL", 14000)])
    sales = [make_sale(1, [make_line("RICE", "2", 5000), make_line("SOAP", "1", 4500)]),
             make_sale(2, [make_line("DAL", "1", 14000)]),
             make_sale(3, [make_line("SOAP", "2", 4500)])]
    assert push(service, make_batch("dhaka-1", sales), secret).status == "applied"
    service.delete_sku("SOAP")
    import_products(service, [make_product("RICE", 5200)])

    found = service.price_differences("dhaka-1").differences
    assert [(d.seq, d.line, d.sku, d.status, d.current_price, d.difference) for d in found] == [
        (1, 1, "RICE", "price_differs", 5200, -400), (1, 2, "SOAP", "deleted", None, None),
        (3, 1, "SOAP", "deleted", None, None)]
    exported = service.export_sales("dhaka-1").sales
    assert [s.sale.total for s in exported] == [s.total for s in sales]  # kept as sold


def test_the_report_of_a_bulk_sale_repriced_far_up_answers_for_every_branch(service):
    secret = enroll(service)
    import_products(service, [make_product("BOLT", 1000), make_product("NUT", 500)])
    sales = [make_sale(1, [make_line("BOLT", "30000", 1000)]), make_sale(2, [make_line("NUT", "1", 500)])]
    push(service, make_batch("dhaka-1", sales), secret)
    import_products(service, [make_product("BOLT", 10_000_000), make_product("NUT", 600)])
    found = service.price_differences().differences
    assert [(d.sku, d.difference) for d in found] == [("BOLT", -299_970_000_000), ("NUT", -100)]


def test_the_report_leaves_out_a_voided_sale_whatever_page_its_void_arrives_in(service):
    secret = enroll(service)
    import_products(service, [make_product("OIL", 18000)])
    sales = [make_sale(i, [make_line("OIL", "1", 18000)]) for i in range(1, 5)]
    push(service, make_batch("dhaka-1", sales), secret)
    push(service, make_batch("dhaka-1", [make_void(5, sales[0]), make_void(6, sales[2])]), secret)
    import_products(service, [make_product("OIL", 19000)])
    assert [d.seq for d in service.price_differences("dhaka-1").differences] == [2, 4]
    seen, after = [], None
    while True:  # pages of two sales: the voids of 1 and 3 come two pages later
        page = service.price_differences("dhaka-1", after=after, limit=2)
        seen += [d.seq for d in page.differences]
        if not (after := page.next):
            break
    assert seen == [2, 4]


def test_the_report_pages_like_the_sales_export(service):
    secret = enroll(service)
    import_products(service, [make_product("OIL", 18000)])
    push(service, make_batch("dhaka-1", [make_sale(i, [make_line("OIL", "1", 18000)]) for i in range(1, 6)]), secret)
    import_products(service, [make_product("OIL", 19000)])
    seen, after, pages = [], None, 0
    while True:
        page = service.price_differences("dhaka-1", after=after, limit=2)
        seen += [d.seq for d in page.differences]
        pages += 1
        if not page.next:
            break
        after = page.next
    assert seen == [1, 2, 3, 4, 5] and pages == 3


@pytest.mark.parametrize("since", ["yesterday", "2026-11-28T06:00:00"])
def test_a_since_that_is_not_a_zoned_time_or_a_date_is_a_bad_request(service, since):
    with pytest.raises(ContractError) as caught:
        service.price_differences(since=time_param("since", since))  # as the HTTP adapter reads it
    assert caught.value.code == "bad_request"
