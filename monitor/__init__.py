"""The proxy side of waylay: the command line, the settings, the embedded mitmproxy and
its addons, and the bridge to the screen."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("waylay")
    """waylay's version, as installed (pyproject.toml is the one place it is written)."""
except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
    VERSION = "0+unknown"
