"""The explorer in a real browser: JupyterLab, notebook 11, headless Chromium.

The widget tests drive the Python side; this one checks what a user sees: that the widget
JavaScript renders in JupyterLab, that clicking Run updates the live image and the curve
from the worker thread, and that Stop (a click handled while the run goes on) stops it.

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it),
driven by Playwright through ``executable_path``: Playwright cannot download its own
browsers here. Run it alone with ``pytest -m browser``; a screenshot is left in the test's
temporary directory: ``explorer-panel.png`` is the panel after a first Run with the
explorer's defaults (the README's thumbnail of notebook 11 is made from it with
``scripts/run_notebooks.py --thumbnails-only --thumbnail 11=PATH 11``), ``explorer-stopped.png`` the
panel after Stop, ``explorer.png`` the whole page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from piikit.engine.config import PRESETS
from piikit.interfaces.explorer import EXPLORER_PRESET

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "11_explorer.ipynb"
STEPS = 60  # steps per stage for the stopped run: long enough to stop it in stage 2 or 3 (chunks at 40 px are long)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET") -> object:
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab on 127.0.0.1 with a token, serving a copy of notebook 11 (so autosave
    never writes outputs into the committed notebook). Yields (base URL, token)."""
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings"
    # Fresh user settings: every cell in the DOM (no windowing, so all prompts can be read)
    # and no news pop-up over the page.
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / f"@jupyterlab/{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    # The kernel must import the piikit under test (this checkout), not an installed one.
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PIIKIT_SMOKE": "1", "PYTHONPATH": python_path,
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    env.pop("MPLBACKEND", None)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--allow-root",  # CI containers run as root
        # Nothing may reach out: no update check, no extension catalogue.
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
    ]
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; see {tmp_path / 'jupyterlab.log'}")
                time.sleep(0.5)
        yield base, token
    finally:
        try:
            for kernel in _api(base, token, "/api/kernels"):  # type: ignore[union-attr]
                _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for(condition, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _steps(status: str) -> int:
    match = re.search(r"step (\d+)", status)
    return int(match.group(1)) if match else -1


def _kernel_prints(runtime: Path, code: str) -> str:
    """What ``code`` prints in the notebook's running kernel (found by its connection file)."""
    from jupyter_client import BlockingKernelClient

    files = sorted(runtime.glob("kernel-*.json"))
    assert len(files) == 1, files
    client = BlockingKernelClient(connection_file=str(files[0]))
    client.load_connection_file()
    client.start_channels()
    printed: list[str] = []
    try:
        client.execute_interactive(code, timeout=60, output_hook=lambda msg: printed.append(
            msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
    finally:
        client.stop_channels()
    return "".join(printed).strip()


def test_explorer_runs_and_stops_in_jupyterlab(lab: tuple[str, str], tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it in CI")
    from playwright.sync_api import sync_playwright

    base, token = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = browser.new_page()
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
            page.locator("#jp-main-statusbar").get_by_text("Idle").first.wait_for(timeout=90_000)

            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            cells = page.locator(".jp-CodeCell .jp-InputArea-prompt")
            source = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text())
            n_code = sum(cell["cell_type"] == "code" for cell in source["cells"])

            def all_ran() -> bool:
                prompts = cells.all_inner_texts()
                return all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts) and len(prompts) == n_code

            _wait_for(all_ran, 180, "all cells to run")
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.first.inner_text()

            kernel_piikit = _kernel_prints(tmp_path / "jupyter-runtime", "import piikit; print(piikit.__file__)")
            assert Path(kernel_piikit).resolve() == (ROOT / "piikit" / "__init__.py").resolve(), kernel_piikit

            live, curve = page.locator(".piikit-live"), page.locator(".piikit-curve")
            status = page.locator(".piikit-status")
            live.wait_for(timeout=30_000)
            assert "done" in status.inner_text()  # the notebook's own run through the panel finished
            run = page.locator("button.widget-button", has_text=re.compile(r"^\s*Run\s*$"))
            stop = page.locator("button.widget-button", has_text=re.compile(r"^\s*Stop\s*$"))
            steps = page.locator(".piikit-knob-steps_per_stage input")
            panel = page.locator(".jp-OutputArea-output:has(.piikit-live)")

            # A first Run with the explorer's defaults (the smoke-mode notebook shortened the steps):
            # what a person sees after one click.
            steps.fill(str(PRESETS[EXPLORER_PRESET].steps_per_stage))
            steps.press("Enter")
            before = live.get_attribute("src")
            run.click()
            _wait_for(lambda: "done" not in status.inner_text(), 60, "the first Run to start")
            _wait_for(lambda: "done" in status.inner_text(), 300, "the first Run with the defaults to finish")
            assert live.get_attribute("src") != before
            assert page.locator(".piikit-stages img").count() == PRESETS[EXPLORER_PRESET].stages
            print(f"first Run with the defaults: {status.inner_text()}")
            panel.screenshot(path=str(tmp_path / "explorer-panel.png"))
            before = live.get_attribute("src")

            steps.fill(str(STEPS))
            steps.press("Enter")
            run.click()

            _wait_for(lambda: live.get_attribute("src") != before, 60, "the live image to change")
            first_curve, first_steps = curve.get_attribute("src"), _steps(status.inner_text())
            _wait_for(lambda: _steps(status.inner_text()) > max(first_steps, 0)
                      and curve.get_attribute("src") != first_curve, 60, "the curve to grow")
            assert run.is_disabled() and stop.is_enabled()
            _wait_for(lambda: page.locator(".piikit-stages img").count() >= 1, 90, "the first stage's thumbnail")
            assert "done" not in status.inner_text()

            stop.click()
            _wait_for(lambda: "stopped" in status.inner_text(), 30, "the run to stop")
            stopped_at = _steps(status.inner_text())
            assert STEPS <= stopped_at < 3 * STEPS
            time.sleep(2)  # nothing moves after a stop
            assert _steps(status.inner_text()) == stopped_at
            assert run.is_enabled() and stop.is_disabled()
            panel.screenshot(path=str(tmp_path / "explorer-stopped.png"))
        finally:
            page.screenshot(path=str(tmp_path / "explorer.png"))
            print(f"screenshots in {tmp_path}")
            browser.close()
