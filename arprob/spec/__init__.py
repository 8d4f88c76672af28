"""Declarations: variables, orderings, partitions, the step vector and the Spec."""
