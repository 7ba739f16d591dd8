"""The static leaderboard site in a real headless browser (Debian's chromium, driven by Selenium):
it opens from file://, a column sorts, a cell's seed link leads to its run page."""

import shutil
from pathlib import Path

import pytest
import torch

from bench.executors import RunOptions, run_local
from bench.report import report

from .conftest import tiny_specs

# Debian's chromium (what .ci/run installs), or the Chrome that GitHub's Ubuntu runners ship
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (`.ci/run` installs them)"
)
# What a closed network needs: no background connections, no component updates, no sync, a fresh profile.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
)


def _browser(tmp_path):
    """Headless chromium through Selenium, with a fresh profile under tmp_path."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("site")
    specs = tiny_specs(["ce", "os", "os+fsc"], ratios=(1.0, 0.25), seeds=(0, 1))
    run_local(specs, d / "runs", torch.device("cpu"), RunOptions(plain=True))
    report(d / "runs", d / "out", figures=False, site=True)
    return d / "out" / "site"


@pytest.mark.slow
def test_site_files_are_self_contained(site):
    index = (site / "index.html").read_text()
    assert "http://" not in index and "https://" not in index  # nothing fetched from a network
    assert (site / "static" / "tablesort-5.7.1.min.js").is_file()
    runs = list((site / "runs").glob("*.html"))
    assert len(runs) == 12 and all("Confusion matrix" in p.read_text() for p in runs)
    assert "<polyline" in runs[0].read_text()  # the loss curve
    [board] = list((site / "boards").glob("*.html"))
    assert "Paired against os" in board.read_text()


@pytest.mark.slow
@needs_browser
def test_site_in_a_headless_browser_sorts_and_links_to_runs(site, tmp_path):
    from selenium.webdriver.common.by import By

    driver = _browser(tmp_path)
    try:
        driver.get((site / "index.html").as_uri())
        table = driver.find_element(By.CSS_SELECTOR, "table.board")
        methods = lambda: [
            r.find_element(By.TAG_NAME, "td").text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]  # noqa: E731, E501
        assert sorted(methods()) == ["ce", "os", "os+fsc"]
        head = table.find_elements(By.CSS_SELECTOR, "thead th")
        column = [h.text for h in head].index("1:0.25 minority")
        values = lambda: [
            float(r.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-sort"))
            for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]  # noqa: E731, E501
        head[column].click()
        first = values()
        ascending = head[column].get_attribute("aria-sort") == "ascending"
        assert first == sorted(first, reverse=not ascending)
        head[column].click()  # the other direction
        assert head[column].get_attribute("aria-sort") == ("descending" if ascending else "ascending")
        assert values() == sorted(first, reverse=ascending)
        # the which-method table comes first, fits the window without a sideways scroll, and its ratio
        # column sorts by the ratio's value (it used to sort every '1:r' as 1, only reversing the rows)
        which = driver.find_element(By.ID, "which-method")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Which method should I use?"
        box = which.find_element(By.XPATH, "..")
        assert which.size["width"] <= box.size["width"] + 1 and box.get_property("scrollWidth") <= box.size["width"] + 1
        which_head = which.find_elements(By.CSS_SELECTOR, "thead th")
        ratio_col = [h.text for h in which_head].index("ratio")
        ratios = lambda: [  # noqa: E731
            float(r.find_elements(By.TAG_NAME, "td")[ratio_col].get_attribute("data-sort"))
            for r in which.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]
        assert sorted(ratios()) == [0.25, 1.0]
        which_head[ratio_col].click()
        up = which_head[ratio_col].get_attribute("aria-sort") == "ascending"
        assert ratios() == sorted(ratios(), reverse=not up)
        which_head[ratio_col].click()
        assert ratios() == sorted(ratios(), reverse=up)
        driver.save_screenshot(str(tmp_path / "index.png"))
        assert (tmp_path / "index.png").stat().st_size > 10_000
        link = table.find_element(By.CSS_SELECTOR, "td.runs a")
        seed = link.text
        link.click()
        assert Path(driver.current_url).name.endswith(".html") and "/runs/" in driver.current_url
        assert f"seed={seed}" in driver.find_element(By.TAG_NAME, "h1").text
        assert driver.find_elements(By.TAG_NAME, "polyline")
    finally:
        driver.quit()


@pytest.mark.slow
@needs_browser
def test_the_front_page_leads_with_the_answers_boards_and_their_forest_plots(tmp_path):
    """Issue 38 items 2-3: the answer's boards (the transfer preset's, then the standard preset's) and their
    forest plots come first, one row per task; the transfer study's other budgets and the short-budget archive
    are folded away; every board label on the page is short (no numerics in it)."""
    from selenium.webdriver.common.by import By

    from bench import store

    from .test_report import rec

    runs = tmp_path / "runs"
    # a short-budget board, a standard one (the quick model at 2400 steps), the transfer preset's (the shipped
    # start, last stage + head, 1200 steps) and a transfer-study board (the same start at 240 steps)
    transfer = {"weights": "animals-other8", "tune": "last:1"}
    for name, change in (("240", {"steps": 240}), ("2400", {"steps": 2400}),
                         ("t1200", {"steps": 1200, **transfer}), ("t240", {"steps": 240, **transfer})):  # fmt: skip
        for method, base in (("os", 0.4), ("ce", 0.1), ("la", 0.6)):
            for seed in range(3):
                r = rec(method, 0.01, seed, 0.95, base + 0.05 * seed + (0.1 if name != "240" else 0))
                r["spec"] |= change
                r["key"] += f"-{name}"
                store.write_record(runs, r)
    report(runs, tmp_path / "out", figures=True, site=True)
    site = tmp_path / "out" / "site" / "index.html"

    driver = _browser(tmp_path)
    try:
        driver.get(site.as_uri())
        first = driver.find_element(By.ID, "which-transfer")
        rows = first.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["animals fine, transfer, CPU"]
        answer = driver.find_element(By.ID, "which-standard")
        assert first.is_displayed() and answer.is_displayed() and first.location["y"] < answer.location["y"]
        rows = answer.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["animals fine, standard, CPU"]
        study = driver.find_element(By.ID, "which-study")  # the transfer study's 240-step board, folded
        assert not study.is_displayed() and driver.find_element(By.ID, "study").find_element(By.ID, "which-study")
        assert len(study.find_elements(By.CSS_SELECTOR, "tbody tr")) == 1
        forests = driver.find_elements(By.CSS_SELECTOR, "figure.forest img")
        assert len(forests) == 2  # one per answer board, none for the study's
        forest = forests[-1]
        assert forest.is_displayed() and "paired_" in forest.get_attribute("src")
        assert forest.location["y"] > answer.location["y"]
        archive = driver.find_element(By.ID, "which-short")  # inside the folded archive
        folded = driver.find_element(By.ID, "archive")
        assert not archive.is_displayed() and folded.location["y"] > forest.location["y"]
        assert folded.find_element(By.ID, "which-short") == archive
        labels = [h.get_attribute("textContent") for h in driver.find_elements(By.CSS_SELECTOR, "h3 a")] + [
            r.find_element(By.TAG_NAME, "td").get_attribute("textContent")
            for r in driver.find_elements(By.CSS_SELECTOR, "table.wrap tbody tr")
        ]
        assert labels and all(0 < len(label.strip()) <= 60 for label in labels), labels
        assert not any("threads=" in label or "torch" in label for label in labels)
    finally:
        driver.quit()
