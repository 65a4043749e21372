"""The ``waylay`` command (README "Command line")."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from monitor import VERSION, limits
from monitor.options_check import (
    OneLineParser,
    ask_timeout_arg,
    check_paths,
    port_arg,
    positive_int_arg,
    proxy_auth,
    size_arg,
)
from monitor.settings import (
    MAX_ASK_TIMEOUT,
    Settings,
    SettingsError,
    default_confdir,
    default_rules_path,
)
from monitor.user_settings import UserSettings, load_user_settings, settings_path

# Every command, one line each: ``waylay --help`` lists them, ``waylay COMMAND --help``
# explains each.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("waylay [options]", "the interactive monitor (this help)"),
    ("waylay --headless [options]", "no screen: apply the rules, one line per flow"),
    ("waylay rules check [PATH]", "validate a rules file"),
    ("waylay rules list [PATH]", "the rules in precedence order"),
    ("waylay rules export [PATH] --format F", "export rules: toml, json, dnr, mitmproxy"),
    ("waylay rules import FILE --format F", "import rules: toml, json, dnr"),
    ("waylay attach [PORT|PATH]", "open the screen on a running proxy (q detaches)"),
    ("waylay attach --list", "the proxies running for this user"),
    ("waylay open FILE", "a saved session (mitmproxy flow file or HAR), read-only"),
    ("waylay ca", "where the CA certificate is and how to trust it"),
)


def _commands_epilog() -> str:
    width = max(len(name) for name, _ in COMMANDS)
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS]
    return (
        "commands:\n"
        + "\n".join(lines)
        + "\n\nEach command has its own --help (waylay rules --help, waylay attach --help, "
        "waylay open --help, waylay ca --help)."
        + f"\nDefaults for options can live in the settings file: {settings_path()}"
    )


def _version() -> str:
    from mitmproxy import version as mv

    return f"waylay {VERSION} (mitmproxy {mv.VERSION}, Python {sys.version.split()[0]})"


def main_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="waylay",
        description="Interactive HTTP(S) debugging proxy: see every request live, stop the "
        "ones you care about, decide, and keep the decisions as rules.",
        epilog=_commands_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--listen-host",
        default="127.0.0.1",
        help="default 127.0.0.1; anything not loopback needs --proxy-auth or --allow-remote",
    )
    p.add_argument(
        "--listen-port",
        type=port_arg,
        default=8080,
        metavar="PORT",
        help="0-65535, default 8080; 0 picks a free port",
    )
    p.add_argument(
        "--mode",
        action="append",
        default=None,
        metavar="MODE",
        help="regular, upstream:URL, reverse:URL or socks5, each optionally @[HOST:]PORT; "
        "may be given several times (default regular)",
    )
    p.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="rules file; default $WAYLAY_RULES, else ~/.config/waylay/rules.toml",
    )
    p.add_argument(
        "--confdir", type=Path, default=None, help="where the CA lives; default ~/.mitmproxy"
    )
    p.add_argument(
        "--ask-timeout",
        type=ask_timeout_arg,
        default=120.0,
        metavar="SEC",
        help=f"how long a paused event waits for you: seconds in (0, {MAX_ASK_TIMEOUT}], "
        "or none to wait for ever (default 120)",
    )
    p.add_argument(
        "--ask-default",
        choices=("continue", "cancel"),
        default="continue",
        help="outcome of request/response/redirect events on timeout or headless",
    )
    p.add_argument(
        "--max-flows",
        type=positive_int_arg,
        default=None,
        metavar="N",
        help="flows kept in memory, at least 1 (default 50000; 10000 with --session)",
    )
    p.add_argument(
        "--max-body-memory",
        default="256m",
        type=size_arg,
        metavar="SIZE",
        help="bytes of bodies kept across flows (k/m/g suffixes; default 256m); "
        "past it the oldest flows lose their bodies",
    )
    p.add_argument(
        "--har",
        type=Path,
        default=None,
        help="write the session as HAR 1.2 on exit (file mode 0600); its folder must exist",
    )
    p.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="FILE",
        help="stream every finished flow to FILE in mitmproxy's flow format "
        "(mitmproxy -r and waylay open read it)",
    )
    p.add_argument(
        "--headless",
        action="store_true",
        help="no screen: apply the rules, print one line per finished flow",
    )
    p.add_argument(
        "--hold",
        action="store_true",
        help="with no screen attached, a paused event waits up to --ask-timeout for one "
        "(default: it gets its headless outcome at once)",
    )
    p.add_argument("--screen-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--proxy-auth",
        default=None,
        metavar="USER:PASS",
        help="clients must authenticate to the proxy (both non-empty); better: "
        "$WAYLAY_PROXY_AUTH or --proxy-auth-file, which other users cannot see in ps",
    )
    p.add_argument(
        "--proxy-auth-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read USER:PASS for --proxy-auth from the first line of FILE",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="permit a non-loopback listen address (--listen-host or a mode's @HOST:PORT) "
        "without --proxy-auth",
    )
    p.add_argument(
        "--upstream-ca",
        type=Path,
        default=None,
        metavar="PEM",
        help="also trust this CA for upstream servers (besides the system's); a readable PEM file",
    )
    p.add_argument(
        "--session",
        default=None,
        metavar="FILE",
        help="keep every finished flow in a SQLite session file (memory then holds only the "
        "newest --max-flows); 'new' makes one under the state folder",
    )
    limits.add_arguments(p)
    p.add_argument(
        "--print-settings",
        action="store_true",
        help="print the effective settings and where each comes from, then exit",
    )
    p.add_argument("--version", action="version", version=_version())
    return p


def _file_defaults(parser: argparse.ArgumentParser, options: dict) -> dict:
    """The settings file's options, converted and checked by the same functions as the
    command line's (ranges included); a bad value names the file and the key."""
    actions = {a.dest: a for a in parser._actions}
    out: dict = {}
    for name, value in options.items():
        action = actions[name]
        text = str(value)
        try:
            converted = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise SettingsError(f"{settings_path()}: options.{name}: {e}") from None
        out[name] = [converted] if name == "mode" else converted  # --mode appends
    return out


def _given_on_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option that ``argv`` names (abbreviations are off)."""
    given: set[str] = set()
    for action in parser._actions:
        for opt in action.option_strings:
            if any(a == opt or a.startswith(opt + "=") for a in argv):
                given.add(action.dest)
    return given


# The settings --print-settings shows, in order: Settings field -> argparse dest.
_SHOWN = (
    "listen_host",
    "listen_port",
    "mode",
    "rules",
    "confdir",
    "ask_timeout",
    "ask_default",
    "max_flows",
    "max_body_memory",
    "har",
    "proxy_auth",
    "allow_remote",
    "upstream_ca",
    "max_header_size",
    "idle_timeout",
    "connect_timeout",
    "read_timeout",
)


def print_settings(settings: Settings, user: UserSettings, given: set[str], out=None) -> None:
    out = out or sys.stdout
    from_file = set(user.option_defaults())
    path = settings_path()
    for name in _SHOWN:
        value = getattr(settings, name)
        if name == "proxy_auth" and value:
            value = value.split(":", 1)[0] + ":****"
        if name in given:
            source = "command line"
        elif name == "rules" and os.environ.get("WAYLAY_RULES"):
            source = "$WAYLAY_RULES"
        elif name in from_file:
            source = f"settings file {path}"
        else:
            source = "default"
        print(f"{name} = {value}  ({source})", file=out)
    print(f"theme = {user.theme or '(Textual default)'}", file=out)
    print(f"keymap = {dict(user.keymap) or '(none)'}", file=out)
    print(f"settings file: {path}{'' if path.exists() else ' (not present)'}", file=out)


def rules_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waylay rules", description="Check, list, export and import rules."
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="validate a rules file")
    c.add_argument("path", nargs="?", type=Path)
    ls = sub.add_parser("list", help="the rules in precedence order")
    ls.add_argument("path", nargs="?", type=Path)
    ls.add_argument(
        "--format",
        choices=("table", "tsv", "json"),
        default=None,
        help="default: table on a terminal, tsv (one rule per line) when piped",
    )
    ex = sub.add_parser("export", help="export rules as toml, json, dnr or mitmproxy options")
    ex.add_argument("path", nargs="?", type=Path)
    ex.add_argument("--format", required=True, choices=("toml", "json", "dnr", "mitmproxy"))
    ex.add_argument("-o", "--output", type=Path, default=None)
    ex.add_argument("--strict", action="store_true", help="exit 3 when a rule was left out")
    im = sub.add_parser("import", help="import rules from toml, json or dnr")
    im.add_argument("file", type=Path)
    im.add_argument("--format", required=True, choices=("toml", "json", "dnr"))
    im.add_argument("--into", type=Path, default=None)
    im.add_argument("--replace", action="store_true")
    im.add_argument(
        "--allow-outside",
        action="store_true",
        help="accept respond rules whose body_file is outside the rules file's folder",
    )
    return p


def rules_main(argv: list[str]) -> int:
    args = rules_parser().parse_args(argv)
    from policies import cli as pcli

    if args.command == "check":
        return pcli.check(args.path)
    if args.command == "list":
        return pcli.list_rules(args.path, fmt=args.format)
    from policies import exchange

    if args.command == "export":
        return exchange.export_command(args.path, args.format, args.output, strict=args.strict)
    return exchange.import_command(
        args.file,
        args.format,
        into=args.into,
        replace=args.replace,
        allow_outside=args.allow_outside,
    )


def _session_path(value: str | None) -> Path | None:
    if value is None:
        return None
    if value != "new":
        return Path(value).expanduser()
    import time

    from platformdirs import user_state_dir

    folder = Path(user_state_dir("waylay")) / "sessions"
    return folder / time.strftime("%Y%m%d-%H%M%S.waylay-session")


def settings_from(args: argparse.Namespace) -> Settings:
    modes = args.mode or ["regular"]
    return Settings(
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        mode=modes[0],
        extra_modes=tuple(modes[1:]),
        rules=(args.rules or default_rules_path()).expanduser(),
        confdir=(args.confdir or default_confdir()).expanduser(),
        ask_timeout=args.ask_timeout,
        ask_default=args.ask_default,
        max_flows=args.max_flows
        if args.max_flows is not None
        else (10_000 if args.session else 50_000),
        max_body_memory=args.max_body_memory,
        har=args.har,
        save=args.save,
        session=_session_path(args.session),
        headless=args.headless,
        hold=args.hold,
        proxy_auth=proxy_auth(args),
        allow_remote=args.allow_remote,
        upstream_ca=args.upstream_ca,
        **limits.settings_kwargs(args),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "rules":
        return rules_main(argv[1:])
    if argv and argv[0] == "open":
        from monitor.open import open_main

        return open_main(argv[1:])
    if argv and argv[0] == "attach":
        from monitor.attach import attach_main

        return attach_main(argv[1:])
    if argv and argv[0] == "ca":
        from monitor.ca import ca_main

        return ca_main(argv[1:])
    parser = main_parser()
    try:
        user = load_user_settings()
    except SettingsError as e:
        print(f"waylay: {e}", file=sys.stderr)
        return 2
    defaults = user.option_defaults()
    if os.environ.get("WAYLAY_RULES"):
        defaults.pop("rules", None)  # the environment beats the settings file
    try:
        parser.set_defaults(**_file_defaults(parser, defaults))
    except SettingsError as e:
        print(f"waylay: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
        settings.validate()
        check_paths(settings)
    except SettingsError as e:
        print(f"waylay: {e}", file=sys.stderr)
        return 2
    if args.print_settings:
        print_settings(settings, user, _given_on_command_line(parser, argv))
        return 0
    if settings.headless:
        from monitor.headless import run_headless

        return run_headless(settings, ready_fd=args.screen_child)
    from monitor.attach import run_screen

    return run_screen(argv)


if __name__ == "__main__":
    sys.exit(main())
