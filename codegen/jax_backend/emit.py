"""Emit the JAX module of a recurrent cell's derivation (`generated/jax/<cell>.py`).

Contract: `emit_jax(derivation, entry, command) -> str`, the module's source, deterministic,
without importing jax.  What the module does is `codegen.program`'s records, the same as
the NumPy and PyTorch modules'; `spell.py` spells them functionally (JAX arrays are
immutable), and the template lays out two `lax.scan` bodies (forward, backward in
reverse) and the `jax.custom_vjp` around them.  Which step values each scan slices and
stacks is read off the spelling (`Spelling.reads`, `writes`), not decided twice.
"""
from __future__ import annotations

from codegen.jax_backend.spell import Spelling
from codegen.jax_backend.templates import render
from codegen.numpy_backend.emit import module_facts, pack_lines, packing, size_sources, tuple_code
from codegen.program import program
from codegen.records import Add, Buffer, Gemm, Ref, Zeros, reads
from derive.derivation import Derivation

__all__ = ["emit_jax"]


def emit_jax(derivation: Derivation, entry, command: str) -> str:
    cell, prog = derivation.cell, program(derivation)
    sizes, params = cell.sizes(), cell.public_params()
    facts = module_facts(entry)
    forward, backward = _forward(cell, prog), _backward(cell, prog)
    return render(
        "module.py.j2", cell=cell.name, command=command, description=facts["description"],
        size_args=[arg for _, arg in facts["size_args"]], size_args_map=facts["size_args"],
        params=[(name, tuple_code(shape)) for name, shape in params],
        state=list(cell.state_names), state_tuple=tuple_code(cell.state_names),
        state_sizes=[size for _, size in cell.state], output=cell.output,
        output_size=sizes[cell.output], output_is_state=cell.output in cell.state_names,
        input_size=sizes[cell.input_names[0]], vector_params=list(cell.vector_param_names),
        size_sources=size_sources(params), stacking=[_stack_line(s) for s in prog.stacking],
        weights=list(prog.weights), cached=list(prog.cached),
        cached_names=tuple_code([f"{n}_seq" for n, _, _ in prog.cached]),
        dxs_written=prog.dxs_written,
        grads=[_grad_line(g) for g in prog.grads] + pack_lines(cell, "jnp.concatenate"),
        **packing(cell), **forward, **backward)


def _widths(prog) -> dict[str, str]:
    """The last axis of every buffer, by its name and by the name of one of its steps."""
    widths = {name: size for name, size, _ in prog.cached}
    for r in (*prog.forward_pre, *prog.forward_loop, *prog.backward_pre, *prog.backward_loop):
        if isinstance(r, (Buffer, Zeros)):
            widths[r.name] = r.shape[-1]
            if r.name.endswith("_seq"):
                widths[r.name[:-4]] = r.shape[-1]
    return widths


def _forward(cell, prog) -> dict:
    spelling = Spelling(cell, _widths(prog))
    biases = _loop_biases(prog)
    pre = spelling.lines([r for r in prog.forward_pre if not (isinstance(r, Add) and r.target.name in biases)])
    spelling.start_loop()
    body = spelling.lines(prog.forward_loop) + spelling.finish()
    carried = {f"{s}_prev" for s in cell.state_names}
    streams = [(name, spelling.source[name], biases.get(spelling.source[name]))
               for name in spelling.reads if name not in carried]
    return dict(forward_pre=pre, forward_loop=body, forward_streams=streams)


def _loop_biases(prog) -> dict[str, str]:
    """Hoisted products whose bias the forward scan adds to each step's slice, by buffer:
    added to the whole (steps, B, width) product, XLA keeps the product and the sum as two
    buffers of that size alive at once (its CPU temporaries, page-faulted afresh on every
    call above glibc's mmap threshold); added per step it fuses into the step's elementwise
    work.  Only a product that the backward never reads (it reads the scan's slices)."""
    hoisted = {r.out.name for r in prog.forward_pre if isinstance(r, Gemm) and r.out.flat is not None}
    later = set().union(*(_touched(r) for r in (*prog.backward_pre, *prog.backward_loop,
                                                 *prog.backward_post)))
    return {r.target.name: r.source.name for r in prog.forward_pre
            if isinstance(r, Add) and r.target.name in hoisted and r.target.step is None
            and r.target.columns is None and r.source.columns is None
            and r.target.name not in later}


def _touched(record) -> set[str]:
    """The names a record reads or writes."""
    out = getattr(record, "out", None) or getattr(record, "target", None)
    return reads(record) | ({out.name if isinstance(out, Ref) else out} if out is not None else set())


def _backward(cell, prog) -> dict:
    spelling = Spelling(cell, _widths(prog))
    pre = spelling.lines(prog.backward_pre)
    spelling.start_loop()
    body = spelling.lines(prog.backward_loop) + spelling.finish()
    streams = [(name, spelling.source[name]) for name in spelling.reads]
    stacked = [(name, spelling.source[name]) for name in spelling.writes]
    spelling.alias.clear()
    spelling.defined.update(source for _, source in stacked)   # the scan stacked them
    post = spelling.lines(prog.backward_post)
    return dict(backward_pre=pre, backward_loop=body, backward_streams=streams,
                backward_stacked=stacked, backward_post=post)


def _stack_line(s) -> str:
    parts = ", ".join(f'params["{name}"]' if name else f"jnp.zeros({size}, xs.dtype)"
                      for name, size in s.parts)
    return f"{s.name} = jnp.concatenate([{parts}])"


def _grad_line(g) -> str:
    rows = f"[{g.rows}]" if g.rows else ""
    return f'grads["{g.param}"] = dw["{g.source}"]{rows}'
