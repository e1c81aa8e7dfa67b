"""Emit the PyTorch module of a recurrent cell's derivation (`generated/torch/<cell>.py`).

Contract: `emit_torch(derivation, entry, command) -> str`, the module's source, deterministic,
without importing torch.  What the module does is `codegen.program`'s records, the same
as the NumPy module's, rearranged because every eager call costs a few microseconds: the
backward loop's local-derivative factors evaluated for all steps before it
(`codegen.program_hoist`), and their products along chains where the cell allows
(`codegen.program_chain`, computed in the backward from what the Function saved); its
parameter-gradient sums after it (`codegen.program_reduce`); a step's repeated
sub-expressions computed once (`common.py`) and every slice it reads made before the loop
(`loop_refs.py`); states its step's other cached values determine rebuilt before the
backward rather than saved (`derived_states.py`).  This backend spells the records
(`spell.py`, `printer.py`) and the template `module.py.j2` lays out the autograd.Function
and the nn.Module around them.
The cell's prose and PyTorch layout are read through `numpy_backend.emit.module_facts`.
"""
from __future__ import annotations

from dataclasses import replace

from codegen.numpy_backend.emit import module_facts, pack_lines, packing, size_sources, tuple_code
from codegen.program import program
from codegen.program_hoist import hoist
from codegen.program_reduce import reduce_after
from codegen.records import Assign, Buffer, View, Zeros, reads
from codegen.torch_backend.common import fused_products, shared
from codegen.torch_backend.derived_states import derived_states
from codegen.torch_backend.in_place import in_place
from codegen.torch_backend.loop_refs import by_rows
from codegen.torch_backend.spell import spell, stack_line
from codegen.torch_backend.templates import render
from derive.derivation import Derivation

__all__ = ["emit_torch", "class_name"]

ACRONYMS = {"lstm", "lstmp", "gru", "rnn", "cifg", "mgu", "mlp"}


def class_name(cell_name: str) -> str:
    """The nn.Module's name: CamelCase of the cell's (gru_reset_after -> GRUResetAfter)."""
    return "".join(p.upper() if p in ACRONYMS else p.capitalize() for p in cell_name.split("_"))


def emit_torch(derivation: Derivation, entry, command: str) -> str:
    cell = derivation.cell
    prog = in_place(reduce_after(hoist(_factors_first(program(derivation, chains=True, share=False))),
                                 cell.sizes()))
    forward_loop, forward_rows, forward_views = by_rows(fused_products(shared(prog.forward_loop)), _fixed(
        prog, prog.forward_pre, prog.forward_loop))
    backward_loop, backward_rows, backward_views = by_rows(fused_products(shared(prog.backward_loop)), _fixed(
        prog, prog.backward_pre, prog.backward_loop))
    sizes = cell.sizes()
    params = cell.public_params()
    facts = module_facts(entry)
    derived, rebuild = derived_states(prog)
    rebuild_reads = set(derived).union(*(reads(r) for r in rebuild))
    return render(
        "module.py.j2", cell=cell.name, command=command, name=class_name(cell.name),
        description=facts["description"], torch=facts["torch"],
        size_args=[arg for _, arg in facts["size_args"]], size_args_map=facts["size_args"],
        params=[(name, tuple_code(shape)) for name, shape in params],
        state=list(cell.state_names), state_tuple=tuple_code(cell.state_names),
        state_sizes=[size for _, size in cell.state],
        output=cell.output, output_size=sizes[cell.output],
        output_is_state=cell.output in cell.state_names,
        input_size=sizes[cell.input_names[0]], vector_params=list(cell.vector_param_names),
        size_sources=size_sources(params),
        stacking=[stack_line(s) for s in prog.stacking], weights=list(prog.weights),
        cached=list(prog.cached), cached_names=tuple_code([f"{n}_seq" for n, _, _ in prog.cached]),
        saved_names=tuple_code([f"{n}_seq" for n, _, is_state in prog.cached if is_state]),
        kept_names=tuple_code([f"{n}_seq" for n, _, _ in prog.cached if f"{n}_seq" not in derived]),
        derived_names=tuple_code(list(derived)) if derived else "", rebuild=spell(rebuild, per_step=False),
        rebuild_binds=[f'{n} = w["{n}"]' for n in prog.weights if n in rebuild_reads] +
        [f'{n}_seq = seq["{n}_seq"]' for n, _, _ in prog.cached if f"{n}_seq" in rebuild_reads],
        recompute=spell(prog.recompute, per_step=False),
        forward_pre=spell(prog.forward_pre) + _view_lines(forward_views), forward_loop=spell(forward_loop),
        forward_rows=forward_rows, backward_pre=spell(_without_scratch(prog)) + _view_lines(backward_views),
        backward_loop=spell(backward_loop), backward_rows=backward_rows,
        backward_post=spell(prog.backward_post),
        grads=[_grad_line(g) for g in prog.grads] + pack_lines(cell, "torch.cat"),
        dxs_written=prog.dxs_written, **packing(cell))


def _factors_first(prog):
    """The chains' factors (`codegen.program_chain`) computed at the start of the backward, for
    all steps, from the values the Function saved: its backward step is fewer eager calls (the
    LSTM's 6 instead of 11), and what it saves stays the forward's values."""
    if not prog.factors:
        return prog
    buffers = tuple(Buffer(f"{name}_seq", ("steps", "B", width)) for name, width in prog.factors)
    return replace(prog, backward_pre=buffers + prog.factor_pass + prog.backward_pre,
                   factors=(), factor_pass=(), backward_reads=())


def _fixed(prog, pre, loop) -> frozenset:
    """Names that hold the same tensor through the whole loop: buffers made before it, weights."""
    made = {r.name for r in pre if isinstance(r, (Buffer, Zeros))} | set(prog.weights)
    made |= {r.name for r in pre if isinstance(r, View) and r.ref.name in made}
    return frozenset(made - {r.target for r in loop if isinstance(r, Assign) and isinstance(r.target, str)})


def _view_lines(views) -> list[str]:
    return [f"{name} = {code}" for name, code in views]


def _without_scratch(prog):
    """backward_pre without the NumPy backend's scratch buffers: torch evaluates an
    expression in one statement (`t[...] = expr`), so it never writes them."""
    scratch = {r.scratch for r in prog.backward_loop if isinstance(r, Assign) and r.scratch}
    return [r for r in prog.backward_pre if not (isinstance(r, Buffer) and r.name in scratch)]


def _grad_line(g) -> str:
    rows = f"[{g.rows}]" if g.rows else ""
    return f'grads["{g.param}"] = dw["{g.source}"]{rows}'
