"""How the JAX backend spells operation records (`codegen.records`): functionally.

Contract: `Spelling(cell, widths).lines(records) -> list[str]`, one spelling per stretch of
records (before the loop, a scan body, after the loop), sharing what it learnt about names.
JAX arrays are immutable, so the records' storage is spelled as values:

- a step of a per-step buffer is a local value of the scan body, named as in the
  mathematics (`c_seq[t + 1]` is `c`, `c_seq[t]` is `c_prev`, `d_A_x_seq[t]` is `d_A_x`,
  `xs[t]` is `x`, a hoisted `A_x[t]` is `A_x_t`); `Spelling.reads`/`writes` list them so
  the template makes them the scan's inputs and outputs;
- a `View` is an alias, bound by a line only when it is read (`f = Z_f_i_o[..., 0:H]`), and
  rebound when what it views has been written since;
- writing some columns of a buffer binds that part as its own value (the view's name, or
  `<buffer>_<n>`); the buffer is assembled when it is read whole, with one
  `jnp.concatenate` when the parts cover it, else `.at[..., cols].set(part)` on its value;
- `Buffer` allocates nothing; `Zeros` is `jnp.zeros`; `out +=` is `out = out + ...`.
"""
from __future__ import annotations

import sympy as sp

from codegen.jax_backend.printer import expr_code
from codegen.records import ALL_STEPS, Add, Assign, Buffer, Copy, Gemm, Ref, Reduce, View, Zeros
from derive.terms import Carried, LossGrad

STEPS = ("t", "t + 1")


def _comment(label: str) -> str:
    return f"  # {label}" if label else ""


def _bounds(columns: str):
    start, stop = columns.split(":")
    return sp.sympify(start), sp.sympify(stop)


def _order(value: sp.Expr) -> float:
    """A column bound at generic positive sizes (the blocks are disjoint, so any sizes order them)."""
    return float(value.subs({s: 1009 + 97 * n for n, s in enumerate(sorted(value.free_symbols, key=str))}))


class Spelling:
    """The state of one functional spelling: aliases, written parts, versions of values."""

    def __init__(self, cell, widths: dict[str, str]):
        self.cell = cell
        self.widths = widths                 # buffer or step-local name -> its last axis' size
        self.alias: dict[str, tuple[str, str | None]] = {}
        self.parts: dict[str, dict[str, str]] = {}   # buffer -> {columns: the part's name}
        self.version: dict[str, int] = {}
        self.bound: dict[str, int] = {}      # an alias bound by a line -> the version it saw
        self.defined: set[str] = set()
        self.reads: list[str] = []           # step locals read before written (scan inputs)
        self.writes: list[str] = []          # step locals written (scan outputs)
        self.out: list[str] = []
        self.source: dict[str, str] = {}     # step local -> the sequence it is a step of
        self.steplocal: set[str] = set()
        self.count: dict[str, int] = {}      # parts named so far, per buffer

    def start_loop(self) -> None:
        """The scan body begins: what it reads and writes is listed from here on."""
        self.reads, self.writes = [], []
        self.defined -= self.steplocal

    # -- names -------------------------------------------------------------------------
    def local(self, ref: Ref) -> str:
        """The value standing for one step of a per-step buffer inside the scan body; its
        source (the whole sequence the scan slices) is remembered in `self.source`."""
        name = ref.name
        if name.endswith("_seq"):
            base = name[:-4]
            state = base in self.cell.state_names
            local = f"{base}_prev" if state and ref.step == "t" else base
            source = name if not state else f"{name}[:-1]" if ref.step == "t" else f"{name}[1:]"
        elif name in {f"{x}s" for x in self.cell.input_names}:
            local, source = name[:-1], name
        else:
            local, source = f"{name}_t", name
        self.source.setdefault(local, source)
        self.steplocal.add(local)
        return local

    def storage(self, ref: Ref) -> tuple[str, str | None]:
        """(value, columns) that a Ref reads or writes, through aliases."""
        if ref.step in STEPS:
            return self.local(ref), ref.columns
        if ref.name in self.alias:
            name, cols = self.alias[ref.name]
            return name, ref.columns or cols
        return ref.name, ref.columns

    def use(self, name: str) -> None:
        """A value is read: its pending parts assembled; a step local not yet written is a scan input."""
        self.assemble(name)
        if name in self.steplocal and name not in self.defined:
            self.reads.append(name)
            self.defined.add(name)

    # -- reading -----------------------------------------------------------------------
    def read(self, ref: Ref) -> str:
        """A Ref as an expression, its buffer assembled first when parts of it are pending."""
        if ref.step in STEPS or ref.name not in self.alias:
            name, cols = self.storage(ref)
            if cols is not None and cols in self.parts.get(name, {}):
                return self.parts[name][cols]
            if cols is None or name not in self.defined or self.overlaps(name, cols):
                self.use(name)
            code = name if cols is None else (f"{name}[{cols}]" if ref.vector else f"{name}[..., {cols}]")
            if ref.step == ":steps":
                code = f"{name}[:steps]"
            if ref.flat is not None:
                code = f"{code}.reshape(steps * B, {ref.flat})"
            return code
        return self.read_alias(ref.name) if ref.columns is None else \
            self.read(Ref(self.alias[ref.name][0], columns=ref.columns))

    def read_alias(self, name: str) -> str:
        """An aliased name, bound (again) by a line when what it views changed."""
        buffer, cols = self.alias[name]
        if cols is not None and cols in self.parts.get(buffer, {}):
            return self.parts[buffer][cols]
        if cols is None and self.parts.get(buffer, {}).get(None) == name:
            return name
        self.use(buffer)
        if cols is None and not buffer.isidentifier():
            return buffer
        if self.bound.get(name) != self.version.get(buffer, 0):
            self.out.append(f"{name} = {buffer}" + ("" if cols is None else f"[..., {cols}]"))
            self.bound[name] = self.version.get(buffer, 0)
        return name

    def expr(self, expr: sp.Expr, operands=()) -> str:
        """An expression with its symbols bound: aliases read, operands spelled."""
        bare = expr.replace(lambda e: isinstance(e, (LossGrad, Carried)), lambda e: sp.Integer(1))
        names = {s.name for s in bare.free_symbols}
        swap = {sp.Symbol(n, real=True): sp.Symbol(self.read(ref), real=True) for n, ref in operands}
        for n in sorted(names - {o for o, _ in operands}):
            if n in self.alias:
                swap[sp.Symbol(n, real=True)] = sp.Symbol(self.read_alias(n), real=True)
            else:
                self.use(n)
        for e in expr.atoms(LossGrad):
            name = f"d{e.args[0].name}s_t"
            self.source[name] = f"d{e.args[0].name}s"
            self.steplocal.add(name)
            self.use(name)
        return expr_code(expr.xreplace(swap))

    # -- writing -----------------------------------------------------------------------
    def write(self, target: Ref | str, code: str, label: str = "") -> None:
        """target = code: a whole value rebinds; some columns become a pending part."""
        alias = target if isinstance(target, str) else target.name
        if isinstance(target, str) and target not in self.alias:
            buffer, cols = target, None
        else:
            ref = target if isinstance(target, Ref) else Ref(target)
            buffer, cols = self.storage(ref)
            cols = self.whole(buffer, cols)
            if cols is None and alias not in self.alias:
                alias = buffer
        whole = alias == buffer or not buffer.isidentifier() or (isinstance(target, Ref) and target.step in STEPS)
        if cols is None and whole:
            self.out.append(f"{buffer} = {code}{_comment(label)}")
            self.parts.pop(buffer, None)
            self.touch(buffer)
            return
        pending = self.parts.setdefault(buffer, {})
        self.count[buffer] = self.count.get(buffer, 0) + 1
        name = alias if alias in self.alias else f"{buffer}_{self.count[buffer]}"
        self.out.append(f"{name} = {code}{_comment(label)}")
        pending[cols] = name
        self.bound.pop(name, None)

    def overlaps(self, buffer: str, cols: str) -> bool:
        """Whether the columns share any with a part of the buffer not yet assembled."""
        start, stop = (_order(b) for b in _bounds(cols))
        for other in self.parts.get(buffer, {}):
            a, b = (_order(x) for x in _bounds(other)) if other else (start, stop)
            if a < stop and start < b:
                return True
        return False

    def whole(self, buffer: str, cols: str | None) -> str | None:
        """None when the columns are all of the buffer's."""
        if cols is None or buffer not in self.widths:
            return cols
        start, stop = _bounds(cols)
        return None if start == 0 and sp.simplify(stop - sp.sympify(self.widths[buffer])) == 0 else cols

    def touch(self, name: str) -> None:
        if name in self.steplocal and name not in self.writes:
            self.writes.append(name)
        self.defined.add(name)
        self.version[name] = self.version.get(name, 0) + 1

    def assemble(self, buffer: str) -> None:
        """The buffer's pending parts made one value: concatenated, or set into its value."""
        pending = self.parts.pop(buffer, None)
        if not pending:
            return
        if None in pending:
            self.out.append(f"{buffer} = {pending[None]}")
        else:
            spans = sorted((_bounds(c) + (c, name) for c, name in pending.items()), key=lambda s: _order(s[0]))
            width = sp.sympify(self.widths.get(buffer, "-1"))
            covers = spans[0][0] == 0 and spans[-1][1] == width and all(
                sp.simplify(a[1] - b[0]) == 0 for a, b in zip(spans, spans[1:]))
            if covers:
                self.out.append(f"{buffer} = jnp.concatenate([{', '.join(s[3] for s in spans)}], axis=-1)")
            else:
                if buffer not in self.defined:   # parts of it are written only later (after the loop)
                    part = spans[0][3]
                    self.out.append(f"{buffer} = jnp.zeros((*{part}.shape[:-1], {self.widths[buffer]}), {part}.dtype)")
                for _, _, cols, name in spans:
                    self.out.append(f"{buffer} = {buffer}.at[..., {cols}].set({name})")
        self.touch(buffer)

    def finish(self) -> list[str]:
        """The scan body ends: its step locals assembled; the lines that did it."""
        self.out = []
        for name in [b for b in self.parts if b in self.steplocal]:
            self.assemble(name)
        return self.out

    # -- records -----------------------------------------------------------------------
    def lines(self, records) -> list[str]:
        self.out = []
        for r in records:
            SPELLING[type(r)](self, r)
        return self.out


def _buffer(s: Spelling, r: Buffer):
    """Storage is a value in JAX: nothing to allocate."""


def _zeros(s: Spelling, r: Zeros):
    s.out.append(f"{r.name} = jnp.zeros(({', '.join(r.shape)}), xs.dtype){_comment(r.label)}")
    s.touch(r.name)


def _view(s: Spelling, r: View):
    name, cols = s.storage(r.ref)
    if cols is None and name == r.name:
        return
    if r.ref.step == ":steps" or r.ref.flat is not None:
        s.out.append(f"{r.name} = {s.read(r.ref)}")
        s.touch(r.name)
        return
    s.alias[r.name] = (name, cols)
    s.bound.pop(r.name, None)


def _gemm(s: Spelling, r: Gemm):
    a = s.read(r.a) + (".T" if r.transpose_a and r.transpose_b else "")
    b = s.read(r.b) + (".T" if r.transpose_b else "")
    # a.T @ b (a weight gradient) through the template's _t_matmul, which XLA runs faster
    product = f"_t_matmul({a}, {b})" if r.transpose_a and not r.transpose_b else f"{a} @ {b}"
    if r.out.flat is not None:
        product = f"({product}).reshape(steps, B, {r.out.flat})"
    if r.accumulate:
        product = f"{s.read(Ref(r.out.name, r.out.step, r.out.columns))} + {product}"
    if r.note:
        s.out.append(f"# {r.note}  {r.label}")
    s.write(Ref(r.out.name, r.out.step, r.out.columns), product, "" if r.note else r.label)


def _assign(s: Spelling, r: Assign):
    s.write(r.target, s.expr(r.expr, r.operands), r.label)


def _add(s: Spelling, r: Add):
    target = Ref(r.target.name, r.target.step, r.target.columns)
    s.write(target, f"{s.read(target)} + {s.read(r.source)}")


def _copy(s: Spelling, r: Copy):
    s.write(Ref(r.target.name, r.target.step if r.target.step in STEPS else None, r.target.columns),
            s.read(r.source))


def _reduce(s: Spelling, r: Reduce):
    source = s.read(r.source) if isinstance(r.source, Ref) else f"({s.expr(r.source)})"
    target = s.read(Ref(r.target))
    s.write(r.target if r.target not in s.alias else Ref(r.target),
            f"{target} + {source}.sum(axis=0)", r.label)


SPELLING = {Buffer: _buffer, Zeros: _zeros, View: _view, Gemm: _gemm, Assign: _assign,
            Add: _add, Copy: _copy, Reduce: _reduce}
