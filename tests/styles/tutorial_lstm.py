"""An LSTM in the style of from-scratch tutorials (written for these tests).

One sample at a time in column vectors: x (D, 1), h and c (H, 1).  Each gate has its own
weight matrix acting on the concatenation z = [h; x] (so Wf is (H, H + D)) and its own
column bias bf (H, 1); the candidate is called c ("Wc", "bc").  The step backward takes
the gradient of the new h and c and returns those of the previous ones and the parameter
gradients in a dict, but no gradient of x.  Its adapter is the LAYOUT below (five lines).
"""
import numpy as np

LAYOUT = {"step": True, "batch": "single", "weights": "gates_by_in", "gates": "figo",
          "params": {"W{gate}": "U+W", "b{gate}": "b"}, "gate_names": {"g": "c"},
          "forward": "lstm_cell_forward(x, h, c, params) -> h, c, cache",
          "backward": "lstm_cell_backward(dh, dc, cache) -> dh, dc, grads"}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_cell_forward(x, h_prev, c_prev, p):
    z = np.vstack((h_prev, x))
    f = sigmoid(p["Wf"] @ z + p["bf"])
    i = sigmoid(p["Wi"] @ z + p["bi"])
    c_bar = np.tanh(p["Wc"] @ z + p["bc"])
    o = sigmoid(p["Wo"] @ z + p["bo"])
    c = f * c_prev + i * c_bar
    h = o * np.tanh(c)
    return h, c, (z, f, i, c_bar, o, c, c_prev, p)


def lstm_cell_backward(dh_next, dc_next, cache):
    z, f, i, c_bar, o, c, c_prev, p = cache
    H = c.shape[0]
    do = dh_next * np.tanh(c)
    dc = dc_next + dh_next * o * (1 - np.tanh(c) ** 2)
    dc_bar = dc * i
    di = dc * c_bar
    df = dc * c_prev
    da = {"f": df * f * (1 - f), "i": di * i * (1 - i), "c": dc_bar * (1 - c_bar ** 2), "o": do * o * (1 - o)}
    grads = {}
    dz = np.zeros_like(z)
    for k, d in da.items():
        grads["W" + k] = d @ z.T
        grads["b" + k] = d
        dz += p["W" + k].T @ d
    return dz[:H], dc * f, grads
