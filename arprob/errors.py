"""Exception types raised at arprob's public boundary."""


class SpecError(ValueError):
    """A spec (variables, ordering, partition, conditionals) is invalid."""


class DataError(ValueError):
    """Data given to a model does not fit its spec (shape, dtype, range, NaN)."""
