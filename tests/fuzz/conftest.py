"""Property-based fuzzing (hypothesis) of everything that reads input a person or another
tool wrote: random input either loads or gives a clean error, never an uncaught exception.

The ``waylay-ci`` profile (the default) runs a fixed number of examples per test (500;
cheap tests run a multiple, see :func:`tests.fuzz.strategies.examples`; each target gets a
few thousand in all) with a derandomized seed, so a CI run is repeatable and cannot flake. For a longer, random hunt:

    WAYLAY_FUZZ_EXAMPLES=50000 WAYLAY_FUZZ_RANDOM=1 make test ARGS="tests/fuzz"
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "waylay-ci",
    max_examples=int(os.environ.get("WAYLAY_FUZZ_EXAMPLES", "500")),
    deadline=None,  # a slow shared CI machine must not turn into flaky "deadline" failures
    derandomize=not os.environ.get("WAYLAY_FUZZ_RANDOM"),
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.load_profile(os.environ.get("WAYLAY_FUZZ_PROFILE", "waylay-ci"))
