"""Emit the standalone NumPy module of a derivation (`generated/<cell>.py`).

All decisions are made here and in `codegen.plan` (which products, blocks and buffers);
the template `module.py.j2` only lays the lines out.  Expressions are printed by SymPy's
NumPy printer, into preallocated buffers where a value is stored (`codegen.inplace`);
every emitted line that implements an equation cites its label in the document, e.g.
`# (B3)`.
"""
from __future__ import annotations

import re

import sympy as sp

from codegen.inplace import assign, assign_via, expr_code
from codegen.plan import Plan, code, plan as make_plan
from codegen.templates import render
from derive.derivation import Derivation, TermKind, symbol
from derive.stages import Kind

__all__ = ["emit_numpy", "expr_code", "elementwise_parts", "size_sources", "tuple_code"]


def softmax_code(y: str) -> str:
    """y * (d_y - sum(d_y * y)), the softmax rule of derive.rules, per batch row."""
    return f"{y}*(d_{y} - (d_{y}*{y}).sum(axis=-1, keepdims=True))"


def local_sum(terms) -> sp.Expr:
    """The local-partial branches of a fork summed into one SymPy expression."""
    return sum((sp.Symbol(f"d_{t.source}", real=True) * t.factor
                for t in terms if t.kind is TermKind.LOCAL), sp.Integer(0))


def elementwise_parts(terms) -> list[str]:
    """Code of the branches that need no matrix product: the local-partial branches summed
    into one SymPy expression (so it is printed simplified), then any softmax branches."""
    local = local_sum(terms)
    parts = [expr_code(local)] if local != 0 else []
    return parts + [softmax_code(t.source) for t in terms if t.kind is TermKind.SOFTMAX]


def emit_numpy(derivation: Derivation, command: str) -> str:
    """The module's source text."""
    cell, plan = derivation.cell, make_plan(derivation)
    sizes = cell.sizes()
    params = cell.params()
    cached = _cached(derivation, plan)
    context = dict(
        cell=cell.name, description=cell.description, command=command,
        params=[(name, tuple_code(shape)) for name, shape in params],
        state=list(cell.state_names), state_tuple=tuple_code(cell.state_names), state_sizes=[size for _, size in cell.state],
        output=cell.output, output_size=sizes[cell.output],
        sequence_input=cell.input_names[0], input_size=sizes[cell.input_names[0]],
        size_args=list(cell.size_args), vector_params=list(cell.vector_param_names),
        torch=_torch_context(cell),
        size_sources=size_sources(params),
        stacking=_stacking(plan, sizes),
        weights=[p.weight for p in plan.products] + [p.bias for p in plan.products if _has_bias(plan, p)]
        + list(cell.vector_param_names),
        cached=cached,
        forward_pre=_forward_pre(derivation, plan),
        forward_scratch=_scratch(_forward_pre(derivation, plan)),
        forward_loop=_drop_unused_loads(_forward_loop(derivation, plan, cached)),
        backward_pre=_backward_pre(derivation, plan),
        backward_scratch=_scratch(_backward_pre(derivation, plan)),
        backward_loop=_drop_unused_loads(_backward_loop(derivation, plan, cached)),
        backward_post=_backward_post(derivation, plan),
        grads=_grads(derivation, plan),
        dxs_written=_dxs_written(derivation, plan),
        softmax=any(s.kind is Kind.SOFTMAX for s in cell.stages),
    )
    return render("module.py.j2", **context)


def _torch_context(cell):
    """The PyTorch state-dict layout of the cell, as code, or None."""
    if cell.torch is None:
        return None
    sizes = ", ".join(f"{arg}={symbol}" for symbol, arg in cell.size_args[:2])
    options = ", ".join(o for o in (sizes, cell.torch.options) if o)
    return dict(module=cell.torch.module, options=options,
                blocks=[(key, tuple_code(names)) for key, names in cell.torch.keys])


def tuple_code(items) -> str:
    """A tuple of strings as Python source with double quotes: ("H", "D"), ("H",)."""
    inner = ", ".join(f'"{item}"' for item in items)
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def _drop_unused_loads(lines):
    """Remove loads and aliases (`f = Z[:, 0:H]`, `a = A`) of values no later line reads."""
    def is_load(line):
        carried = line.split(" = ")[0].endswith("_next")   # read by the next step
        return re.fullmatch(r"\w+ = \w+(\[[^\]]*\])?", line) is not None and not carried
    kept = []
    for n, line in enumerate(lines):
        name = line.split(" = ")[0]
        later = " ".join(lines[n + 1:])
        if not is_load(line) or re.search(rf"\b{name}\b", later):
            kept.append(line)
    return kept


def size_sources(params):
    """Where each size symbol is read from at run time: (symbol, param, axis)."""
    found = {}
    for name, shape in params:
        for axis, size in enumerate(shape):
            found.setdefault(size, (size, name, axis))
    return sorted(found.values())


def _has_bias(plan: Plan, product) -> bool:
    return any(plan.bias_home(g) is product and any(s.bias for s in g.stages) for g in product.groups)


def _stacking(plan: Plan, sizes):
    """Lines of `_stack`: every product's weights (and biases) stacked in column order."""
    lines = []
    for p in plan.products:
        names = ", ".join(f'params["{w}"]' for g in p.groups for w in p.weights_of(g))
        lines.append(f"{p.weight} = numpy.concatenate([{names}])")
        if _has_bias(plan, p):
            blocks = [f'params["{s.bias}"]' if s.bias and plan.bias_home(g) is p
                      else f"numpy.zeros({s.size}, dtype)" for g in p.groups for s in g.stages]
            lines.append(f"{p.bias} = numpy.concatenate([{', '.join(blocks)}])")
    return lines


def _cached(derivation, plan: Plan):
    """(name, size, is_state): per-step values the backward pass reads, stored per step.
    Block outputs are stored together in their group's Z buffer instead."""
    cell = derivation.cell
    sizes = cell.sizes()
    read = set(derivation.cached_values()) - set(cell.input_names)
    states = [s for s in cell.state_names if f"{s}_prev" in read or s in read]
    rest = [v for v in read if not v.endswith("_prev") and v not in cell.state_names
            and not _in_block_output(plan, v)]
    order = [eq.stage.name for eq in derivation.forward]
    return [(s, sizes[s], True) for s in cell.state_names if s in states or s == cell.output] + \
        [(v, sizes[v], False) for v in order if v in rest] + \
        [(b.out, b.width, False) for g in plan.groups for b in g.blocks if _z_cached(derivation, b)]


def _in_block_output(plan, name):
    found = plan.block_of(name)
    return found is not None and name in found[1].outputs


def _z_cached(derivation, block) -> bool:
    return any(o in derivation.cached_values() for o in block.outputs)


def _scratch(lines):
    """Names of the buffers a function takes from the pool (it gives them back at its end)."""
    return [line.split(" = ")[0] for line in lines if " = _take(" in line]


def _labels(derivation, stages):
    labels = [eq.label for eq in derivation.forward if eq.stage.name in stages]
    return f"({labels[0]})" if len(labels) == 1 else f"({labels[0]})-({labels[-1]})"


def _list_labels(labels):
    return " ".join(f"({label})" for label in labels)


def _ref(product, time="t"):
    """The per-step buffer of a product's terms."""
    return f"{product.buffer}[{time}]" if product.hoisted else product.buffer


def _cols(buffer, cols, width):
    """Columns of a per-step buffer; one index expression for a step of a hoisted one."""
    if cols == f"0:{width}":
        return buffer
    return f"{buffer[:-1]}, :, {cols}]" if buffer.endswith("[t]") else f"{buffer}[:, {cols}]"


def _forward_pre(derivation, plan: Plan):
    lines = []
    for p in plan.products:
        if p.hoisted:
            label = _labels(derivation, {s.name for g in p.groups for s in g.stages})
            lines.append(f"# the {p.input} terms of every step at once  {label}")
            lines.append(f"{p.buffer} = _take((steps, B, {p.width}), dtype)")
            lines.append(f"numpy.matmul({p.input}s.reshape(steps * B, -1), {p.weight}.T, "
                         f"out={p.buffer}.reshape(steps * B, {p.width}))")
            if _has_bias(plan, p):
                lines.append(f"{p.buffer} += {p.bias}")
        else:
            lines.append(f"{p.buffer} = _take((B, {p.width}), dtype)")
    for b in (b for g in plan.groups for b in g.blocks):
        if not _z_cached(derivation, b):
            lines.append(f"{b.out} = _take((B, {b.width}), dtype)")
    return lines


def _forward_loop(derivation, plan: Plan, cached):
    cell = derivation.cell
    stored = {name for name, _, _ in cached}
    lines = [f"{x} = {x}s[t]" for x in cell.input_names]
    lines += [f"{s}_prev = {s}_seq[t]" for s in cell.state_names]
    lines += [f"{b.out} = {b.out}_seq[t]" for g in plan.groups for b in g.blocks if b.out in stored]
    done = set()
    for eq in derivation.forward:
        name = eq.stage.name
        g = plan.group_of(name)
        if g is not None:
            if g.index not in done:
                done.add(g.index)
                lines += _group_forward(derivation, plan, g, done)
            home = plan.home(g)
            rhs, body = _cols(_ref(home), home.columns(g, name), home.width), None
        elif _in_block_output(plan, name):
            continue
        elif eq.stage.kind is Kind.SOFTMAX:
            rhs, body = f"_softmax({eq.stage.inputs[0]})", None
        else:
            rhs, body = expr_code(eq.numeric), eq.numeric
        comment = "" if g is not None else f"  # ({eq.label})"
        target = (f"{name}_seq[t + 1]" if name in cell.state_names
                  else f"{name}_seq[t]" if name in stored else None)
        if target is None:
            lines.append(f"{name} = {rhs}{comment}")
            continue
        lines += _commented(assign(body, target) if body is not None else [f"{target} = {rhs}"],
                            comment)
        lines.append(f"{name} = {target}")
    return lines


def _commented(lines, comment):
    return [lines[0] + comment] + lines[1:] if comment else lines


def _group_forward(derivation, plan: Plan, g, done):
    """The products a group needs, its pre-activations summed in its home buffer, its blocks."""
    lines = []
    label = _labels(derivation, set(g.names))
    for p in plan.products_of(g):
        if not p.hoisted and p.buffer not in done:
            done.add(p.buffer)
            lines.append(f"numpy.matmul({p.input}, {p.weight}.T, out={p.buffer})  # {label}")
    home = plan.home(g)
    target = _cols(_ref(home), home.columns(g), home.width)
    for p in plan.products_of(g):
        if p is not home:
            lines.append(f"{target} += {_cols(_ref(p), p.columns(g), p.width)}")
    if plan.bias_home(g) is home and not home.hoisted and any(s.bias for s in g.stages):
        lines.append(f"{target} += {home.bias}[{home.columns(g)}]")
    for b in g.blocks:
        first = next(eq for eq in derivation.forward if eq.stage.name == b.outputs[0])
        start = home.start(g) + sp.sympify(b.start)
        stop = home.start(g) + sp.sympify(b.stop)
        source = sp.Symbol(_cols(_ref(home), f"{code(start)}:{code(stop)}", None), real=True)
        body = first.numeric.xreplace({symbol(b.members[0]): source})
        labels = _list_labels(eq.label for eq in derivation.forward if eq.stage.name in b.outputs)
        lines += _commented(assign(body, b.out), f"  # {labels}")
        lines += [f"{out} = {_cols(b.out, b.columns(out), b.width)}" for out in b.outputs]
    return lines


def _delta(plan: Plan, product) -> str:
    """The per-step gradient buffer of a product's pre-activations."""
    return f"d_{plan.delta_of(product).buffer}"


def _backward_pre(derivation, plan: Plan):
    lines = [f'd_{name} = dw["{name}"]' for name in derivation.cell.vector_param_names]
    for p in plan.products:
        if plan.delta_of(p) is p:
            lines.append(f"d_{p.buffer}_seq = _take((steps, B, {p.width}), dtype)")
    lines += [f"d_{b.out} = _take((B, {b.width}), dtype)" for g in plan.groups for b in g.blocks]
    lines += [f"scratch_{b.out} = _take((B, {b.width}), dtype)" for g in plan.groups for b in g.blocks]
    return lines


def _backward_loop(derivation, plan: Plan, cached):
    cell = derivation.cell
    lines = [f"{x} = {x}s[t]" for x in cell.input_names]
    lines += [f"{s}_prev = {s}_seq[t]" for s in cell.state_names]
    for name, _, is_state in cached:
        lines.append(f"{name} = {name}_seq[t + 1]" if is_state else f"{name} = {name}_seq[t]")
    for b in (b for g in plan.groups for b in g.blocks):
        lines += [f"{out} = {_cols(b.out, b.columns(out), b.width)}" for out in b.outputs]
    lines += [f"d_{p.buffer} = d_{p.buffer}_seq[t]" for p in plan.products if plan.delta_of(p) is p]
    order = {adj.target: n for n, adj in enumerate(derivation.adjoints)}
    for adj in derivation.adjoints:
        lines += _adjoint_lines(derivation, plan, adj, order)
    for g in derivation.param_grads:
        if g.stage is None:
            total = " + ".join(elementwise_parts(g.terms))
            lines.append(f"d_{g.param} += ({total}).sum(axis=0)  # ({g.label})")
    lines += [f"d_{s}_next = d_{s}_prev" for s in cell.state_names]
    return lines


def _adjoint_expr(adj):
    """The adjoint as a SymPy expression, or None when a softmax branch needs plain code."""
    if any(t.kind is TermKind.SOFTMAX for t in adj.terms):
        return None
    expr = local_sum(adj.terms)
    for term in adj.terms:
        if term.kind is TermKind.LOSS:
            expr += sp.Symbol(f"d{term.source}s[t]", real=True)
        elif term.kind is TermKind.CARRY:
            expr += sp.Symbol(f"d_{adj.target}_next", real=True)
    return expr


def _adjoint_lines(derivation, plan: Plan, adj, order):
    cell = derivation.cell
    comment = f"  # ({adj.label})" + (f" fork: {', '.join(t.branch for t in adj.terms)}"
                                       if adj.is_fork else "")
    expr = _adjoint_expr(adj)
    parts = elementwise_parts(adj.terms)
    for term in adj.terms:
        if term.kind is TermKind.LOSS:
            parts.append(f"d{term.source}s[t]")
        elif term.kind is TermKind.CARRY:
            parts.append(f"d_{adj.target}_next")
    found = plan.block_of(adj.target)
    g = plan.group_of(adj.target)
    if found is not None and adj.target in found[1].outputs:
        b = found[1]
        return _store(expr, parts, f"d_{b.out}[:, {b.columns(adj.target)}]", comment)
    if g is not None:
        return _member_adjoint(derivation, plan, g, adj, expr, parts, comment, order)
    products = [p for p in plan.products if p.input == adj.target]
    if adj.target in cell.input_names:
        return _store(expr, parts, f"d{adj.target}s[t]", comment) if parts else []
    parts += [f"{_delta(plan, p)} @ {p.weight}" for p in products]
    rhs = " + ".join(parts) if parts else f"numpy.zeros((B, {adj.size}), dtype)"
    return [f"d_{adj.target} = {rhs}{comment}"]


def _store(expr, parts, target, comment):
    if expr is not None:
        return _commented(assign(expr, target), comment)
    return [f"{target} = {' + '.join(parts)}{comment}"]


def _member_adjoint(derivation, plan: Plan, g, adj, expr, parts, comment, order):
    """A pre-activation's gradient, into its home gradient buffer; a block's all at once."""
    home = plan.home(g)
    lines = []
    found = plan.block_of(adj.target)
    if found is None:
        lines += _store(expr, parts, f"{_delta(plan, home)}[:, {home.columns(g, adj.target)}]", comment)
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
    first = derivation.adjoint(b.members[0])
    out = b.outputs[0]
    body = _adjoint_expr(first).xreplace({sp.Symbol(f"d_{out}", real=True): sp.Symbol(f"d_{b.out}", real=True),
                                         symbol(out): sp.Symbol(b.out, real=True)})
    start = home.start(g) + sp.sympify(b.start)
    stop = home.start(g) + sp.sympify(b.stop)
    labels = _list_labels(derivation.adjoint(m).label for m in b.members)
    target = f"{_delta(plan, home)}[:, {code(start)}:{code(stop)}]"
    return _commented(assign_via(body, f"scratch_{b.out}", target), f"  # {labels}")


def _param_labels(derivation, names):
    labels = sorted((g.label for g in derivation.param_grads if g.param in names), key=lambda s: int(s[1:]))
    return f"({labels[0]})" if len(labels) == 1 else f"({labels[0]})-({labels[-1]})"


def _flat_input(cell, inp):
    if inp in cell.input_names:
        return f"{inp}s.reshape(steps * B, -1)"
    if inp.endswith("_prev") and inp[:-5] in cell.state_names:
        return f"{inp[:-5]}_seq[:steps].reshape(steps * B, -1)"
    return f"{inp}_seq.reshape(steps * B, -1)"


def _backward_post(derivation, plan: Plan):
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
            x_label = derivation.adjoint(p.input).label
            if _adjoint_expr(derivation.adjoint(p.input)) != 0:
                lines.append(f"d{p.input}s += ({flat} @ {p.weight}).reshape(steps, B, -1)  # ({x_label})")
            else:
                lines.append(f"numpy.matmul({flat}, {p.weight}, out=d{p.input}s.reshape(steps * B, -1))"
                             f"  # ({x_label})")
        if _has_bias(plan, p):
            names = [s.bias for g in p.groups for s in g.stages if s.bias and plan.bias_home(g) is p]
            lines.append(f'dw["{p.bias}"] += {flat}.sum(axis=0)  # {_param_labels(derivation, names)}')
    return lines


def _dxs_written(derivation, plan: Plan) -> bool:
    """Whether the GEMM after the loop writes all of dxs (so it needs no zeros first)."""
    x = derivation.cell.input_names[0]
    return any(p.hoisted and p.input == x for p in plan.products) and \
        _adjoint_expr(derivation.adjoint(x)) == 0


def _grads(derivation, plan: Plan):
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
