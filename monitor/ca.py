"""``waylay ca``: where waylay's (mitmproxy's) CA certificate is, and how to trust it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.settings import default_confdir

BASENAME = "mitmproxy"


def ensure_ca(confdir: Path) -> Path:
    """Create the CA in ``confdir`` if it is not there yet; return the PEM certificate."""
    from mitmproxy import certs

    confdir = confdir.expanduser()
    confdir.mkdir(parents=True, exist_ok=True)
    certs.CertStore.from_store(str(confdir), BASENAME, 2048)
    return confdir / f"{BASENAME}-ca-cert.pem"


def instructions(pem: Path) -> str:
    cer = pem.with_name(f"{BASENAME}-ca-cert.cer")
    return f"""\
waylay's CA certificate (mitmproxy's own CA, shared with mitmproxy):
  {pem}

Clients only trust waylay's view of HTTPS sites once they trust this certificate.
Trust it only on machines you control, and keep {pem.parent} private.

Debian/Ubuntu:  sudo cp {pem} /usr/local/share/ca-certificates/waylay.crt && sudo update-ca-certificates
Fedora/RHEL:    sudo cp {pem} /etc/pki/ca-trust/source/anchors/waylay.pem && sudo update-ca-trust
macOS:          sudo security add-trusted-cert -d -p ssl -p basic -k /Library/Keychains/System.keychain {pem}
Windows:        certutil -addstore root {cer}
Firefox:        Settings → Privacy & Security → Certificates → View Certificates → Authorities
                → Import… {pem}  (Firefox keeps its own store)
Chromium/Chrome on Linux (NSS database; certutil is in libnss3-tools):
                mkdir -p ~/.pki/nssdb && certutil -d sql:$HOME/.pki/nssdb -N --empty-password  (once, if new)
                certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n waylay -i {pem}
                chromium --proxy-server=http://127.0.0.1:8080 --proxy-bypass-list='<-loopback>'
Firefox on Linux, same tool: certutil -d sql:PROFILE_DIR -A -t C,, -n waylay -i {pem}
Python:         REQUESTS_CA_BUNDLE={pem}  (requests)   SSL_CERT_FILE={pem}  (httpx, urllib, ssl)
Node.js:        NODE_EXTRA_CA_CERTS={pem}
curl:           curl --cacert {pem} -x http://127.0.0.1:8080 https://example.com/

"""


def ca_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="waylay ca", description="Where the CA is and how to trust it."
    )
    p.add_argument("--confdir", type=Path, default=None, help="default ~/.mitmproxy")
    args = p.parse_args(argv)
    try:
        pem = ensure_ca(args.confdir or default_confdir())
    except OSError as e:
        print(f"waylay: cannot create the CA: {e}", file=sys.stderr)
        return 2
    print(instructions(pem), end="")
    return 0
