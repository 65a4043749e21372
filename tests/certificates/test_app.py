"""The certificate dialog on the real screen: ``make_app`` around a real session, real TLS
upstreams with bad certificates, real clients; a person decides with ``y`` / ``n``."""

from __future__ import annotations

import asyncio

import pytest

from monitor.app import make_app
from policies import RulesFile
from tests.certificates.certs import BAD
from tests.certificates.conftest import client, record_questions
from tests.helpers import curl, screen_text, until
from widgets.dialogs import CertificateDialog

pytestmark = pytest.mark.e2e

SIZE = (160, 50)


async def open_certificate_dialog(app, pilot) -> CertificateDialog:
    [view] = await until(pilot, lambda: app.paused_flows, "a paused flow on the screen")
    assert view.paused.event == "certificate"
    app.table.focus()
    assert app.table.select_flow(view.id)
    await pilot.press("enter")
    return await until(
        pilot,
        lambda: isinstance(app.screen, CertificateDialog) and app.screen,
        "the certificate dialog",
    )


async def closed(app, pilot, dialog) -> None:
    await until(pilot, lambda: dialog not in app.screen_stack, "the dialog to close")


def started_app(settings):
    app, session = make_app(settings)
    session.port = session.start()[1]
    return app, session


@pytest.mark.parametrize("kind", BAD)
async def test_the_dialog_shows_reason_and_fingerprint_and_n_rejects(
    kind, settings, cert_for, serve, waylay_ca, pool
):
    cert = cert_for(kind)
    bad = serve(cert)
    app, session = started_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        with client(session, waylay_ca) as c:
            request = pool.submit(c.get, bad.url("/page"))
            dialog = await open_certificate_dialog(app, pilot)
            shown = screen_text(app)
            assert "security decision" in shown
            assert f"127.0.0.1:{bad.port} failed verification: {cert.reason}" in shown
            colons = cert.fingerprint.split(":")
            assert ":".join(colons[:12]) in shown  # the start of "sha256:AA:BB:…", unwrapped
            await pilot.press("n")
            await closed(app, pilot, dialog)
            response = await asyncio.wrap_future(request)
    assert response.status_code == 502 and cert.reason in response.text
    assert bad.requests == []
    assert not settings.rules.exists()


async def test_y_lets_the_waiting_request_through_and_the_detail_pane_shows_the_certificate(
    settings, cert_for, serve, waylay_ca, pool
):
    cert = cert_for("expired")
    bad = serve(cert)
    app, session = started_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        with client(session, waylay_ca) as c:
            request = pool.submit(c.get, bad.url("/page"))
            dialog = await open_certificate_dialog(app, pilot)
            await pilot.press("y")
            await closed(app, pilot, dialog)
            response = await asyncio.wrap_future(request)
            assert response.status_code == 200 and response.text == "hello from bad\n"
        [fid] = list(app.flows)
        await until(pilot, lambda: app.flows[fid].status == 200, "the row to show 200")
        app.table.select_flow(fid)
        await pilot.press("enter")  # the detail pane
        await until(pilot, lambda: "allowed by you" in screen_text(app), "the notes")
        shown = screen_text(app)
        assert "failed verification (expired): allowed by you (once)" in shown
        assert "CN=127.0.0.1" in shown or "127.0.0.1" in shown
        assert ":".join(cert.fingerprint.split(":")[:12]) in shown
    assert [q["path"] for q in bad.requests] == ["/page"]


async def test_always_for_this_certificate_writes_a_pinned_rule_and_a_new_certificate_asks_again(
    settings, cert_for, serve, waylay_ca, pool
):
    cert = cert_for("untrusted CA")
    bad = serve(cert)
    app, session = started_app(settings)
    asked = record_questions(session)
    async with app.run_test(size=SIZE) as pilot:
        with client(session, waylay_ca) as c:
            request = pool.submit(c.get, bad.url("/first"))
            dialog = await open_certificate_dialog(app, pilot)
            await pilot.press("2", "y")  # "always for this certificate": shows the rule first
            await until(pilot, lambda: cert.fingerprint in screen_text(app), "the rule preview")
            await pilot.press("enter")
            await closed(app, pilot, dialog)
            assert (await asyncio.wrap_future(request)).status_code == 200

        rules = RulesFile(settings.rules)
        rules.load()
        [rule] = rules.rules
        assert (rule.event, rule.action, rule.fingerprint) == (
            "certificate",
            "allow",
            cert.fingerprint,
        )
        assert list(rule.urls) == [f"https://127.0.0.1:{bad.port}/*"]

        # the next connection (another client altogether) passes without a question
        second = await asyncio.to_thread(curl, session.port, bad.url("/second"), cacert=waylay_ca)
        assert second.stdout.splitlines()[-1] == "200"
        assert len(asked) == 1

        # the certificate changes: the pinned rule no longer applies, a new question
        cert_for("untrusted CA").configure(bad.ctx)
        with client(session, waylay_ca) as c:
            request = pool.submit(c.get, bad.url("/third"))
            dialog = await open_certificate_dialog(app, pilot)
            assert dialog.view.paused.certificate.fingerprint != cert.fingerprint
            await pilot.press("n")
            await closed(app, pilot, dialog)
            assert (await asyncio.wrap_future(request)).status_code == 502
    assert len(asked) == 2
    assert [q["path"] for q in bad.requests] == ["/first", "/second"]


async def test_a_valid_upstream_never_opens_a_dialog(settings, tls_upstream, waylay_ca):
    app, session = started_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        with client(session, waylay_ca, timeout=5) as c:
            response = await asyncio.to_thread(c.get, tls_upstream.url("/fine"))
        assert response.status_code == 200
        await until(
            pilot,
            lambda: [v.status for v in app.flows.values()] == [200],
            "the row to show 200",
        )
        assert app.paused_flows == [] and not isinstance(app.screen, CertificateDialog)
        await pilot.pause()  # let the row's highlight settle before the app shuts down
