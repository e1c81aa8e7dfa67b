"""User-defined cells from TOML spec files, parsed without ever executing them.

A spec names the per-step input, the recurrent state, the output, the parameters with
their shapes, and one `[[stages]]` entry per named value.  Each expression is parsed by
Python's `ast` (parsing runs nothing) and only a whitelist of node types is accepted:
numbers (finite, at most `lowering.MAX_NUMBER` in size, also after folding), names,
`+ - * /`, `@` with a weight on the left, unary minus and calls of the functions in
`FUNCTIONS`.  Compound expressions are broken into the finest stages, so a
user cell gets the same derivation, document, code and checks as a built-in one.
`load_spec` returns a catalogue `Entry`: the cell, with the spec's description as its words.
Every mistake is a `DeriveError` naming the file, the stage and the problem.  So is a
cell whose one-step state Jacobians would have too many paths to derive and print
(`derive.jacobians.check_jacobian_sizes`): every spec accepted here renders in time
polynomial in its size.
"""
from __future__ import annotations

import ast
import builtins
import keyword
import re
import tomllib
from pathlib import Path

from catalogue.entry import Entry
from catalogue.lowering import FUNCTIONS, Lowering
from catalogue.references import REFERENCES
from derive.errors import DeriveError
from derive.jacobians import check_jacobian_sizes
from derive.stages import Cell, Kind, Stage, elementwise

KEYS = {"name", "description", "intuition", "cites", "inputs", "state", "output", "params", "stages"}
SIZES = ("D", "H")
MAX_BYTES, MAX_STAGES, MAX_EXPR, MAX_DEPTH, MAX_NAMES = 65536, 256, 2000, 40, 64
# single underscores between letters and digits: each one starts a superscript part in the
# document (`n_a_b` is n^{a,b}); `n__x_` would print as n^{,x,}
IDENTIFIER = re.compile(r"(?=.{1,32}$)[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*")
# Names the generated modules use for their own values, so a cell's names must not: sizes,
# module constants, locals of the templates, and the forms the generators derive from a
# cell's names (adjoints d_*, stacked buffers Z_*/A_*, per-step arrays *_seq, ...).
# tests/test_spec.py checks that every name in every generated module is one of these or
# a name of its own cell.
RESERVED = frozenset("""
B D H P T t batch CACHED INITIAL LAYOUT OUTPUT PARAMS POSITIVE_STATES SAVED SIZES STATE STATE_SIZES
TARGET TORCH_KEYS TORCH_MODULE Workspace args aval backward batch_first bidirectional block
blocks bound cache carry checkpoint cotangents ctx derived_backward derived_forward device
dhs direction drawn dstate0 dstateT dtype dw dxs extra final forward found from_torch got
gradient grads hidden_size hs init_params input_size jax jnp keep key keys lax layer
layer_params loss missing name names np num_layers numpy out output output_size outputs params
part primal proj_size recompute reset_parameters rest reverse rng rows run saved seed self seq
shape shapes size sizes start state state0 stateT step steps stop suffix take target to_torch
torch value w want width workspace written ws xs ys nn F math array state_dict L dy y_safe
DERIVED KEPT first firsts lhs rhs
""".split()) | frozenset(dir(builtins))
RESERVED_PREFIXES = ("d_", "A_", "Z_", "J_", "F_", "Wcat_", "bcat_", "scratch_")
RESERVED_SUFFIXES = ("_seq", "_rows", "_T", "_t", "_next", "_fwd", "Function")


# The only control words a spec's `$...$` mathematics may use: its prose is set by LaTeX as
# written, and a free `\input{/etc/passwd}` (or `^^5cinput`, `\csname`) would read any file
# into the PDF, or run TeX code.  Letters, digits, operators and these are all it needs.
MATH_WORDS = frozenset("""
alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi
pi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi
Omega top odot oplus otimes cdot times circ ast star pm mp sim approx propto le leq ge geq ne
neq to rightarrow leftarrow mapsto in notin subset infty partial nabla sum prod max min exp log
ln tanh sin cos frac dfrac tfrac sqrt mathrm mathbf mathit mathcal mathbb operatorname text
left right big Big bigl bigr Bigl Bigr langle rangle lVert rVert lvert rvert Vert vert mid
cdots ldots dots quad qquad hat tilde bar overline underline vec dot ddot prime ell lfloor
rfloor lceil rceil diag
""".split())
MATH_SYMBOLS = set(",;!:{}| ")   # \, \; ... \{ \}: spacing and literal braces


def math_problem(text: str) -> str | None:
    """Why the `$...$` mathematics in `text` is refused, or None: an odd number of `$`, a
    control word outside MATH_WORDS, TeX's `^^` character codes, `% # &`, unbalanced braces,
    or a formula the HTML page's converter cannot read."""
    parts = text.split("$")
    if len(parts) % 2 == 0:
        return "has an odd number of $ (mathematics is written between two $)"
    for math in parts[1::2]:
        for word in re.findall(r"\\([A-Za-z]+|.?)", math):
            if word not in MATH_WORDS and word not in MATH_SYMBOLS:
                return f"uses \\{word} in its mathematics; allowed: {' '.join(sorted(MATH_WORDS))}"
        if "^^" in math or any(ch in math for ch in "%#&"):
            return "uses ^^, %, # or & in its mathematics"
        depth = 0
        for ch in re.sub(r"\\[{}]", "", math):
            depth += (ch == "{") - (ch == "}")
            if depth < 0:
                return "has unbalanced braces in its mathematics"
        if depth:
            return "has unbalanced braces in its mathematics"
        if not _readable(math):
            return f"has mathematics that cannot be read as a formula: ${math}$"
    return None


def _readable(math: str) -> bool:
    """Whether the web page's converter reads `math` (`x^` or `\\left( x` it cannot)."""
    from latex2mathml.converter import convert
    try:
        convert(math)
    except Exception:  # noqa: BLE001 - any failure of the converter is the spec's malformed math
        return False
    return True


def reserved(name: str) -> bool:
    """True when `name` may not name a cell's value or parameter (see RESERVED)."""
    return (keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED
            or name.startswith(RESERVED_PREFIXES) or name.endswith(RESERVED_SUFFIXES))


def load_spec(path) -> tuple[Entry, list[str]]:
    """The entry (cell and description) a spec file defines, and its warnings (unused parameters)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:   # never more than MAX_BYTES + 1 (/dev/zero)
            data = stream.read(MAX_BYTES + 1)
    except OSError as err:
        raise DeriveError(f"cannot read spec {path}: {err.strerror or err}") from None
    if len(data) > MAX_BYTES:
        raise DeriveError(f"{path}: spec is too large (more than {MAX_BYTES} bytes)")
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
        for what, text in (("description", self.description), ("intuition", self.intuition)):
            problem = math_problem(text)
            if problem:
                self.fail(f"{what} {problem}")
        self.cites = raw.get("cites", [])
        if not isinstance(self.cites, list) or any(c not in REFERENCES for c in self.cites):
            self.fail(f"cites must list reference keys among {', '.join(REFERENCES)}")
        inputs = self._names(raw.get("inputs"), "inputs")
        if len(inputs) != 1:
            self.fail("inputs must name exactly one per-step input (of size D)")
        self.input = inputs[0]
        if self.input != "x":   # the generated modules call the sequence xs and its gradient dxs
            self.fail(f"the input must be named 'x' (the generated code takes the sequence as xs), "
                      f"got {self.input!r}")
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
            self.fail(f"{what} must be a name (letters, digits, single _ between them; at most 32), got {value!r}")
        if what != "name" and reserved(value):
            self.fail(f"{what} {value!r} is a name the generated code uses itself (a Python keyword "
                      f"or builtin, a size, or a form such as d_*, *_seq); choose another")
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
            if _squashed(name) == _squashed(self.name):
                self.fail(f"clashes with the class the generated torch module names after the "
                          f"cell {self.name!r}", name)
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
        except (RecursionError, MemoryError):
            self.fail("expression is too deeply nested", name)
        except ValueError as err:   # e.g. an integer literal of more than 4300 digits
            self.fail(f"cannot parse the expression: {str(err).splitlines()[0]}", name)
        if _depth(tree) > MAX_DEPTH:
            self.fail(f"expression is nested more than {MAX_DEPTH} deep", name)
        lowering = Lowering(self, name, entry.get("note", ""), entry["expr"])
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
        try:
            check_jacobian_sizes(cell)
        except DeriveError as err:
            self.fail(str(err))
        intuition = tuple(" ".join(p.split()) for p in self.intuition.split("\n\n") if p.strip())
        return Entry(cell, description=self.description, intuition=intuition,
                     cites=tuple(self.cites)), warnings

    def use(self, param, how, stage):
        if param in self.uses:
            self.fail(f"parameter {param!r} is used twice; parameters cannot be shared between "
                      "stages or terms", stage)
        self.uses[param] = how


def _squashed(name):
    return name.replace("_", "").lower()


def _depth(node, level=0):
    children = list(ast.iter_child_nodes(node))
    return level if not children else max(_depth(c, level + 1) for c in children)
