"""A plain tanh RNN as the course's step and sequence functions (written for these tests).

x (N, D) rows, Wx (D, H), Wh (H, H), b (H,); next_h = tanh(x Wx + prev_h Wh + b).  The
sequence functions take a batch-first x (N, T, D).  No adapter: `--layout course-rnn-step`
or `--layout course-rnn-seq`.
"""
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    h, hs, caches = h0, [], []
    for t in range(x.shape[1]):
        h, cache = rnn_step_forward(x[:, t, :], h, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def rnn_backward(dh, caches):
    dprev = np.zeros_like(dh[:, 0, :])
    dx, dWx, dWh, db = [], 0, 0, 0
    for t in reversed(range(dh.shape[1])):
        dx_t, dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev, caches[t])
        dx.insert(0, dx_t)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return np.stack(dx, axis=1), dprev, dWx, dWh, db
