"""Layer norms over column blocks of one stacked product, spelled stacked (part of `codegen.program`).

Contract: `stack_norms(derivation, plan, program) -> Program` with the same meaning.  The
families of values stored side by side are `codegen.schedule_norm`'s (the gate terms zx_k of
a layer norm, their squared deviations, their normalised values, the gains); every equation
that is the same for each block k once block k is read as the stacked value (its template)
is evaluated once on it:

- forward: a family's equations, and a mean over a whole family (`RowMean` of the stacked
  value: the mean stage's definition, over the entries of its inputs side by side);
- backward: a family's adjoints (into the product's gradient columns for the seed), the
  parameter-gradient sums of the gains and shifts, and in any other adjoint the G terms a
  fork sums, one per block, as one `BlockSum` of their template over the stacked value.

The columns (means, inverse deviations) are stored (steps, B, 1).  The equations are the
derivation's own, read on a stacked view; nothing is derived here.  A program without a
seed, or whose family equations are not one template, is returned unchanged.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.program_backward import delta
from codegen.records import (Assign, Buffer, Copy, GradRows, Program, Reduce, Ref, Stack,
                             View, Zeros, list_labels, part, reads, step_of)
from codegen.schedule import Plan, code
from codegen.schedule_norm import Family, Stacks, families
from derive.stages import Kind
from derive.terms import RowMean, adjoint, value

__all__ = ["stack_norms"]

class _Unstackable(Exception):
    """A family whose equations are not one template: the program is left as it was."""


def stack_norms(derivation, plan: Plan, prog: Program) -> Program:
    """The program with its families' values, equations and sums stacked (see above)."""
    found = families(derivation, plan)
    if not found:
        return prog
    st = Stacks.of(derivation.cell, found)
    try:
        forward = _forward(derivation, plan, st, prog.forward_loop, {n for n, _, _ in prog.cached})
        backward, summed = _backward(derivation, plan, st, prog.backward_loop)
    except _Unstackable:
        return prog
    params = [f for f in st.fams if f.param]
    stored = {n for n, _, _ in prog.cached}
    scratch = tuple(Buffer(f.name, ("B", f.width)) for f in st.fams if _own_buffer(derivation.cell, st, f, stored))
    buffers = [Buffer(f"d_{f.name}_seq", ("steps", "B", f.width)) for f in st.fams
               if any(isinstance(r, View) and r.ref.name == f"d_{f.name}_seq" for r in backward)]
    return replace(
        prog, stacking=prog.stacking + tuple(Stack(f.name, tuple((m, f.size) for m in f.members))
                                             for f in params),
        weights=prog.weights + tuple(f.name for f in params), cached=tuple(_cached(st, prog.cached)),
        forward_pre=prog.forward_pre + scratch,
        forward_loop=tuple(forward), backward_loop=tuple(backward),
        backward_pre=prog.backward_pre + tuple(View(f"d_{f.name}", Ref(f'dw["{f.name}"]')) for f in params)
        + tuple(buffers),
        grads=tuple(_grad(st, g, summed) for g in prog.grads))


def _grad(st, g: GradRows, summed) -> GradRows:
    """A gain's or shift's gradient: rows of its family's, where that was summed stacked."""
    found = st.owner(g.param)
    if found is None or found[0].name not in summed or g.rows is not None:
        return g
    return GradRows(g.param, found[0].name, found[0].columns(found[1]))


def _cached(st, cached):
    done = set()
    for name, size, is_state in cached:
        found = st.owner(name)
        if found is None:
            yield name, "1" if name in st.columns else size, is_state
        elif found[0].name not in done:
            done.add(found[0].name)
            yield found[0].name, found[0].width, False


def _defines(r) -> str | None:
    """The value a forward record defines or binds."""
    if isinstance(r, View):
        return r.name
    target = r.target if isinstance(r, (Assign, Copy)) else None
    if isinstance(target, str):
        return target
    if isinstance(target, Ref) and target.name.endswith("_seq"):
        return target.name[:-4]
    return None


def _labels(records) -> str:
    return _in_order(r.label.split(")")[0][1:] for r in records if r.label)


def _in_order(labels) -> str:
    """(F10) (F11) (F12): labels by number."""
    return list_labels(sorted(labels, key=lambda s: (s[0], int(s[1:]))))


def _member_views(f: Family, prefix=""):
    return [View(f"{prefix}{m}", Ref(f"{prefix}{f.name}", columns=f.columns(k)))
            for k, m in enumerate(f.members)]


def _forward(derivation, plan, st, records, cached):
    cell = derivation.cell
    numeric = {eq.stage.name: (eq.numeric, eq.label) for eq in derivation.forward}
    out, done = [], set()
    for r in records:
        found = st.owner(_defines(r))
        if found is None:
            out.append(_mean(cell, st, r))
            continue
        f = found[0]
        if f.name in done:
            continue
        done.add(f.name)
        stored = any(m in cached for m in f.members)
        seq = Ref(f"{f.name}_seq", "t")
        if f.seed:
            source = _seed_columns(plan, f)
            out += [Copy(seq, source), View(f.name, seq)] if stored else [View(f.name, source)]
        else:
            body = st.common([numeric[m][0] for m in f.members])
            if body is None:
                raise _Unstackable(f.name)
            label = _in_order(numeric[m][1] for m in f.members)
            target = Ref(f.name) if _own_buffer(derivation.cell, st, f, cached) else f.name
            out += [Assign(seq, body, label), View(f.name, seq)] if stored else [Assign(target, body, label)]
        out += _member_views(f)
    return out


def _own_buffer(cell, st, f, stored) -> bool:
    """A family computed into a buffer made before the loop: one not stored whose members are
    read one by one (their views are then bound once, before the loop, where a backend can)."""
    return not f.param and not f.seed and not set(f.members) & stored \
        and st.blockwise(cell, f)


def _seed_columns(plan, f: Family) -> Ref:
    g = plan.group_of(f.members[0])
    home = plan.home(g)
    lo = home.start(g) + g.offset(f.members[0])
    return part(home.buffer, f"{code(lo)}:{code(lo + sp.sympify(f.width))}", home.width, step_of(home))


def _mean(cell, st, r):
    """A mean over a whole family as the mean of its stacked value."""
    name = _defines(r)
    if not isinstance(r, Assign) or name not in {s.name for s in cell.stages}:
        return r
    stage = cell.stage(name)
    f = next((f for f in st.fams if stage.kind is Kind.MEAN and stage.inputs == f.members), None)
    return r if f is None else replace(r, expr=RowMean(value(f.name)))


def _backward(derivation, plan, st, records):
    """The loop's records stacked; and the parameter families whose sums were stacked."""
    seeds = _seed_targets(plan, st)
    out, pending, summed, viewed, filled = [], {}, set(), set(), {}
    for r in records:
        found = _adjoint_of(st, seeds, r)
        if found is None:
            _check_known(st, pending, [r])
            out += _value_view(st, r, viewed)
            continue
        f, k = found
        pending.setdefault(f.name, {})[k] = r
        if isinstance(r, Zeros) or len(pending[f.name]) < len(f.members):
            continue
        members = [pending[f.name][k] for k in range(len(f.members))]
        _check_known(st, pending, members)
        out += _stacked_adjoint(st, f, members, f.seed, summed, filled, out)
    sizes = {f.name: len(f.members) for f in st.fams}
    if any(len(p) != sizes[name] for name, p in pending.items()):
        raise _Unstackable("an adjoint of part of a family")
    return _unread_aliases(st, out), summed


def _check_known(st, pending, records):
    """Records emitted now must not read the adjoint of a member of a family still waiting for
    the others (it is computed when they all are)."""
    waiting = {f"d_{m}" for f in st.fams if len(pending.get(f.name, ())) not in (0, len(f.members))
               for m in f.members}
    if any(reads(r) & waiting for r in records):
        raise _Unstackable(records[0].label)


def _seed_targets(plan, st) -> dict:
    """Where each seed member's adjoint is written (its columns of its product's gradient)."""
    found = {}
    for f in (f for f in st.fams if f.seed):
        g = plan.group_of(f.members[0])
        home = plan.home(g)
        found.update({Ref(delta(plan, home), columns=home.columns(g, m)): (f, k) for k, m in enumerate(f.members)})
    return found


def _unread_aliases(st, records):
    """Without the members' names for a shared adjoint (`d_e_zx_f = d_Z_e_zx`) no record reads."""
    stacked = {v for _, _, v in st.sym.values()}
    return [r for n, r in enumerate(records)
            if not (isinstance(r, Assign) and isinstance(r.target, str) and r.expr in stacked
                    and not any(r.target in reads(x) for x in records[n + 1:]))]


def _adjoint_of(st, seeds, r):
    """(family, k) when r writes the adjoint (or gradient sum) of member k."""
    if isinstance(r, Assign) and isinstance(r.target, Ref):
        return seeds.get(r.target)
    name = r.target if isinstance(r, (Assign, Reduce)) else r.name if isinstance(r, Zeros) else None
    if not isinstance(name, str) or not name.startswith("d_"):
        return None
    found = next(((f, f.members.index(name[2:])) for f in st.fams if name[2:] in f.members), None)
    if isinstance(r, Zeros) and found is not None:
        raise _Unstackable(name)
    return found


def _value_view(st, r, viewed):
    """A stored member's view as its stacked value's; any other record with its block sums."""
    if isinstance(r, View) and st.owner(r.name) and r.ref == Ref(f"{r.name}_seq", "t"):
        f = st.owner(r.name)[0]
        if f.name in viewed:
            return []
        viewed.add(f.name)
        return [View(f.name, Ref(f"{f.name}_seq", "t")), *_member_views(f)]
    if isinstance(r, Assign) and not r.operands:
        return _summed(r, st.sums(r.expr))
    if isinstance(r, Reduce) and not isinstance(r.source, Ref):
        return [replace(r, source=st.sums(r.source))]
    return [r]


def _summed(r, expr):
    """r with its block sums.  Its comment keeps the label without the fork's branches, which
    are now blocks of stacked values (a line that fits the document's code width)."""
    if expr == r.expr:
        return [r]
    return [replace(r, expr=expr, label=r.label.split(" fork")[0])]


def _stacked_adjoint(st, f, members, seed, summed, filled, before):
    """A family's adjoints (or gradient sums), in order of its members: one record of their
    template; else, each into its columns of a stacked buffer (the seed's are already), or
    the buffer of an earlier family whose members' adjoints are the same expressions (the
    layer-normalised LSTM's d_yx_k and d_yh_k are both d_s_k)."""
    body = st.common([r.expr if isinstance(r, Assign) else r.source for r in members])
    label = _labels(members)
    if isinstance(members[0], Reduce):
        if body is None:
            return members
        summed.add(f.name)
        return [Reduce(f"d_{f.name}", body, label)]
    if seed:
        target = members[0].target
        lo = target.columns.split(":")[0]
        hi = members[-1].target.columns.split(":")[1]
        return members if body is None else [Assign(replace(target, columns=f"{lo}:{hi}"), body, label)]
    return _member_adjoints(st, f, members, body, label, filled, before)


def _member_adjoints(st, f, members, body, label, filled, before):
    """A family's adjoints other than the seed's: its template's value (one column when it reads
    no stacked value), a view of an earlier buffer holding the same values, or each member's
    adjoint into its columns of the family's own buffer (written in place where it can be)."""
    stacked = {v for _, _, v in st.sym.values()}
    if body is not None and not body.free_symbols & stacked:
        # the same value for every block (a mean's share): one column, each member its name
        return [Assign(f"d_{f.name}", body, label),
                *(Assign(f"d_{m}", adjoint(f.name)) for m in f.members)]
    bound = next((r.ref for r in reversed(before) if isinstance(r, View) and body is not None
                  and body.is_Symbol and r.name == body.name), None)
    if bound is not None:   # another family's adjoint renamed: the same view of its buffer
        return [View(f"d_{f.name}", bound, label), *_member_views(f, "d_")]
    if body is not None:
        return [Assign(f"d_{f.name}", body, label), *_member_views(f, "d_")]
    exprs = tuple(r.expr for r in members)
    if exprs in filled and f.width == filled[exprs].width:
        return [View(f"d_{f.name}", Ref(f"d_{filled[exprs].name}_seq", "t"), label),
                *_member_views(f, "d_")]
    filled[exprs] = f
    if _written_in_place(before, f, members):
        return [View(f"d_{f.name}", Ref(f"d_{f.name}_seq", "t"), label), *_member_views(f, "d_")]
    rows = [View(f"d_{f.name}", Ref(f"d_{f.name}_seq", "t"))]
    rows += [Assign(Ref(f"d_{f.name}", columns=f.columns(k)), r.expr, r.label) for k, r in enumerate(members)]
    return rows + _member_views(f, "d_")


def _written_in_place(before, f, members) -> bool:
    """When every member's adjoint merely renames a value the loop computes before it
    (d_yh_k = d_s_k = d_a_k), that value is written straight into its block's columns of the
    family's buffer, instead of copied there: `before` rewritten so, and True; else False."""
    alias = {r.target: r.expr.name for r in before
             if isinstance(r, Assign) and isinstance(r.target, str) and r.expr.is_Symbol}
    where = {}
    for k, r in enumerate(members):
        root = r.expr.name if r.expr.is_Symbol else None
        while root in alias:
            root = alias[root]
        n = next((n for n, x in enumerate(before) if isinstance(x, Assign) and x.target == root), None)
        if n is None or n in where:
            return False
        where[n] = (k, root)
    buffer = f"d_{f.name}"
    for n, (k, root) in sorted(where.items(), reverse=True):
        block = Ref(buffer, columns=f.columns(k))
        before[n:n + 1] = [replace(before[n], target=block), View(root, block)]
    before.insert(0, View(buffer, Ref(f"{buffer}_seq", "t")))
    return True
