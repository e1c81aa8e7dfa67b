"""Checks on top of the mathematics: finite differences, compare, diagnosis, formulas, user code."""
