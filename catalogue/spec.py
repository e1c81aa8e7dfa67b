"""User-defined cells from TOML spec files, parsed without ever executing them.

A spec names the per-step input, the recurrent state, the output, the parameters with
their shapes, and one `[[stages]]` entry per named value.  Each expression is parsed by
Python's `ast` (parsing runs nothing) and only a whitelist of node types is accepted:
numbers, names, `+ - * /`, `@` with a weight on the left, unary minus and calls of the
functions in `FUNCTIONS`.  Compound expressions are broken into the finest stages, so a
user cell gets the same derivation, document, code and checks as a built-in one.
`load_spec` returns a catalogue `Entry`: the cell, with the spec's description as its words.
Every mistake is a `DeriveError` naming the file, the stage and the problem.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from catalogue.entry import Entry
from catalogue.references import REFERENCES
from derive.errors import DeriveError
from derive.ops import ACTIVATIONS
from derive.stages import Cell, Kind, Stage, affine, elementwise

FUNCTIONS = ACTIVATIONS   # a spec calls the activations of the operations table by name
KEYS = {"name", "description", "intuition", "cites", "inputs", "state", "output", "params", "stages"}
SIZES = ("D", "H")
MAX_BYTES, MAX_STAGES, MAX_EXPR, MAX_DEPTH, MAX_NAMES = 65536, 256, 2000, 40, 64
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


def load_spec(path) -> tuple[Entry, list[str]]:
    """The entry (cell and description) a spec file defines, and its warnings (unused parameters)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DeriveError(f"cannot read spec {path}: {err.strerror or err}") from None
    if len(data) > MAX_BYTES:
        raise DeriveError(f"{path}: spec is too large ({len(data)} bytes, at most {MAX_BYTES})")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DeriveError(f"{path}: spec is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise DeriveError(f"{path}: TOML syntax error: {err}") from None
    return _Spec(path, raw).build()


class _Spec:
    def __init__(self, path, raw):
        self.path, self.raw = path, raw
        self.stages: list[Stage] = []
        self.sizes: dict[str, str] = {}
        self.uses: dict[str, str] = {}   # parameter -> how it is used

    def fail(self, message, stage=None):
        where = f"stage {stage!r}: " if stage else ""
        raise DeriveError(f"{self.path}: {where}{message}")

    def build(self):
        self._top_level()
        self.sizes = {self.input: "D", **{f"{s}_prev": "H" for s in self.state}}
        self.pending = [entry["name"] for entry in self.entries]
        for entry in self.entries:
            self._stage(entry)
            self.pending.pop(0)
        return self._cell()

    # ----- the top-level table ---------------------------------------------------------

    def _top_level(self):
        raw = self.raw
        unknown = sorted(set(raw) - KEYS)
        if unknown:
            self.fail(f"unknown key {unknown[0]!r}; a spec has {', '.join(sorted(KEYS))}")
        if not raw:
            self.fail("spec is empty")
        self.name = self._identifier(raw.get("name"), "name")
        self.description = raw.get("description", f"user-defined cell {self.name}")
        if not isinstance(self.description, str) or len(self.description) > 300:
            self.fail("description must be a string of at most 300 characters")
        self.intuition = raw.get("intuition", "")
        if not isinstance(self.intuition, str) or len(self.intuition) > 2000:
            self.fail("intuition must be a string of at most 2000 characters (paragraphs "
                      "separated by a blank line)")
        self.cites = raw.get("cites", [])
        if not isinstance(self.cites, list) or any(c not in REFERENCES for c in self.cites):
            self.fail(f"cites must list reference keys among {', '.join(REFERENCES)}")
        inputs = self._names(raw.get("inputs"), "inputs")
        if len(inputs) != 1:
            self.fail("inputs must name exactly one per-step input (of size D)")
        self.input = inputs[0]
        self.state = self._names(raw.get("state"), "state")
        if not self.state:
            self.fail("state must name at least one recurrent state variable")
        self.output = self._identifier(raw.get("output"), "output")
        self.params = self._params(raw.get("params", {}))
        self.entries = self._entries(raw.get("stages"))
        taken = {self.input, *self.state, *(f"{s}_prev" for s in self.state), *FUNCTIONS}
        for name in self.params:
            if name in taken:
                self.fail(f"parameter {name!r} clashes with an input, state or function name")

    def _identifier(self, value, what):
        if not isinstance(value, str) or not IDENTIFIER.fullmatch(value) or value.endswith("_prev"):
            self.fail(f"{what} must be a name (letters, digits, _; at most 32), got {value!r}")
        return value

    def _names(self, value, what):
        if not isinstance(value, list) or len(value) > MAX_NAMES:
            self.fail(f"{what} must be a list of names")
        names = [self._identifier(v, what) for v in value]
        if len(set(names)) != len(names):
            self.fail(f"{what} names a variable twice")
        return names

    def _params(self, value):
        if not isinstance(value, dict) or len(value) > MAX_NAMES:
            self.fail("[params] must be a table of name = shape")
        params = {}
        for name, shape in value.items():
            self._identifier(name, "a parameter")
            if (not isinstance(shape, list) or len(shape) not in (1, 2)
                    or any(s not in SIZES for s in shape)):
                self.fail(f"parameter {name!r} must have a shape like [\"H\", \"D\"] or [\"H\"], got {shape!r}")
            params[name] = tuple(shape)
        return params

    def _entries(self, value):
        if not isinstance(value, list) or not value:
            self.fail("a spec needs at least one [[stages]] entry")
        if len(value) > MAX_STAGES:
            self.fail(f"too many stages ({len(value)}, at most {MAX_STAGES})")
        seen = set()
        for entry in value:
            if not isinstance(entry, dict) or set(entry) - {"name", "expr", "note"}:
                self.fail("each [[stages]] entry has a name, an expr and optionally a note")
            name = self._identifier(entry.get("name"), "a stage name")
            if name in seen:
                self.fail("is defined twice", name)
            if name in self.params or name == self.input or name in FUNCTIONS:
                self.fail("clashes with a parameter, input or function name", name)
            if not isinstance(entry.get("expr"), str) or not entry["expr"].strip():
                self.fail("needs an expr string", name)
            if len(entry["expr"]) > MAX_EXPR:
                self.fail(f"expression is too long (at most {MAX_EXPR} characters)", name)
            seen.add(name)
        return value

    # ----- one stage -------------------------------------------------------------------

    def _stage(self, entry):
        name = entry["name"]
        try:
            tree = ast.parse(entry["expr"], mode="eval")
        except SyntaxError as err:
            self.fail(f"syntax error in expression: {err.msg}", name)
        except (RecursionError, MemoryError, ValueError):
            self.fail("expression is too deeply nested", name)
        if _depth(tree) > MAX_DEPTH:
            self.fail(f"expression is nested more than {MAX_DEPTH} deep", name)
        lowering = _Lowering(self, name, entry.get("note", ""))
        ref = lowering.lower(tree.body, target=name)
        if ref[0] == "const":
            self.fail("is a constant; a stage must depend on an input, the state or a parameter", name)
        if ref[1] != name:  # a bare reference: copy it into a stage of its own name
            lowering.emit(elementwise(Kind.SCALE, name, ref[1], constant=1.0), ref[2])
        if len(self.stages) > MAX_STAGES:
            self.fail(f"the expressions expand to more than {MAX_STAGES} stages", name)

    def _cell(self):
        for s in self.state:
            if s not in self.sizes:
                self.fail(f"state variable {s!r} is never updated (add a stage named {s!r})")
            if self.sizes[s] != "H":
                self.fail(f"state variable {s!r} must have size H, its stage has size {self.sizes[s]}")
        if self.output not in self.sizes or self.output == self.input:
            self.fail(f"output {self.output!r} is not defined by any stage")
        warnings = [f"{self.path}: parameter {p!r} is never used" for p in self.params
                    if p not in self.uses]
        vector = tuple((p, self.params[p][0]) for p, use in self.uses.items() if use == "elementwise")
        cell = Cell(name=self.name, inputs=((self.input, "D"),),
                    state=tuple((s, "H") for s in self.state), output=self.output,
                    stages=tuple(self.stages), vector_params=vector)
        intuition = tuple(" ".join(p.split()) for p in self.intuition.split("\n\n") if p.strip())
        return Entry(cell, description=self.description, intuition=intuition,
                     cites=tuple(self.cites)), warnings

    def use(self, param, how, stage):
        if param in self.uses:
            self.fail(f"parameter {param!r} is used twice; parameters cannot be shared between "
                      "stages or terms", stage)
        self.uses[param] = how


def _depth(node, level=0):
    children = list(ast.iter_child_nodes(node))
    return level if not children else max(_depth(c, level + 1) for c in children)


class _Lowering:
    """Turns one expression into stages.  A reference is ("value", name, size) or ("const", c)."""

    def __init__(self, spec, target, note):
        self.spec, self.target, self.note, self.count = spec, target, note, 0

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
            return ("const", float(node.value))
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
        kind = FUNCTIONS.get(node.func.id)
        if kind is None:
            self.fail(f"unknown function {node.func.id!r}; known: {', '.join(FUNCTIONS)}")
        if len(node.args) != 1 or node.keywords:
            self.fail(f"{node.func.id} takes exactly one argument")
        arg = self.lower(node.args[0], target=self.fresh(f"a_{target}") if target else None)
        if arg[0] == "const":
            self.fail(f"{node.func.id} of a constant: write the number instead")
        name = target or self.fresh()
        return self.emit(elementwise(kind, name, arg[1], note=self.note if target == self.target else ""),
                         arg[2])

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
        constant = sum(s * r[1] for s, r in refs if r[0] == "const")
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
        if ref[0] == "const":
            return ("const", factor * ref[1])
        return self.emit(elementwise(Kind.SCALE, target or self.fresh(), ref[1], constant=factor),
                         ref[2])

    def product(self, left, right, target):
        if left[0] == "const" or right[0] == "const":
            const, other = (left, right) if left[0] == "const" else (right, left)
            return self.scale(other, const[1], target) if other[0] == "value" else \
                ("const", left[1] * right[1])
        self.same_size(left, right)
        return self.emit(elementwise(Kind.MUL, target or self.fresh(), left[1], right[1]), left[2])

    def quotient(self, left, right, target):
        if right[0] == "const":
            if right[1] == 0:
                self.fail("division by zero")
            return self.scale(left, 1.0 / right[1], target) if left[0] == "value" else \
                ("const", left[1] / right[1])
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
