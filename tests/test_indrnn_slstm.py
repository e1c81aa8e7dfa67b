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

from conftest import generated, random_problem
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


PLAIN = {"indrnn": indrnn_plain}


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
    params, xs, state0, dhs, dstateT = random_problem(module, *shape, seed=sum(shape))
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
