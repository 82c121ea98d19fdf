import pytest

from headoffice.catalog_csv import CatalogCsvError, parse_catalog_csv


def test_a_catalog_csv_with_bangla_names_becomes_products_in_paisa():
    text = "\ufeffsku,name,price,barcode,unit,vat_rate,active\nDAL-1,মসুর ডাল ১ কেজি,140.50,8901,kg,5,yes\nRICE,Rice 5kg,420,,,,\n"
    products = parse_catalog_csv(text)
    assert [(p.sku, p.name, p.price) for p in products] == [("DAL-1", "মসুর ডাল ১ কেজি", 14050), ("RICE", "Rice 5kg", 42000)]
    assert products[0].unit == "kg" and str(products[0].vat_rate) == "5" and products[0].active
    assert products[1].barcode is None and products[1].unit == "pcs"


def test_every_bad_row_is_reported_with_its_line_number_and_nothing_is_returned():
    text = "sku,name,price,active\nA,ok,1.00,true\nB,bad price,1.001,true\nC,,2,true\nA,dup,3,true\nD,x,4,maybe\n"
    with pytest.raises(CatalogCsvError) as exc:
        parse_catalog_csv(text)
    problems = exc.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("line 3:") and "decimals" in problems[0]
    assert problems[1].startswith("line 4:") and "name" in problems[1]
    assert "already appears on line 2" in problems[2]
    assert "active" in problems[3]


def test_a_file_missing_required_columns_says_which():
    with pytest.raises(CatalogCsvError, match="price"):
        parse_catalog_csv("sku,name\nA,b\n")


def test_unknown_columns_are_refused_rather_than_ignored():
    with pytest.raises(CatalogCsvError, match="colour"):
        parse_catalog_csv("sku,name,price,colour\nA,b,1,red\n")


def test_a_price_in_scientific_notation_is_a_bad_row_with_its_line_even_when_it_would_overflow():
    text = "sku,name,price\nA,ok,1.00\nB,huge,1e10000000\nC,long,11111111111111111111111111111111111111.001\n"
    with pytest.raises(CatalogCsvError) as exc:
        parse_catalog_csv(text)
    first, second = exc.value.problems
    assert first.startswith("line 3:") and "scientific notation" in first and "plain digits" in first
    assert second.startswith("line 4:") and "too large" in second


def test_the_import_command_reports_such_a_row_and_imports_nothing(tmp_path):
    from typer.testing import CliRunner

    from headoffice.admin_cli import app

    bad = tmp_path / "c.csv"
    bad.write_text("sku,name,price\nB,huge,1e10000000\n", encoding="utf-8")
    # The file is checked before any call: no cloud is needed, the URL is never reached.
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "catalog", "import", str(bad)],
                                env={"BRANCHSYNC_ADMIN_KEY": "k", "COLUMNS": "200"})
    assert result.exit_code == 2, result.exception
    assert "line 2:" in result.output and "scientific notation" in result.output
