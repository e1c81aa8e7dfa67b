"""The one numerical gradient checker used by the tests and by `lstm-derive check`.

It draws random parameters, inputs, initial state and a random linear loss
L = sum(R * hs) + sum over states of sum(S_state * state_T), runs a module's `backward`,
and compares every gradient with central differences (the five-point stencil, in
float64).  The error of one gradient array is max|analytic - numeric| / max|numeric|,
so tiny entries do not turn rounding noise into huge relative errors.
"""
from __future__ import annotations

import types

import numpy as np

from derive.errors import DeriveError


def load_module(source: str, name: str) -> types.ModuleType:
    """Import generated source text as a module object (our own generated code only)."""
    module = types.ModuleType(name)
    exec(compile(source, f"<generated {name}>", "exec"), module.__dict__)  # noqa: S102
    return module


def problem(module, T, B, D, H, seed=0):
    """Random float64 parameters, inputs, state and loss weights for one check."""
    rng = np.random.default_rng(seed)
    params = {k: v * 2.0 for k, v in module.init_params(D, H, seed=seed).items()}
    xs = rng.normal(size=(T, B, D))
    state0 = {s: 0.5 * rng.normal(size=(B, H)) for s in module.STATE}
    dhs = rng.normal(size=(T, B, H))
    dstateT = {s: rng.normal(size=(B, H)) for s in module.STATE}
    return params, xs, state0, dhs, dstateT


def loss(module, params, xs, state0, dhs, dstateT) -> float:
    hs, stateT, _ = module.forward(params, xs, state0)
    return float(np.sum(dhs * hs) + sum(np.sum(dstateT[s] * stateT[s]) for s in module.STATE))


def analytic(module, params, xs, state0, dhs, dstateT) -> dict[str, np.ndarray]:
    _, _, cache = module.forward(params, xs, state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    out = {name: grads[name] for name in params}
    out["xs"] = dxs
    out.update({f"{s}0": dstate0[s] for s in module.STATE})
    return out


def numeric(module, params, xs, state0, dhs, dstateT, step=1e-3) -> dict[str, np.ndarray]:
    arrays = dict(params, xs=xs, **{f"{s}0": state0[s] for s in module.STATE})

    def evaluate():
        p = {name: arrays[name] for name in params}
        s0 = {s: arrays[f"{s}0"] for s in module.STATE}
        return loss(module, p, arrays["xs"], s0, dhs, dstateT)

    out = {}
    for name, array in arrays.items():
        array = arrays[name] = array.copy()
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


def relative_errors(got: dict, want: dict) -> dict[str, float]:
    errors = {}
    for name, ref in want.items():
        if got[name].shape != ref.shape:
            raise DeriveError(f"gradient {name} has shape {got[name].shape}, expected {ref.shape}")
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-12)
        errors[name] = float(np.max(np.abs(got[name] - ref), initial=0.0)) / scale
    return errors


def check(module, T, B, D, H, seed=0) -> dict[str, float]:
    """Relative error of every gradient of `module` at one shape."""
    args = problem(module, T, B, D, H, seed)
    return relative_errors(analytic(module, *args), numeric(module, *args))
