import os

import pytest
from hypothesis import HealthCheck, settings

from arprob import budget

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
