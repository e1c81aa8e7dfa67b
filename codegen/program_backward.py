"""The backward pass of a recurrent cell as operation records (part of `codegen.program`).

One step backwards is one adjoint per value, in the derivation's order, from the adjoint's
SymPy expression (`Adjoint.expr`) after the schedule has replaced its W^T d terms by the
stacked products (`codegen.schedule.stacked`): into the gradient buffer of a product where
the value is a pre-activation (a block of gates all at once), into a named value
otherwise.  After the loop every product's weight gradient, the gradient of a hoisted
input and the bias gradients are single GEMMs or sums over all steps.
"""
from __future__ import annotations

import sympy as sp

from codegen.records import (ALL_STEPS, Assign, Buffer, Copy, Gemm, GradRows, Ref, Reduce, View,
                             Zeros, list_labels, part)
from codegen.schedule import Plan, code, stacked
from derive.derivation import symbol
from derive.terms import adjoint


def delta(plan: Plan, product) -> str:
    """The per-step gradient buffer of a product's pre-activations."""
    return f"d_{plan.delta_of(product).buffer}"


def backward_pre(derivation, plan: Plan):
    out = [View(f"d_{name}", Ref(f'dw["{name}"]')) for name in derivation.cell.vector_param_names]
    for p in plan.products:
        if plan.delta_of(p) is p:
            out.append(Buffer(f"d_{p.buffer}_seq", ("steps", "B", p.width)))
    blocks = [b for g in plan.groups for b in g.blocks]
    out += [Buffer(f"d_{b.out}", ("B", b.width)) for b in blocks]
    out += [Buffer(f"scratch_{b.out}", ("B", b.width)) for b in blocks]
    # the gradient of each block output, bound once to its mathematical name
    out += [View(f"d_{o}", part(f"d_{b.out}", b.columns(o), b.width)) for b in blocks for o in b.outputs]
    return out


def backward_loop(derivation, plan: Plan, cached):
    cell = derivation.cell
    out = step_views(derivation, plan, cached)
    out += [View(f"d_{p.buffer}", Ref(f"d_{p.buffer}_seq", "t"))
            for p in plan.products if plan.delta_of(p) is p]
    order = {adj.target: n for n, adj in enumerate(derivation.adjoints)}
    for adj in derivation.adjoints:
        out += _adjoint(derivation, plan, adj, order)
    for g in derivation.param_grads:
        if g.stage is None:
            out.append(Reduce(f"d_{g.param}", g.expr, f"({g.label})"))
    out += [Assign(f"d_{s}_next", adjoint(f"{s}_prev")) for s in cell.state_names]
    return out


def step_views(derivation, plan: Plan, cached) -> list:
    """One step's forward values bound to their names: inputs, states, stored values, gates."""
    cell = derivation.cell
    out = [View(x, Ref(f"{x}s", "t")) for x in cell.input_names]
    out += [View(f"{s}_prev", Ref(f"{s}_seq", "t")) for s in cell.state_names]
    out += [View(name, Ref(f"{name}_seq", "t + 1" if is_state else "t")) for name, _, is_state in cached]
    for b in (b for g in plan.groups for b in g.blocks):
        out += [View(o, part(b.out, b.columns(o), b.width)) for o in b.outputs]
    return out


def in_loop(plan: Plan, adj) -> sp.Expr:
    """The part of an adjoint computed inside the loop: products of hoisted inputs come after."""
    return stacked(plan, adj)


def _adjoint(derivation, plan: Plan, adj, order):
    cell = derivation.cell
    label = f"({adj.label})" + (f" fork: {', '.join(t.branch for t in adj.terms)}"
                                if adj.is_fork else "")
    expr = in_loop(plan, adj)
    found = plan.block_of(adj.target)
    g = plan.group_of(adj.target)
    if found is not None and adj.target in found[1].outputs:
        return [Assign(Ref(f"d_{adj.target}"), expr, label)]
    if g is not None:
        return _member(derivation, plan, g, adj, expr, label, order)
    if adj.target in cell.input_names:
        return [Assign(Ref(f"d{adj.target}s", "t"), expr, label)] if expr != 0 else []
    if expr == 0:
        return [Zeros(f"d_{adj.target}", ("B", adj.size), label)]
    return [Assign(f"d_{adj.target}", expr, label)]


def _member(derivation, plan: Plan, g, adj, expr, label, order):
    """A pre-activation's gradient, into its home gradient buffer; a block's all at once."""
    home = plan.home(g)
    out = []
    found = plan.block_of(adj.target)
    if found is None:
        out.append(Assign(Ref(delta(plan, home), columns=home.columns(g, adj.target)), expr, label))
    elif adj.target == max(found[1].members, key=order.get):
        out.append(_block(derivation, plan, g, found[1], home))
    if adj.target != max(g.names, key=order.get):
        return out
    for p in plan.products_of(g):
        if not p.hoisted and plan.delta_of(p) is not plan.delta_of(home):
            out.append(Copy(Ref(delta(plan, p), columns=p.columns(g)),
                            Ref(delta(plan, home), columns=home.columns(g))))
    return out


def _block(derivation, plan: Plan, g, b, home):
    """Every member of a block at once: the first member's rule on the block's buffers."""
    first = b.outputs[0]
    body = derivation.adjoint(b.members[0]).expr.xreplace(
        {adjoint(first): adjoint(b.out), symbol(first): symbol(b.out)})
    start = home.start(g) + sp.sympify(b.start)
    stop = home.start(g) + sp.sympify(b.stop)
    found = list_labels(derivation.adjoint(m).label for m in b.members)
    target = Ref(delta(plan, home), columns=f"{code(start)}:{code(stop)}")
    return Assign(target, body, found, scratch=f"scratch_{b.out}")


def _param_labels(derivation, names):
    found = sorted((g.label for g in derivation.param_grads if g.param in names),
                   key=lambda s: int(s[1:]))
    return f"({found[0]})" if len(found) == 1 else f"({found[0]})-({found[-1]})"


def _flat_input(cell, plan, inp) -> Ref:
    """All steps of a product's input as one (steps * B, size) matrix."""
    size = cell.sizes()[inp]
    if plan.is_block_output(inp):   # stored in its block's buffer, beside its siblings
        _, block = plan.block_of(inp)
        return Ref(f"{block.out}_seq", ALL_STEPS, block.columns(inp), flat=size)
    if inp in cell.input_names:
        return Ref(f"{inp}s", flat=size)
    if inp.endswith("_prev") and inp[:-5] in cell.state_names:
        return Ref(f"{inp[:-5]}_seq", ":steps", flat=size)
    return Ref(f"{inp}_seq", flat=size)


def backward_post(derivation, plan: Plan):
    """After the loop: one GEMM per product for its weight gradient, one for dxs."""
    cell = derivation.cell
    out = []
    for p in plan.products:
        if not p.hoisted or plan.delta_of(p) is not p:
            continue
        for g in p.groups:
            home = plan.delta_of(plan.home(g))
            if home is not p:
                out.append(Copy(Ref(f"d_{p.buffer}_seq", ALL_STEPS, p.columns(g)),
                                Ref(f"d_{home.buffer}_seq", ALL_STEPS, home.columns(g))))
    for p in plan.products:
        flat = Ref(f"d_{plan.delta_of(p).buffer}_seq", flat=p.width)
        label = _param_labels(derivation, [w for g in p.groups for w in p.weights_of(g)])
        out.append(Gemm(Ref(f'dw["{p.weight}"]'), flat, _flat_input(cell, plan, p.input),
                        transpose_a=True, accumulate=True, label=label))
        if p.hoisted:
            x = derivation.adjoint(p.input)
            out.append(Gemm(Ref(f"d{p.input}s", flat=cell.sizes()[p.input]), flat, Ref(p.weight),
                            accumulate=in_loop(plan, x) != 0, label=f"({x.label})"))
        if plan.has_bias(p):
            names = [s.bias for g in p.groups for s in g.stages if s.bias and plan.bias_home(g) is p]
            out.append(Reduce(f'dw["{p.bias}"]', flat, _param_labels(derivation, names)))
    return out


def dxs_written(derivation, plan: Plan) -> bool:
    """Whether the GEMM after the loop writes all of dxs (so it needs no zeros first)."""
    x = derivation.cell.input_names[0]
    return any(p.hoisted and p.input == x for p in plan.products) and \
        in_loop(plan, derivation.adjoint(x)) == 0


def grad_rows(derivation, plan: Plan):
    """Each parameter's gradient: rows of a stacked gradient, or its own."""
    for p in plan.products:
        for g in p.groups:
            for w, s in zip(p.weights_of(g), g.stages):
                yield GradRows(w, p.weight, p.columns(g, s.name))
                if s.bias and plan.bias_home(g) is p:
                    yield GradRows(s.bias, p.bias, p.columns(g, s.name))
    yield from (GradRows(name, name) for name in derivation.cell.vector_param_names)
