"""Regenerate docs/screen.svg: the real app, the real proxy, real requests on loopback.

.venv/bin/python -m docs.screenshot
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

import httpx

from monitor.app import make_app
from monitor.ca import ensure_ca
from monitor.settings import Settings
from tests.servers import Upstream

RULES = """\
version = 1

[[rule]]
id = "no-tracker"
urls = ["*://127.0.0.1/track*"]
action = "cancel"

[[rule]]
id = "ask-admin"
urls = ["*://127.0.0.1/admin/*"]
action = "ask"

[[rule]]
id = "canned-config"
urls = ["*://127.0.0.1/config.json"]
action = "respond"
headers = { "content-type" = "application/json" }
body = '{"feature": true}'
"""


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.toml").write_text(RULES)
    ensure_ca(tmp / "conf")
    settings = Settings(
        listen_port=0, confdir=tmp / "conf", rules=tmp / "rules.toml", batch_interval=0.05
    )
    app, session = make_app(settings)
    _, port = session.start()
    with Upstream("api") as up:
        async with app.run_test(size=(150, 32)) as pilot:
            proxy = f"http://127.0.0.1:{port}"

            def traffic() -> None:
                with httpx.Client(proxy=proxy, timeout=30) as c:
                    c.get(up.url("/"))
                    c.post(up.url("/echo/login"), json={"user": "alice"})
                    c.get(up.url("/status/404"))
                    c.get(up.url("/config.json"))
                    try:
                        c.get(up.url("/track.gif"))
                    except httpx.HTTPError:
                        pass
                    c.get(up.url("/bytes/48000"))
                    c.get(up.url("/redirect?to=/echo"))

            def paused() -> None:
                with httpx.Client(proxy=proxy, timeout=30) as c:
                    try:
                        c.delete(up.url("/admin/users/7"))
                    except httpx.HTTPError:
                        pass

            await asyncio.to_thread(traffic)
            threading.Thread(target=paused, daemon=True).start()
            while not session.pauses.keys():
                await asyncio.sleep(0.05)
            await pilot.pause(0.5)
            await pilot.press("down", "down", "down")
            await pilot.pause(0.3)
            app.save_screenshot(str(Path(__file__).with_name("screen.svg")))
    session.stop()


if __name__ == "__main__":
    asyncio.run(main())
