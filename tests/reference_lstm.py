"""Hand-written NumPy reference implementation of a standard LSTM.

Standard LSTM with a forget gate and no peephole connections, run over a whole
sequence. Forward and backward are both written out by hand with plain loops
over time and one explicit formula per gate, so each line can be checked
against the equations below. This file does not use autodiff and does not
call the implementation it is meant to test.

Per time step t (rows are batch items; x_t is (B, D), h and c are (B, H)):

    a_f = x_t W_f^T + h_{t-1} U_f^T + b_f      f = sigmoid(a_f)   forget gate
    a_i = x_t W_i^T + h_{t-1} U_i^T + b_i      i = sigmoid(a_i)   input gate
    a_g = x_t W_g^T + h_{t-1} U_g^T + b_g      g = tanh(a_g)      candidate c~
    a_o = x_t W_o^T + h_{t-1} U_o^T + b_o      o = sigmoid(a_o)   output gate

    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Parameter shapes: W_* (H, D), U_* (H, H), b_* (H,).
Parameter dict keys: W_f W_i W_g W_o U_f U_i U_g U_o b_f b_i b_g b_o.

API
---
forward(params, xs, state0=None) -> (hs, stateT, cache)
backward(params, cache, dhs, dstateT=None) -> (grads, dxs, dstate0)

The computation runs in float64. Integer and low-precision inputs are
converted to float64; if any input is already a wider float type, that wider
type is kept.
"""

import numpy as np

GATES = ("f", "i", "g", "o")
PARAM_KEYS = tuple("W_" + k for k in GATES) + tuple("U_" + k for k in GATES) \
    + tuple("b_" + k for k in GATES)


def _dtype(*arrays):
    """Common float dtype for the computation (at least float64)."""
    return np.result_type(np.float64, *[np.asarray(a).dtype for a in arrays])


def sigmoid(a):
    """Numerically stable logistic sigmoid.

    For a >= 0 use 1 / (1 + exp(-a)); for a < 0 use exp(a) / (1 + exp(a)).
    In both branches the exponent is -|a| <= 0, so exp never overflows.
    """
    e = np.exp(-np.abs(a))            # in (0, 1], never overflows
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def forward(params, xs, state0=None):
    """Run the LSTM over a whole sequence.

    params : dict of the 12 arrays listed in the module docstring.
    xs     : (T, B, D) inputs.
    state0 : None (zero initial state) or {"h": (B, H), "c": (B, H)}.

    Returns
    -------
    hs     : (T, B, H) hidden states h_1 .. h_T.
    stateT : {"h": h_T, "c": c_T}, each (B, H).
    cache  : values saved for backward.
    """
    xs = np.asarray(xs)
    T, B, D = xs.shape
    H = np.asarray(params["U_f"]).shape[0]

    extra = [] if state0 is None else [state0["h"], state0["c"]]
    dt = _dtype(xs, *[params[k] for k in PARAM_KEYS], *extra)
    P = {k: np.asarray(params[k], dtype=dt) for k in PARAM_KEYS}
    xs = xs.astype(dt)

    if state0 is None:
        h_prev = np.zeros((B, H), dtype=dt)
        c_prev = np.zeros((B, H), dtype=dt)
    else:
        h_prev = np.array(state0["h"], dtype=dt)   # copy: never alias caller data
        c_prev = np.array(state0["c"], dtype=dt)

    hs = np.zeros((T, B, H), dtype=dt)
    steps = []   # one dict per time step with everything backward needs

    for t in range(T):
        x = xs[t]

        # Pre-activations of the four gates: input part + recurrent part + bias.
        a_f = x @ P["W_f"].T + h_prev @ P["U_f"].T + P["b_f"]
        a_i = x @ P["W_i"].T + h_prev @ P["U_i"].T + P["b_i"]
        a_g = x @ P["W_g"].T + h_prev @ P["U_g"].T + P["b_g"]
        a_o = x @ P["W_o"].T + h_prev @ P["U_o"].T + P["b_o"]

        # Gate nonlinearities.
        f = sigmoid(a_f)
        i = sigmoid(a_i)
        g = np.tanh(a_g)
        o = sigmoid(a_o)

        # Cell update and output.
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c

        hs[t] = h
        steps.append({
            "x": x, "h_prev": h_prev, "c_prev": c_prev,
            "f": f, "i": i, "g": g, "o": o,
            "c": c, "tanh_c": tanh_c,
        })

        h_prev, c_prev = h, c

    stateT = {"h": h_prev.copy(), "c": c_prev.copy()}
    cache = {"params": P, "steps": steps, "shape": (T, B, D, H), "dtype": dt}
    return hs, stateT, cache


def backward(params, cache, dhs, dstateT=None):
    """Backpropagation through time for the whole sequence.

    params  : the same parameter dict passed to forward (the cached copy is used).
    cache   : the cache returned by forward.
    dhs     : (T, B, H), dL/dh_t from the loss at every step (the direct part only).
    dstateT : None or {"h": (B, H), "c": (B, H)}, extra gradient of the loss
              w.r.t. the final state; added to what flows into h_T and c_T.

    Returns
    -------
    grads   : dict keyed like params, same shapes, dL/dparam summed over time and batch.
    dxs     : (T, B, D), dL/dx_t.
    dstate0 : {"h": dL/dh_0, "c": dL/dc_0}, each (B, H).
    """
    P = cache["params"]
    steps = cache["steps"]
    T, B, D, H = cache["shape"]
    dt = cache["dtype"]
    dhs = np.asarray(dhs, dtype=dt)

    # Parameter gradients start at zero and collect one term per time step
    # (each term is already summed over the batch by the matrix products).
    grads = {k: np.zeros_like(P[k]) for k in PARAM_KEYS}
    dxs = np.zeros((T, B, D), dtype=dt)

    # Gradient coming into step t from step t+1 through the recurrent state.
    # At the last step there is no step t+1. The only gradient on (h_T, c_T)
    # from outside the sequence is the optional dstateT.
    if dstateT is None:
        dh_next = np.zeros((B, H), dtype=dt)
        dc_next = np.zeros((B, H), dtype=dt)
    else:
        dh_next = np.array(dstateT["h"], dtype=dt)
        dc_next = np.array(dstateT["c"], dtype=dt)

    for t in reversed(range(T)):
        s = steps[t]
        x, h_prev, c_prev = s["x"], s["h_prev"], s["c_prev"]
        f, i, g, o = s["f"], s["i"], s["g"], s["o"]
        tanh_c = s["tanh_c"]

        # h_t has two uses: the loss at step t (dhs[t]) and the four gates of
        # step t+1 (dh_next). Its total gradient is the sum of both.
        dh = dhs[t] + dh_next

        # h_t = o * tanh(c_t)
        #   dL/do      = dh * tanh(c_t)
        #   dL/dtanh_c = dh * o
        do = dh * tanh_c

        # c_t also has two uses: tanh(c_t), which feeds h_t, and c_{t+1} =
        # f_{t+1} * c_t + ... (dc_next). Its total gradient is the sum of
        # both. d tanh(c)/dc = 1 - tanh(c)^2.
        dc = dc_next + dh * o * (1.0 - tanh_c ** 2)

        # c_t = f * c_{t-1} + i * g
        df = dc * c_prev          # dL/df
        di = dc * g               # dL/di
        dg = dc * i               # dL/dg
        dc_prev = dc * f          # dL/dc_{t-1}: c_{t-1} only feeds c_t at this step

        # Back through the nonlinearities to the pre-activations.
        #   sigmoid'(a) = s (1 - s),  tanh'(a) = 1 - tanh(a)^2
        da_f = df * f * (1.0 - f)
        da_i = di * i * (1.0 - i)
        da_g = dg * (1.0 - g ** 2)
        da_o = do * o * (1.0 - o)

        da = {"f": da_f, "i": da_i, "g": da_g, "o": da_o}

        # a_k = x W_k^T + h_{t-1} U_k^T + b_k for each gate k.
        # Parameter gradients: one term per step, added over time. The matrix
        # product da^T @ x sums over the batch rows, e.g.
        #   dW_k[j, d] += sum_b da_k[b, j] * x[b, d]
        #   db_k[j]    += sum_b da_k[b, j]
        for k in GATES:
            grads["W_" + k] += da[k].T @ x
            grads["U_" + k] += da[k].T @ h_prev
            grads["b_" + k] += da[k].sum(axis=0)

        # x_t feeds all four gates, so dL/dx_t is the sum of four terms:
        #   dx = da_f W_f + da_i W_i + da_g W_g + da_o W_o
        dx = da_f @ P["W_f"]
        dx = dx + da_i @ P["W_i"]
        dx = dx + da_g @ P["W_g"]
        dx = dx + da_o @ P["W_o"]
        dxs[t] = dx

        # h_{t-1} also feeds all four gates of this step, so its gradient is a
        # sum of four terms:
        #   dh_prev = da_f U_f + da_i U_i + da_g U_g + da_o U_o
        # This is only the recurrent part. The direct loss term dhs[t-1] is
        # added at the top of the next iteration (step t-1).
        dh_prev = da_f @ P["U_f"]
        dh_prev = dh_prev + da_i @ P["U_i"]
        dh_prev = dh_prev + da_g @ P["U_g"]
        dh_prev = dh_prev + da_o @ P["U_o"]

        dh_next, dc_next = dh_prev, dc_prev

    # After the loop, dh_next / dc_next hold dL/dh_0 and dL/dc_0. h_0 gets no
    # direct loss term, because hs holds only h_1 .. h_T.
    # If T == 0, they are simply the dstateT values.
    dstate0 = {"h": dh_next, "c": dc_next}
    return grads, dxs, dstate0
