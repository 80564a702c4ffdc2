"""The website: its pages come from results/, it builds with -W, and it works in a real browser.

The build runs the README's command (``python -m sphinx -W -b html docs OUT``) once per
session. The browser tests (marker ``browser``) serve it from 127.0.0.1 and open every page
in Debian's headless Chromium through Selenium; they skip, saying why, where Chromium,
its driver or Selenium is missing.
"""

import functools
import http.server
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS, RESULTS = ROOT / "docs", ROOT / "results"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Where the browser test leaves its screenshots (ignored by git, like the build).
SCREENSHOTS = DOCS / "_build" / "screenshots"
# Every page of the site is built and loaded; the generated ones at least these.
EXPECTED = [
    "index.html",
    "documents/d2l-en.html",
    "documents/straight-dope.html",
    "studies/index.html",
    "studies/covariate-shift.html",
    "notebooks/d2l-en.html",
    "notebooks/claims.html",
    "api.html",
    "performance.html",
    "search.html",
]


def _needs_sphinx():
    for module in ("sphinx", "myst_nb", "furo"):
        pytest.importorskip(module, reason=f"{module} not installed: pip install -e '.[docs]'")


def _sphinx(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(source), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site built by the README's command, into a fresh folder; its HTML root."""
    _needs_sphinx()
    out = tmp_path_factory.mktemp("site") / "html"
    proc = _sphinx(DOCS, out)
    assert proc.returncode == 0, f"the site did not build:\n{proc.stderr[-4000:]}"
    return out


def _last_mean(path: Path, variant: str, metric: str) -> float:
    """The mean over seeds of a record's last-epoch `metric`, read from its JSON directly."""
    runs = [r for r in json.loads(path.read_text())["runs"] if r["variant"] == variant]
    return statistics.mean(r["history"][-1][metric] for r in runs)


def _text(path: Path) -> str:
    """A built page's visible words, roughly: tags dropped, entities left."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text()))


# ---------------------------------------------------------------- generation, no Sphinx


def test_the_generated_pages_carry_the_records_numbers_and_warn_about_a_bad_record(tmp_path):
    from gluon_bn.site import generate

    docs, results = tmp_path / "docs", tmp_path / "results"
    shutil.copytree(RESULTS, results)
    (docs / "notebooks").mkdir(parents=True)
    for name in ("d2l-1.0", "d2l-en", "d2l-0.17", "d2l-zh", "straight-dope"):
        (docs / "notebooks" / f"{name}.ipynb").write_text("{}")
    (results / "studies" / "ablations.json").write_text("{not json")
    (results / "d2l-zh_fast_bn-fast.png").unlink()
    warnings = []
    generate(docs, results, lambda message, path: warnings.append((message, Path(path).name)))

    page = (docs / "documents" / "d2l-en.md").read_text()
    assert "0.3108" in page  # what document 001 printed
    ours = _last_mean(RESULTS / "d2l-en.json", "scratch", "loss")
    assert f"{ours:.4f} ±" in page  # our mean, from the JSON
    assert "--isa avx2" in page and "![d2l-en: loss" in page  # the command and the figure
    assert "{doc}`../notebooks/d2l-en`" in page
    assert [w[1] for w in warnings] == ["d2l-zh_fast_bn-fast.png", "ablations.json"], warnings
    assert "cannot read study record" in warnings[1][0]
    studies = (docs / "studies" / "index.md").read_text()
    assert "covariate-shift" in studies and "[report](ablations.md)" not in studies


def test_demote_moves_headings_but_not_code():
    from gluon_bn.site import demote

    assert (
        demote("# a\ntext\n```\n# comment\n```\n## b", 2)
        == "### a\ntext\n```\n# comment\n```\n#### b"
    )


# ---------------------------------------------------------------- the build


def test_the_site_builds_with_every_page(site):
    for page in EXPECTED:
        assert (site / page).exists(), page
    assert (site / "searchindex.js").exists()
    api = _text(site / "api.html")
    for name in (
        "batch_norm",
        "pure_batch_norm",
        "BatchNorm",
        "FashionMNIST",
        "train_ch5",
        "evaluate_accuracy",
        "get_recipe",
        "RunOptions",
        "momentum_on",
    ):
        assert name in api, name
    assert "Parameters" in api


def test_a_build_with_a_figure_missing_fails_naming_the_figure(tmp_path):
    _needs_sphinx()
    ignore = shutil.ignore_patterns("_build", "documents", "studies")
    shutil.copytree(DOCS, tmp_path / "docs", ignore=ignore)
    shutil.copytree(RESULTS, tmp_path / "results")
    (tmp_path / "results" / "studies" / "faster-intervals.png").unlink()
    proc = _sphinx(tmp_path / "docs", tmp_path / "html")
    assert proc.returncode != 0
    assert "faster-intervals.png" in proc.stderr, proc.stderr[-2000:]


# ---------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def served(site):
    """The built site served over HTTP from 127.0.0.1; its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Selenium, keeping the console log."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed: pip install -e '.[docs]'"
    )
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.skip(
                f"{path} not found: apt-get install {package} (sh scripts/install_data.sh does)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _pages(site: Path):
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if not p.relative_to(site).parts[0].startswith("_")
    )


def _ids(page: Path) -> set:
    return set(re.findall(r'\bid="([^"]+)"', page.read_text()))


@pytest.mark.browser
def test_every_page_loads_with_its_images_and_no_console_error(site, served, browser):
    broken, errors, links = {}, {}, set()
    pages = _pages(site)
    assert set(EXPECTED) <= set(pages)
    for page in pages:
        browser.get(served + page)
        browser.get_log("browser")  # drained before the page's own messages are read
        browser.refresh()
        missing = browser.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        if missing:
            broken[page] = missing
        severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        if severe:
            errors[page] = severe
        links |= set(
            browser.execute_script(
                "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
            )
        )
    assert not broken, f"images that did not load: {broken}"
    assert not errors, f"console errors: {errors}"

    unresolved = []
    for link in sorted(l for l in links if l.startswith(served)):
        parts = urlsplit(link)
        target = site / unquote(parts.path.lstrip("/"))
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            unresolved.append(link)
        elif (
            parts.fragment
            and target.suffix == ".html"
            and unquote(parts.fragment) not in _ids(target)
        ):
            unresolved.append(link)
    assert not unresolved, f"internal links that resolve to nothing: {unresolved}"


@pytest.mark.browser
def test_the_pages_show_the_records_and_search_finds_momentum(served, browser):
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(served + "index.html")
    assert "gluon-bn" in browser.title
    browser.save_screenshot(str(SCREENSHOTS / "home.png"))

    browser.get(served + "documents/d2l-en.html")
    body = browser.find_element(By.TAG_NAME, "body").text
    ours = _last_mean(RESULTS / "d2l-en.json", "scratch", "loss")
    assert "0.3108" in body and f"{ours:.4f} ±" in body
    browser.save_screenshot(str(SCREENSHOTS / "d2l-en.png"))

    browser.get(served + "documents/d2l-zh.html")  # its title in Chinese (a CJK font draws it)
    assert "批量归一化" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(SCREENSHOTS / "d2l-zh.png"))

    verdict = json.loads((RESULTS / "studies" / "covariate-shift.json").read_text())["verdict"]
    browser.get(served + "studies/covariate-shift.html")
    assert verdict in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(SCREENSHOTS / "covariate-shift.png"))

    browser.get(served + "search.html?q=momentum")
    deadline, found = time.time() + 20, []
    while time.time() < deadline and not found:
        found = browser.find_elements(By.CSS_SELECTOR, "#search-results li a")
        time.sleep(0.2)
    assert found, "the search page found nothing for 'momentum'"
    assert any(
        "documents/" in a.get_attribute("href") or "api" in a.get_attribute("href") for a in found
    )
    print(f"screenshots in {SCREENSHOTS}")
