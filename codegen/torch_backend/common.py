"""Sub-expressions a PyTorch loop step evaluates more than once, evaluated once (SymPy's `cse`).

Contract: `shared(records) -> records` with the same meaning.  The elementwise expressions
of one step's records are searched together for common sub-expressions; each is computed
once into a temporary (`_cse0 = (1/4)*(d_v_h).mean(dim=-1, keepdim=True)`), just before
the first record that reads it, and read by name after.  A layer-normalised cell reads its
row statistics in every gate's equations (the mean's gradient in four adjoints, `-mu_x +
zx_f` in a squared deviation and in the normalised value), and in eager PyTorch each repeat
costs its calls again.  Records whose expression stands for parts of buffers (`operands`)
keep theirs, and a value written into a buffer keeps its own expression (it is computed
there with `out=`, not copied from a temporary).
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.records import Assign, Ref, reads

__all__ = ["shared", "fused_products"]


def shared(records) -> list:
    records = list(records)
    picked = [n for n, r in enumerate(records) if isinstance(r, Assign) and not r.operands and r.fold is None]
    if not picked:
        return records
    temps, reduced = sp.cse([records[n].expr for n in picked], order="none",
                            symbols=sp.numbered_symbols("_cse", real=True))
    temps, reduced = _inline_negations(temps, reduced)
    if not temps:
        return records
    defined = dict(temps)
    out, done = [], set()
    new = dict(zip(picked, reduced))
    for n, r in enumerate(records):
        if n in new:
            expr = new[n]
            if isinstance(r.target, Ref) and expr in defined:   # written with out=, not copied
                expr = r.expr
            for name, value in temps:
                if name not in done and name in _needs(expr, defined):
                    done.add(name)
                    out.append(Assign(name.name, value))
            r = replace(r, expr=expr)
        out.append(r)
    return out


def _inline_negations(temps, reduced):
    """A temporary that only negates a name goes back where it was read: `a - m` is one call,
    `_cse0 = -m; _cse0 + a` two."""
    back = {}
    kept = []
    for name, value in temps:
        value = value.xreplace(back)
        if isinstance(value, sp.Mul) and len(value.args) == 2 and value.args[0] == -1 and value.args[1].is_Symbol:
            back[name] = value
        else:
            kept.append((name, value))
    return kept, [e.xreplace(back) for e in reduced]


def _needs(expr, defined) -> set:
    """The temporaries expr reads, directly or through other temporaries."""
    found, todo = set(), [s for s in expr.free_symbols if s in defined]
    while todo:
        s = todo.pop()
        if s not in found:
            found.add(s)
            todo += [t for t in defined[s].free_symbols if t in defined]
    return found


def fused_products(records) -> list:
    """A product of two values named only to be added to another (`m = c_prev*f`, then
    `c = m + n`) is written into the sum instead (`c = c_prev*f + n`), which the spelling makes
    one `torch.addcmul`: a call fewer.  Only where nothing but new names is bound between the
    two records (no buffer written in between) and the sum adds no such product yet."""
    records = list(records)
    for n, r in enumerate(records):
        if not _two_factors(r):
            continue
        readers = [m for m in range(n + 1, len(records)) if r.target in reads(records[m])]
        if len(readers) != 1:
            continue
        m = readers[0]
        sum_ = records[m]
        symbol = sp.Symbol(r.target, real=True)
        between = records[n + 1:m]
        if isinstance(sum_, Assign) and isinstance(sum_.expr, sp.Add) and symbol in sum_.expr.args \
                and not sum_.operands and sum_.fold is None \
                and sum(1 for a in sum_.expr.args if a.has(symbol)) == 1 \
                and not any(_two_factors_expr(a) for a in sum_.expr.args) \
                and all(isinstance(b, Assign) and isinstance(b.target, str) for b in between):
            label = " ".join(x for x in (r.label, sum_.label) if x)
            records[m] = replace(sum_, expr=sum_.expr.xreplace({symbol: r.expr}), label=label)
            records[n] = None
    return [r for r in records if r is not None]


def _two_factors(r) -> bool:
    return isinstance(r, Assign) and isinstance(r.target, str) and not r.operands and r.fold is None \
        and _two_factors_expr(r.expr)


def _two_factors_expr(expr) -> bool:
    coefficient, factors = expr.as_coeff_mul()
    return isinstance(expr, sp.Mul) and coefficient == 1 and len(factors) == 2 and \
        all(f.is_Symbol for f in factors)
