"""The one numerical gradient checker used by the tests and by `lstm-derive check`.

For a recurrent module it draws random parameters, inputs, initial state and a random
linear loss L = sum(R * hs) + sum over states of sum(S_state * state_T); for a
feed-forward module the loss is the module's own loss head on random targets.  It runs
the module's `backward` and compares every gradient with central differences (the
five-point stencil, in float64).  The error of one gradient array is
max|analytic - numeric| / max|numeric|, so tiny entries do not turn rounding noise into
huge relative errors.  A NaN or inf on either side makes that error NaN, and `worst`
keeps it NaN: `max(0.0, nan)` is 0.0, and a checker must never pass what it could not
measure.
"""
from __future__ import annotations

import math
import types

import numpy as np

from derive.errors import DeriveError


def load_module(source: str, name: str) -> types.ModuleType:
    """Import generated source text as a module object (our own generated code only)."""
    module = types.ModuleType(name)
    exec(compile(source, f"<generated {name}>", "exec"), module.__dict__)  # noqa: S102
    return module


def is_recurrent(module) -> bool:
    return hasattr(module, "STATE")


def problem(module, T, B, *dims, seed=0):
    """Random float64 parameters, inputs and loss for one check; dims follow module.SIZES."""
    rng = np.random.default_rng(seed)
    sizes = dict(zip(module.SIZES, dims))
    if len(sizes) != len(module.SIZES):
        raise DeriveError(f"need sizes {', '.join(module.SIZES)}, got {dims}")
    params = {k: v * 2.0 for k, v in module.init_params(*dims, seed=seed).items()}
    for name in getattr(module, "INITIAL", {}):   # constants (a layer norm's gains at 1) made generic
        params[name] = params[name] + rng.uniform(-0.5, 0.5, size=params[name].shape)
    if not is_recurrent(module):
        x = rng.normal(size=(B, dims[0]))   # a network's SIZES list its input size first
        y, _ = module.forward(params, x)
        target = (rng.integers(0, y.shape[1], size=B) if module.TARGET == "labels"
                  else rng.uniform(size=y.shape))
        return params, {"x": x}, target
    xs = rng.normal(size=(T, B, sizes["D"]))
    state0 = {s: 0.5 * rng.normal(size=(B, sizes[n])) for s, n in module.STATE_SIZES.items()}
    for s in getattr(module, "POSITIVE_STATES", ()):   # a normaliser near 0 is no state the cell reaches
        state0[s] = 0.5 + np.abs(state0[s])
    dhs = rng.normal(size=(T, B, sizes[module.STATE_SIZES[module.STATE[0]]]))
    dstateT = {s: rng.normal(size=(B, sizes[n])) for s, n in module.STATE_SIZES.items()}
    return params, dict(xs=xs, **{f"{s}0": v for s, v in state0.items()}), (dhs, dstateT)


def loss(module, params, inputs, target) -> float:
    if not is_recurrent(module):
        y, _ = module.forward(params, inputs["x"])
        return float(module.loss(y, target)[0])
    dhs, dstateT = target
    state0 = {s: inputs[f"{s}0"] for s in module.STATE}
    hs, stateT, _ = module.forward(params, inputs["xs"], state0)
    return float(np.sum(dhs * hs) + sum(np.sum(dstateT[s] * stateT[s]) for s in module.STATE))


def analytic(module, params, inputs, target) -> dict[str, np.ndarray]:
    if not is_recurrent(module):
        y, cache = module.forward(params, inputs["x"])
        grads, dx = module.backward(params, cache, module.loss(y, target)[1])
        return dict(grads, x=dx)
    dhs, dstateT = target
    state0 = {s: inputs[f"{s}0"] for s in module.STATE}
    _, _, cache = module.forward(params, inputs["xs"], state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    out = {name: grads[name] for name in params}
    out["xs"] = dxs
    out.update({f"{s}0": dstate0[s] for s in module.STATE})
    return out


def numeric(module, params, inputs, target, step=1e-3) -> dict[str, np.ndarray]:
    arrays = dict(params, **inputs)

    def evaluate():
        return loss(module, {n: arrays[n] for n in params}, {n: arrays[n] for n in inputs}, target)

    out = {}
    for name, array in arrays.items():
        array = arrays[name] = np.array(array, dtype=np.float64)
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            grad[index] = _five_point(array, index, step, evaluate)
        out[name] = grad
    return out


def _five_point(array, index, step, evaluate):
    original = array[index]
    values = []
    for offset in (-2, -1, 1, 2):
        array[index] = original + offset * step
        values.append(evaluate())
    array[index] = original
    return (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * step)


def worst(errors) -> float:
    """The largest of `errors`, NaN if any is NaN (0.0 for none)."""
    values = [float(e) for e in errors]
    return math.nan if any(math.isnan(v) for v in values) else max(values, default=0.0)


def relative_errors(got: dict, want: dict) -> dict[str, float]:
    """max|got - want| / max|want| per name; NaN where either side is not finite."""
    errors = {}
    for name, ref in want.items():
        if np.shape(got[name]) != ref.shape:
            raise DeriveError(f"gradient {name} has shape {np.shape(got[name])}, expected {ref.shape}")
        if not_finite(got[name], ref):
            errors[name] = math.nan
            continue
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-12)
        errors[name] = float(np.max(np.abs(got[name] - ref), initial=0.0)) / scale
    return errors


def not_finite(got, want) -> str:
    """Which side holds a NaN or inf ("" when both are finite), for the report."""
    sides = [f"{side} {'NaN' if np.isnan(a).any() else 'inf'}"
             for side, a in (("the gradient has", np.asarray(got)),
                             ("finite differences give", np.asarray(want)))
             if not np.all(np.isfinite(a))]
    return " and ".join(sides)


def check_report(module, T, B, *dims, seed=0, step=1e-3) -> tuple[dict[str, float], dict[str, str]]:
    """(relative error of every gradient, {gradient: what is not finite}) at one shape;
    `step` is the finite differences' step."""
    with np.errstate(all="ignore"):   # NaN and inf are reported below, not warned about
        args = problem(module, T, B, *dims, seed=seed)
        got, want = analytic(module, *args), numeric(module, *args, step=step)
    notes = {name: not_finite(got[name], want[name]) for name in want}
    return relative_errors(got, want), {name: note for name, note in notes.items() if note}


def check(module, T, B, *dims, seed=0, step=1e-3) -> dict[str, float]:
    """Relative error of every gradient of `module` at one shape (dims follow module.SIZES)."""
    return check_report(module, T, B, *dims, seed=seed, step=step)[0]
