"""The dashboard in a real browser: the daemon (fed a day of generated data) and
dash_app.py as separate processes, headless Chromium driven by selenium. Screenshots of
each view go to build/screenshots/ (a test artifact).

Needs the Debian packages chromium and chromium-driver (`make test` installs them when
it runs as root) and selenium; without them the test is skipped, saying what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest

from fleet.generate import generate_fleet
from tests.daemon_helpers import AUTH, KEY, ROOT, free_port, start_daemon, wait_for

pytestmark = pytest.mark.slow
SHOTS = ROOT / "build" / "screenshots"
SERVERS = 3
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def browser() -> object:
    """Headless Chromium, or a skip that says what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    service = webdriver.ChromeService(executable_path=DRIVER)
    return webdriver.Chrome(options=options, service=service)


def feed_day(url: str) -> list[str]:
    """A day of 5-minute steps for SERVERS servers, ending now; their names."""
    frame = generate_fleet(n_servers=SERVERS, days=1.05, seed=5).frame
    frame["timestamp"] += pd.Timestamp.now("UTC").floor("5min") - frame["timestamp"].max()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    records = frame.sort_values("timestamp").to_dict("records")
    for start in range(0, len(records), 1000):
        body = orjson.dumps(records[start : start + 1000])
        httpx.post(f"{url}/feed", content=body, headers=AUTH, timeout=30).raise_for_status()
    return sorted(frame["server_name"].unique())


def forecasts_ready(url: str) -> bool:
    entries = httpx.get(f"{url}/predict", headers=AUTH, timeout=30).json()["predictions"]
    return len(entries) == SERVERS and all(e["forecast_status"] == "ok" for e in entries.values())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """(dashboard URL, server names) with both processes running."""
    log = tmp_path / "stack.log"
    daemon_port, dash_port = free_port(), free_port()
    daemon = start_daemon(daemon_port, tmp_path / "state", log)
    daemon_url, dash_url = f"http://127.0.0.1:{daemon_port}", f"http://127.0.0.1:{dash_port}"
    command = [sys.executable, "dash_app.py", "--daemon-url", daemon_url]
    command += ["--port", str(dash_port), "--refresh-seconds", "5"]
    with open(log, "ab") as out:
        env = {**os.environ, "TFT_API_KEY": KEY}
        dash = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        wait_for(lambda: httpx.get(f"{daemon_url}/health").status_code == 200, 90, "daemon", log)
        names = feed_day(daemon_url)
        wait_for(lambda: forecasts_ready(daemon_url), 90, "forecasts", log)
        wait_for(lambda: httpx.get(dash_url).status_code == 200, 60, "dashboard", log)
        yield dash_url, names
    finally:
        for process in (dash, daemon):
            process.terminate()
            process.wait(timeout=30)


def visit(driver: object, url: str, shot: str, text: str, timeout: float = 30) -> str:
    """Open url, wait until the page shows text, save a screenshot; the page source."""
    driver.get(url)
    deadline = time.monotonic() + timeout
    while text not in driver.page_source and time.monotonic() < deadline:
        time.sleep(0.3)
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{shot}.png"))
    assert text in driver.page_source, f"{url} never showed {text!r}"
    return driver.page_source


def plot_traces(driver: object) -> list[dict]:
    """name and fill of each trace of the first plotly chart on the page."""
    script = (
        "const g = document.querySelector('.js-plotly-plot');"
        "return g && g.data ? g.data.map(t => ({name: t.name || '', fill: t.fill || ''})) : [];"
    )
    return driver.execute_script(script)


def wait_for_plot(driver: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not plot_traces(driver) and time.monotonic() < deadline:
        time.sleep(0.3)


@pytest.mark.timeout(300)
def test_every_view_loads_and_a_server_shows_its_forecast_band(
    stack: tuple[str, list[str]],
) -> None:
    url, names = stack
    driver = browser()
    try:
        visit(driver, f"{url}/", "overview", f"{SERVERS}/{SERVERS}")
        wait_for_plot(driver)
        driver.save_screenshot(str(SHOTS / "overview.png"))
        assert plot_traces(driver), "the overview shows no risk distribution chart"
        page = visit(driver, f"{url}/servers", "servers", names[-1])
        assert all(name in page for name in names)
        driver.find_element("link text", names[0]).click()  # a name opens its page
        deadline = time.monotonic() + 30
        while "/server?name=" not in driver.current_url and time.monotonic() < deadline:
            time.sleep(0.3)
        assert driver.current_url.endswith(f"/server?name={names[0]}"), driver.current_url
        visit(driver, f"{url}/server?name={names[0]}", "server", names[0])
        wait_for_plot(driver)
        driver.save_screenshot(str(SHOTS / "server.png"))
        traces = plot_traces(driver)
        assert len(traces) >= 3 and any(t["fill"] for t in traces), traces  # band filled
        visit(driver, f"{url}/alerts", "alerts", "Alerts")
        visit(driver, f"{url}/heatmap", "heatmap", "Heatmap")
        visit(driver, f"{url}/accuracy", "accuracy", "Accuracy")
    finally:
        driver.quit()
