"""The worked example as the document prints it: every number of a `Worked`, in rows.

`worked(document, nt)` returns the template context of the section "A worked example": the
given parameters as one line of LaTeX, and rows (equation label, the value it computes, its
entries at every step) for the inputs, every forward stage, the loss's direct gradient, every
backward equation and every parameter sum.  Numbers are printed with five significant digits;
a vector as a row of its entries, a matrix row by row (rows separated by semicolons).  The
numbers were computed by the build; nothing is computed here beyond formatting them.
"""
from __future__ import annotations

from codegen.notation import tex_param

DIGITS = 5


def worked(document, nt) -> dict | None:
    w = document.worked
    if w is None:
        return None
    cell = document.derivation.cell
    shapes = dict(w.shapes)
    output = nt.value(cell.output)
    target = rf"y^{{*}}_{{t}}" if cell.recurrent else r"y^{*}"
    rows = [_row("", nt.value(r.name), r.values) for r in w.given]
    rows += [_row(r.label, nt.value(r.name), r.values) for r in w.forward]
    rows.append(_row("", target, w.targets))
    loss = r"\ell_{t}" if cell.recurrent else "L"
    rows.append(_row("", rf"\partial {loss} / \partial {output}", w.direct))
    # a previous state's row is the part of its gradient that step t sends back, as (B..) writes it
    back = [_row(r.label, rf"{{{nt.adjoint(r.name)}}}^{{(t)}}" if r.name.endswith("_prev") and cell.recurrent
                 else nt.adjoint(r.name), r.values) for r in w.backward]
    grads = [_row(r.label, rf"\delta {tex_param(r.name)}", r.values, shapes[r.name])
             for r in w.grads]
    params = ", ".join(f"${tex_param(name)} = {entries(values, shapes[name])}$"
                       for name, values in w.params)
    return dict(problem=w.problem, seed=w.seed, params=params, forward=rows, backward=back,
                grads=grads, loss=number(w.loss), steps=len(w.direct), output=output,
                target=target, agree=_published(w, nt, True), differ=_published(w, nt, False))


def _published(w, nt, agrees) -> list[dict]:
    """The published numbers that agree with ours (or do not), as `$c_{1} = 0.78572$`."""
    return [dict(his=f"${nt.value(p.name, str(p.step + 1))} = {p.printed}$", t=p.step + 1,
                 name=f"${nt.value(p.name, str(p.step + 1))}$",
                 ours=f"{p.ours:.{len(p.printed.split('.')[1]) + 1}f}",
                 # the table rounds to DIGITS; where he cut the number instead, it shows
                 # a different last digit, which the text must explain
                 shown=number(p.ours) if number(p.ours) != p.printed else None,
                 rounded=None if p.rounded is None else f"{p.rounded:.6f}")
            for p in w.published if p.agrees == agrees]


def _row(label, name, values, shape=None) -> dict:
    ref = rf"(\ref{{eq:{label}}})" if label else ""
    return dict(ref=ref, name=name, cells=[f"${entries(v, shape)}$" for v in values])


def entries(values, shape=None) -> str:
    """A value's entries: one number, a row vector (a, b), or a matrix (a, b; c, d)."""
    if len(values) == 1:
        return number(values[0])
    if shape and len(shape) == 2 and shape[0] > 1:
        width = shape[1]
        rows = [values[n:n + width] for n in range(0, len(values), width)]
        return "(" + r";\ ".join(r",\ ".join(map(number, r)) for r in rows) + ")"
    return "(" + r",\ ".join(map(number, values)) + ")"


def number(value: float) -> str:
    """Five significant digits, without an exponent unless the number is tiny or huge."""
    if value == 0:
        return "0"
    text = f"{value:.{DIGITS}g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"
