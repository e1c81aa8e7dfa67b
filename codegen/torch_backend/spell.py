"""How the PyTorch backend spells operation records (`codegen.records`) as lines of Python.

Contract: `spell(records, per_step=True) -> list[str]`.  Buffers are new tensors on the
device and of the dtype of `xs` (`xs.new_empty`), so the code is device- and
dtype-agnostic; products use `torch.matmul(..., out=...)`.  Views, sums and copies are
spelled as in the NumPy backend (Python slicing is the same).  An equation's label is a
comment on its line.

In eager PyTorch every call costs a few microseconds whatever its size, and a loop over
steps makes many small calls, so an expression's outermost operation is spelled as the one
call that does the most: `a + b*c` as `torch.addcmul`, `a + d @ W` and a product followed
by an addition to it as `torch.addmm` (2-D operands, so only with `per_step`), and a value
stored into a buffer is computed there with `out=` instead of being copied in.
"""
from __future__ import annotations

import sympy as sp

from codegen.numpy_backend.spell import SPELLING as NUMPY_SPELLING, ref_code
from codegen.records import (Add, Assign, BlockSum, Buffer, Copy, Gemm, Ref, Reduce, Scale, Stack,
                             Zeros)
from codegen.numpy_backend.printer import Sigmoid, spelled
from codegen.torch_backend.loop_refs import RowsScale
from codegen.torch_backend.printer import SPELLED, expr_code
from derive.terms import WT, RowMean, RowSum

UNARY = (sp.tanh, sp.exp, sp.log, Sigmoid)   # printed as one torch.<name>(x) call, which takes out=


def _comment(label: str) -> str:
    return f"  # {label}" if label else ""


def _buffer(r: Buffer, module):
    return [f"{r.name} = xs.new_empty(({', '.join(r.shape)}))"]


def _zeros(r: Zeros, module):
    return [f"{r.name} = xs.new_zeros(({', '.join(r.shape)})){_comment(r.label)}"]


def _assign(r: Assign, module):
    expr = r.expr.xreplace({sp.Symbol(name, real=True): sp.Symbol(ref_code(ref), real=True)
                            for name, ref in r.operands})
    if isinstance(r.target, str):
        return [f"{r.target} = {_call(expr) or expr_code(expr)}{_comment(r.label)}"]
    target = ref_code(r.target)
    # a row mean or sum is one column that the buffer's row takes by broadcasting; `out=`
    # would resize the buffer instead, so such a value is written as a whole
    call = None if expr.atoms(RowMean, RowSum, BlockSum) else _call(expr, target)
    if call:
        return [f"{call}{_comment(r.label)}"]
    return [f"{_whole(r.target)} = {expr_code(expr)}{_comment(r.label)}"]


def _whole(ref: Ref) -> str:
    """A target written as a whole: `t[...] = value` (a bare name or a row of a split buffer
    would be rebound, not written)."""
    code = ref_code(ref)
    return f"{code}[...]" if ref.step is None and ref.columns is None else code


def _copy(r: Copy, module):
    return [f"{_whole(r.target)} = {ref_code(r.source)}"]


def _add(r: Add, module):
    return [f"{ref_code(r.target)}.add_({ref_code(r.source)})"]


def _call(expr, out: str | None = None) -> str | None:
    """The expression as one torch call doing its outermost operation (into `out` when
    given), or None when that saves no call."""
    expr = spelled(expr, "PyTorch", SPELLED)
    into = f", out={out}" if out else ""
    if isinstance(expr, (*UNARY, sp.Max)) and out:   # clamp and maximum take out= too
        return f"{expr_code(expr)[:-1]}{into})"
    if isinstance(expr, sp.Add):
        return _sum_call(expr, into)
    if isinstance(expr, sp.Mul) and out:
        first = next(f for f in expr.args if not f.is_Number)
        return f"torch.mul({expr_code(first)}, {_code(expr / first)}{into})"
    return None


def _sum_call(expr: sp.Add, into: str) -> str | None:
    """A sum as addmm (a product d @ W among its terms), addcmul (a product of two factors)
    or add (into a buffer)."""
    terms = sorted(expr.args, key=lambda t: not isinstance(t, WT))   # addmm first
    for term in terms:
        rest = expr - term
        if rest.is_Number:
            continue
        if isinstance(term, WT):
            delta, weight = expr_code(term.args[1]), expr_code(term.args[0])
            return f"torch.addmm({_code(rest)}, {delta}, {weight}{into})"
        coefficient, factors = term.as_coeff_mul()
        if isinstance(term, sp.Mul) and len(factors) == 2:
            value = "" if coefficient == 1 else f", value={expr_code(coefficient)}"
            return f"torch.addcmul({_code(rest)}, {expr_code(factors[0])}, {expr_code(factors[1])}{value}{into})"
    first = next((t for t in expr.args if not t.is_Number), None)
    if into and first is not None:
        return f"torch.add({expr_code(first)}, {_code(expr - first)}{into})"
    return None


def _code(expr) -> str:
    return _call(expr) or expr_code(expr)


def _reduce(r: Reduce, module):
    source = ref_code(r.source) if isinstance(r.source, Ref) else f"({expr_code(r.source)})"
    axes = "(0, 1)" if r.steps else "0"
    return [f"{r.target} += {source}.sum(dim={axes}){_comment(r.label)}"]


def _scale(r, module):
    """A run of gradient columns = a root's adjoint times stored factors (`records.Scale`); a
    run of several members comes shaped (B, repeat, size) from `loop_refs.RowsScale`."""
    own, _, via = r.label.partition(" through ")
    said = [f"# {via} enter the next line through its stored factors"] if via else []
    if isinstance(r, Scale) and r.repeat > 1:
        shape = f"B, {r.repeat}, {r.size}"
        factor, target = f"{ref_code(r.factor)}.view({shape})", f"{ref_code(r.target)}.view({shape})"
    else:
        factor, target = ref_code(r.factor), ref_code(r.target)
    base = r.base if isinstance(r, Scale) and r.repeat == 1 else f"{r.base}.unsqueeze(1)"
    return said + [f"torch.mul({factor}, {base}, out={target}){_comment(own)}"]


SPELLING = {**NUMPY_SPELLING, Buffer: _buffer, Zeros: _zeros, Assign: _assign, Reduce: _reduce,
            Copy: _copy, Add: _add, Scale: _scale, RowsScale: _scale}


def spell(records, per_step=True) -> list[str]:
    """`per_step`: the records of one step (2-D values), where a product and an addition to it
    are one `torch.addmm`."""
    lines, records = [], list(records)
    for n, r in enumerate(records):
        after = records[n + 1] if n + 1 < len(records) else None
        if per_step and isinstance(after, Add) and _fuses(r, after):
            a, b = ref_code(r.a), ref_code(r.b) + (".T" if r.transpose_b else "")
            lines.append(f"torch.addmm({ref_code(after.source)}, {a}, {b}, out={ref_code(r.out)})"
                         f"{_comment(r.label)}")
        elif not (per_step and isinstance(r, Add) and n and _fuses(records[n - 1], r)):
            lines += SPELLING[type(r)](r, "torch")
    return lines


def _fuses(r, after: Add) -> bool:
    """A product written (not added) into a whole buffer, then added to: one addmm."""
    return isinstance(r, Gemm) and not r.accumulate and not r.transpose_a and r.out.flat is None \
        and r.a.flat is None and after.target == r.out


def stack_line(s: Stack) -> str:
    """One stacked weight; a stack of one parameter is that tensor itself (only read, never
    written, so no copy is needed)."""
    if len(s.parts) == 1 and s.parts[0][0]:
        return f'{s.name} = params["{s.parts[0][0]}"]'
    parts = ", ".join(f'params["{name}"]' if name else f"xs.new_zeros({size})"
                      for name, size in s.parts)
    return f"{s.name} = torch.cat([{parts}])"
