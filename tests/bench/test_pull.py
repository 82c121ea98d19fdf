"""The pull benchmark at a small size, so it keeps running: real Azurite, the real dev host, a
real till. Counts only; no timing is asserted."""

import pytest

from bench import pull

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def test_the_pull_benchmark_pulls_a_catalog_in_wide_pages_and_its_price_day_in_one(capsys):
    figures = pull.main(["--products", "2500", "--reprice", "200", "--delete", "20"])
    first, day = figures["first pull"], figures["price day"]
    # A page of 1,000 to start, then the rest in one wide page; the price day in one page.
    assert (first["pages"], first["entries"], day["pages"], day["entries"]) == (2, 2500, 1, 220)
    assert 0 < first["bytes_per_product"] <= 45 and first["dev host"] > 0 and first["till"] > 0
    assert "first pull of 2,500 products" in capsys.readouterr().out
