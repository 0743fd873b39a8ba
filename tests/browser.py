"""A real headless browser for tests: Debian's chromium, driven over the DevTools protocol.

`ensure_chromium` finds chromium or installs it with apt-get (CI starts on a bare machine);
`Browser.check` loads a page, waits for the flag the page sets when it has drawn everything,
and answers what the page logged as errors, what it asked the network for, what each chart
drew, and writes a screenshot of the whole page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
TIMEOUT_S = 120  # generous: a shared 2-core machine may be slow, and no assertion counts time
WIDTH, HEIGHT = 1440, 900
INSTALL_HINT = "install Debian's chromium package: apt-get install -y chromium (as root)"

# What each chart drew, read in the page: plotly's SVG traces and their drawn marks.
CHARTS_SCRIPT = """
JSON.stringify({
  charts: [...document.querySelectorAll(".chart")].map(chart => ({
    key: chart.dataset.chart,
    id: chart.id,
    traces: chart.querySelectorAll(".main-svg .trace").length,
    marks: [...chart.querySelectorAll(
      ".trace .point path, .trace path.point, .trace path.js-line, .trace path.js-fill"
    )].filter(path => (path.getAttribute("d") || "").length > 4).length,
  })),
  empty: [...document.querySelectorAll("[data-empty]")].map(e => e.dataset.empty),
  tables: [...document.querySelectorAll("table tbody")].map(body => body.rows.length),
})
"""
READY_SCRIPT = """
new Promise(resolve => {
  const look = () => (document.body && document.body.dataset.ready !== "false")
    ? resolve(document.body.dataset.ready) : setTimeout(look, 50);
  look();
})
"""


def ensure_chromium() -> str:
    """The path of chromium, installed with apt-get first if it is missing and we can."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserMissing(f"chromium not found; {INSTALL_HINT}")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise BrowserMissing(
                f"{' '.join(command)} failed: {done.stderr[-800:]}; {INSTALL_HINT}"
            )
    found = shutil.which("chromium")
    if not found:
        raise BrowserMissing(f"apt-get installed no chromium; {INSTALL_HINT}")
    return found


@dataclass
class PageCheck:
    """What a page did in the browser."""

    ready: str
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, error logs
    requests: list[str] = field(default_factory=list)  # every URL it loaded but its own file
    charts: list[dict[str, Any]] = field(default_factory=list)  # key, id, traces, marks
    empty: list[str] = field(default_factory=list)  # the charts shown as "nothing to draw"
    tables: list[int] = field(default_factory=list)  # rows of each table body


class Browser:
    """Headless chromium with a profile of its own, for as long as the `with` lasts."""

    def __init__(self, executable: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="ledger-chromium-"))
        self.process = subprocess.Popen(
            [
                executable,
                *FLAGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--hide-scrollbars",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def check(self, page: Path, screenshot: Path) -> PageCheck:
        """Load `page`, wait until it says it is ready, read what it drew, screenshot it."""
        session = _Session(self._page_socket())
        try:
            for domain in ("Runtime", "Log", "Page", "Network"):
                session.call(f"{domain}.enable")
            session.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            session.call("Page.navigate", url=page.resolve().as_uri())
            session.wait_for("Page.loadEventFired")
            ready = session.evaluate(READY_SCRIPT)
            drawn = json.loads(session.evaluate(CHARTS_SCRIPT))
            _screenshot(session, screenshot)
        finally:
            session.close()
        own = page.resolve().as_uri()
        return PageCheck(
            ready,
            session.errors(),
            [url for url in session.requested() if url != own and not url.startswith("data:")],
            drawn["charts"],
            drawn["empty"],
            drawn["tables"],
        )

    def _page_socket(self) -> str:
        """The DevTools address of the browser's page, once chromium says where it listens."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BrowserMissing(f"chromium did not start (exit {self.process.poll()})")
            time.sleep(0.1)
        port = port_file.read_text().splitlines()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            targets = json.load(answer)
        return str(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])


class _Session:
    """One DevTools connection: calls answered by id, events kept in arrival order."""

    def __init__(self, address: str) -> None:
        self.socket = websocket.create_connection(address, timeout=TIMEOUT_S, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"in-page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                )
            elif method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(str(params["entry"].get("text")))
        return found

    def requested(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        self.socket.close()


def _screenshot(session: _Session, path: Path) -> None:
    size = session.call("Page.getLayoutMetrics")["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": size["height"], "scale": 1}
    shot = session.call(
        "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


class BrowserMissing(Exception):
    """Chromium is not there and could not be installed, or did not start."""
