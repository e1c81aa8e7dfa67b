"""Emit the standalone NumPy module of a recurrent cell's derivation (`generated/<cell>.py`).

Contract: `emit_numpy(derivation, entry, command) -> str`, the module's source, deterministic.
What the module does is decided by `codegen.program` (operation records over the layout
of `codegen.schedule`); this backend only spells the records (`spell.py`, with the
printer `printer.py` and in-place evaluation `inplace.py`) and the template
`module.py.j2` lays the lines out.  Every line that implements an equation cites its
label in the document, e.g. `# (B3)`.  The cell's prose and layouts are read in one
place, `module_facts`.
"""
from __future__ import annotations

import sympy as sp

from codegen.numpy_backend.layout import gate_major
from codegen.numpy_backend.spell import forward_copies, spell, stack_line
from codegen.numpy_backend.templates import render
from codegen.numpy_backend.strided import strided_predicate, whole_slices, widths_of, zero_columns
from codegen.numpy_backend.whole_tanh import whole_tanh
from codegen.numpy_backend.widen import widen
from codegen.program import program
from codegen.records import reads
from codegen.schedule import code, plan as make_plan
from derive.derivation import Derivation
from derive.stages import Kind

__all__ = ["emit_numpy", "size_sources", "tuple_code", "module_facts", "packing", "pack_lines"]


def emit_numpy(derivation: Derivation, entry, command: str) -> str:
    """The module's source text."""
    cell, prog = derivation.cell, program(derivation, chains=False)
    copies, (forward_pre, forward_loop) = forward_copies(prog.folds, prog.forward_pre, prog.forward_loop)
    layout = gate_major(make_plan(derivation))
    widths = {f"{name}_seq": width for name, width in prog.factors}   # a hoisted buffer may be one
    widths = widths_of([*forward_pre, *forward_loop, *prog.backward_pre, *prog.backward_loop], widths)
    stacks = zero_columns(prog.stacking)
    forward_loop, backward_loop = (whole_slices(records, widths, stacks, layout)
                                   for records in (forward_loop, prog.backward_loop))
    forward_loop = whole_tanh(widen(forward_loop, widths, stacks), strided_predicate(widths, layout))
    sizes = cell.sizes()
    params = cell.public_params()
    context = dict(
        cell=cell.name, command=command, **module_facts(entry),
        params=[(name, tuple_code(shape)) for name, shape in params],
        state=list(cell.state_names), state_tuple=tuple_code(cell.state_names),
        state_sizes=[size for _, size in cell.state],
        positive=cell.positive,
        output=cell.output, output_size=sizes[cell.output],
        sequence_input=cell.input_names[0], input_size=sizes[cell.input_names[0]],
        vector_params=list(cell.vector_param_names),
        size_sources=size_sources(params),
        stacking=[stack_line(s) for s in prog.stacking],
        weights=list(prog.weights),
        **_cached_args(prog, layout),
        forward_pre=copies + spell(forward_pre, layout=layout),
        forward_loop=spell(forward_loop, layout=layout),
        backward_pre=spell(prog.backward_pre, layout=layout),
        backward_loop=spell(backward_loop, layout=layout),
        backward_post=spell(prog.backward_post, layout=layout),
        grads=[grad_line(g) for g in prog.grads] + pack_lines(cell),
        **packing(cell),
        dxs_written=prog.dxs_written,
        softmax=any(s.kind is Kind.SOFTMAX for s in cell.stages),
    )
    # the helper only where a spelled line calls it (a sigmoid block folded into tanh does not)
    context["sigmoid"] = any("_sigmoid(" in line for key in ("forward_pre", "forward_loop", "backward_pre",
                                                              "backward_loop", "backward_post")
                             for line in context[key])
    return render("module.py.j2", **context)


def _step_shape(layout, name, size) -> str:
    """One step of a stored value: (B, size), or (gates, B, size) for a block stored gate by gate."""
    found = layout.of(name)
    return f"B, {size}" if found is None else f"{found[0]}, B, {found[1]}"


def packing(cell) -> dict:
    """The packed parameters: which rows of each public parameter every block is."""
    shapes = dict(cell.params())
    unpacked = [(public, block, f"{code(n * sp.Symbol(shapes[block][0]))}:"
                 f"{code((n + 1) * sp.Symbol(shapes[block][0]))}")
                for public, blocks in cell.packed for n, block in enumerate(blocks)]
    sizes = sorted({shapes[blocks[0]][0] for _, blocks in cell.packed})
    return dict(packed=bool(cell.packed), unpacked=unpacked, packed_sizes=sizes,
                constants=initial_constants(cell))


def initial_constants(cell) -> list[tuple[str, str]]:
    """Public parameters that start at a constant instead of a random draw: a layer norm's gains
    at 1 and its shifts at 0, so that it starts as plain standardisation (Ba, Kiros & Hinton
    2016; torch.nn.LayerNorm does the same)."""
    public = {block: name for name, blocks in cell.packed for block in blocks}
    names = {name for name, _ in cell.public_params()}
    found: dict[str, str] = {}
    for stage in cell.stages:
        if stage.kind is Kind.NORMALISED:
            gain, shift = (public.get(n, n) for n in stage.inputs[3:5])
            found.update({n: v for n, v in ((gain, "1.0"), (shift, "0.0")) if n in names})
    return sorted(found.items())


def pack_lines(cell, concatenate="numpy.concatenate") -> list[str]:
    """grads of each packed parameter: its blocks' gradients stacked."""
    return [f'grads["{public}"] = {concatenate}([{", ".join(f"grads[{b!r}]" for b in blocks)}])'
            .replace("'", '"') for public, blocks in cell.packed]


def grad_line(g) -> str:
    rows = f"[{g.rows}]" if g.rows else ""
    return f'grads["{g.param}"] = dw["{g.source}"]{rows}'


def _cached_args(prog, layout) -> dict:
    """The template's per-step storage: what the forward writes and the backward reads, and the
    chains' factors (`codegen.program_chain`) where the program has them, which the cache keeps
    in place of the forward values only they read."""
    factors = [name for name, _ in prog.factors]
    return dict(
        cached=[(name, _step_shape(layout, name, size), is_state) for name, size, is_state in prog.cached]
        + [(name, f"B, {width}", False) for name, width in prog.factors],
        forward_cached=[name for name, _, _ in prog.cached]
        + [name for name in factors if any(f"{name}_seq" in reads(r) for r in prog.forward_pre)],
        factors=factors,
        factor_reads=[name for name, _, _ in prog.cached
                      if any(f"{name}_seq" in reads(r) for r in prog.factor_pass)],
        backward_cached=[name for name, _, _ in prog.cached if not factors or name in prog.backward_reads]
        + factors,
        factor_pass=spell(prog.factor_pass, layout=layout))


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


def size_sources(params):
    """Where each size symbol is read from at run time: (symbol, param, axis)."""
    found = {}
    for name, shape in params:
        for axis, size in enumerate(shape):
            if "*" not in size:   # a packed parameter's size is a multiple of a symbol's
                found.setdefault(size, (size, name, axis))
    return sorted(found.values())
