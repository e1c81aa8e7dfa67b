"""Emit the standalone NumPy module of a derivation (`generated/<cell>.py`).

All decisions are made here and in `codegen.plan`; the template `module.py.j2` only lays
the lines out.  Expressions are printed by SymPy's NumPy printer; every emitted line
that implements an equation cites its label in the document, e.g. `# (B3)`.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from codegen.plan import Group, group_of, groups
from codegen.templates import render
from derive.derivation import Derivation, TermKind
from derive.stages import Kind

_PRINTER = NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False})


def expr_code(expr: sp.Expr) -> str:
    return _PRINTER.doprint(expr)


def softmax_code(y: str) -> str:
    """y * (d_y - sum(d_y * y)), the softmax rule of derive.rules, per batch row."""
    return f"{y}*(d_{y} - (d_{y}*{y}).sum(axis=-1, keepdims=True))"


def elementwise_parts(terms) -> list[str]:
    """Code of the branches that need no matrix product: the local-partial branches summed
    into one SymPy expression (so it is printed simplified), then any softmax branches."""
    local = sum((sp.Symbol(f"d_{t.source}", real=True) * t.factor
                 for t in terms if t.kind is TermKind.LOCAL), sp.Integer(0))
    parts = [expr_code(local)] if local != 0 else []
    return parts + [softmax_code(t.source) for t in terms if t.kind is TermKind.SOFTMAX]


def emit_numpy(derivation: Derivation, command: str) -> str:
    """The module's source text."""
    cell, plan = derivation.cell, groups(derivation)
    sizes = cell.sizes()
    params = cell.params()
    context = dict(
        cell=cell.name, description=cell.description, command=command,
        params=[(name, tuple_code(shape)) for name, shape in params],
        state=list(cell.state_names), state_tuple=tuple_code(cell.state_names), state_sizes=[size for _, size in cell.state],
        output=cell.output, output_size=sizes[cell.output],
        sequence_input=cell.input_names[0], input_size=sizes[cell.input_names[0]],
        size_args=list(cell.size_args), vector_params=list(cell.vector_param_names),
        torch=_torch_context(cell),
        size_sources=size_sources(params),
        stacking=_stacking(plan),
        cached=_cached(derivation),
        forward_pre=_forward_pre(plan),
        forward_loop=_drop_unused_loads(_forward_loop(derivation, plan)),
        backward_pre=_backward_pre(derivation, plan),
        backward_loop=_drop_unused_loads(_backward_loop(derivation, plan)),
        backward_post=_backward_post(derivation, plan),
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
    """Remove `name = name_seq[...]`-style loads of values no later line reads."""
    def is_load(line):
        return re.fullmatch(r"\w+ = \w+\[[^\]]*\]", line) is not None
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


def _stacking(plan):
    lines = []
    for g in plan:
        for inp in g.inputs:
            names = ", ".join(f'params["{w}"]' for w in g.weights_of(inp))
            lines.append(f"{g.weight(inp)} = numpy.concatenate([{names}])")
        if g.biases:
            names = ", ".join(f'params["{b}"]' for b in g.biases)
            lines.append(f"{g.bias} = numpy.concatenate([{names}])")
    return lines


def _cached(derivation):
    """(name, size, is_state): per-step values the backward pass reads, stored per step."""
    cell = derivation.cell
    sizes = cell.sizes()
    read = set(derivation.cached_values()) - set(cell.input_names)
    states = [s for s in cell.state_names if f"{s}_prev" in read or s in read]
    rest = [v for v in read if not v.endswith("_prev") and v not in cell.state_names]
    order = [eq.stage.name for eq in derivation.forward]
    return [(s, sizes[s], True) for s in cell.state_names if s in states or s == cell.output] + \
        [(v, sizes[v], False) for v in order if v in rest]


def _labels(derivation, stages):
    labels = [eq.label for eq in derivation.forward if eq.stage.name in stages]
    return f"({labels[0]})" if len(labels) == 1 else f"({labels[0]})-({labels[-1]})"


def _forward_pre(plan):
    lines = []
    for g in plan:
        for inp in g.hoisted:
            bias = f" + {g.bias}" if g.biases else ""
            lines.append(f"# input terms of {', '.join(s.name for s in g.stages)} for all steps")
            lines.append(f"{g.buffer}_{inp} = ({inp}s.reshape(T * B, -1) @ {g.weight(inp)}.T"
                         f"{bias}).reshape(T, B, {g.width})")
    return lines


def _forward_loop(derivation, plan):
    cell = derivation.cell
    cached = {name for name, _, _ in _cached(derivation)}
    lines = [f"{x} = {x}s[t]" for x in cell.input_names]
    lines += [f"{s}_prev = {s}_seq[t]" for s in cell.state_names]
    for eq in derivation.forward:
        name = eq.stage.name
        g = group_of(plan, name)
        if g is not None:
            if name == g.stages[0].name:
                lines += _group_forward(derivation, g)
            rhs = f"{g.buffer}[:, {g.slices()[name]}]"
        elif eq.stage.kind is Kind.SOFTMAX:
            rhs = f"_softmax({eq.stage.inputs[0]})  # ({eq.label})"
        else:
            rhs = f"{expr_code(eq.numeric)}  # ({eq.label})"
        if name in cell.state_names:
            lines += [f"{name}_seq[t + 1] = {rhs}", f"{name} = {name}_seq[t + 1]"]
        elif name in cached:
            lines += [f"{name}_seq[t] = {rhs}", f"{name} = {name}_seq[t]"]
        else:
            lines.append(f"{name} = {rhs}")
    return lines


def _group_forward(derivation, g: Group):
    terms = [f"{g.buffer}_{inp}[t]" for inp in g.hoisted]
    terms += [f"{inp} @ {g.weight(inp)}.T" for inp in g.inputs if inp not in g.hoisted]
    if g.biases and not g.hoisted:
        terms.append(g.bias)
    label = _labels(derivation, {s.name for s in g.stages})
    return [f"{g.buffer} = {' + '.join(terms)}  # {label}"]


def _backward_pre(derivation, plan):
    lines = [f"d_{g.param} = numpy.zeros_like({g.param})"
             for g in derivation.param_grads if g.stage is None]
    for g in plan:
        store = "(T, B, " if g.hoisted else "(B, "
        lines.append(f"d_{g.buffer}_seq = numpy.empty({store}{g.width}), dtype)" if g.hoisted
                     else f"d_{g.buffer} = numpy.empty((B, {g.width}), dtype)")
        for inp in g.inputs:
            if inp not in g.hoisted:
                lines.append(f"d_{g.weight(inp)} = numpy.zeros_like({g.weight(inp)})")
        if g.biases and not g.hoisted:
            lines.append(f"d_{g.bias} = numpy.zeros_like({g.bias})")
    return lines


def _backward_loop(derivation, plan):
    cell = derivation.cell
    lines = [f"{x} = {x}s[t]" for x in cell.input_names]
    lines += [f"{s}_prev = {s}_seq[t]" for s in cell.state_names]
    for name, _, is_state in _cached(derivation):
        lines.append(f"{name} = {name}_seq[t + 1]" if is_state else f"{name} = {name}_seq[t]")
    lines += [f"d_{g.buffer} = d_{g.buffer}_seq[t]" for g in plan if g.hoisted]
    for adj in derivation.adjoints:
        lines += _adjoint_lines(adj, cell, plan)
    for g in plan:
        for inp in g.inputs:
            if inp not in g.hoisted:
                label = _param_labels(derivation, g.weights_of(inp))
                lines.append(f"d_{g.weight(inp)} += d_{g.buffer}.T @ {inp}  # {label}")
        if g.biases and not g.hoisted:
            label = _param_labels(derivation, g.biases)
            lines.append(f"d_{g.bias} += d_{g.buffer}.sum(axis=0)  # {label}")
    for g in derivation.param_grads:
        if g.stage is None:
            total = " + ".join(elementwise_parts(g.terms))
            lines.append(f"d_{g.param} += ({total}).sum(axis=0)  # ({g.label})")
    lines += [f"d_{s}_next = d_{s}_prev" for s in cell.state_names]
    return lines


def _adjoint_lines(adj, cell, plan):
    sequence = adj.target in cell.input_names
    parts = elementwise_parts(adj.terms)
    for term in adj.terms:
        if term.kind is TermKind.LOSS:
            parts.append(f"d{term.source}s[t]")
        elif term.kind is TermKind.CARRY:
            parts.append(f"d_{adj.target}_next")
    for g in plan:
        if adj.target in g.inputs and not (sequence and adj.target in g.hoisted):
            parts.append(f"d_{g.buffer} @ {g.weight(adj.target)}")
    comment = f"  # ({adj.label})" + (f" fork: {', '.join(t.branch for t in adj.terms)}"
                                       if adj.is_fork else "")
    g = group_of(plan, adj.target)
    if g is not None:
        return [f"d_{g.buffer}[:, {g.slices()[adj.target]}] = {' + '.join(parts)}{comment}"]
    if sequence:
        return [f"d{adj.target}s[t] = {' + '.join(parts)}{comment}"] if parts else []
    rhs = " + ".join(parts) if parts else f"numpy.zeros((B, {adj.size}), dtype)"
    return [f"d_{adj.target} = {rhs}{comment}"]


def _param_labels(derivation, names):
    labels = [g.label for g in derivation.param_grads if g.param in names]
    return f"({labels[0]})" if len(labels) == 1 else f"({labels[0]})-({labels[-1]})"


def _backward_post(derivation, plan):
    lines = []
    for g in plan:
        if not g.hoisted:
            continue
        flat = f"d_{g.buffer}_flat"
        lines.append(f"{flat} = d_{g.buffer}_seq.reshape(T * B, {g.width})")
        for inp in g.hoisted:
            label = _param_labels(derivation, g.weights_of(inp))
            lines.append(f"d_{g.weight(inp)} = {flat}.T @ {inp}s.reshape(T * B, -1)  # {label}")
            x_label = derivation.adjoint(inp).label
            lines.append(f"d{inp}s += ({flat} @ {g.weight(inp)}).reshape(T, B, -1)  # ({x_label})")
        if g.biases:
            lines.append(f"d_{g.bias} = {flat}.sum(axis=0)  # {_param_labels(derivation, g.biases)}")
    for g in plan:
        slices = g.slices()
        for inp in g.inputs:
            lines += [f'grads["{w}"] = d_{g.weight(inp)}[{slices[s.name]}]'
                      for w, s in zip(g.weights_of(inp), g.stages)]
        lines += [f'grads["{s.bias}"] = d_{g.bias}[{slices[s.name]}]' for s in g.stages if s.bias]
    lines += [f'grads["{g.param}"] = d_{g.param}' for g in derivation.param_grads if g.stage is None]
    return lines
