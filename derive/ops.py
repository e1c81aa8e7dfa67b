"""The table of operations: one row per stage kind, holding everything known about it.

A row (`Op`) gives the kind's name (also its spelling in spec files), its definition from
first principles as a SymPy expression of its arguments, an equal form that is stable to
evaluate (what generated code computes), whether its derivative is to be rewritten in
terms of its own output (sigmoid' = s(1 - s)), and how the document writes and names it.
Its derivative is never written here: `derive.rules` obtains it from the definition.

Affine, softmax and mean stages are structural rows (no elementwise definition): their vector
rules are derived from index notation in `derive.rules`.  Adding an activation is one row
here plus, in each backend, the spelling of any SymPy function its numeric form uses.
`Kind` names the built-in rows; a row made elsewhere (a test's temporary table) works the
same way, since every consumer reads the row itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

X, Y = sp.symbols("x y", real=True)
R, G, B = sp.symbols("r gamma beta", real=True)   # the further arguments of a normalised output
CONSTANT = sp.Symbol("c", real=True)  # the constant of a SCALE or SHIFT stage


@dataclass(frozen=True, eq=False)   # rows compare by identity: each is one operation
class Op:
    name: str
    args: tuple[sp.Symbol, ...] = ()
    expr: sp.Expr | None = None       # definition (None: a structural row)
    numeric: sp.Expr | None = None    # equal form, stable to evaluate
    reuse_output: bool = False        # rewrite the derivative in terms of the output
    tex: str = ""                     # forward notation: a format with {0}, {1}, {c}
    words: str = ""                   # what the document calls it
    symbol: str = ""                  # an activation's function symbol (\\sigma)
    activation: bool = False          # a named function (its derivation is shown step by step)

    @property
    def value(self) -> str:
        return self.name

    @property
    def elementwise(self) -> bool:
        return self.expr is not None

    def __repr__(self) -> str:
        return f"Op({self.name!r})"


def activation(name, expr, numeric, reuse_output, symbol, words):
    """A row for an activation: its symbol (\\sigma) makes its notation, sigma(x)."""
    tex = symbol.replace("{", "{{").replace("}", "}}") + r"\left({0}\right)"
    return Op(name, (X,), expr, numeric, reuse_output, tex, words, symbol, activation=True)


def _simple(name, args, expr, tex, words):
    return Op(name, args, expr, expr, False, tex, words)


class Kind:
    """The built-in rows of the table (a namespace, not a registry)."""

    AFFINE = Op("affine", words="affine map")
    SOFTMAX = Op("softmax", tex=r"\operatorname{{softmax}}\left({0}\right)", words="softmax")
    # the mean over the entries of its inputs, their rows concatenated (a layer norm's
    # statistics), broadcast back to the size of one input: a structural row
    MEAN = Op("mean", tex=r"\operatorname{{mean}}\left[{all}\right]", words="mean of the stacked rows")
    SIGMOID = activation("sigmoid", 1 / (1 + sp.exp(-X)), (1 + sp.tanh(X / 2)) / 2, True,
                          r"\sigma", "the logistic sigmoid")
    TANH = activation("tanh", (sp.exp(X) - sp.exp(-X)) / (sp.exp(X) + sp.exp(-X)), sp.tanh(X),
                       True, r"\tanh", "the hyperbolic tangent")
    RELU = activation("relu", (X + sp.Abs(X)) / 2, (X + sp.Abs(X)) / 2, False,
                       r"\operatorname{relu}", "the rectifier")
    SOFTPLUS = activation("softplus", sp.log(1 + sp.exp(X)),
                           (X + sp.Abs(X)) / 2 + sp.log(1 + sp.exp(-sp.Abs(X))), True,
                           r"\operatorname{softplus}", "the softplus")
    SOFTSIGN = activation("softsign", X / (1 + sp.Abs(X)), X / (1 + sp.Abs(X)), False,
                           r"\operatorname{softsign}", "the softsign")
    LOGSIGMOID = activation("logsigmoid", -sp.log(1 + sp.exp(-X)),
                             (X - sp.Abs(X)) / 2 - sp.log(1 + sp.exp(-sp.Abs(X))), True,
                             r"\log\sigma", "the logarithm of the sigmoid")
    EXP = activation("exp", sp.exp(X), sp.exp(X), True, r"\exp", "the exponential")
    LOG = activation("log", sp.log(X), sp.log(X), False, r"\log", "the logarithm")
    MUL = _simple("mul", (X, Y), X * Y, r"{0} \odot {1}", "elementwise product")
    ADD = _simple("add", (X, Y), X + Y, "{0} + {1}", "elementwise sum")
    ONE_MINUS = _simple("one_minus", (X,), 1 - X, "1 - {0}", "complement")
    SUB = _simple("sub", (X, Y), X - Y, "{0} - {1}", "elementwise difference")
    DIV = _simple("div", (X, Y), X / Y, r"{0} \oslash {1}", "elementwise quotient")
    # the larger of two values: SymPy differentiates it into the unit step Heaviside(x - y)
    MAX = Op("max", (X, Y), sp.Max(X, Y), sp.Max(X, Y), False,
             r"\max\left({0}, {1}\right)", "elementwise maximum")
    RECIPROCAL = _simple("reciprocal", (X,), 1 / X, r"1 \oslash {0}", "reciprocal")
    SCALE = _simple("scale", (X,), CONSTANT * X, "{c} {0}", "scaling by a constant")
    SHIFT = _simple("shift", (X,), X + CONSTANT, "{0} + {c}", "shift by a constant")
    SQUARED_DEVIATION = _simple("squared_deviation", (X, Y), (X - Y) ** 2,
                                r"\left({0} - {1}\right)^{{2}}", "squared deviation")
    RSQRT = Op("rsqrt", (X,), 1 / sp.sqrt(X + CONSTANT), 1 / sp.sqrt(X + CONSTANT), False,
               r"\left({0} + {c}\right)^{{-1/2}}", "inverse standard deviation")
    NORMALISED = _simple("normalised", (X, Y, R, G, B), G * (X - Y) * R + B,
                         r"{3} \odot \left({0} - {1}\right) \odot {2} + {4}",
                         "normalised, scaled and shifted")


OPS: tuple[Op, ...] = tuple(v for v in vars(Kind).values() if isinstance(v, Op))
ACTIVATIONS = {op.name: op for op in OPS if op.activation}   # the functions a spec may call
