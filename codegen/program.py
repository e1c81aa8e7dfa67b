"""A recurrent cell's generated code as operation records (`codegen.records`), for any backend.

Contract: `program(derivation) -> Program`, deterministic.  It reads the layout of
`codegen.schedule` (groups, blocks, stacked products, hoisting) and the derivation's
equations, and lists in order what the module does: the stacked weights; before the
loop the hoisted products of all steps; per step the products, pre-activation sums,
blocks and elementwise equations of the forward pass; per step backwards one adjoint per
value (its W^T d terms already stacked by `schedule.stacked`); after the loop one GEMM
per product for its weight gradient and for the gradient of a hoisted input; and the
forward pass of all steps at once from the states (`codegen.program_recompute`), for a
backend that keeps only the states between its forward and backward passes.  Every
record that implements an equation carries its label, e.g. "(B3)".  Nothing is spelled.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.program_backward import (backward_loop, backward_post, backward_pre, dxs_written,
                                      grad_rows, step_views)
from codegen.program_chain import (chain_loop, chains as make_chains, factor_buffers, factor_pass,
                                   stored_factors)
from codegen.program_norm import stack_norms
from codegen.program_recompute import all_steps, recompute
from codegen.records import (Add, Assign, Buffer, Copy, Fold, Gemm, Program, Ref, Softmax, Stack,
                             View, list_labels, part, prune_views, reads, step_of)
from codegen.schedule import Plan, code, plan as make_plan
from derive.derivation import Derivation, symbol
from derive.stages import Kind
from derive.terms import adjoint

__all__ = ["program"]


def program(derivation: Derivation, chains: bool = False, share: bool = True) -> Program:
    """chains=True: the backward multiplies its roots' adjoints by factors computed for all steps
    before its loop (`codegen.program_chain`) where the cell's structure allows.  share=False:
    the forward keeps its own hoisted-product buffers, for a backend that computes the factors
    in its backward (from the cached values) rather than after its forward."""
    plan = make_plan(derivation)
    cell = derivation.cell
    cached = tuple(_cached(derivation, plan))
    weights = [p.weight for p in plan.products] + [p.bias for p in plan.products if plan.has_bias(p)]
    forward_pre = tuple(_forward_pre(derivation, plan))
    backward = _backward(derivation, plan, cached, chains)
    forward_pre = tuple(_share(forward_pre, backward.get("factors", ()) if share else ()))
    draft = Program(
        stacking=tuple(_stacking(plan)), weights=tuple(weights + list(cell.vector_param_names)),
        cached=cached, forward_pre=forward_pre, forward_loop=tuple(_forward_loop(derivation, plan, cached)),
        **backward,
        grads=tuple(grad_rows(derivation, plan)), dxs_written=dxs_written(derivation, plan),
        folds=tuple(_folds(derivation, plan, {name for name, _, _ in cached})))
    if "factors" not in backward:   # the stacked norms rewrite the one-adjoint-per-value backward
        draft = stack_norms(derivation, plan, draft)
    forward_loop = tuple(prune_views(draft.forward_loop))
    return replace(draft, forward_loop=forward_loop, backward_loop=tuple(prune_views(draft.backward_loop)),
                   recompute=tuple(prune_views(recompute(draft.forward_pre, forward_loop, draft.cached,
                                                         cell.state_names))))


def _no_larger(new, old) -> bool:
    """Whether per-step widths `new` (size expressions) sum to at most `old` for every size:
    the cache may hold factors in place of forward values, never more than them."""
    spare = sp.expand(sum(map(sp.sympify, old), sp.Integer(0)) - sum(map(sp.sympify, new), sp.Integer(0)))
    return all(c >= 0 for c in sp.Poly(spare, *sorted(spare.free_symbols, key=str)).coeffs()) \
        if spare.free_symbols else spare >= 0


def _share(forward_pre, factors):
    """A hoisted product's buffer (A_x: every step's x terms), dead after the forward loop, is the
    storage of its factor twin (F_A_x) when they have one shape: no fresh memory for either."""
    widths = dict(factors)
    for r in forward_pre:
        if isinstance(r, Buffer) and r.shape == ("steps", "B", widths.get(f"F_{r.name}")):
            yield View(r.name, Ref(f"F_{r.name}_seq"))
        else:
            yield r


def _backward(derivation, plan: Plan, cached, chains: bool) -> dict:
    """The backward's records: one adjoint per value, or (chains) the roots' sums and the
    multiplications by factors stored before the loop, with the pass that computes them."""
    post = tuple(backward_post(derivation, plan))
    found = make_chains(derivation, plan) if chains else None
    views = step_views(derivation, plan, cached)
    stored = list(stored_factors(derivation, plan, found)) if found else []
    known = {v.name for v in views}
    if found is None or any({str(s) for s in f.free_symbols} - known for *_, f, _ in stored):
        return _per_value(derivation, plan, cached, post)
    buffers = factor_buffers(stored)
    order = {adj.target: n for n, adj in enumerate(derivation.adjoints)}
    loop = [View(name, Ref(f"{name}_seq", "t")) for name, _ in buffers]
    loop += [View(f"d_{p.buffer}", Ref(f"d_{p.buffer}_seq", "t"))
             for p in plan.products if plan.delta_of(p) is p]
    loop += chain_loop(derivation, plan, found, order)
    loop += [Assign(f"d_{s}_next", adjoint(f"{s}_prev")) for s in derivation.cell.state_names]
    loop = prune_views(loop)
    pre = [r for r in backward_pre(derivation, plan)   # the gradient buffers of the products
           if isinstance(r, Buffer) and any(r.name in reads(x) for x in (*loop, *post))]
    read = set().union(*(reads(r) for r in (*loop, *post)))
    kept = tuple(n for n, _, _ in cached if f"{n}_seq" in read)
    if not _no_larger([w for n, w, _ in cached if n in kept] + [w for _, w in buffers],
                      [w for _, w, _ in cached]):
        return _per_value(derivation, plan, cached, post)
    whole = [all_steps(r, set()) for r in factor_pass(views, stored)]
    return dict(backward_pre=tuple(pre), backward_loop=tuple(loop), backward_post=post,
                factors=tuple(buffers), factor_pass=tuple(prune_views(whole)),
                backward_reads=kept)


def _per_value(derivation, plan: Plan, cached, post) -> dict:
    """The backward's records with one adjoint per value (no chains)."""
    return dict(backward_pre=tuple(backward_pre(derivation, plan)),
                backward_loop=tuple(backward_loop(derivation, plan, cached)), backward_post=post)


def labels(derivation, stages) -> str:
    found = [eq.label for eq in derivation.forward if eq.stage.name in stages]
    return f"({found[0]})" if len(found) == 1 else f"({found[0]})-({found[-1]})"


def _stacking(plan: Plan):
    """Every product's weights (and biases) stacked in column order."""
    for p in plan.products:
        yield Stack(p.weight, tuple((w, s.size) for g in p.groups
                                    for w, s in zip(p.weights_of(g), g.stages)))
        if plan.has_bias(p):
            yield Stack(p.bias, tuple((s.bias if s.bias and plan.bias_home(g) is p else None, s.size)
                                      for g in p.groups for s in g.stages))


def _cached(derivation, plan: Plan):
    """(name, size, is_state): per-step values the backward pass reads, stored per step, and every
    state (the forward carries a state in its buffer even where the backward never reads it, as the
    sLSTM's stabiliser).  Block outputs are stored together in their group's Z buffer instead."""
    cell = derivation.cell
    sizes = cell.sizes()
    read = set(derivation.cached_values()) - set(cell.input_names)
    rest = [v for v in read if not v.endswith("_prev") and v not in cell.state_names
            and not plan.is_block_output(v)]
    order = [eq.stage.name for eq in derivation.forward]
    return [(s, sizes[s], True) for s in cell.state_names] + \
        [(v, sizes[v], False) for v in order if v in rest] + \
        [(b.out, b.width, False) for g in plan.groups for b in g.blocks if z_cached(derivation, b)]


def z_cached(derivation, block) -> bool:
    return any(o in derivation.cached_values() for o in block.outputs)


def fold_factor(derivation, block, stored) -> sp.Expr | None:
    """The number k when the block's activation reads its pre-activation z only as tanh(k z),
    k != 1 (the sigmoid, (1 + tanh(z/2))/2: k = 1/2), read off the forward equation; None
    otherwise, or when a member's pre-activation is stored (it must keep its value)."""
    if any(m in stored for m in block.members):
        return None
    first = next(eq for eq in derivation.forward if eq.stage.name == block.outputs[0])
    z, body = symbol(block.members[0]), first.numeric
    found = body.atoms(sp.tanh)
    if len(found) != 1:
        return None
    tanh = found.pop()
    factor = sp.simplify(tanh.args[0] / z)
    if not factor.is_Number or factor == 1 or z in body.xreplace({tanh: sp.Dummy()}).free_symbols:
        return None
    return factor


def _folds(derivation, plan: Plan, stored):
    """Every stacked weight's (and bias's) rows feeding a block with a fold factor."""
    for g in plan.groups:
        for b in g.blocks:
            factor = fold_factor(derivation, b, stored)
            for p in plan.products_of(g) if factor is not None else ():
                start = p.start(g) + sp.sympify(b.start)
                rows = f"{code(start)}:{code(start - sp.sympify(b.start) + sp.sympify(b.stop))}"
                yield Fold(p.weight, rows, factor)
                if plan.has_bias(p) and plan.bias_home(g) is p and any(s.bias for s in g.stages):
                    yield Fold(p.bias, rows, factor)


def _forward_pre(derivation, plan: Plan):
    sizes = derivation.cell.sizes()
    for p in plan.products:
        if p.hoisted:
            yield Buffer(p.buffer, ("steps", "B", p.width))
            yield Gemm(Ref(p.buffer, flat=p.width), Ref(f"{p.input}s", flat=sizes[p.input]),
                       Ref(p.weight), transpose_b=True,
                       label=labels(derivation, {s.name for g in p.groups for s in g.stages}),
                       note=f"the {p.input} terms of every step at once")
            if plan.has_bias(p):
                yield Add(Ref(p.buffer), Ref(p.bias))
        else:
            yield Buffer(p.buffer, ("B", p.width))
    for b in (b for g in plan.groups for b in g.blocks):
        if not z_cached(derivation, b):
            yield Buffer(b.out, ("B", b.width))


def _forward_loop(derivation, plan: Plan, cached):
    cell = derivation.cell
    stored = {name for name, _, _ in cached}
    out = [View(x, Ref(f"{x}s", "t")) for x in cell.input_names]
    out += [View(f"{s}_prev", Ref(f"{s}_seq", "t")) for s in cell.state_names]
    out += [View(b.out, Ref(f"{b.out}_seq", "t")) for g in plan.groups for b in g.blocks
            if b.out in stored]
    done = set()
    for eq in derivation.forward:
        name = eq.stage.name
        g = plan.group_of(name)
        if plan.is_block_output(name):
            continue
        target = (Ref(f"{name}_seq", "t + 1") if name in cell.state_names
                  else Ref(f"{name}_seq", "t") if name in stored else None)
        if g is not None:
            if g.index not in done:
                done.add(g.index)
                out += _group_forward(derivation, plan, g, done, stored)
            home = plan.home(g)
            source = part(home.buffer, home.columns(g, name), home.width, step_of(home))
            out += [View(name, source)] if target is None else [Copy(target, source), View(name, target)]
            continue
        body = (Softmax(symbol(eq.stage.inputs[0])) if eq.stage.kind is Kind.SOFTMAX
                else eq.numeric)
        out += [Assign(name, body, f"({eq.label})")] if target is None else \
            [Assign(target, body, f"({eq.label})"), View(name, target)]
    return out


def _group_forward(derivation, plan: Plan, g, done, stored):
    """The products a group needs, its pre-activations summed in its home buffer, its blocks."""
    out = []
    label = labels(derivation, set(g.names))
    for p in plan.products_of(g):
        if not p.hoisted and p.buffer not in done:
            done.add(p.buffer)
            out.append(Gemm(Ref(p.buffer), Ref(p.input), Ref(p.weight), transpose_b=True, label=label))
    home = plan.home(g)
    target = part(home.buffer, home.columns(g), home.width, step_of(home))
    for p in plan.products_of(g):
        if p is not home:
            out.append(Add(target, part(p.buffer, p.columns(g), p.width, step_of(p))))
    if plan.bias_home(g) is home and not home.hoisted and any(s.bias for s in g.stages):
        out.append(Add(target, Ref(home.bias, columns=home.columns(g), vector=True)))
    for b in g.blocks:
        first = next(eq for eq in derivation.forward if eq.stage.name == b.outputs[0])
        start = home.start(g) + sp.sympify(b.start)
        stop = home.start(g) + sp.sympify(b.stop)
        source = part(home.buffer, f"{code(start)}:{code(stop)}", None, step_of(home))
        body = first.numeric.xreplace({symbol(b.members[0]): sp.Symbol("operand", real=True)})
        found = list_labels(eq.label for eq in derivation.forward if eq.stage.name in b.outputs)
        out.append(Assign(Ref(b.out), body, found, operands=(("operand", source),),
                          fold=fold_factor(derivation, b, stored)))
        out += [View(o, part(b.out, b.columns(o), b.width)) for o in b.outputs]
    return out

