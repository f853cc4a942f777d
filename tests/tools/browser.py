"""A real browser on report.html: the system's Chromium driven by Playwright (its own browser
download is not needed: ``executable_path`` points at Debian's ``chromium``).

:func:`check_page` opens a study's ``report.html`` from disk (no server), waits for it, and
returns what it found; the caller asserts. It also saves a full-page screenshot under
``$T2S_ARTIFACTS/browser/`` (default ``artifacts/browser/`` in the repository), which CI keeps.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from text2sign.study.tables import fmt_mean_std

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


def executable() -> str | None:
    """The system Chromium (``T2S_CHROMIUM`` wins), or None."""
    names = [os.environ.get("T2S_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((p for n in names if n and (p := shutil.which(n))), None)


def missing() -> str | None:
    """Why no real browser can run here (None: one can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make venv installs it)"
    if executable() is None:
        return "no chromium on PATH (apt-get install chromium; .ci/run installs it)"
    return None


@dataclass
class PageCheck:
    load_ms: float  # navigation start → load event, as the browser measured it
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed loads
    images: list[dict] = field(default_factory=list)  # src, naturalWidth
    videos: list[dict] = field(default_factory=list)  # src, readyState, advanced, error
    svgs: int = 0
    table: list[dict] = field(default_factory=list)  # point, key, mean, text
    broken_links: list[str] = field(default_factory=list)
    text: str = ""
    screenshot: Path | None = None


def _screenshot_dir() -> Path:
    out = Path(os.environ.get("T2S_ARTIFACTS") or ROOT / "artifacts") / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_page(page: Path, name: str, *, play_s: float = 0.8) -> PageCheck:
    """Open ``page`` in headless Chromium and report what a reader's browser sees."""
    from playwright.sync_api import sync_playwright

    page = Path(page).resolve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable(), args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            tab.on("requestfailed", lambda r: errors.append(f"failed: {r.url} {r.failure}"))
            tab.goto(page.as_uri(), wait_until="load")
            load_ms = tab.evaluate(
                "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
            )
            if tab.query_selector("button[data-action=play]"):
                tab.click("button[data-action=play]")  # as a reader would: load, play every row
            tab.wait_for_function(
                "() => Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2 || v.error || v.networkState === 3)",
                timeout=20_000,
            )
            before = tab.evaluate(
                "() => Array.from(document.querySelectorAll('video')).map(v => v.currentTime)"
            )
            time.sleep(play_s)
            videos = tab.evaluate(
                """(before) => Array.from(document.querySelectorAll('video')).map((v, i) => ({
                    src: v.currentSrc, readyState: v.readyState, paused: v.paused,
                    advanced: v.currentTime !== before[i],
                    error: v.error ? v.error.message || String(v.error.code) : v.networkState === 3 ? 'no source could be loaded' : ''}))""",
                before,
            )
            images = tab.evaluate(
                "() => Array.from(document.images).map(i => ({src: i.src, complete: i.complete, naturalWidth: i.naturalWidth}))"
            )
            table = tab.evaluate(
                """() => Array.from(document.querySelectorAll('#headline-table td[data-key]')).map(td => ({
                    point: td.closest('tr').dataset.point, key: td.dataset.key, mean: td.dataset.mean,
                    text: td.querySelector('a').innerText.trim()}))"""
            )
            links = tab.evaluate(
                "() => Array.from(document.querySelectorAll('a[href], source[data-src], img[src]'))"
                ".map(a => a.getAttribute('href') || a.getAttribute('data-src') || a.getAttribute('src'))"
            )
            ids = set(
                tab.evaluate("() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)")
            )
            check = PageCheck(load_ms, errors, images, videos,
                              tab.evaluate("() => document.querySelectorAll('svg').length"),
                              table, _broken(page, links, ids), tab.inner_text("body"))  # fmt: skip
            check.screenshot = _screenshot_dir() / f"{name}.png"
            tab.screenshot(path=str(check.screenshot), full_page=True)
        finally:
            browser.close()
    return check


def _broken(page: Path, hrefs: list[str], ids: set[str]) -> list[str]:
    """Links and sources that lead nowhere: an anchor with no element, a relative path with no
    file, anything on a network."""
    out = []
    for href in hrefs:
        if href.startswith("#"):
            if href[1:] not in ids:
                out.append(href)
            continue
        url = urlparse(href)
        if url.scheme in ("http", "https"):
            out.append(f"{href} (the page must not need a network)")
        elif not (page.parent / unquote(url.path)).exists():
            out.append(href)
    return out


def table_mismatches(check: PageCheck, csv: Path) -> list[str]:
    """Headline cells whose raw mean or shown text differ from ``comparison_table.csv``."""
    df = pd.read_csv(csv, keep_default_na=False, na_values=[""]).set_index("variant")
    out = []
    for cell in check.table:
        row = df.loc[cell["point"]]
        want = row[f"{cell['key']}_mean"]
        got = float(cell["mean"]) if cell["mean"] else math.nan
        same = (math.isnan(want) and math.isnan(got)) or want == got
        text = fmt_mean_std(row, cell["key"])
        if not same or cell["text"] != text:
            out.append(f"{cell['point']}/{cell['key']}: page {cell['mean']!r} {cell['text']!r}, "
                       f"csv {want!r} {text!r}")  # fmt: skip
    return out


def assert_page_ok(check: PageCheck, csv: Path, *, videos: int | None = None) -> None:
    """What every report.html must show a reader: no errors, every image and video decoded and
    playing, the table's numbers those of the CSV, every link leading somewhere."""
    assert not check.errors, check.errors
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in check.images), check.images
    assert all(v["readyState"] >= 2 and not v["error"] for v in check.videos), check.videos
    assert all(v["advanced"] and not v["paused"] for v in check.videos), check.videos
    if videos is not None:
        assert len(check.videos) == videos, [v["src"] for v in check.videos]
    assert check.table and not table_mismatches(check, csv), table_mismatches(check, csv)
    assert not check.broken_links, check.broken_links
    assert check.svgs > 0
