"""The backward pass of a generated recurrent module: the lines of `_backward_steps`, the grads.

One step backwards is one adjoint per value, in the derivation's order, printed from the
adjoint's SymPy expression (`Adjoint.expr`) after the schedule has replaced its W^T d terms
by the stacked products (`codegen.schedule.stacked`): into the gradient buffer of a product
where the value is a pre-activation (a block of gates all at once), into a named array
otherwise.  After the loop every product's weight gradient, the input gradient and the bias
gradients are single GEMMs or sums over all steps.
"""
from __future__ import annotations

import sympy as sp

from codegen.numpy_backend.inplace import assign, assign_via, commented, list_labels
from codegen.numpy_backend.printer import expr_code
from codegen.schedule import Plan, code, stacked
from derive.derivation import symbol
from derive.terms import adjoint


def _delta(plan: Plan, product) -> str:
    """The per-step gradient buffer of a product's pre-activations."""
    return f"d_{plan.delta_of(product).buffer}"


def backward_pre(derivation, plan: Plan):
    lines = [f'd_{name} = dw["{name}"]' for name in derivation.cell.vector_param_names]
    for p in plan.products:
        if plan.delta_of(p) is p:
            lines.append(f'd_{p.buffer}_seq = _take(ws, "d_{p.buffer}_seq", (steps, B, {p.width}), dtype)')
    blocks = [b for g in plan.groups for b in g.blocks]
    lines += [f'd_{b.out} = _take(ws, "d_{b.out}", (B, {b.width}), dtype)' for b in blocks]
    lines += [f'scratch_{b.out} = _take(ws, "scratch_{b.out}", (B, {b.width}), dtype)' for b in blocks]
    return lines


def backward_loop(derivation, plan: Plan, cached):
    cell = derivation.cell
    lines = [f"{x} = {x}s[t]" for x in cell.input_names]
    lines += [f"{s}_prev = {s}_seq[t]" for s in cell.state_names]
    for name, _, is_state in cached:
        lines.append(f"{name} = {name}_seq[t + 1]" if is_state else f"{name} = {name}_seq[t]")
    for b in (b for g in plan.groups for b in g.blocks):
        lines += [f"{out} = {b.out}[:, {b.columns(out)}]" if b.columns(out) != f"0:{b.width}"
                  else f"{out} = {b.out}" for out in b.outputs]
    lines += [f"d_{p.buffer} = d_{p.buffer}_seq[t]" for p in plan.products if plan.delta_of(p) is p]
    order = {adj.target: n for n, adj in enumerate(derivation.adjoints)}
    for adj in derivation.adjoints:
        lines += _adjoint_lines(derivation, plan, adj, order)
    for g in derivation.param_grads:
        if g.stage is None:
            lines.append(f"d_{g.param} += ({expr_code(g.expr)}).sum(axis=0)  # ({g.label})")
    lines += [f"d_{s}_next = d_{s}_prev" for s in cell.state_names]
    return lines


def in_loop(plan: Plan, adj) -> sp.Expr:
    """The part of an adjoint computed inside the loop: products of hoisted inputs come after."""
    return stacked(plan, adj)


def _adjoint_lines(derivation, plan: Plan, adj, order):
    cell = derivation.cell
    comment = f"  # ({adj.label})" + (f" fork: {', '.join(t.branch for t in adj.terms)}"
                                       if adj.is_fork else "")
    expr = in_loop(plan, adj)
    found = plan.block_of(adj.target)
    g = plan.group_of(adj.target)
    if found is not None and adj.target in found[1].outputs:
        b = found[1]
        return commented(assign(expr, f"d_{b.out}[:, {b.columns(adj.target)}]"), comment)
    if g is not None:
        return _member_adjoint(derivation, plan, g, adj, expr, comment, order)
    if adj.target in cell.input_names:
        return commented(assign(expr, f"d{adj.target}s[t]"), comment) if expr != 0 else []
    rhs = expr_code(expr) if expr != 0 else f"numpy.zeros((B, {adj.size}), dtype)"
    return [f"d_{adj.target} = {rhs}{comment}"]


def _member_adjoint(derivation, plan: Plan, g, adj, expr, comment, order):
    """A pre-activation's gradient, into its home gradient buffer; a block's all at once."""
    home = plan.home(g)
    lines = []
    found = plan.block_of(adj.target)
    if found is None:
        lines += commented(assign(expr, f"{_delta(plan, home)}[:, {home.columns(g, adj.target)}]"), comment)
    elif adj.target == max(found[1].members, key=order.get):
        lines += _block_adjoint(derivation, plan, g, found[1], home)
    if adj.target != max(g.names, key=order.get):
        return lines
    for p in plan.products_of(g):
        if not p.hoisted and plan.delta_of(p) is not plan.delta_of(home):
            lines.append(f"{_delta(plan, p)}[:, {p.columns(g)}] = "
                         f"{_delta(plan, home)}[:, {home.columns(g)}]")
    return lines


def _block_adjoint(derivation, plan: Plan, g, b, home):
    """Every member of a block at once: the first member's rule on the block's buffers."""
    out = b.outputs[0]
    body = derivation.adjoint(b.members[0]).expr.xreplace(
        {adjoint(out): adjoint(b.out), symbol(out): symbol(b.out)})
    start = home.start(g) + sp.sympify(b.start)
    stop = home.start(g) + sp.sympify(b.stop)
    labels = list_labels(derivation.adjoint(m).label for m in b.members)
    target = f"{_delta(plan, home)}[:, {code(start)}:{code(stop)}]"
    return commented(assign_via(body, f"scratch_{b.out}", target), f"  # {labels}")


def _param_labels(derivation, names):
    labels = sorted((g.label for g in derivation.param_grads if g.param in names), key=lambda s: int(s[1:]))
    return f"({labels[0]})" if len(labels) == 1 else f"({labels[0]})-({labels[-1]})"


def _flat_input(cell, inp):
    size = cell.sizes()[inp]
    if inp in cell.input_names:
        return f"{inp}s.reshape(steps * B, {size})"
    if inp.endswith("_prev") and inp[:-5] in cell.state_names:
        return f"{inp[:-5]}_seq[:steps].reshape(steps * B, {size})"
    return f"{inp}_seq.reshape(steps * B, {size})"


def backward_post(derivation, plan: Plan):
    """After the loop: one GEMM per product for its weight gradient, one for dxs."""
    cell = derivation.cell
    lines = []
    for p in plan.products:
        if not p.hoisted or plan.delta_of(p) is not p:
            continue
        for g in p.groups:
            home = plan.delta_of(plan.home(g))
            if home is not p:
                lines.append(f"d_{p.buffer}_seq[:, :, {p.columns(g)}] = "
                             f"d_{home.buffer}_seq[:, :, {home.columns(g)}]")
    for p in plan.products:
        flat = f"d_{plan.delta_of(p).buffer}_seq.reshape(steps * B, {p.width})"
        label = _param_labels(derivation, [w for g in p.groups for w in p.weights_of(g)])
        lines.append(f'dw["{p.weight}"] += {flat}.T @ {_flat_input(cell, p.input)}  # {label}')
        if p.hoisted:
            x_label, size = derivation.adjoint(p.input).label, cell.sizes()[p.input]
            if in_loop(plan, derivation.adjoint(p.input)) != 0:
                lines.append(f"d{p.input}s += ({flat} @ {p.weight}).reshape(steps, B, {size})  # ({x_label})")
            else:
                lines.append(f"numpy.matmul({flat}, {p.weight}, out=d{p.input}s.reshape(steps * B, {size}))"
                             f"  # ({x_label})")
        if plan.has_bias(p):
            names = [s.bias for g in p.groups for s in g.stages if s.bias and plan.bias_home(g) is p]
            lines.append(f'dw["{p.bias}"] += {flat}.sum(axis=0)  # {_param_labels(derivation, names)}')
    return lines


def dxs_written(derivation, plan: Plan) -> bool:
    """Whether the GEMM after the loop writes all of dxs (so it needs no zeros first)."""
    x = derivation.cell.input_names[0]
    return any(p.hoisted and p.input == x for p in plan.products) and \
        in_loop(plan, derivation.adjoint(x)) == 0


def grad_lines(derivation, plan: Plan):
    """grads[name] = the rows of a stacked gradient that belong to each parameter."""
    lines = []
    for p in plan.products:
        for g in p.groups:
            for w, s in zip(p.weights_of(g), g.stages):
                lines.append(f'grads["{w}"] = dw["{p.weight}"][{p.columns(g, s.name)}]')
                if s.bias and plan.bias_home(g) is p:
                    lines.append(f'grads["{s.bias}"] = dw["{p.bias}"][{p.columns(g, s.name)}]')
    lines += [f'grads["{name}"] = dw["{name}"]' for name in derivation.cell.vector_param_names]
    return lines
