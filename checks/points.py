"""Formulas evaluated at exact random points, where every value stays a finite real number.

`Points(derivation)` is a pool of up to POOL random rational points (multiples of 1/8,
50 digits): at each one every forward value, parameter and adjoint of one step and one
sample, computed by `derive.interpret.run` in mpmath.  The pool is drawn in one random
sequence, so the first points are the same whatever is asked later, and it is evaluated
in batches in a child process with a time limit (`checks.budget`): a spec's exp(exp(...))
can make mpmath work for ever.  A point where a derived value is not a finite real number
of at most MAX_MAGNITUDE is left out.

`evaluate(tree, env)` is the formula interpreter.  After every operation the value must be
a finite real number of at most MAX_MAGNITUDE, else it raises `Singular` saying why (a
division by zero, the log or a fractional power of a negative number, an overflow): that
point is singular for this formula and the caller takes another one.
"""
from __future__ import annotations

import ast

import mpmath
import numpy as np
import sympy as sp

from checks.budget import OverBudget, limited
from checks.compare import Problem
from derive.errors import DeriveError
from derive.interpret import run

SIZES = {"D": 3, "H": 2, "P": 4, "K": 4}
POINTS, POOL, DPS = 12, 36, 50
MAX_MAGNITUDE = mpmath.mpf(10) ** 100
MAX_EXP = 231   # exp(231) > 10**100: refused before mpmath computes it
SECONDS = 10.0  # for one batch of derived points (the largest spec the parser accepts: ~1 s)


class ShapeError(Exception):
    pass


class Singular(Exception):
    """The formula is not a finite real number at this point; the message says why."""


class Points:
    """The pool: `get(i)` is the i-th usable environment, None once the pool is used up."""

    def __init__(self, derivation, seed=0):
        self.derivation = derivation
        self.draws = _draws(derivation, POOL, seed)
        self.envs: list = []   # one entry per draw evaluated so far; None where unusable

    def get(self, i):
        while len([e for e in self.envs if e is not None]) <= i and len(self.envs) < POOL:
            batch = self.draws[len(self.envs):len(self.envs) + POINTS]
            try:
                self.envs += limited(_environments, self.derivation, batch, seconds=SECONDS)
            except OverBudget as err:
                raise DeriveError(f"{self.derivation.cell.name}: cannot evaluate the derivation at "
                                  f"exact random points: it {err}") from None
        usable = [e for e in self.envs if e is not None]
        return usable[i] if i < len(usable) else None


def _draws(derivation, n, seed):
    """n random problems (T = B = 1) of nonzero multiples of 1/8, drawn in one sequence."""
    cell, rng = derivation.cell, np.random.default_rng(seed)
    vs, shapes = cell.sizes(), dict(cell.params())
    out = []
    with mpmath.workdps(DPS):
        for _ in range(n):
            def draw(*shape):   # nonzero, so no input divides by zero
                whole = rng.integers(1, 13, size=shape) * rng.choice((-1, 1), size=shape)
                return np.vectorize(lambda v: mpmath.mpf(int(v)) / 8, otypes=[object])(whole)
            params = {p: draw(*(SIZES[s] for s in shape)) for p, shape in shapes.items()}
            out.append(Problem(1, 1, SIZES, params, draw(1, 1, SIZES[vs[cell.input_names[0]]]),
                               {s: draw(1, SIZES[z]) for s, z in cell.state},
                               draw(1, 1, SIZES[vs[cell.output]]),
                               {s: draw(1, SIZES[z]) for s, z in cell.state}))
    return out


def _environments(derivation, problems):
    """The environment of every problem, None where a derived value is not usable."""
    envs = []
    with mpmath.workdps(DPS):
        for p in problems:
            *_, grads, _, _, trace = run(derivation, p.params, p.xs, p.state0, p.dhs, p.dstateT,
                                         module="mpmath")
            env = _environment(derivation, p, grads, trace[0])
            usable = all(_usable(v) for k, v in env.items() if k != "__problem__")
            envs.append(env if usable else None)
    return envs


def _environment(derivation, p, grads, values):
    cell = derivation.cell
    column = lambda a: np.asarray(a, dtype=object).reshape(-1, 1)  # noqa: E731
    env = {name: column(v) for name, v in values.items() if isinstance(v, np.ndarray)}
    env.update({name: v if v.ndim == 2 else column(v) for name, v in p.params.items()})
    env.update({f"d_{name}": v if v.ndim == 2 else column(v) for name, v in grads.items()})
    env.update({f"d_{s}_next": column(p.dstateT[s]) for s in cell.state_names})
    env[f"dL_d{cell.output}"] = column(p.dhs[0])
    env["__problem__"] = (p, values)
    return env


def _usable(value) -> bool:
    """Every entry a finite real mpmath number of at most MAX_MAGNITUDE."""
    entries = value.flat if isinstance(value, np.ndarray) else (value,)
    return all(isinstance(v, (mpmath.mpf, int, float)) and mpmath.isfinite(v)
               and abs(v) <= MAX_MAGNITUDE for v in entries)


def _exp(v):
    if v > MAX_EXP:
        raise Singular("exp overflows")
    return mpmath.exp(v)


_UNARY = {"sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)) if v > -MAX_EXP else mpmath.mpf(0),
          "tanh": mpmath.tanh, "exp": _exp, "log": mpmath.log}


def evaluate(node, env):
    """The value of an expression tree (an object array or an mpmath scalar), checked."""
    try:
        value = _evaluate(node, env)
    except ZeroDivisionError:
        raise Singular("division by zero") from None
    if not _usable(value):
        raise Singular(_why(node, value))
    return value


def _why(node, value):
    entries = list(value.flat) if isinstance(value, np.ndarray) else [value]
    if any(isinstance(v, mpmath.mpc) for v in entries):
        return f"{ast.unparse(node)[:40]} is not real (the log or a fractional power of a negative number)"
    if any(mpmath.isnan(v) for v in entries if isinstance(v, mpmath.mpf)):
        return f"{ast.unparse(node)[:40]} is undefined (NaN)"
    return f"{ast.unparse(node)[:40]} overflows (beyond 1e100)"


def _evaluate(node, env):
    if isinstance(node, ast.Constant):
        q = sp.Rational(sp.nsimplify(node.value, rational=True))
        return mpmath.mpf(int(q.p)) / int(q.q)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        value = evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Attribute):
        value = evaluate(node.value, env)
        return value.T if isinstance(value, np.ndarray) else value
    if isinstance(node, ast.Call):
        value = evaluate(node.args[0], env)
        if node.func.id == "sum":
            return np.sum(value) if isinstance(value, np.ndarray) else value
        return np.vectorize(_UNARY[node.func.id], otypes=[object])(value)
    left, right = evaluate(node.left, env), evaluate(node.right, env)
    return _binary(node, left, right)


def _binary(node, left, right):
    shapes = [np.shape(v) for v in (left, right)]
    if isinstance(node.op, ast.MatMult):
        if len(shapes[0]) != 2 or len(shapes[1]) != 2 or shapes[0][1] != shapes[1][0]:
            raise ShapeError(f"{ast.unparse(node)}: cannot multiply {shapes[0]} by {shapes[1]}")
        return np.dot(left, right)
    if shapes[0] and shapes[1] and shapes[0] != shapes[1]:
        raise ShapeError(f"{ast.unparse(node)}: elementwise operands of shapes {shapes[0]} and {shapes[1]}")
    if isinstance(node.op, ast.Pow):
        if shapes[1]:
            raise ShapeError(f"{ast.unparse(node)}: the exponent must be a number")
        return left ** right
    ops = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
    return ops[type(node.op)](left, right)
