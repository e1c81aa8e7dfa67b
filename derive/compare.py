"""What changes from one cell's derivation to another's, for a document that compares them.

`compare(mine, theirs)` gives the forward stages each cell has and the other has not (a
stage counts as shared when its name and its definition are the same, its note aside), and
the backward equations that change: for every value both cells have with the same meaning
(the input aside: its gradient mirrors the previous state's) and every parameter both have,
whose gradient differs in more than the names of the gradients it reads, the two gradients
written out in terms of gradients both cells have.  Writing out means
replacing the adjoint of a value only one cell has, when one consumer reads it (no fork), by
its own backward equation, until every adjoint left is one both cells have, a fork's, or a
carried or direct loss gradient.  So gru_reset_after's dr = d_a_nr * a_nh becomes
d_a_n * a_nh beside the GRU's W^T-product U_n^T d_a_n * h_prev: each is the derivation's own
expression with copies and single-branch steps substituted in, nothing typed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sympy as sp

from derive.derivation import Derivation
from derive.stages import Stage
from derive.terms import adjoint

LONGEST = 40   # operations: a gradient written out longer than this is not shown


@dataclass(frozen=True)
class Change:
    """The gradient of `target`, a value both cells have, written out in each cell."""

    target: str          # a value's name, or a parameter's (its gradient summed over steps)
    theirs: sp.Expr
    mine: sp.Expr
    param: bool = False


@dataclass(frozen=True)
class Comparison:
    """This cell's stages the other has not (`mine`), the other's this one has not (`theirs`),
    both in forward order, and the gradients of shared values that change."""

    mine: tuple[Stage, ...]
    theirs: tuple[Stage, ...]
    changes: tuple[Change, ...]


def _definition(stage: Stage) -> Stage:
    return dataclasses.replace(stage, note="")


def same_meaning(mine: Derivation, theirs: Derivation, name: str) -> bool:
    """Whether the value `name` of both cells is the same quantity: an input or a state, a
    stage with the same definition in both, or one whose note is the other's, possibly qualified by one word in front ("stabilised
    forget gate" is a forget gate), or after a comma ("input gate, coupled to the forget
    gate"); the sLSTM's stabiliser m is not the LSTM's kept part m."""
    stages = [{s.name: s for s in d.cell.stages}.get(name) for d in (mine, theirs)]
    if None in stages or _definition(stages[0]) == _definition(stages[1]):
        return True
    a, b = (s.note for s in stages)
    qualified_before = a.endswith(" " + b) and " " not in a[: -len(b) - 1]
    return a == b or qualified_before or a.startswith(b + ", ")


def compare(mine: Derivation, theirs: Derivation) -> Comparison:
    """How `mine` differs from `theirs` (see the module's docstring): the gradients of values
    both have, with the same meaning, and of parameters both have."""
    ours = {_definition(s) for s in mine.cell.stages}
    others = {_definition(s) for s in theirs.cell.stages}
    both = {a.target for a in mine.adjoints if same_meaning(mine, theirs, a.target)}
    both &= {a.target for a in theirs.adjoints}
    pairs = [(a.target, theirs.adjoint(a.target).expr, a.expr, False) for a in mine.adjoints
             if a.target in both and a.target not in mine.cell.input_names]   # last stage first
    params = {g.param: g for g in theirs.param_grads}
    pairs += [(g.param, params[g.param].expr, g.expr, True) for g in mine.param_grads if g.param in params]
    changes = []
    for target, their_expr, my_expr, param in pairs:
        a, b = written_out(theirs, their_expr, both), written_out(mine, my_expr, both)
        if a is not None and b is not None:
            changes.append(Change(target, a, b, param))
    return Comparison(tuple(s for s in mine.cell.stages if _definition(s) not in others),
                      tuple(s for s in theirs.cell.stages if _definition(s) not in ours),
                      tuple(c for c in changes if _structural(c)))


def _structural(change: Change) -> bool:
    """Whether the two gradients differ in more than the names of the gradients they read
    (layer_norm's U_f^T d_zh_f for the LSTM's U_f^T d_a_f is the same step, renamed)."""
    same = sp.Dummy("d")
    blind = [e.xreplace({s: same for s in e.free_symbols if s.name.startswith("d_")})
             for e in (change.theirs, change.mine)]
    return sp.expand(blind[0] - blind[1]) != 0


def written_out(derivation: Derivation, expr: sp.Expr, keep: set[str]) -> sp.Expr | None:
    """`expr` (a backward expression of `derivation`) with every adjoint of a single-consumer
    value outside `keep` replaced by its own backward equation, repeatedly; None when it grows
    past LONGEST operations (too long to teach anything: a long chain of stages)."""
    single = {a.target: a.expr for a in derivation.adjoints
              if len(a.terms) == 1 and a.target not in keep}
    subs = {adjoint(v): e for v, e in single.items()}
    for _ in range(len(derivation.adjoints) + 1):   # each round goes one stage further back
        done = expr.xreplace(subs)
        if done == expr:
            return expr
        if sp.count_ops(done) > LONGEST:
            return None
        expr = done
    raise ValueError(f"writing out {expr} did not end")   # a cycle: not a derivation
