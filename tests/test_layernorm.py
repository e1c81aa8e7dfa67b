"""The layer-normalised cells against the same equations written plainly in PyTorch and JAX.

`layernorm_lstm` (Ba, Kiros & Hinton 2016, eqs. 20-22) and `layernorm_gru` (PyTorch's GRU, its
stacked terms normalised): their generated NumPy modules, torch.autograd.Functions and JAX
custom_vjps agree in float64 to 1e-10 with autograd (torch) or jax.grad of the cells written
out below with `torch.nn.LayerNorm` / jax.numpy, sharing nothing with the package: outputs,
final state, every parameter gradient (the packed gains and shifts as 4H or 3H vectors), dxs
and dstate0; torch's gradcheck passes on the LSTM's Function.  Also: the layer
norm's rule the document displays (`derive.rules.layer_norm_rule`) equals the chain through
the cell's stages, and that comparison fails for a wrong rule.  Skipped without torch or
jax, a failure when CI=true.
"""
import os

import numpy as np
import pytest
import sympy as sp

from conftest import GENERATED, generated, load_file
from catalogue import get_cell
from derive import derive
from derive.interpret import run
from derive.rules import layer_norm_rule

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

D, H, T, B = 3, 4, 3, 2
GATES = "figo"


def problem(module, seed=0):
    """Public parameters (packed gains 4H), inputs, initial state, upstream gradients."""
    rng = np.random.default_rng(seed)
    params = module.init_params(D, H, seed=seed)
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()}
    xs = rng.normal(size=(T, B, D))
    state0 = {s: rng.normal(size=(B, H)) for s in module.STATE}
    dhs = rng.normal(size=(T, B, H))
    dstateT = {s: rng.normal(size=(B, H)) for s in module.STATE}
    return params, xs, state0, dhs, dstateT


def plain_layernorm_lstm(P, xs, h, c):
    """The cell as the paper writes it, with torch.nn.LayerNorm (float64)."""
    def norm(n, gain, shift):
        ln = torch.nn.LayerNorm(n, eps=1e-5, dtype=torch.float64)
        with torch.no_grad():   # the module's own parameters, set to ours; their grads are ours
            ln.weight.copy_(gain)
            ln.bias.copy_(shift)
        return ln
    lx, lh, lc = (norm(4 * H, P["gamma_x"], P["beta_x"]), norm(4 * H, P["gamma_h"], P["beta_h"]),
                  norm(H, P["gamma_c"], P["beta_c"]))
    W = torch.cat([P[f"W_{g}"] for g in GATES])
    U = torch.cat([P[f"U_{g}"] for g in GATES])
    b = torch.cat([P[f"b_{g}"] for g in GATES])
    hs = []
    for x in xs:
        f, i, g, o = (lx(x @ W.T) + lh(h @ U.T) + b).split(H, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(lc(c))
        hs.append(h)
    norms = {"gamma_x": lx.weight, "beta_x": lx.bias, "gamma_h": lh.weight, "beta_h": lh.bias,
             "gamma_c": lc.weight, "beta_c": lc.bias}
    return torch.stack(hs), {"h": h, "c": c}, norms


def plain_gradients(params, xs, state0, dhs, dstateT):
    """(hs, stateT, grads, dxs, dstate0) by torch autograd of the plain cell."""
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    X = torch.tensor(xs, requires_grad=True)
    S = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    hs, stateT, norms = plain_layernorm_lstm(P, X, S["h"], S["c"])
    loss = (hs * torch.tensor(dhs)).sum() + sum((stateT[s] * torch.tensor(dstateT[s])).sum()
                                                for s in stateT)
    loss.backward()
    grads = {k: (norms[k] if k in norms else P[k]).grad.numpy() for k in params}
    return (hs.detach().numpy(), {s: v.detach().numpy() for s, v in stateT.items()}, grads,
            X.grad.numpy(), {s: v.grad.numpy() for s, v in S.items()})


def worst(ours, theirs):
    """The largest absolute difference over matching nested results; NaN counts as infinite."""
    if isinstance(ours, dict):
        assert set(ours) == set(theirs)
        return max(worst(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, (tuple, list)):
        return max(worst(a, b) for a, b in zip(ours, theirs, strict=True))
    a, b = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert a.shape == b.shape
    gap = np.abs(a - b)
    return float(np.inf) if np.isnan(gap).any() else float(gap.max(initial=0.0))


def test_numpy_module_equals_plain_torch_autograd():
    module = generated("layernorm_lstm")
    assert module.PARAMS["gamma_x"] == ("4*H",) and module.PARAMS["beta_c"] == ("H",)
    params, xs, state0, dhs, dstateT = problem(module)
    hs, stateT, cache = module.forward(params, xs, state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    assert worst((hs, stateT, grads, dxs, dstate0), plain_gradients(params, xs, state0, dhs, dstateT)) < 1e-10


def test_the_comparison_can_fail():
    """A gain off by 1e-6 in one entry, or a NaN, is caught."""
    module = generated("layernorm_lstm")
    params, xs, state0, dhs, dstateT = problem(module, seed=1)
    reference = plain_gradients(params, xs, state0, dhs, dstateT)
    nudged = dict(params, gamma_x=params["gamma_x"] + np.eye(4 * H)[5] * 1e-6)
    hs, stateT, cache = module.forward(nudged, xs, state0)
    grads, dxs, dstate0 = module.backward(nudged, cache, dhs, dstateT)
    assert worst((hs, stateT, grads, dxs, dstate0), reference) > 1e-10
    assert worst(np.array([np.nan]), np.array([0.0])) == np.inf


def torch_module():
    return load_file(GENERATED / "torch" / "layernorm_lstm.py", "generated_torch_layernorm_lstm")


def test_torch_function_equals_plain_torch_autograd():
    module = torch_module()
    params, xs, state0, dhs, dstateT = problem(generated("layernorm_lstm"), seed=2)
    P = [torch.tensor(params[k], requires_grad=True) for k in module.PARAMS]
    X = torch.tensor(xs, requires_grad=True)
    S = [torch.tensor(state0[s], requires_grad=True) for s in module.STATE]
    hs, *stateT = module.LayernormLSTMFunction.apply(X, *S, *P)
    loss = (hs * torch.tensor(dhs)).sum() + sum((v * torch.tensor(dstateT[s])).sum()
                                                for s, v in zip(module.STATE, stateT))
    loss.backward()
    ours = (hs.detach().numpy(), {s: v.detach().numpy() for s, v in zip(module.STATE, stateT)},
            {k: p.grad.numpy() for k, p in zip(module.PARAMS, P)}, X.grad.numpy(),
            {s: v.grad.numpy() for s, v in zip(module.STATE, S)})
    assert worst(ours, plain_gradients(params, xs, state0, dhs, dstateT)) < 1e-10


def test_torch_gradcheck_of_the_function():
    module = torch_module()
    params, xs, state0, _, _ = problem(generated("layernorm_lstm"), seed=3)
    args = [torch.tensor(a, requires_grad=True) for a in
            (xs, *(state0[s] for s in module.STATE), *(params[k] for k in module.PARAMS))]
    assert torch.autograd.gradcheck(module.LayernormLSTMFunction.apply, tuple(args))


# ----- the rule the document displays equals the chain through the stages --------------

def _displayed_vjp(rule, z, gamma, delta, expr=None):
    """The displayed d_z (`rule.vector`; or `expr`, e.g. SymPy's own sum `rule.d_input`) at
    numbers: n entries, mu and r from z."""
    s = rule.symbols
    n = len(z)
    mu = sum(z) / n
    r = 1 / sp.sqrt(sum((v - mu) ** 2 for v in z) / n + sp.Rational(1, 100000))
    values = {s["n"]: n, s["mu"]: mu, s["r"]: r}
    out = []
    for q in range(n):
        plain = sp.Symbol("k", integer=True)   # a summation index SymPy expands over 0..n-1
        shown = rule.vector if expr is None else expr
        value = shown.xreplace({s["k"]: plain}).subs(s["q"], q).subs(values).doit()
        value = value.subs({s["z"][k]: z[k] for k in range(n)}).subs(
            {s["gamma"][k]: gamma[k] for k in range(n)}).subs({s["delta"][k]: delta[k] for k in range(n)})
        out.append(float(value))
    return np.array(out)


def test_the_displayed_layer_norm_rule_equals_the_chain_through_the_stages():
    """The interpreter's d_zx_* of layernorm_lstm at one step, against the displayed rule."""
    rule = layer_norm_rule()
    module = generated("layernorm_lstm")
    cell = get_cell("layernorm_lstm")
    params, xs, state0, dhs, dstateT = problem(module, seed=4)
    internal = cell.unpack(params)
    trace = run(derive(cell), internal, xs[:1, :1], {s: v[:1] for s, v in state0.items()},
                dhs[:1, :1], {s: v[:1] for s, v in dstateT.items()})[5][0]
    z = np.concatenate([trace[f"zx_{g}"][0] for g in GATES])
    delta = np.concatenate([trace[f"d_yx_{g}"][0] for g in GATES])
    chain = np.concatenate([trace[f"d_zx_{g}"][0] for g in GATES])
    shown = _displayed_vjp(rule, [sp.Float(v, 30) for v in z], params["gamma_x"], delta)
    assert np.max(np.abs(shown - chain)) < 1e-10
    summed = _displayed_vjp(rule, [sp.Float(v, 30) for v in z], params["gamma_x"], delta, rule.d_input)
    assert np.max(np.abs(summed - chain)) < 1e-10
    wrong = _displayed_vjp(rule, [sp.Float(v, 30) for v in z], params["gamma_x"] * 1.001, delta)
    assert np.max(np.abs(wrong - chain)) > 1e-6   # the comparison can fail


# ----- JAX: the generated custom_vjp against jax.grad of the cell written in jax.numpy -----

def _jax():
    if os.environ.get("CI") == "true":
        import jax
    else:
        jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def plain_jax_layernorm_lstm(jnp, P, xs, state0):
    """The cell as the paper writes it, in jax.numpy: LN with its mean and biased variance."""
    def ln(v, gain, shift):
        mean = v.mean(axis=-1, keepdims=True)
        var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
        return gain * (v - mean) / jnp.sqrt(var + 1e-5) + shift
    W = jnp.concatenate([P[f"W_{g}"] for g in GATES])
    U = jnp.concatenate([P[f"U_{g}"] for g in GATES])
    b = jnp.concatenate([P[f"b_{g}"] for g in GATES])
    h, c, hs = state0["h"], state0["c"], []
    for x in xs:
        a = ln(x @ W.T, P["gamma_x"], P["beta_x"]) + ln(h @ U.T, P["gamma_h"], P["beta_h"]) + b
        f, i, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
        c = 1 / (1 + jnp.exp(-f)) * c + 1 / (1 + jnp.exp(-i)) * jnp.tanh(g)
        h = 1 / (1 + jnp.exp(-o)) * jnp.tanh(ln(c, P["gamma_c"], P["beta_c"]))
        hs.append(h)
    return jnp.stack(hs), {"h": h, "c": c}


def test_jax_module_equals_jax_grad_of_the_plain_cell():
    jax = _jax()
    import jax.numpy as jnp
    module = load_file(GENERATED / "jax" / "layernorm_lstm.py", "generated_jax_layernorm_lstm")
    params, xs, state0, dhs, dstateT = problem(generated("layernorm_lstm"), seed=5)

    def loss_of(forward):
        def loss(p, x, s0):
            outputs, stateT = forward(p, x, s0)
            return jnp.sum(outputs * dhs) + sum(jnp.sum(stateT[s] * dstateT[s]) for s in dstateT)
        return loss
    ours = jax.grad(loss_of(module.forward), argnums=(0, 1, 2))(params, xs, state0)
    theirs = jax.grad(loss_of(lambda p, x, s0: plain_jax_layernorm_lstm(jnp, p, x, s0)),
                      argnums=(0, 1, 2))(params, xs, state0)
    assert worst(module.forward(params, xs, state0),
                 plain_jax_layernorm_lstm(jnp, params, xs, state0)) < 1e-10
    assert worst(ours, theirs) < 1e-10


# ----- layernorm_gru: PyTorch's GRU with the stacked input and recurrent terms normalised --

def plain_layernorm_gru(P, xs, h):
    """The GRU as PyTorch computes it (torch.nn.GRU's equations, gates r, z, n), each stacked
    product normalised with torch.nn.LayerNorm before the biases (float64)."""
    def norm(gain, shift):
        ln = torch.nn.LayerNorm(3 * H, eps=1e-5, dtype=torch.float64)
        with torch.no_grad():
            ln.weight.copy_(gain)
            ln.bias.copy_(shift)
        return ln
    lx, lh = norm(P["gamma_x"], P["beta_x"]), norm(P["gamma_h"], P["beta_h"])
    W = torch.cat([P[f"W_{g}"] for g in "rzn"])
    U = torch.cat([P[f"U_{g}"] for g in "rzn"])
    hs = []
    for x in xs:
        xr, xz, xn = lx(x @ W.T).split(H, dim=-1)
        hr, hz, hn = lh(h @ U.T).split(H, dim=-1)
        r = torch.sigmoid(xr + hr + P["b_r"])
        z = torch.sigmoid(xz + hz + P["b_z"])
        n = torch.tanh(xn + P["b_n"] + r * (hn + P["b_hn"]))
        h = (1 - z) * n + z * h
        hs.append(h)
    norms = {"gamma_x": lx.weight, "beta_x": lx.bias, "gamma_h": lh.weight, "beta_h": lh.bias}
    return torch.stack(hs), {"h": h}, norms


def plain_gru_gradients(params, xs, state0, dhs, dstateT):
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    X = torch.tensor(xs, requires_grad=True)
    S = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    hs, stateT, norms = plain_layernorm_gru(P, X, S["h"])
    loss = (hs * torch.tensor(dhs)).sum() + (stateT["h"] * torch.tensor(dstateT["h"])).sum()
    loss.backward()
    grads = {k: (norms[k] if k in norms else P[k]).grad.numpy() for k in params}
    return (hs.detach().numpy(), {"h": stateT["h"].detach().numpy()}, grads, X.grad.numpy(),
            {"h": S["h"].grad.numpy()})


def test_layernorm_gru_numpy_and_torch_modules_equal_plain_torch_autograd():
    module = generated("layernorm_gru")
    assert module.PARAMS["gamma_h"] == ("3*H",) and "b_hn" in module.PARAMS
    params, xs, state0, dhs, dstateT = problem(module, seed=6)
    reference = plain_gru_gradients(params, xs, state0, dhs, dstateT)
    hs, stateT, cache = module.forward(params, xs, state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    assert worst((hs, stateT, grads, dxs, dstate0), reference) < 1e-10
    tm = load_file(GENERATED / "torch" / "layernorm_gru.py", "generated_torch_layernorm_gru")
    P = [torch.tensor(params[k], requires_grad=True) for k in tm.PARAMS]
    X, S = torch.tensor(xs, requires_grad=True), torch.tensor(state0["h"], requires_grad=True)
    out, hT = tm.LayernormGRUFunction.apply(X, S, *P)
    ((out * torch.tensor(dhs)).sum() + (hT * torch.tensor(dstateT["h"])).sum()).backward()
    ours = (out.detach().numpy(), {"h": hT.detach().numpy()},
            {k: p.grad.numpy() for k, p in zip(tm.PARAMS, P)}, X.grad.numpy(), {"h": S.grad.numpy()})
    assert worst(ours, reference) < 1e-10


def test_the_displayed_layer_norm_jacobian_is_the_derivative_of_the_written_out_norm():
    """At n = 3, the displayed dy_k/dz_q against sympy.diff of LN written out entry by entry."""
    rule = layer_norm_rule()
    s = rule.symbols
    z, g, b = sp.symbols("z0:3", real=True), sp.symbols("g0:3", real=True), sp.symbols("b0:3", real=True)
    mean = sum(z) / 3
    var = sum((v - mean) ** 2 for v in z) / 3
    y = [g[k] * (z[k] - mean) / sp.sqrt(var + sp.Rational(1, 100000)) + b[k] for k in range(3)]
    point = {**dict(zip(z, (sp.Rational(1, 3), sp.Rational(-5, 4), 2))),
             **dict(zip(g, (sp.Rational(3, 2), sp.Rational(-1, 2), 1)))}
    r = 1 / sp.sqrt(var + sp.Rational(1, 100000))
    for k in range(3):
        for q in range(3):
            shown = rule.jacobian.subs({s["k"]: k, s["q"]: q}).subs(
                {s["n"]: 3, s["mu"]: mean, s["r"]: r}).subs(
                {s["z"][i]: z[i] for i in range(3)}).subs({s["gamma"][i]: g[i] for i in range(3)})
            want = sp.diff(y[k], z[q])
            assert abs(sp.N((shown - want).subs(point), 30)) < 1e-25, (k, q)


def test_layernorm_gru_jax_module_equals_jax_grad_of_the_plain_cell():
    jax = _jax()
    import jax.numpy as jnp
    module = load_file(GENERATED / "jax" / "layernorm_gru.py", "generated_jax_layernorm_gru")
    params, xs, state0, dhs, dstateT = problem(generated("layernorm_gru"), seed=7)

    def plain(P, xs, state0):   # the GRU of plain_layernorm_gru, in jax.numpy
        def ln(v, gain, shift):
            mean = v.mean(axis=-1, keepdims=True)
            return gain * (v - mean) / jnp.sqrt(((v - mean) ** 2).mean(axis=-1, keepdims=True) + 1e-5) + shift
        W = jnp.concatenate([P[f"W_{g}"] for g in "rzn"])
        U = jnp.concatenate([P[f"U_{g}"] for g in "rzn"])
        h, hs = state0["h"], []
        for x in xs:
            ax, ah = ln(x @ W.T, P["gamma_x"], P["beta_x"]), ln(h @ U.T, P["gamma_h"], P["beta_h"])
            r = 1 / (1 + jnp.exp(-(ax[:, :H] + ah[:, :H] + P["b_r"])))
            z = 1 / (1 + jnp.exp(-(ax[:, H:2 * H] + ah[:, H:2 * H] + P["b_z"])))
            n = jnp.tanh(ax[:, 2 * H:] + P["b_n"] + r * (ah[:, 2 * H:] + P["b_hn"]))
            h = (1 - z) * n + z * h
            hs.append(h)
        return jnp.stack(hs), {"h": h}

    def loss_of(forward):
        def loss(p, x, s0):
            outputs, stateT = forward(p, x, s0)
            return jnp.sum(outputs * dhs) + jnp.sum(stateT["h"] * dstateT["h"])
        return loss
    assert worst(module.forward(params, xs, state0), plain(params, xs, state0)) < 1e-10
    assert worst(jax.grad(loss_of(module.forward), argnums=(0, 1, 2))(params, xs, state0),
                 jax.grad(loss_of(plain), argnums=(0, 1, 2))(params, xs, state0)) < 1e-10


@pytest.mark.parametrize("name", ["layernorm_lstm", "layernorm_gru"])
def test_a_layer_norm_starts_as_plain_standardisation_in_every_backend(name):
    """Gains 1, shifts 0 (as torch.nn.LayerNorm), every other parameter drawn at random."""
    module = generated(name)
    params = module.init_params(D, H, seed=0)
    assert set(module.INITIAL) == {p for p in module.PARAMS if p.startswith(("gamma", "beta"))}
    for p, value in params.items():
        if p in module.INITIAL:
            assert np.all(value == module.INITIAL[p]) and value.shape[0] in (H, 3 * H, 4 * H), p
        else:
            assert np.ptp(value) > 0, p
    torch = pytest.importorskip("torch")
    tmod = load_file(GENERATED / "torch" / f"{name}.py", f"generated_torch_{name}")
    cls = next(v for k, v in vars(tmod).items() if isinstance(v, type)
               and issubclass(v, torch.nn.Module) and v.__module__ == tmod.__name__)
    for key, value in cls(D, H, num_layers=2, bidirectional=True).named_parameters():
        base = key.rsplit("_l", 1)[0]
        if base in module.INITIAL:
            assert torch.all(value == module.INITIAL[base]), key
    jax = pytest.importorskip("jax")
    jmod = load_file(GENERATED / "jax" / f"{name}.py", f"generated_jax_{name}")
    for p, value in jmod.init_params(jax.random.PRNGKey(0), D, H).items():
        if p in module.INITIAL:
            assert np.all(np.asarray(value) == module.INITIAL[p]), p
