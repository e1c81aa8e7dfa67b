"""A GRU as step functions in the course style (written for these tests).

Batch rows: x (N, D), prev_h (N, H); Wx (D, 3H), Wh (H, 3H), b (3H,) with the blocks
update gate z, reset gate r, candidate n; the candidate reads the reset state r * h:
n = tanh(x Wx_n + (r * prev_h) Wh_n + b_n), and h = (1 - z) * n + z * prev_h.  Its
adapter is the three-line LAYOUT below (the course preset with GRU names and gates).
"""
import numpy as np

LAYOUT = {"preset": "course-step", "gates": "zrn",
          "forward": "gru_step_forward(x, h, Wx, Wh, b) -> h, cache",
          "backward": "gru_step_backward(dh, cache) -> dx, dh, dWx, dWh, db"}


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def gru_step_forward(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    ax = x.dot(Wx) + b
    z = sigmoid(ax[:, :H] + prev_h.dot(Wh[:, :H]))
    r = sigmoid(ax[:, H:2 * H] + prev_h.dot(Wh[:, H:2 * H]))
    s = r * prev_h
    n = np.tanh(ax[:, 2 * H:] + s.dot(Wh[:, 2 * H:]))
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, z, r, s, n)


def gru_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, z, r, s, n = cache
    H = prev_h.shape[1]
    dn = dnext_h * (1 - z)
    dz = dnext_h * (prev_h - n)
    dan = dn * (1 - n ** 2)
    ds = dan.dot(Wh[:, 2 * H:].T)
    dr = ds * prev_h
    daz = dz * z * (1 - z)
    dar = dr * r * (1 - r)
    da = np.hstack((daz, dar, dan))
    dprev_h = dnext_h * z + ds * r + daz.dot(Wh[:, :H].T) + dar.dot(Wh[:, H:2 * H].T)
    dx = da.dot(Wx.T)
    dWx = x.T.dot(da)
    dWh = np.hstack((prev_h.T.dot(daz), prev_h.T.dot(dar), s.T.dot(dan)))
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db
