"""One exactness suite, float64 half: every row of ``exactness.CASES`` built under
``jax.enable_x64`` (NumPyro users run this way), the same checks as ``test_exactness.py``."""

from __future__ import annotations

import pytest

from exactness import CASES, check_case


@pytest.mark.parametrize("name", list(CASES))
def test_case_float64(name):
    """Contract, cached == naive sampling, finite gradients, normalisation and a G-test where
    small, with every parameter and computation in float64."""
    check_case(name, "float64")
