"""One spec expression lowered into the finest stages (used by `catalogue.spec`).

`Lowering(spec, target, note, source).lower(tree)` walks an expression that the spec
parser has already parsed and bounded: a weight applied to a sum becomes one affine stage
(a vector parameter added to it is its bias), every other operation an elementwise stage
of its own, constants are folded (and kept finite and within MAX_NUMBER), and each
mistake is a one-line failure through `spec.fail`, naming the stage.  A reference to a
value is ("value", name, size); a folded constant is ("const", c).
"""
from __future__ import annotations

import ast
import math

from derive.ops import ACTIVATIONS
from derive.stages import Kind, affine, elementwise, layer_norm

FUNCTIONS = ACTIVATIONS   # a spec calls the activations of the operations table by name
LAYER_NORM = "layer_norm"   # and layer_norm(vector, gain, shift), which lowers to several stages
MAX_NUMBER = 1e15   # constants beyond it only overflow float64 arithmetic downstream


def as_float(value) -> float:
    """float(value), inf for integers too large for a float (instead of OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


class Lowering:
    """Turns one expression into stages.  A reference is ("value", name, size) or ("const", c)."""

    def __init__(self, spec, target, note, source):
        self.spec, self.target, self.note, self.count = spec, target, note, 0
        self.source = source

    def number(self, value, node=None):
        """`value` if it is a finite number of at most MAX_NUMBER, else a one-line failure."""
        if not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
            text = ast.get_source_segment(self.source, node) if node is not None else None
            text = text if not text or len(text) <= 24 else f"{text[:20]}...({len(text)} characters)"
            what = f"number {text}" if text else f"constant {value:g} (after folding constants)"
            self.fail(f"{what} is out of range (at most {MAX_NUMBER:g} in size)")
        return value

    def fail(self, message):
        self.spec.fail(message, self.target)

    def fresh(self, prefix=None):
        taken = set(self.spec.sizes) | set(self.spec.params) | set(self.spec.pending)
        if prefix and prefix not in taken:
            return prefix
        while True:
            self.count += 1
            candidate = f"{self.target}_{self.count}"
            if candidate not in taken:
                return candidate

    def emit(self, stage, size):
        self.spec.stages.append(stage)
        self.spec.sizes[stage.name] = size
        return ("value", stage.name, size)

    def lower(self, node, target=None):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                self.fail(f"unsupported constant {node.value!r}")
            return ("const", self.number(as_float(node.value), node))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return self.scale(self.lower(node.operand), sign, target)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            return self.sum(node, target)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            return self.sum(node, target)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return self.product(self.lower(node.left), self.lower(node.right), target)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self.quotient(self.lower(node.left), self.lower(node.right), target)
        if isinstance(node, ast.Call):
            return self.call(node, target)
        if isinstance(node, ast.Attribute):
            self.fail("attribute access is not allowed")
        if isinstance(node, ast.BinOp):
            self.fail(f"operator {type(node.op).__name__} is not allowed; use + - * / and @")
        self.fail(f"unsupported syntax: {type(node).__name__}")

    def name(self, name):
        spec = self.spec
        if name in spec.params:
            if len(spec.params[name]) == 2:
                self.fail(f"weight {name!r} can only be applied to a vector with @")
            spec.use(name, "elementwise", self.target)
            return ("value", name, spec.params[name][0])
        if name in spec.sizes:
            return ("value", name, spec.sizes[name])
        if name == self.target:
            hint = f" (its previous value is {name}_prev)" if name in spec.state else ""
            self.fail(f"refers to itself{hint}")
        if name in spec.pending:
            self.fail(f"uses stage {name!r} before it is defined")
        if name in spec.state:
            self.fail(f"uses state {name!r} before its stage; write {name}_prev for the previous value")
        self.fail(f"unknown name {name!r}")

    def call(self, node, target):
        if not isinstance(node.func, ast.Name):
            self.fail("only plain function calls like tanh(...) are allowed")
        if node.func.id == LAYER_NORM:
            return self.layer_norm(node, target)
        kind = FUNCTIONS.get(node.func.id)
        if kind is None:
            self.fail(f"unknown function {node.func.id!r}; known: {', '.join([*FUNCTIONS, LAYER_NORM])}")
        if len(node.args) != 1 or node.keywords:
            self.fail(f"{node.func.id} takes exactly one argument")
        arg = self.lower(node.args[0], target=self.fresh(f"a_{target}") if target else None)
        if arg[0] == "const":
            self.fail(f"{node.func.id} of a constant: write the number instead")
        name = target or self.fresh()
        return self.emit(elementwise(kind, name, arg[1], note=self.note if target == self.target else ""),
                         arg[2])

    def layer_norm(self, node, target):
        """`layer_norm(v, gain, shift)`: the stages of LN over v's entries (`derive.stages.layer_norm`),
        gain and shift vector parameters of v's size; its statistics are named after the stage."""
        if len(node.args) != 3 or node.keywords:
            self.fail("layer_norm takes exactly three arguments: layer_norm(vector, gain, shift)")
        arg = self.lower(node.args[0], target=self.fresh(f"a_{target}") if target else None)
        if arg[0] == "const":
            self.fail("layer_norm of a constant: write the shift instead")
        params = []
        for which, param in zip(("gain", "shift"), node.args[1:]):
            if not (isinstance(param, ast.Name) and len(self.spec.params.get(param.id, ())) == 1):
                self.fail(f"the {which} of layer_norm must be a vector parameter, like gamma = [\"H\"]")
            if self.spec.params[param.id][0] != arg[2]:
                self.fail(f"shape mismatch: layer_norm of {arg[1]!r} (size {arg[2]}) but its {which} "
                          f"{param.id!r} has size {self.spec.params[param.id][0]}")
            self.spec.use(param.id, "elementwise", self.target)
            params.append(param.id)
        name = target or self.fresh()
        mu, deviation, var, rstd = (self.fresh() for _ in range(4))   # in stage order
        stages = layer_norm(name, (arg[1],), (name,), (params[0],), (params[1],),
                            names=(mu, var, rstd, (deviation,)))
        for stage in stages:
            self.emit(stage, arg[2])
        return ("value", name, arg[2])

    # ----- sums: affine terms first, then elementwise -----------------------------------

    def sum(self, node, target):
        terms = []
        _flatten(node, 1.0, terms)
        products = [(s, t) for s, t in terms if isinstance(t, ast.BinOp) and isinstance(t.op, ast.MatMult)]
        others = [(s, t) for s, t in terms if (s, t) not in products]
        refs = [(s, self.lower(t)) for s, t in others]
        if not products:
            return self.combine(refs, target)
        return self.affine(products, refs, target)

    def affine(self, products, refs, target):
        weights, inputs, size = [], [], None
        for sign, node in products:
            if sign < 0:
                self.fail("a weight product cannot be subtracted; negate the weight instead")
            if not isinstance(node.left, ast.Name) or node.left.id not in self.spec.params \
                    or len(self.spec.params[node.left.id]) != 2:
                self.fail("the left side of @ must be a weight parameter of shape [rows, columns]")
            weight = node.left.id
            rows, cols = self.spec.params[weight]
            arg = self.lower(node.right)
            if arg[0] == "const" or arg[2] != cols:
                got = "a constant" if arg[0] == "const" else f"{arg[1]!r} has size {arg[2]}"
                self.fail(f"shape mismatch: {weight} is {rows} x {cols} but {got}")
            if size not in (None, rows):
                self.fail(f"shape mismatch: {weight} gives size {rows}, the other terms {size}")
            size = rows
            self.spec.use(weight, "weight", self.target)
            weights.append(weight)
            inputs.append(arg[1])
        bias = next((r for s, r in refs if s > 0 and r[0] == "value" and r[1] in self.spec.params
                     and r[2] == size), None)
        if bias is not None:
            refs.remove((1.0, bias))
            self.spec.uses[bias[1]] = "bias"
        name = target if target and not refs else self.fresh(f"a_{target}" if target else None)
        ref = self.emit(affine(name, inputs, weights, bias[1] if bias else None, size,
                               note=self.note if name == self.target else ""), size)
        return self.combine([(1.0, ref)] + refs, target) if refs else ref

    def combine(self, refs, target):
        """Sum of signed references, folding constants into one shift."""
        constant = self.number(sum(s * r[1] for s, r in refs if r[0] == "const"))
        values = [(s, r) for s, r in refs if r[0] == "value"]
        if not values:
            return ("const", constant)
        if len(values) == 1 and values[0][0] < 0 and constant == 1:   # 1 - v
            ref = values[0][1]
            return self.emit(elementwise(Kind.ONE_MINUS, target or self.fresh(), ref[1]), ref[2])
        sign, acc = values[0]
        if sign < 0:
            acc = self.scale(acc, -1.0, None)
        for n, (sign, ref) in enumerate(values[1:], 1):
            last = n == len(values) - 1 and constant == 0
            self.same_size(acc, ref)
            kind = Kind.ADD if sign > 0 else Kind.SUB
            acc = self.emit(elementwise(kind, (target if last and target else self.fresh()),
                                        acc[1], ref[1]), acc[2])
        if constant != 0:
            acc = self.emit(elementwise(Kind.SHIFT, target or self.fresh(), acc[1],
                                        constant=constant), acc[2])
        return acc

    def scale(self, ref, factor, target):
        self.number(factor)
        if ref[0] == "const":
            return ("const", factor * ref[1])
        return self.emit(elementwise(Kind.SCALE, target or self.fresh(), ref[1], constant=factor),
                         ref[2])

    def product(self, left, right, target):
        if left[0] == "const" or right[0] == "const":
            const, other = (left, right) if left[0] == "const" else (right, left)
            return self.scale(other, const[1], target) if other[0] == "value" else \
                ("const", self.number(left[1] * right[1]))
        self.same_size(left, right)
        return self.emit(elementwise(Kind.MUL, target or self.fresh(), left[1], right[1]), left[2])

    def quotient(self, left, right, target):
        if right[0] == "const":
            if right[1] == 0:
                self.fail("division by zero")
            return self.scale(left, 1.0 / right[1], target) if left[0] == "value" else \
                ("const", self.number(left[1] / right[1]))
        if left[0] == "const":
            inverse = self.emit(elementwise(Kind.RECIPROCAL, target if left[1] == 1 and target
                                            else self.fresh(), right[1]), right[2])
            return inverse if left[1] == 1 else self.scale(inverse, left[1], target)
        self.same_size(left, right)
        return self.emit(elementwise(Kind.DIV, target or self.fresh(), left[1], right[1]), left[2])

    def same_size(self, a, b):
        if a[2] != b[2]:
            self.fail(f"shape mismatch: {a[1]!r} has size {a[2]} but {b[1]!r} has size {b[2]}")


def _flatten(node, sign, out):
    """The signed terms of a chain of + and -."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _flatten(node.left, sign, out)
        _flatten(node.right, sign if isinstance(node.op, ast.Add) else -sign, out)
    else:
        out.append((sign, node))
