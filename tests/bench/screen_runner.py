"""The waylay screen, running without a terminal, for the benchmark: every flow shown.

``python -m tests.bench.screen_runner CONFDIR RULES`` prints the proxy port on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from monitor.app import make_app
from monitor.settings import Settings


def main() -> None:
    confdir, rules = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings(listen_port=0, confdir=confdir, rules=rules)
    app, session = make_app(settings)
    host, port = session.start()
    print(port, flush=True)
    app.run(headless=True, size=(160, 50))


if __name__ == "__main__":
    main()
