"""Hints for an elementwise formula that differs: a missing or extra term, a factor that
must multiply a whole sum.

Both sides are SymPy expressions in the same names (the derived one expanded down to the
names the user wrote, `checks.formulacheck._expand`).  The hints are found by SymPy, not
by pattern: a term is missing when the difference is minus one of the derived summands;
a factor F of the derived expression "must multiply the whole sum" when multiplying by F
exactly the summands of yours that lack it makes yours equal to the derived expression.
"""
from __future__ import annotations

import sympy as sp

from checks.budget import OverBudget

MAX_TERMS = 24   # expanded summands beyond which no hint is looked for


def hints(yours: sp.Expr, derived: sp.Expr, difference: sp.Expr) -> list[str]:
    """One line per hint (possibly none); `difference` is yours - derived, simplified."""
    try:
        return _whole_sum(yours, derived) or _missing(yours, derived, difference)
    except (OverBudget, TypeError, ValueError, RecursionError):
        return []


def _missing(yours, derived, difference):
    """The difference is one of the derived summands with its sign flipped (as written in
    the derivation), or one of yours."""
    for term in sp.Add.make_args(derived):
        if sp.expand(difference + term) == 0:
            return [f"missing the term {_named(term)}"]
    for term in sp.Add.make_args(yours):
        if sp.expand(difference - term) == 0:
            return [f"the term {_named(term)} should not be there"]
    return []


def _whole_sum(yours, derived):
    """A factor of the derived product that yours applies to only some of its summands."""
    derived = derived if derived.is_Mul else sp.factor_terms(derived)
    factors = [f for f in sp.Mul.make_args(derived) if not f.is_number]
    summands = sp.Add.make_args(yours)   # the user's own sum, as written
    if not 2 <= len(summands) <= MAX_TERMS:
        return []
    for factor in factors:
        if not any(a.is_Add for a in sp.Mul.make_args(derived / factor)):
            continue   # what it multiplies is not a sum
        has = [_contains(s, factor) for s in summands]
        if all(has) or not any(has):
            continue
        fixed = sp.Add(*(s if h else s * factor for s, h in zip(summands, has)))
        if sp.expand(fixed - derived) == 0:
            lacking = " + ".join(str(s) for s, h in zip(summands, has) if not h)
            return [f"({factor}) must multiply the whole sum: it is missing from {lacking}"]
    return []


def _contains(summand, factor):
    """Whether `factor` divides `summand` (no denominator in its symbols is left)."""
    return not sp.fraction(sp.cancel(summand / factor))[1].has(*factor.free_symbols)


def _named(term):
    text = str(term)
    return f"{text} (the gradient carried back from step t+1)" if "_next" in text and len(term.free_symbols) == 1 \
        else text
