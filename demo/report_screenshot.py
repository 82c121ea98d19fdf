"""`make screenshots`: docs/img/report-sales.png, the HTML sales report of a sample week.

The page is what `branchsync-admin report sales --html` writes, from demo/sample_report.py's
week of three branches (one behind on sync), opened from a file in Debian's chromium with
every request that would leave the file refused.
"""

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from demo.sample_report import sample_views
from demo.till_screenshots import ARGS, CHROMIUM, OUT
from headoffice.report_html import render


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-shot-") as tmp:
        page_file = Path(tmp) / "report-sales.html"
        page_file.write_text(render(sample_views()), encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())
            page.goto(page_file.as_uri())
            page.screenshot(path=str(OUT / "report-sales.png"), full_page=True)
            browser.close()
    print(f"wrote {OUT / 'report-sales.png'}")


if __name__ == "__main__":
    main()
