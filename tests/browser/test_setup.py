"""The browser set-up `waylay ca` prints (and the README repeats), run verbatim in a fresh
HOME: afterwards Chromium loads an HTTPS page through waylay."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.browser.conftest import open_page
from tests.helpers import WAYLAY

pytestmark = pytest.mark.e2e


def test_the_printed_nss_steps_make_chromium_trust_waylay(
    chromium_ready, settings, waylay, https_site, tmp_path, upstream_ca_pem
):
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    out = subprocess.run(
        [*WAYLAY, "ca", "--confdir", str(settings.confdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout
    chromium_part = out.split("Chromium/Chrome on Linux", 1)[1].split("Firefox on Linux", 1)[0]
    steps = [line.strip() for line in chromium_part.splitlines()[1:3]]
    assert steps[0].startswith("mkdir -p ~/.pki/nssdb && certutil") and "  (once" in steps[0]
    assert steps[1].startswith("certutil -d sql:$HOME/.pki/nssdb -A")
    for step in (steps[0].split("  (once", 1)[0], steps[1]):
        subprocess.run(["bash", "-c", step], env=env, check=True, timeout=30)
    assert "--proxy-bypass-list='<-loopback>'" in chromium_part
    session = waylay()
    open_page(
        https_site.origin + "/cancel.html",
        home,
        proxy_port=session.port,
        until=lambda: "/r/result" in https_site.paths(),
    )
    page = next(f for f in session.recorder.flows.values() if f.request.path == "/cancel.html")
    assert page.response.status_code == 200 and page.request.scheme == "https"
