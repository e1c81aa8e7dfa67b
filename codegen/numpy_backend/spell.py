"""How the NumPy backend spells operation records (`codegen.records`) as lines of Python.

Contract: `spell(records) -> list[str]`, one or more lines per record, in order; elementwise
expressions go through the printer (`printer.py`) and, where they are stored into a
buffer, through `inplace.py` (one `out=` call per operation).  An equation's label is a
comment on the first line it became.
"""
from __future__ import annotations

import sympy as sp

from dataclasses import replace

from codegen.numpy_backend.inplace import assign, assign_via, commented
from codegen.numpy_backend.layout import ROW_MAJOR, gate_view
from codegen.numpy_backend.printer import expr_code
from codegen.records import (ALL_STEPS, Add, Assign, Buffer, Copy, Gemm, Ref, Reduce, Scale, Stack,
                             View, Zeros)


def ref_code(ref: Ref, layout=ROW_MAJOR) -> str:
    """A part of a buffer as a Python expression (the same in every array library); one gate of
    a block buffer stored gate by gate (`layout.py`) is its own index."""
    name = ref.name
    if ref.columns is not None and layout.of(name):
        n = layout.gate(name, ref.columns)
        if ref.step == ALL_STEPS:
            return f"{name}[:, {n}]" + ("" if ref.flat is None else f".reshape(steps * B, {ref.flat})")
        return f"{name}[{ref.step}, {n}]" if ref.step is not None else f"{name}[{n}]"
    if ref.step == ":steps":
        name = f"{name}[:steps]"
    elif ref.step is not None and ref.columns is not None:
        part = f"{name}[{ref.step}, :, {ref.columns}]"
        return part if ref.flat is None else f"{part}.reshape(steps * B, {ref.flat})"
    elif ref.step is not None and ref.step != ALL_STEPS:
        name = f"{name}[{ref.step}]"
    if ref.columns is not None:
        return f"{name}[{ref.columns}]" if ref.vector else f"{name}[:, {ref.columns}]"
    if ref.flat is not None:
        return f"{name}.reshape(steps * B, {ref.flat})"
    return name


def _comment(label: str) -> str:
    return f"  # {label}" if label else ""


def _buffer(r: Buffer, module, layout=ROW_MAJOR):
    found = layout.of(r.name)
    shape = r.shape if found is None else (str(found[0]), "B", found[1])
    return [f'{r.name} = _take(ws, "{r.name}", ({", ".join(shape)}), dtype)']


def _zeros(r: Zeros, module, layout=ROW_MAJOR):
    return [f"{r.name} = {module}.zeros(({', '.join(r.shape)}), dtype){_comment(r.label)}"]


def _view(r: View, module, layout=ROW_MAJOR):
    return [f"{r.name} = {ref_code(r.ref, layout)}{_comment(r.label)}"]


def _gemm(r: Gemm, module, layout=ROW_MAJOR):
    a = ref_code(r.a, layout) + (".T" if r.transpose_a else "")
    b = ref_code(r.b, layout) + (".T" if r.transpose_b else "")
    if not r.accumulate:
        line = f"{module}.matmul({a}, {b}, out={ref_code(r.out, layout)})"
    elif r.out.flat is not None:
        line = f"{r.out.name} += ({a} @ {b}).reshape(steps, B, {r.out.flat})"
    else:
        line = f"{ref_code(r.out, layout)} += {a} @ {b}"
    if r.note:
        return [f"# {r.note}  {r.label}", line]
    return [line + _comment(r.label)]


def _assign(r: Assign, module, layout=ROW_MAJOR):
    expr, label = r.expr, r.label
    if r.fold is not None:   # the weights' copies carry the factor: evaluate at operand / factor
        expr = expr.xreplace({sp.Symbol(name, real=True): sp.Symbol(name, real=True) / r.fold
                              for name, _ in r.operands})
        label += f" (the factor {expr_code(r.fold)} inside tanh is in the weights' copies)"
    whole = isinstance(r.target, Ref) and r.target.columns is None and layout.of(r.target.name)
    expr = expr.xreplace({sp.Symbol(name, real=True): sp.Symbol(
        gate_view(ref_code(ref, layout), *whole) if whole and not layout.of(ref.name)
        else ref_code(ref, layout), real=True) for name, ref in r.operands})
    if isinstance(r.target, str):
        return [f"{r.target} = {expr_code(expr)}{_comment(label)}"]
    target = ref_code(r.target, layout)
    if r.scratch and layout.of(r.scratch) and not layout.of(r.target.name):
        target = gate_view(target, *layout.of(r.scratch))   # a block's gradient into stacked columns
    lines = assign_via(expr, r.scratch, target) if r.scratch else assign(expr, target)
    return commented(lines, _comment(label))


def _add(r: Add, module, layout=ROW_MAJOR):
    return [f"{ref_code(r.target, layout)} += {ref_code(r.source, layout)}"]


def _copy(r: Copy, module, layout=ROW_MAJOR):
    return [f"{ref_code(r.target, layout)} = {ref_code(r.source, layout)}"]


def _scale(r: Scale, module, layout=ROW_MAJOR):
    """Written straight into the gradient's columns: a contiguous scratch and a copy were not
    faster here (one process, 1 thread, numpy 2.x; one gate 8x32: 2.1 vs 1.8 us, 32x128: 2.8 vs
    3.7 us; two gates broadcast: 2.4 vs 3.7 us and 5.3 vs 8.0 us)."""
    target, factor = ref_code(r.target, layout), ref_code(r.factor, layout)
    own, _, via = r.label.partition(" through ")
    said = [f"# {via} enter the next line through {r.factor.name}"] if via else []
    if r.repeat == 1:
        return said + [f"{module}.multiply({r.base}, {factor}, out={target}){_comment(own)}"]
    shape = f"B, {r.repeat}, {r.size}"   # the base (B, size) broadcast over the run's members
    return said + [f"{module}.multiply({r.base}[:, None], {factor}.reshape({shape}), "
                   f"out={target}.reshape({shape})){_comment(own)}"]


def _reduce(r: Reduce, module, layout=ROW_MAJOR):
    source = ref_code(r.source, layout) if isinstance(r.source, Ref) else f"({expr_code(r.source)})"
    return [f"{r.target} += {source}.sum(axis=0){_comment(r.label)}"]


SPELLING = {Buffer: _buffer, Zeros: _zeros, View: _view, Gemm: _gemm, Assign: _assign,
            Add: _add, Copy: _copy, Reduce: _reduce, Scale: _scale}


def spell(records, module: str = "numpy", layout=ROW_MAJOR) -> list[str]:
    return [line for r in records for line in SPELLING[type(r)](r, module, layout)]


def forward_copies(folds, *stretches):
    """The forward's own copies of the stacked weights, made once before its loop: a weight
    read transposed (`h @ W.T`) is read from a contiguous copy of W.T (OpenBLAS's kernels for a
    transposed right operand took up to 2.6x as long at the loop's shapes, a few batch rows, on
    the machine of the README's Speed section); the rows of a `Fold` are scaled by its factor
    (the 1/2 of a sigmoid's tanh(z/2)), in a copy of the bias too.  The backward reads the
    stacked weights as they are.  Returns (the copy lines, each stretch of records rewritten)."""
    transposed = list(dict.fromkeys(r.b.name for records in stretches for r in records
                                    if isinstance(r, Gemm) and r.transpose_b and r.b == Ref(r.b.name)))
    lines = []
    for w in transposed:
        lines.append(f"{w}_T = {w}.T.copy()  # a contiguous copy: a faster product")
        lines += [f"{w}_T[:, {f.rows}] *= {expr_code(f.factor)}  # folded: tanh(k z) of a block"
                  for f in folds if f.name == w]
    copied = [n for n in dict.fromkeys(f.name for f in folds) if n not in transposed]
    for n in copied:
        lines.append(f"{n}_fwd = {n}.copy()")
        lines += [f"{n}_fwd[{f.rows}] *= {expr_code(f.factor)}  # folded: tanh(k z) of a block"
                  for f in folds if f.name == n]
    return lines, tuple([_forward_copy(r, transposed, copied) for r in records] for records in stretches)


def _forward_copy(r, transposed, copied):
    """The record reading the forward's copies."""
    if isinstance(r, Gemm) and r.transpose_b and r.b.name in transposed:
        return replace(r, b=Ref(f"{r.b.name}_T"), transpose_b=False)
    if isinstance(r, Gemm) and r.b.name in copied:
        return replace(r, b=replace(r.b, name=f"{r.b.name}_fwd"))
    if isinstance(r, Add) and r.source.name in copied:
        return replace(r, source=replace(r.source, name=f"{r.source.name}_fwd"))
    return r


def stack_line(s: Stack) -> str:
    parts = ", ".join(f'params["{name}"]' if name else f"numpy.zeros({size}, dtype)"
                      for name, size in s.parts)
    return f"{s.name} = numpy.concatenate([{parts}])"
