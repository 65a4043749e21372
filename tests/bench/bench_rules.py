"""Rules benchmark: decisions per second, p50/p99 per decision, and file load time.

    python -m tests.bench.bench_rules [--sizes 10,1000,10000] [--decisions 20000]

Rule sets are "mixed": what a rules file holds after remembering decisions and importing
a blocklist. Per 100 rules: 55 exact hosts (some with a path, methods or types), 25
``*.domain`` wildcards, 10 regexes anchored to a host (rewrites with ``\\1``), 5 other
events (response, auth, certificate, cookies), and — at most 40 in all — host-less rules
(``*://*/ads/*``, an unanchored regex, ``<all_urls>`` with types, a mitmproxy filter)
that every decision has to look at. A last row shows the worst case: every rule
host-less.

Half the decided URLs hit a host that has rules, half do not.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from policies.engine import Engine, EventDetails, regex_host
from policies.match_pattern import compile_pattern
from policies.model import Rule, compile_regex
from policies.rules_file import RulesFile

TARGET_P50_US = 20.0
TARGET_LOAD_S = 1.0
HOSTLESS_CAP = 40
TYPES = ["main_frame", "script", "image", "stylesheet", "xmlhttprequest", "font", "other"]


def mixed_rules(count: int, seed: int = 7, hostless_only: bool = False) -> list[dict]:
    """Plain rule data (as in a file) for ``count`` rules of mixed kinds."""
    rng = random.Random(seed)
    rules: list[dict] = []
    hostless = 0
    for i in range(count):
        roll = rng.randrange(100)
        rid = f"r{i}"
        if hostless_only or (roll >= 95 and hostless < HOSTLESS_CAP):
            hostless += 1
            kind = i % 4
            if kind == 0:
                rules.append({"id": rid, "urls": [f"*://*/ads{i}/*"], "action": "cancel"})
            elif kind == 1:
                rules.append({"id": rid, "regex": rf"[?&]utm_{i}=", "action": "cancel"})
            elif kind == 2:
                rules.append(
                    {
                        "id": rid,
                        "types": ["font"],
                        "methods": ["GET"],
                        "action": "cancel",
                        "priority": 0,
                    }
                )
            else:
                rules.append({"id": rid, "filter": f"~d filter{i}.test & ~m POST", "action": "ask"})
        elif roll < 55:
            host = f"h{i}.site{i % 97}.test"
            rule = {
                "id": rid,
                "urls": [f"*://{host}/*"],
                "action": rng.choice(["cancel", "continue", "ask"]),
            }
            if roll < 10:
                rule["urls"] = [f"https://{host}/api/*", f"https://{host}/v2/*"]
            elif roll < 20:
                rule["methods"] = ["POST", "PUT"]
            elif roll < 30:
                rule["types"] = ["script", "image"]
            elif roll < 35:
                rule.update(action="respond", status=204, body="")
            rule["priority"] = rng.randint(1, 3)
            rules.append(rule)
        elif roll < 80:
            rules.append({"id": rid, "urls": [f"*://*.dom{i}.test/*"], "action": "cancel"})
        elif roll < 90:
            rules.append(
                {
                    "id": rid,
                    "regex": rf"^https://api{i}\.svc\.test/(.*)$",
                    "action": "rewrite",
                    "url": rf"https://staging{i}.svc.test/\1",
                    "priority": 2,
                }
            )
        else:
            event = ["response", "auth", "certificate", "cookies"][i % 4]
            action = {
                "response": "cancel",
                "auth": "cancel",
                "certificate": "reject",
                "cookies": "strip",
            }[event]
            rules.append(
                {"id": rid, "event": event, "urls": [f"https://e{i}.site.test/*"], "action": action}
            )
    return rules


def decision_stream(rules: list[dict], count: int, seed: int = 11) -> list[EventDetails]:
    """URLs of which half hit a host some rule names, half an unknown host."""
    rng = random.Random(seed)
    hosts = []
    for data in rules:
        for pattern in data.get("urls", []):
            host = pattern.split("://", 1)[1].split("/", 1)[0]
            if host != "*":
                hosts.append(host.replace("*.", "www."))
        if "regex" in data and data["regex"].startswith("^https://"):
            hosts.append(data["regex"][len("^https://") :].split("/", 1)[0].replace("\\", ""))
    paths = ["/", "/api/v1/items?id=3", "/static/app.js", "/img/logo.png", "/v2/x"]
    out = []
    for n in range(count):
        if hosts and n % 2 == 0:
            host = rng.choice(hosts)
        else:
            host = f"unknown{rng.randrange(10_000)}.example.net"
        url = f"https://{host}{rng.choice(paths)}"
        out.append(
            EventDetails(
                "request",
                url,
                method=rng.choice(["GET", "GET", "GET", "POST"]),
                type=rng.choice(TYPES),
            )
        )
    return out


def measure_decisions(engine: Engine, stream: list[EventDetails]) -> tuple[float, float, float]:
    """(decisions per second, p50 µs, p99 µs)."""
    decide = engine.decide
    for details in stream[:500]:
        decide(details)  # warm-up
    start = time.perf_counter()
    for details in stream:
        decide(details)
    per_second = len(stream) / (time.perf_counter() - start)
    clock = time.perf_counter_ns
    samples = []
    for details in stream:
        t0 = clock()
        decide(details)
        samples.append(clock() - t0)
    samples.sort()
    p50 = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    return per_second, p50, p99


def toml_text(rules: list[dict]) -> str:
    """A rules file for ``rules`` (written directly, as a person or an import would)."""

    def value(v):
        if isinstance(v, str):
            return "'" + v + "'" if "\\" in v else '"' + v + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    parts = ["# benchmark rules\nversion = 1\n"]
    for data in rules:
        parts.append("\n[[rule]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in data.items()))
    return "".join(parts)


def measure_load(count: int) -> tuple[float, float, int]:
    """(seconds to load, seconds for the first edit, file size) of a ``count``-rule file."""
    rules = mixed_rules(count)
    # a cold start: nothing compiled by the decision rows may help the load
    compile_pattern.cache_clear()
    compile_regex.cache_clear()
    regex_host.cache_clear()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.toml"
        path.write_text(toml_text(rules))
        start = time.perf_counter()
        rules_file = RulesFile(path)
        ok = rules_file.load()
        load_s = time.perf_counter() - start
        if not ok:
            raise SystemExit("\n".join(rules_file.errors[:5]))
        assert len(rules_file.rules) == count
        start = time.perf_counter()
        rules_file.set_enabled(rules[count // 2]["id"], False)
        edit_s = time.perf_counter() - start
        return load_s, edit_s, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_rules", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", default="10,1000,10000", help="rule counts (comma-separated)")
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions timed per size")
    parser.add_argument("--load-size", type=int, default=10_000, help="rules in the load-time file")
    args = parser.parse_args(argv or [])
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print(f"rules benchmark (Python {sys.version.split()[0]})")
    header = (
        f"{'rules':>8} {'kind':<14} {'build ms':>9} {'decisions/s':>12} {'p50 µs':>8} {'p99 µs':>8}"
    )
    print(header)
    print("-" * len(header))
    worst_p50 = {}
    rows = [(n, "mixed", False) for n in sizes] + [(1000, "all host-less", True)]
    for count, label, hostless_only in rows:
        data = mixed_rules(count, hostless_only=hostless_only)
        start = time.perf_counter()
        engine = Engine([Rule.model_validate(d) for d in data])
        build_ms = (time.perf_counter() - start) * 1000
        per_second, p50, p99 = measure_decisions(engine, decision_stream(data, args.decisions))
        if not hostless_only:
            worst_p50[count] = p50
        print(
            f"{count:>8,} {label:<14} {build_ms:>9.1f} {per_second:>12,.0f} {p50:>8.1f} {p99:>8.1f}"
        )

    load_s, edit_s, size = measure_load(args.load_size)
    print()
    print(
        f"load a {args.load_size:,}-rule file ({size / 1e6:.1f} MB): {load_s * 1000:.0f} ms (target < {TARGET_LOAD_S * 1000:.0f} ms)"
    )
    print(f"first edit of that file (tomlkit parse, validate, atomic save): {edit_s * 1000:.0f} ms")
    verdicts = []
    biggest = max(worst_p50) if worst_p50 else None
    if biggest is not None:
        ok = worst_p50[biggest] < TARGET_P50_US
        verdicts.append(
            f"p50 at {biggest:,} rules {'OK' if ok else 'OVER'} (< {TARGET_P50_US:.0f} µs)"
        )
    verdicts.append(f"load {'OK' if load_s < TARGET_LOAD_S else 'OVER'} (< {TARGET_LOAD_S:.0f} s)")
    print("; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
