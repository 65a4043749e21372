"""The auth dialog on the real screen: ``make_app`` around a real session, a real Digest
server, a real client; a person types the credentials with the keyboard."""

from __future__ import annotations

import asyncio
import base64

import pytest

from monitor.app import make_app
from tests.auth.conftest import PASSWORD, client
from tests.auth.servers import AuthUpstream
from tests.helpers import screen_text, until, write_rules
from widgets.dialogs import AuthDialog

pytestmark = pytest.mark.e2e

SIZE = (150, 45)


async def open_auth_dialog(app, pilot) -> AuthDialog:
    [view] = await until(pilot, lambda: app.paused_flows, "a paused flow on the screen")
    assert view.paused.event == "auth"
    app.table.focus()
    assert app.table.select_flow(view.id)
    await pilot.press("enter")
    return await until(
        pilot, lambda: isinstance(app.screen, AuthDialog) and app.screen, "the auth dialog"
    )


async def test_typing_credentials_in_the_dialog(settings, pool):
    write_rules(settings, "")
    app, session = make_app(settings)
    port = session.start()[1]
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with AuthUpstream("digest", users={"alice": PASSWORD}, realm="Lab") as srv:
        async with app.run_test(size=SIZE) as pilot:
            session.port = port
            with client(session) as c:
                request = pool.submit(c.get, srv.url("/page"))

                # a wrong password first: the flow pauses at auth again
                dialog = await open_auth_dialog(app, pilot)
                shown = screen_text(app)
                for fact in ("the server (401)", f"127.0.0.1:{srv.port}", "Lab", "Digest"):
                    assert fact in shown
                # typing starts in the username
                await pilot.press(*"alice", "enter", *"guess", "enter")
                await until(pilot, lambda: dialog not in app.screen_stack, "the dialog to close")
                await until(
                    pilot,
                    lambda: len(srv.attempts) == 2 and app.paused_flows,
                    "the flow to pause again",
                )

                # the question comes back by itself ("attempt 2 of 3")
                await until(
                    pilot, lambda: isinstance(app.screen, AuthDialog), "the dialog to reopen"
                )
                assert "2 of 3 (the last credentials were refused)" in screen_text(app)

                # the right one, remembered for this host and realm
                # out of the fields to choose "this host", back in with tab
                await pilot.press("shift+tab", "3", "tab", *"alice", "enter", *PASSWORD)
                assert PASSWORD not in screen_text(app)
                await pilot.press("enter")
                response = await asyncio.wrap_future(request)
                assert response.status_code == 200
                assert response.text == "hello from digest\n"

            [fid] = list(app.flows)
            await until(pilot, lambda: app.flows[fid].status == 200, "the row to show 200")
            app.table.select_flow(fid)
            await pilot.press("enter")  # the detail pane
            await until(pilot, lambda: "credentials supplied" in screen_text(app), "the notes")
            shown = screen_text(app)
            assert "auth: credentials supplied for alice (you)" in shown
            assert PASSWORD not in shown and token not in shown
            notices = [n.message for n in app._notifications]
            assert not any(PASSWORD in n for n in notices)
    assert [a.accepted for a in srv.attempts] == [False, False, True]
    rules = settings.rules.read_text()
    assert 'username = "alice"' in rules and 'secret = "auth-127-0-0-1-lab-alice"' in rules
    assert PASSWORD not in rules
    secrets_file = settings.rules.parent / "secrets.toml"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert PASSWORD in secrets_file.read_text()
