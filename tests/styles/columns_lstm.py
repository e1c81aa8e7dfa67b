"""A vectorised LSTM with features first (written for these tests).

Sequences are (features, batch, time) arrays; each step works on columns, z = [x; h]
(D + H, B), with one weight matrix W (4H, D + H) used as W @ z, a column bias b (4H, 1),
and gates i, f, g, o.  h0 and c0 are required; backward takes dL/dh for every step and
returns no final-state gradients.  Its adapter is the LAYOUT below (three lines).
"""
import numpy as np

LAYOUT = {"forward": "lstm_fwd(xs, W, b, h0, c0) -> hs, cache", "params": {"W": "W+U", "b": "b"},
          "backward": "lstm_bwd(dhs, cache) -> dxs, dW, db, dh0, dc0", "gates": "ifgo",
          "weights": "gates_by_in", "batch": "columns", "sequence": "DBT"}


def sig(a):
    return 1 / (1 + np.exp(-a))


def lstm_fwd(X, W, b, h0, c0):
    D, B, T = X.shape
    H = h0.shape[0]
    h, c, hs, cache = h0, c0, np.zeros((H, B, T), X.dtype), []
    for t in range(T):
        z = np.vstack((X[:, :, t], h))
        a = W @ z + b
        i, f, g, o = sig(a[:H]), sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sig(a[3 * H:])
        c_prev, c = c, f * c + i * g
        h = o * np.tanh(c)
        hs[:, :, t] = h
        cache.append((z, i, f, g, o, c_prev, c))
    return hs, (cache, W, D, H)


def lstm_bwd(dhs, cache):
    steps, W, D, H = cache
    dW, db = np.zeros_like(W), np.zeros((W.shape[0], 1), W.dtype)
    dh, dc = np.zeros_like(dhs[:, :, 0]), np.zeros_like(dhs[:, :, 0])
    dxs = np.zeros((D,) + dhs.shape[1:], W.dtype)
    for t in reversed(range(dhs.shape[2])):
        z, i, f, g, o, c_prev, c = steps[t]
        dh = dh + dhs[:, :, t]
        tc = np.tanh(c)
        dc = dc + dh * o * (1 - tc ** 2)
        da = np.vstack((dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                        dh * tc * o * (1 - o)))
        dW += da @ z.T
        db += da.sum(axis=1, keepdims=True)
        dz = W.T @ da
        dxs[:, :, t], dh, dc = dz[:D], dz[D:], dc * f
    return dxs, dW, db, dh, dc
