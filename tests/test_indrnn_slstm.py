"""IndRNN and sLSTM against the same equations written plainly, by hand, in PyTorch with autograd
(float64, 1e-10), and the facts their documents state about them.

The plain versions below are written from the papers' equations (Li et al. 2018; Beck et al. 2024),
not from our stage lists, so they are an independent implementation of each cell.  PyTorch is an
optional test extra: skipped without it, a failure when CI=true.
"""
import os

import numpy as np
import pytest
import sympy as sp

from conftest import GENERATED, generated, random_problem
from derive.ops import X, Kind
from derive.rules import derivative

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")


def indrnn_plain(p, xs, state0):
    """h_t = relu(W x_t + u * h_{t-1} + b)."""
    h, hs = state0["h"], []
    for x in xs:
        h = torch.relu(x @ p["W"].T + p["u"] * h + p["b"])
        hs.append(h)
    return torch.stack(hs), {"h": h}


def slstm_plain(p, xs, state0, stop_gradient=False):
    """The sLSTM of Beck et al. (2024), one head, as its paper writes it:
    m_t = max(log f_t + m_{t-1}, log i_t), i' = exp(log i_t - m_t), f' = exp(log f_t + m_{t-1} - m_t),
    c_t = f' c_{t-1} + i' z_t, n_t = f' n_{t-1} + i', h_t = o_t c_t / n_t, with log i_t = a_i and
    log f_t = log sigmoid(a_f).  `stop_gradient`: m treated as a constant (the xLSTM CUDA kernel)."""
    h, c, n, m = (state0[k] for k in "hcnm")
    hs = []
    for x in xs:
        a = {g: x @ p[f"W_{g}"].T + h @ p[f"U_{g}"].T + p[f"b_{g}"] for g in "zifo"}
        log_f = torch.nn.functional.logsigmoid(a["f"])
        m_new = torch.maximum(log_f + m, a["i"])
        if stop_gradient:
            m_new = m_new.detach()
        i, f = torch.exp(a["i"] - m_new), torch.exp(log_f + m - m_new)
        c = f * c + i * torch.tanh(a["z"])
        n = f * n + i
        h = torch.sigmoid(a["o"]) * c / n
        m = m_new
        hs.append(h)
    return torch.stack(hs), {"h": h, "c": c, "n": n, "m": m}


PLAIN = {"indrnn": indrnn_plain, "slstm": slstm_plain}


def problem(module, T, B, D, H, seed):
    """`random_problem`, with a positive normaliser where the cell has one (as it always is)."""
    params, xs, state0, dhs, dstateT = random_problem(module, T, B, D, H, seed=seed)
    for s in getattr(module, "POSITIVE_STATES", ()):
        state0[s] = 0.5 + np.abs(state0[s])
    return params, xs, state0, dhs, dstateT


def torch_gradients(plain, params, xs, state0, dhs, dstateT):
    """Outputs and autograd gradients of L = sum(dhs * hs) + sum_s sum(dstateT[s] * s_T)."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(xs, requires_grad=True)
    s0 = {k: torch.tensor(v, requires_grad=True) for k, v in state0.items()}
    hs, stateT = plain(p, x, s0)
    loss = (hs * torch.tensor(dhs)).sum() + sum(
        (stateT[k] * torch.tensor(v)).sum() for k, v in dstateT.items())
    loss.backward()
    grad = lambda v: np.zeros(v.shape) if v.grad is None else v.grad.numpy()   # no path: zero
    return (hs.detach().numpy(), {k: grad(v) for k, v in p.items()}, grad(x),
            {k: grad(v) for k, v in s0.items()})


def close(ours, theirs, what):
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10, equal_nan=False, err_msg=what)


@pytest.mark.parametrize("shape", [(5, 3, 3, 4), (1, 1, 2, 1), (7, 2, 4, 3)],
                         ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_gradients_equal_plain_pytorch_autograd(name, shape):
    module = generated(name)
    params, xs, state0, dhs, dstateT = problem(module, *shape, seed=sum(shape))
    hs, stateT, cache = module.forward(params, xs, state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    t_hs, t_grads, t_dxs, t_dstate0 = torch_gradients(PLAIN[name], params, xs, state0, dhs, dstateT)
    close(hs, t_hs, "hs")
    close(dxs, t_dxs, "dxs")
    for k in params:
        close(grads[k], t_grads[k], k)
    for k in module.STATE:
        close(dstate0[k], t_dstate0[k], f"dstate0[{k}]")


def test_the_comparison_fails_on_a_wrong_gradient():
    """The checker can fail: a plain IndRNN cut off from its past (truncated BPTT) disagrees."""
    module = generated("indrnn")
    params, xs, state0, dhs, dstateT = random_problem(module, 4, 2, 3, 3, seed=5)
    cache = module.forward(params, xs, state0)[2]
    grads = module.backward(params, cache, dhs, dstateT)[0]

    def truncated(p, xs, s0):
        h, hs = s0["h"], []
        for x in xs:
            h = torch.relu(x @ p["W"].T + p["u"] * h.detach() + p["b"])
            hs.append(h)
        return torch.stack(hs), {"h": h}
    t_grads = torch_gradients(truncated, params, xs, state0, dhs, dstateT)[1]
    with pytest.raises(AssertionError):
        close(grads["W"], t_grads["W"], "W")
    nan = dict(grads, W=np.full_like(grads["W"], np.nan))
    with pytest.raises(AssertionError):
        close(nan["W"], grads["W"], "W")


def test_the_rectifier_derivative_the_indrnn_document_states():
    """The IndRNN notes say relu' = (1 + sign z)/2, from relu(z) = (z + |z|)/2."""
    partial = derivative(Kind.RELU, 0)
    assert Kind.RELU.expr == (X + sp.Abs(X)) / 2
    assert sp.simplify(partial.expr - (1 + sp.sign(X)) / 2) == 0
    assert partial.expr.subs(X, 2) == 1 and partial.expr.subs(X, -3) == 0


def outputs_only(module, T, B, D, H, seed):
    """A problem whose loss reads the outputs alone (the final h is an output too)."""
    params, xs, state0, dhs, dstateT = problem(module, T, B, D, H, seed)
    dstateT = {s: v if s == "h" else np.zeros_like(v) for s, v in dstateT.items()}
    return params, xs, state0, dhs, dstateT


def test_slstm_stabiliser_gets_no_gradient_from_a_loss_of_the_outputs():
    """Backward keeps the exact derivative through m; for a loss of the outputs it cancels
    (Section sec:stabiliser): the total gradient of every computed m_t is rounding, and the
    gradients equal the stop-gradient ones."""
    from catalogue.cells import get_entry
    from derive.derivation import derive
    from derive.interpret import run
    module = generated("slstm")
    params, xs, state0, dhs, dstateT = outputs_only(module, 6, 3, 3, 4, seed=2)
    grads, dxs, dstate0 = module.backward(params, module.forward(params, xs, state0)[2], dhs, dstateT)
    trace = run(derive(get_entry("slstm").cell), params, xs, state0, dhs, dstateT)[5]
    d_m = np.array([step["d_m"] for step in trace])          # (B12) at every step
    d_p = np.array([step["d_p"] for step in trace])          # one of the branches it sums
    assert np.abs(d_m).max() < 1e-12 * np.abs(d_p).max()
    assert np.abs(d_p).max() > 1e-3                            # the branches themselves are not small
    assert np.abs(dstate0["m"]).max() > 1e-3   # m_0 is an input: moving it alone moves e^{m_0} c_0
    t_grads = torch_gradients(lambda p, x, s: slstm_plain(p, x, s, stop_gradient=True),
                              params, xs, state0, dhs, dstateT)[1]
    for k in params:
        close(grads[k], t_grads[k], k)


def test_slstm_stabiliser_matters_for_a_loss_of_the_final_cell_state():
    """Reading c_T directly is not invariant: there the stop-gradient is wrong and ours is right."""
    module = generated("slstm")
    params, xs, state0, dhs, dstateT = problem(module, 4, 2, 3, 3, seed=3)
    grads = module.backward(params, module.forward(params, xs, state0)[2], dhs, dstateT)[0]
    exact = torch_gradients(slstm_plain, params, xs, state0, dhs, dstateT)[1]
    stopped = torch_gradients(lambda p, x, s: slstm_plain(p, x, s, stop_gradient=True),
                              params, xs, state0, dhs, dstateT)[1]
    for k in params:
        close(grads[k], exact[k], k)
    with pytest.raises(AssertionError):
        close(grads["b_i"], stopped["b_i"], "b_i")


def test_slstm_stabiliser_identities_the_document_shows():
    """(M1)-(M5), checked by writing the step out here from the paper's equations, with the
    stabiliser a free symbol mu; and the document prints each of them."""
    from catalogue.cells import get_entry
    from derive.stabiliser import stabiliser
    from derive.terms import value
    proof = stabiliser(get_entry("slstm").cell, "m")
    c0, n0, m0, l, a_i, z, o, mu = (value(v) for v in ("c_prev", "n_prev", "m_prev", "l", "a_i", "z", "o", "m"))
    c = sp.exp(l + m0 - mu) * c0 + sp.exp(a_i - mu) * z
    n = sp.exp(l + m0 - mu) * n0 + sp.exp(a_i - mu)
    h = o * c / n
    written = {"c": c, "n": n}
    now = {value("c"): c, value("n"): n}
    assert [s for s, _ in proof.rescaled] == ["c", "n"]
    for s, d in proof.rescaled:                                      # (M1), (M2)
        assert sp.simplify(d - sp.diff(written[s], mu)) == 0
        assert sp.simplify(d + written[s]) == 0
    total = sum(dh * ds for _, dh, ds in proof.paths)                # (M3)
    assert proof.total == 0 and sp.simplify(total.subs(now)) == 0
    assert sp.simplify(sp.diff(h, mu)) == 0
    for (s, dh, _), want in zip(proof.paths, (o / value("n"), -o * value("c") / value("n") ** 2)):
        assert sp.simplify(dh - want) == 0
    for s, e in proof.unscaled:                                      # (M4), (M5)
        assert not e.has(mu)
        assert sp.simplify(sp.exp(mu) * written[s] - e) == 0
    tex = (GENERATED / "slstm.tex").read_text()
    for n in range(1, 6):
        assert tex.count(rf"\label{{eq:M{n}}}") == 1
    assert r"= -c_{t} \tag{M1}" in tex and r"= -n_{t} \tag{M2}" in tex
    assert r"= 0" in tex.split(r"\label{eq:M2}")[1].split(r"\label{eq:M3}")[0]


def test_the_stabiliser_proof_rejects_a_state_that_is_not_one():
    from catalogue.cells import get_entry
    from derive.errors import DeriveError
    from derive.stabiliser import stabiliser
    for cell, state in (("slstm", "c"), ("slstm", "n"), ("lstm", "c")):
        with pytest.raises(DeriveError, match="depends on|not"):
            stabiliser(get_entry(cell).cell, state)


def test_slstm_normalised_cell_is_a_weighted_average_of_its_inputs():
    """The intuition: from a zero state c_t / n_t lies in [-1, 1] (an average of tanh values),
    however large the exponential input gates are, and h_t is it times the output gate."""
    module = generated("slstm")
    params = {k: 8 * v for k, v in module.init_params(3, 4, seed=4).items()}
    params["b_i"] = params["b_i"] + 800.0   # exp(a_i) alone would overflow float64 (above e^709)
    xs = np.random.default_rng(4).normal(size=(12, 5, 3))
    hs, stateT, _ = module.forward(params, xs)
    ratio = stateT["c"] / stateT["n"]
    assert np.all(np.isfinite(hs)) and np.all(np.abs(ratio) <= 1)
    assert np.all(np.abs(hs) <= 1) and np.abs(ratio).max() > 0.5
