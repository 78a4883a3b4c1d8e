"""Headless Chromium (Debian's ``chromium``) driven over the Chrome DevTools protocol.

Only the handful of CDP calls the browser tests (the tag's, the dashboard's) need; nothing
downloads a browser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import websocket

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


class Chromium:
    """One headless browser with one page. ``preferences`` go into the profile before it starts
    (say ``{"enable_do_not_track": True}``); ``init_script`` runs in every document before its own
    scripts."""

    def __init__(self, binary: str = "chromium", timeout: float = 30.0, preferences: dict | None = None,
                 init_script: str | None = None):
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        if preferences:
            (Path(self.profile) / "Default").mkdir()
            (Path(self.profile) / "Default" / "Preferences").write_text(json.dumps(preferences))
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json() if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self._id = 0
        if init_script:
            self.call("Page.enable")  # scripts for new documents take effect only with the Page domain on
            self.call("Page.addScriptToEvaluateOnNewDocument", source=init_script)

    def call(self, method: str, **params) -> dict:
        """Send one CDP command and return its result (events arriving meanwhile are skipped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(expression)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    # Real input, as the browser's own (trusted) events, not script-dispatched ones.

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def press(self, key: str) -> None:
        """One key (a single character) pressed and released."""
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key)

    def wheel(self, x: float, y: float, delta_y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=delta_y)

    def background_tab(self, url: str) -> str:
        """Open ``url`` in a new tab that is never brought to the front; returns its target id."""
        return self.call("Target.createTarget", url=url, background=True)["targetId"]

    def close_tab(self, target_id: str) -> None:
        self.call("Target.closeTarget", targetId=target_id)

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
