"""A hand-written formula for one backward quantity against the derived one.

A formula is `NAME = EXPRESSION` for one time step and one sample, in the document's
column-vector convention: `*` is the elementwise product, `@` the matrix product, `.T`
the transpose, with `+ - / **`, numbers and `sigmoid tanh exp log sum`.  NAME is an
adjoint `d_v` or a parameter gradient `d_W` (one step's term, e.g. `d_a_f @ x.T`).
Expressions may use every forward value, parameter and adjoint of the step, plus
`d_<state>_next` (the gradient of a state carried back from step t+1, shown as
`d_<state>_prev[t+1]` in the derivation) and `dL_d<output>` (the loss's own gradient).
The text is parsed by `ast` against a whitelist and evaluated by a small interpreter
(`checks.points`); nothing is ever `eval`ed.

Before SymPy or mpmath sees a formula, its size is bounded the way the spec parser bounds
a stage (`catalogue.spec`): at most MAX_TEXT characters, MAX_NODES syntax nodes and
MAX_DEPTH levels of nesting; numbers finite and at most MAX_NUMBER; the exponent of `**`
a plain number of at most MAX_EXPONENT whose nested products stay within MAX_POWER
(`2**10**10` or `((x**9)**9)**9` would otherwise be exact integers of billions of digits).
A formulas file is read up to MAX_FILE bytes and MAX_FORMULAS formulas.

The verdict is numeric: both sides at POINTS random rational points (50 digits), the
derived side by `derive.interpret.run`.  An elementwise formula is also compared as a
scalar SymPy expression, which proves equality and gives the simplified difference; a
formula with matrix products is matched term by term, naming missing or extra terms.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from catalogue.lowering import MAX_NUMBER, as_float
from catalogue.spec import MAX_DEPTH, MAX_EXPR as MAX_TEXT
from derive.errors import DeriveError

FUNCTIONS = ("sigmoid", "tanh", "exp", "log", "sum")
MAX_NODES, MAX_EXPONENT, MAX_POWER = 300, 16, 64
MAX_FILE, MAX_FORMULAS = 65536, 100


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
        with open(path, "rb") as stream:   # never more than MAX_FILE + 1 bytes (/dev/zero)
            data = stream.read(MAX_FILE + 1)
    except OSError as err:
        raise DeriveError(f"cannot read formulas {path}: {err.strerror or err}") from None
    if len(data) > MAX_FILE:
        raise DeriveError(f"formulas file {path} is too large (more than {MAX_FILE} bytes)")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DeriveError(f"formulas file {path} is not UTF-8 text") from None
    found = [(f"{path}:{n}", line.split("#", 1)[0].strip()) for n, line in enumerate(lines, 1)
             if line.split("#", 1)[0].strip()]
    if not found:
        raise DeriveError(f"no formulas in {path} (write one NAME = EXPRESSION per line)")
    if len(found) > MAX_FORMULAS:
        raise DeriveError(f"{path} has {len(found)} formulas, at most {MAX_FORMULAS}")
    return found


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
    except (RecursionError, MemoryError):
        fail("expression is too deeply nested")
    except ValueError as err:   # e.g. an integer literal of more than 4300 digits
        fail(f"cannot parse: {str(err).splitlines()[0]}")
    problem = _size_problem(tree, rhs) or _check_node(tree, names.all, 0, 1)
    if problem:
        fail(problem)
    return lhs, tree


def _size_problem(tree, rhs):
    """Too many nodes, or a number out of range (named as written: 1e400 is inf once parsed)."""
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        return f"expression is too large ({len(nodes)} syntax nodes, at most {MAX_NODES})"
    number = next((n for n in nodes if isinstance(n, ast.Constant) and _number_problem(n)), None)
    if number is not None:
        written = ast.get_source_segment(rhs, number) or "a number"
        return f"number {written[:24]} is out of range (at most {MAX_NUMBER:g} in size)"
    return None


def _check_node(node, known, depth, power):
    """The first thing outside the whitelist or the bounds, or None.

    `power` is the product of the exponents this node is raised to (bounded by MAX_POWER).
    """
    if depth > MAX_DEPTH:
        return f"expression is nested more than {MAX_DEPTH} deep"
    if isinstance(node, ast.Constant):   # (numbers are bounded by _size_problem)
        ok = isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
        return None if ok else f"unsupported constant {node.value!r}"
    if isinstance(node, ast.Name):
        return (f"function {node.id} needs an argument" if node.id in FUNCTIONS else None if node.id in known
                else f"unknown name {node.id!r} (see `lstm-derive show` for the names)")
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.MatMult)):
            return f"operator {type(node.op).__name__} is not allowed; use + - * / ** @"
        if isinstance(node.op, ast.Pow):
            return _power_problem(node, known, depth, power)
        return _check_node(node.left, known, depth + 1, power) or _check_node(node.right, known, depth + 1, power)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _check_node(node.operand, known, depth + 1, power)
    if isinstance(node, ast.Attribute):
        return _check_node(node.value, known, depth + 1, power) if node.attr == "T" else \
            f"attribute .{node.attr} is not allowed (only .T)"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            return f"unknown function {ast.unparse(node.func)!r}; known: {', '.join(FUNCTIONS)}"
        if len(node.args) != 1 or node.keywords:
            return f"{node.func.id} takes exactly one argument"
        return _check_node(node.args[0], known, depth + 1, power)
    return f"unsupported syntax: {type(node).__name__}"


def _number_problem(node):
    ok = not isinstance(node.value, (int, float)) or abs(as_float(node.value)) <= MAX_NUMBER
    return None if ok else "number out of range"   # (False for inf and NaN too)


def _power_problem(node, known, depth, power):
    """A power's exponent must be a plain number; nested exponents may not multiply up."""
    exponent = constant_value(node.right)
    if exponent is None:
        return (f"the exponent in {ast.unparse(node)[:40]} must be a number "
                f"(at most {MAX_EXPONENT} in size), not an expression")
    if abs(exponent) > MAX_EXPONENT:
        return f"exponent {float(exponent):g} is too large (at most {MAX_EXPONENT} in size)"
    power *= max(1, abs(exponent))
    if power > MAX_POWER:
        return f"powers of powers: the exponents multiply to more than {MAX_POWER}"
    return _check_node(node.left, known, depth + 1, power)


def constant_value(node) -> Fraction | None:
    """The exact value of a number built from literals with + - * / (no **), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool) and _number_problem(node) is None:
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = constant_value(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left, right = constant_value(node.left), constant_value(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
            return None
        ops = {ast.Add: left.__add__, ast.Sub: left.__sub__, ast.Mult: left.__mul__, ast.Div: left.__truediv__}
        return ops[type(node.op)](right)
    return None
