"""The waylay screen, running without a terminal, for the benchmark: every flow shown.

As ``waylay`` runs it: the proxy in its own process, this one the screen attached to it.
``python -m tests.bench.screen_runner CONFDIR RULES [--in-process]`` prints the proxy
port on stdout. ``--in-process`` runs the screen and the proxy in one interpreter (the
design before the split), for comparison.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from monitor.settings import Settings


def main() -> None:
    confdir, rules = Path(sys.argv[1]), Path(sys.argv[2])
    if "--in-process" in sys.argv:
        from monitor.app import make_app

        settings = Settings(listen_port=0, confdir=confdir, rules=rules)
        app, session = make_app(settings)
        host, port = session.start()
        print(port, flush=True)
        app.run(headless=True, size=(160, 50))
        return
    from monitor.attach import ProxyChild, make_attached_app, tune_screen_gc
    from monitor.remote import Remote

    child = ProxyChild(["--listen-port", "0", "--confdir", str(confdir), "--rules", str(rules)])
    if not child.path:
        sys.exit(child.failure()[1])

    def stop(signum, frame) -> None:  # the benchmark ends a config with SIGTERM
        child.proc.terminate()
        child.proc.wait(10)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    remote = Remote(child.path)
    print(remote.welcome.address.rsplit(":", 1)[1], flush=True)
    app = make_attached_app(remote, own_proxy=True)
    tune_screen_gc()  # as run_attached does
    try:
        app.run(headless=True, size=(160, 50))
    finally:
        child.proc.terminate()
        child.proc.wait(10)


if __name__ == "__main__":
    main()
