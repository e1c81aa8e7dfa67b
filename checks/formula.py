"""A hand-written formula for one backward quantity against the derived one.

A formula is `NAME = EXPRESSION` for one time step and one sample, in the document's
column-vector convention: `*` is the elementwise product, `@` the matrix product, `.T`
the transpose, with `+ - / **`, numbers and `sigmoid tanh exp log sum`.  NAME is an
adjoint `d_v` or a parameter gradient `d_W` (one step's term, e.g. `d_a_f @ x.T`).
Expressions may use every forward value, parameter and adjoint of the step, plus
`d_<state>_next` (the gradient of a state carried back from step t+1, shown as
`d_<state>_prev[t+1]` in the derivation) and `dL_d<output>` (the loss's own gradient).
The text is parsed by `ast` against a whitelist and evaluated by a small interpreter;
nothing is ever `eval`ed.

The verdict is numeric: both sides at POINTS random rational points (50 digits), the
derived side by `derive.interpret.run`.  An elementwise formula is also compared as a
scalar SymPy expression, which proves equality and gives the simplified difference; a
formula with matrix products is matched term by term, naming missing or extra terms.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from checks.compare import Problem
from derive.errors import DeriveError
from derive.interpret import run

FUNCTIONS = ("sigmoid", "tanh", "exp", "log", "sum")
SIZES = {"D": 3, "H": 2, "P": 4, "K": 4}
POINTS, DPS, MAX_TEXT, MAX_DEPTH = 12, 50, 2000, 40


@dataclass(frozen=True)
class Names:
    """Every name a formula of this cell may use, by role."""

    values: tuple[str, ...]
    params: tuple[str, ...]
    adjoints: tuple[str, ...]
    param_grads: tuple[str, ...]
    carried: tuple[str, ...]
    loss: str

    @property
    def all(self) -> set[str]:
        return {*self.values, *self.params, *self.adjoints, *self.param_grads, *self.carried, self.loss}


def names_of(derivation) -> Names:
    cell = derivation.cell
    values = (*cell.input_names, *(f"{s}_prev" for s in cell.state_names),
              *(eq.stage.name for eq in derivation.forward))
    return Names(values, tuple(p for p, _ in cell.params()),
                 tuple(f"d_{a.target}" for a in derivation.adjoints),
                 tuple(f"d_{g.param}" for g in derivation.param_grads),
                 tuple(f"d_{s}_next" for s in cell.state_names), f"dL_d{cell.output}")


def formula_names(derivation) -> str:
    """The names section `lstm-derive show` prints."""
    n = names_of(derivation)
    carried = ", ".join(n.carried)
    return "\n".join([
        "names for `compare --formula \"NAME = EXPRESSION\"` (one step, one sample, column vectors):",
        f"  values: {', '.join(n.values)}", f"  parameters: {', '.join(n.params)}",
        f"  gradients: {', '.join(n.adjoints)}",
        f"  parameter gradients (one step's term): {', '.join(n.param_grads)}",
        f"  from outside the step: {n.loss} (the loss's own gradient)"
        + (f"; {carried} (carried back from step t+1, d_*_prev[t+1] above)" if carried else ""),
        "  * elementwise, @ matrix product, .T transpose, + - / **, " + " ".join(FUNCTIONS)])


def read_formulas(path: Path) -> list[tuple[str, str]]:
    """(where, text) for each formula line of a file; # starts a comment."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DeriveError(f"cannot read formulas {path}: {getattr(err, 'strerror', None) or err}") from None
    return [(f"{path}:{n}", line.split("#", 1)[0].strip()) for n, line in enumerate(lines, 1)
            if line.split("#", 1)[0].strip()]


def parse(text: str, names: Names, where: str = "--formula"):
    """(NAME, expression tree), or a DeriveError naming what is wrong."""
    def fail(message):
        raise DeriveError(f"{where}: {text.strip()[:60]!r}: {message}")
    if len(text) > MAX_TEXT:
        fail(f"formula is too long (at most {MAX_TEXT} characters)")
    lhs, eq, rhs = text.partition("=")
    lhs, rhs = lhs.strip(), rhs.strip()
    if not eq or not lhs or not rhs or rhs.startswith("="):
        fail("write NAME = EXPRESSION")
    if lhs not in (*names.adjoints, *names.param_grads):
        fail(f"{lhs!r} is not a backward quantity of this cell; one of "
             f"{', '.join(names.adjoints + names.param_grads)}")
    try:
        tree = ast.parse(rhs, mode="eval").body
    except SyntaxError as err:
        fail(f"syntax error: {err.msg}")
    except (RecursionError, MemoryError, ValueError):
        fail("expression is too deeply nested")
    problem = _check_node(tree, names.all, 0)
    if problem:
        fail(problem)
    return lhs, tree


def _check_node(node, known, depth):
    """The first thing outside the whitelist, or None."""
    if depth > MAX_DEPTH:
        return f"expression is nested more than {MAX_DEPTH} deep"
    if isinstance(node, ast.Constant):
        ok = isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
        return None if ok else f"unsupported constant {node.value!r}"
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            return f"function {node.id} needs an argument"
        return None if node.id in known else f"unknown name {node.id!r} (see `lstm-derive show` for the names)"
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.MatMult)):
            return f"operator {type(node.op).__name__} is not allowed; use + - * / ** @"
        return _check_node(node.left, known, depth + 1) or _check_node(node.right, known, depth + 1)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _check_node(node.operand, known, depth + 1)
    if isinstance(node, ast.Attribute):
        return _check_node(node.value, known, depth + 1) if node.attr == "T" else \
            f"attribute .{node.attr} is not allowed (only .T)"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            return f"unknown function {ast.unparse(node.func)!r}; known: {', '.join(FUNCTIONS)}"
        if len(node.args) != 1 or node.keywords:
            return f"{node.func.id} takes exactly one argument"
        return _check_node(node.args[0], known, depth + 1)
    return f"unsupported syntax: {type(node).__name__}"


# ----- numeric evaluation at exact random points -------------------------------------------

def points(derivation, n=POINTS, seed=0):
    """n environments: every formula name -> an mpmath array (columns, matrices) at one point."""
    cell, rng = derivation.cell, np.random.default_rng(seed)
    vs, shapes = cell.sizes(), dict(cell.params())
    with mpmath.workdps(DPS):
        for _ in range(n):
            def draw(*shape):   # nonzero multiples of 1/8, so no value divides by zero
                whole = rng.integers(1, 13, size=shape) * rng.choice((-1, 1), size=shape)
                return np.vectorize(lambda v: mpmath.mpf(int(v)) / 8, otypes=[object])(whole)
            params = {p: draw(*(SIZES[s] for s in shape)) for p, shape in shapes.items()}
            p = Problem(1, 1, SIZES, params, draw(1, 1, SIZES[vs[cell.input_names[0]]]),
                        {s: draw(1, SIZES[z]) for s, z in cell.state},
                        draw(1, 1, SIZES[vs[cell.output]]), {s: draw(1, SIZES[z]) for s, z in cell.state})
            *_, grads, _, _, trace = run(derivation, params, p.xs, p.state0, p.dhs, p.dstateT, module="mpmath")
            yield _environment(derivation, p, grads, trace[0])


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


class ShapeError(Exception):
    pass


_UNARY = {"sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)), "tanh": mpmath.tanh,
          "exp": mpmath.exp, "log": mpmath.log}


def evaluate(node, env):
    """The value of an expression tree: an object array or an mpmath scalar."""
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
