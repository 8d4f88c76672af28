"""Exception types raised at arprob's public boundary.

Every error arprob raises for bad user input derives from ``ArprobError`` (catch that one
to catch them all); each also derives from the built-in type it refines (``ValueError``),
so code written against the built-in types keeps working.
"""


class ArprobError(Exception):
    """Base class of the errors arprob raises for bad input (specs, data, files)."""


class SpecError(ArprobError, ValueError):
    """A spec (variables, ordering, partition, conditionals) is invalid."""


class DataError(ArprobError, ValueError):
    """Data given to a model does not fit its spec (shape, dtype, range, NaN)."""
