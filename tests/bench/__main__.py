"""``make bench``: the proxy benchmark, then the rules benchmark."""

from __future__ import annotations

import sys

from tests.bench import proxy_bench


def main() -> int:
    rc = proxy_bench.main(sys.argv[1:])
    try:
        from tests.bench import bench_rules
    except ImportError:
        print("(rules benchmark not available)")
    else:
        print()
        bench_rules.main()
    from tests.bench import soak

    print()
    soak.main([])
    return rc


if __name__ == "__main__":
    sys.exit(main())
