"""Emit the standalone NumPy module of a recurrent cell's derivation (`generated/<cell>.py`).

Contract: `emit_numpy(derivation, entry, command) -> str`, the module's source, deterministic.
All decisions are made here (the module and the forward steps), in `backward.py` (the
backward steps) and in `codegen.schedule` (which products, blocks and buffers); the
template `module.py.j2` only lays the lines out.  Expressions are printed by the backend's
printer (`printer.py`), into preallocated buffers where a value is stored (`inplace.py`);
every emitted line that implements an equation cites its label in the document, e.g.
`# (B3)`.  The cell's prose and layouts are read in one place, `_module_facts`.
"""
from __future__ import annotations

import re

import sympy as sp

from codegen.numpy_backend.backward import (backward_loop, backward_post, backward_pre,
                                            dxs_written, grad_lines)
from codegen.numpy_backend.inplace import assign, columns, commented, list_labels
from codegen.numpy_backend.printer import expr_code
from codegen.numpy_backend.templates import render
from codegen.schedule import Plan, code, plan as make_plan
from derive.derivation import Derivation, symbol
from derive.stages import Kind

__all__ = ["emit_numpy", "size_sources", "tuple_code", "module_facts"]


def emit_numpy(derivation: Derivation, entry, command: str) -> str:
    """The module's source text."""
    cell, plan = derivation.cell, make_plan(derivation)
    sizes = cell.sizes()
    params = cell.params()
    cached = _cached(derivation, plan)
    context = dict(
        cell=cell.name, command=command, **module_facts(entry),
        params=[(name, tuple_code(shape)) for name, shape in params],
        state=list(cell.state_names), state_tuple=tuple_code(cell.state_names), state_sizes=[size for _, size in cell.state],
        output=cell.output, output_size=sizes[cell.output],
        sequence_input=cell.input_names[0], input_size=sizes[cell.input_names[0]],
        vector_params=list(cell.vector_param_names),
        size_sources=size_sources(params),
        stacking=_stacking(plan, sizes),
        weights=[p.weight for p in plan.products] + [p.bias for p in plan.products if plan.has_bias(p)]
        + list(cell.vector_param_names),
        cached=cached,
        forward_pre=_forward_pre(derivation, plan),
        forward_loop=_drop_unused_loads(_forward_loop(derivation, plan, cached)),
        backward_pre=backward_pre(derivation, plan),
        backward_loop=_drop_unused_loads(backward_loop(derivation, plan, cached)),
        backward_post=backward_post(derivation, plan),
        grads=grad_lines(derivation, plan),
        dxs_written=dxs_written(derivation, plan),
        softmax=any(s.kind is Kind.SOFTMAX for s in cell.stages),
    )
    return render("module.py.j2", **context)


def module_facts(entry) -> dict:
    """What the module says about the cell beyond its mathematics, from its catalogue entry:
    its description, its size arguments and its PyTorch layout (the only place they are read)."""
    facts = dict(description=entry.description, size_args=list(entry.size_args), torch=None)
    if entry.torch is not None:
        sizes = ", ".join(f"{arg}={symbol}" for symbol, arg in entry.size_args[:2])
        options = ", ".join(o for o in (sizes, entry.torch.options) if o)
        facts["torch"] = dict(module=entry.torch.module, options=options,
                              blocks=[(key, tuple_code(names)) for key, names in entry.torch.keys])
    return facts


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


def _stacking(plan: Plan, sizes):
    """Lines of `_stack`: every product's weights (and biases) stacked in column order."""
    lines = []
    for p in plan.products:
        names = ", ".join(f'params["{w}"]' for g in p.groups for w in p.weights_of(g))
        lines.append(f"{p.weight} = numpy.concatenate([{names}])")
        if plan.has_bias(p):
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
            and not plan.is_block_output(v)]
    order = [eq.stage.name for eq in derivation.forward]
    return [(s, sizes[s], True) for s in cell.state_names if s in states or s == cell.output] + \
        [(v, sizes[v], False) for v in order if v in rest] + \
        [(b.out, b.width, False) for g in plan.groups for b in g.blocks if _z_cached(derivation, b)]


def _z_cached(derivation, block) -> bool:
    return any(o in derivation.cached_values() for o in block.outputs)


def _labels(derivation, stages):
    labels = [eq.label for eq in derivation.forward if eq.stage.name in stages]
    return f"({labels[0]})" if len(labels) == 1 else f"({labels[0]})-({labels[-1]})"


def _ref(product, time="t"):
    """The per-step buffer of a product's terms."""
    return f"{product.buffer}[{time}]" if product.hoisted else product.buffer


def _forward_pre(derivation, plan: Plan):
    sizes = derivation.cell.sizes()
    lines = []
    for p in plan.products:
        if p.hoisted:
            label = _labels(derivation, {s.name for g in p.groups for s in g.stages})
            lines.append(f"# the {p.input} terms of every step at once  {label}")
            lines.append(f'{p.buffer} = _take(ws, "{p.buffer}", (steps, B, {p.width}), dtype)')
            lines.append(f"numpy.matmul({p.input}s.reshape(steps * B, {sizes[p.input]}), {p.weight}.T, "
                         f"out={p.buffer}.reshape(steps * B, {p.width}))")
            if plan.has_bias(p):
                lines.append(f"{p.buffer} += {p.bias}")
        else:
            lines.append(f'{p.buffer} = _take(ws, "{p.buffer}", (B, {p.width}), dtype)')
    for b in (b for g in plan.groups for b in g.blocks):
        if not _z_cached(derivation, b):
            lines.append(f'{b.out} = _take(ws, "{b.out}", (B, {b.width}), dtype)')
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
            rhs, body = columns(_ref(home), home.columns(g, name), home.width), None
        elif plan.is_block_output(name):
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
        lines += commented(assign(body, target) if body is not None else [f"{target} = {rhs}"],
                            comment)
        lines.append(f"{name} = {target}")
    return lines


def _group_forward(derivation, plan: Plan, g, done):
    """The products a group needs, its pre-activations summed in its home buffer, its blocks."""
    lines = []
    label = _labels(derivation, set(g.names))
    for p in plan.products_of(g):
        if not p.hoisted and p.buffer not in done:
            done.add(p.buffer)
            lines.append(f"numpy.matmul({p.input}, {p.weight}.T, out={p.buffer})  # {label}")
    home = plan.home(g)
    target = columns(_ref(home), home.columns(g), home.width)
    for p in plan.products_of(g):
        if p is not home:
            lines.append(f"{target} += {columns(_ref(p), p.columns(g), p.width)}")
    if plan.bias_home(g) is home and not home.hoisted and any(s.bias for s in g.stages):
        lines.append(f"{target} += {home.bias}[{home.columns(g)}]")
    for b in g.blocks:
        first = next(eq for eq in derivation.forward if eq.stage.name == b.outputs[0])
        start = home.start(g) + sp.sympify(b.start)
        stop = home.start(g) + sp.sympify(b.stop)
        source = sp.Symbol(columns(_ref(home), f"{code(start)}:{code(stop)}", None), real=True)
        body = first.numeric.xreplace({symbol(b.members[0]): source})
        labels = list_labels(eq.label for eq in derivation.forward if eq.stage.name in b.outputs)
        lines += commented(assign(body, b.out), f"  # {labels}")
        lines += [f"{out} = {columns(b.out, b.columns(out), b.width)}" for out in b.outputs]
    return lines
