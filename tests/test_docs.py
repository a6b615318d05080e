"""The documentation site as a reader sees it: built as ``make docs`` builds it, opened in
headless Chromium.

Builds the site (``docs/``: the README as landing page, every notebook with its committed
full-mode outputs, the guides in ``docs/guide/``, the API reference, the benchmarks; nothing is
executed) into a temporary
folder, warnings as errors, then serves it on 127.0.0.1 and visits every page with Playwright
and Debian's Chromium (the set-up of ``tests/test_browser.py``; nothing outside 127.0.0.1 is
fetched: a request elsewhere, a CDN's script say, is refused and fails the test, as the site
must work offline). Checked: each page loads; every local link points at a file the site has;
every image decodes; every notebook page shows its figures among its outputs (as many pictures
of a real size as the notebook has image outputs); a page with saved widgets renders them (the
HTML manager is served by the site); the API page lists ``invert``, ``refine`` and
``attribute`` with their signatures. Screenshots are left in the test's temporary folder. Run it
alone with ``pytest -m docs``.
"""

from __future__ import annotations

import functools
import http.server
import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = [pytest.mark.docs, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOT_PAGE = "notebooks/03_centering_and_zoom.html"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MIN_FIGURE_SIDE = 64  # pixels: a figure, not an icon or a broken placeholder

# Every <img> of a page: its URL, whether it decoded, its natural size, and whether its pixels
# differ (a canvas read of up to 64x64 samples; same-origin, so readable).
IMAGES_JS = """
async () => Promise.all(Array.from(document.images).map(async (img) => {
  try { await img.decode(); } catch (e) {}
  const out = {src: img.currentSrc || img.src, width: img.naturalWidth, height: img.naturalHeight,
               output: !!img.closest('.cell_output'), varied: false};
  if (out.width > 0) {
    const c = document.createElement('canvas');
    c.width = Math.min(64, out.width); c.height = Math.min(64, out.height);
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0, c.width, c.height);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    for (let i = 4; i < d.length && !out.varied; i += 4)
      for (let k = 0; k < 4; k++) if (d[i + k] !== d[k]) { out.varied = true; break; }
  }
  return out;
}))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built from scratch with warnings as errors (as ``make docs``: no execution).
    ``PIIKIT_DOCS_SITE=docs/_build/html`` checks a site already built instead."""
    if os.environ.get("PIIKIT_DOCS_SITE"):
        return Path(os.environ["PIIKIT_DOCS_SITE"]).resolve()
    build = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
               "-d", str(build / "doctrees"), str(ROOT / "docs"), str(build / "html")]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = build / "sphinx.log"
    log.write_text(done.stdout + done.stderr)
    print(f"docs build: {time.perf_counter() - started:.0f} s; log {log}")
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
    assert done.returncode == 0, "sphinx-build failed:\n" + "\n".join(problems or done.stderr.splitlines()[-30:])
    return build / "html"


def _image_outputs(path: Path) -> int:
    """How many image outputs the committed notebook has (each becomes an <img> on its page)."""
    nb = json.loads(path.read_text())
    return sum(1 for cell in nb["cells"] for output in cell.get("outputs", [])
               if {"image/png", "image/jpeg"} & set(output.get("data", {})))


def _has_widgets(path: Path) -> bool:
    nb = json.loads(path.read_text())
    return bool(nb.get("metadata", {}).get("widgets")) and any(
        WIDGET_VIEW in output.get("data", {}) for cell in nb["cells"] for output in cell.get("outputs", []))


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    """The site on 127.0.0.1, as ``python -m http.server -d docs/_build/html`` serves it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _local_file(site: Path, base: str, url: str) -> Path | None:
    """The file of the site a URL points at, or None for a URL outside the site."""
    if not url.startswith(base):
        return None
    path = unquote(urlsplit(url).path)[len(urlsplit(base).path):]
    target = site / path
    return target / "index.html" if path == "" or path.endswith("/") else target


def test_the_site_reads_like_a_site(site: Path, server: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it in CI")
    from playwright.sync_api import sync_playwright

    benchmarks = sorted((ROOT / "docs").glob("benchmarks*.md"))
    guides = sorted((ROOT / "docs" / "guide").glob("*.md"))  # where the README sends readers for details
    assert benchmarks and guides
    pages = ["index.html", *(f"notebooks/{p.stem}.html" for p in NOTEBOOKS), "api.html",
             *(f"{p.stem}.html" for p in benchmarks), *(f"guide/{p.stem}.html" for p in guides)]
    refused: set[str] = set()
    failures: list[str] = []
    broken: dict[str, list[str]] = {}  # link target -> the pages that link to it
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def only_local(route, request) -> None:  # noqa: ANN001 - Playwright's types
            if request.url.startswith(server) or request.url.startswith("data:"):
                route.continue_()
            else:
                refused.add(request.url.split("?")[0])
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        try:
            for name in pages:
                response = page.goto(server + name, wait_until="load", timeout=60_000)
                if response is None or not response.ok:
                    failures.append(f"{name}: HTTP {response.status if response else 'no response'}")
                    continue
                # Links: every local href names a file the site has.
                hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
                for href in sorted(set(hrefs)):
                    target = _local_file(site, server, href)
                    if target is not None and not target.is_file():
                        broken.setdefault(href[len(server):].split("#")[0], []).append(name)
                # Images: every <img> decodes to a picture.
                images = page.evaluate(IMAGES_JS)
                for image in images:
                    if image["width"] == 0:
                        failures.append(f"{name}: image does not load: {image['src']}")
                if name.startswith("notebooks/"):
                    source = ROOT / "notebooks" / (Path(name).stem + ".ipynb")
                    figures = [i for i in images if i["output"] and i["varied"]
                               and min(i["width"], i["height"]) >= MIN_FIGURE_SIDE]
                    expected = _image_outputs(source)
                    if not figures or len(figures) < expected:
                        failures.append(f"{name}: {len(figures)} figures among its outputs, the notebook has {expected}")
                    if _has_widgets(source):
                        page.locator(".jupyter-widgets").first.wait_for(state="attached", timeout=30_000)
                if name == "index.html":
                    assert "piikit" in page.title()
                    assert page.locator("h1").first.inner_text().strip().startswith("piikit")
                    assert len([i for i in images if "readme_inversions" in i["src"]]) == 1
                if name == SCREENSHOT_PAGE and figures:  # the first figure in view, as a reader scrolls to it
                    page.locator(".cell_output img").first.scroll_into_view_if_needed()
                    page.mouse.wheel(0, 300)
                    time.sleep(0.3)
                    page.screenshot(path=str(tmp_path / "notebook-page.png"))
                if name == "api.html":
                    import piikit

                    for function in ("invert", "refine", "attribute"):
                        signature = page.locator(f'dt.sig[id="piikit.{function}"]')
                        if signature.count() != 1:
                            failures.append(f"api.html: no signature of piikit.{function}")
                            continue
                        text = " ".join(signature.inner_text().split())
                        expected = list(inspect.signature(getattr(piikit, function)).parameters)
                        missing = [p for p in expected if p not in text]
                        if not text.startswith(f"piikit.{function}(") or missing:
                            failures.append(f"api.html: signature of {function} reads {text!r} (missing {missing})")
                    page.screenshot(path=str(tmp_path / "api-page.png"))
            page.goto(server + "index.html")
            page.screenshot(path=str(tmp_path / "landing-page.png"))
        finally:
            browser.close()
            print(f"screenshots in {tmp_path}; requests refused (outside the site): {sorted(refused)}")
    failures += [f"request outside the site (the site must work offline): {url}" for url in sorted(refused)]
    failures += [f"broken link to {target} on {', '.join(sources[:3])}{' ...' if len(sources) > 3 else ''}"
                 for target, sources in broken.items()]
    assert not failures, "\n".join(failures)
    assert (tmp_path / "notebook-page.png").stat().st_size > 10_000
