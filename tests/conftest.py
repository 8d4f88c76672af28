import os

# The suite is bound by XLA compile time (hundreds of small models, each compiled once), not
# by run time. Backend optimisation level 0 made two exactness rows compile and run 1.3x
# and 2.3x faster on CPU and changes no result the tests check (the same programs; exact
# cached == naive comparisons still hold); the price is slower compiled code, so tests
# that loop long in one program (e.g. 20,000 inverse-CDF draws: 0.5 -> 10 s) keep their
# sizes small. Set before jax is imported, appended to any flags the caller gave;
# subprocesses (CLI, examples, docs) inherit it. Benchmarks never import this file.
os.environ["XLA_FLAGS"] = " ".join(
    f for f in (os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0") if f
)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from arprob import budget  # noqa: E402

settings.register_profile(
    "default", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _default_memory_budget():
    """Every test starts and ends with the default memory budget (tests lower it on purpose)."""
    budget.set_memory_budget(None)
    yield
    budget.set_memory_budget(None)
