"""LSTM whose candidate cell value uses softsign: forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `softsign_lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/softsign_lstm.tex.  Depends on NumPy only.

Shapes: xs (T, B, D); the output (B, H) per step; state h (B, H), c (B, H).
"""
import numpy

PARAMS = {
    "W_f": ("H", "D"),
    "W_i": ("H", "D"),
    "W_g": ("H", "D"),
    "W_o": ("H", "D"),
    "U_f": ("H", "H"),
    "U_i": ("H", "H"),
    "U_g": ("H", "H"),
    "U_o": ("H", "H"),
    "b_f": ("H",),
    "b_i": ("H",),
    "b_g": ("H",),
    "b_o": ("H",),
}
STATE = ("h", "c")
STATE_SIZES = {"h": "H", "c": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> init_params argument


def init_params(input_size, hidden_size, *, seed=0, dtype=numpy.float64):
    """Parameters drawn uniformly from (-1/sqrt(H), 1/sqrt(H)), the usual recurrent-cell scale."""
    sizes = {"D": int(input_size), "H": int(hidden_size)}
    if min(sizes.values()) < 1:
        raise ValueError(f"sizes must be positive, got {sizes}")
    rng = numpy.random.default_rng(seed)
    bound = 1.0 / numpy.sqrt(sizes["H"])
    return {name: rng.uniform(-bound, bound, size=tuple(sizes[s] for s in shape)).astype(dtype)
            for name, shape in PARAMS.items()}

def forward(params, xs, state0=None):
    """Run the cell over xs (T, B, D) from state0 (a dict of (B, size) arrays; zeros when None).

    Returns (hs, stateT, cache): the per-step outputs (T, B, H), the final state as a
    dict, and what `backward` needs.  The dtype of xs is kept (float32 in, float32 out).
    """
    xs = numpy.asarray(xs)
    if xs.ndim != 3:
        raise ValueError(f"xs has shape {xs.shape}, expected (T, B, D)")
    dtype = xs.dtype if numpy.issubdtype(xs.dtype, numpy.floating) else numpy.dtype(numpy.float64)
    sizes = _sizes(params)
    D = sizes["D"]
    H = sizes["H"]
    T, B = xs.shape[:2]
    if xs.shape[2] != D:
        raise ValueError(f"xs has shape {xs.shape}, expected (T, B, D) = ({T}, {B}, {D})")
    xs = xs.astype(dtype, copy=False)
    params = {name: numpy.asarray(params[name]).astype(dtype, copy=False) for name in PARAMS}
    state0 = _state(state0, "state0", B, sizes, dtype)
    Wcat_x = numpy.concatenate([params["W_f"], params["W_i"], params["W_g"], params["W_o"]])
    Wcat_h_prev = numpy.concatenate([params["U_f"], params["U_i"], params["U_g"], params["U_o"]])
    bcat = numpy.concatenate([params["b_f"], params["b_i"], params["b_g"], params["b_o"]])
    # input terms of a_f, a_i, a_g, a_o for all steps
    A_x = (xs.reshape(T * B, -1) @ Wcat_x.T + bcat).reshape(T, B, 4*H)
    h_seq = numpy.empty((T + 1, B, H), dtype)
    h_seq[0] = state0["h"]
    c_seq = numpy.empty((T + 1, B, H), dtype)
    c_seq[0] = state0["c"]
    f_seq = numpy.empty((T, B, H), dtype)
    i_seq = numpy.empty((T, B, H), dtype)
    a_g_seq = numpy.empty((T, B, H), dtype)
    g_seq = numpy.empty((T, B, H), dtype)
    o_seq = numpy.empty((T, B, H), dtype)
    h_1_seq = numpy.empty((T, B, H), dtype)
    for t in range(T):
        h_prev = h_seq[t]
        c_prev = c_seq[t]
        A = A_x[t] + h_prev @ Wcat_h_prev.T  # (F1)-(F7)
        a_f = A[:, 0:H]
        f_seq[t] = (1/2)*numpy.tanh((1/2)*a_f) + 1/2  # (F2)
        f = f_seq[t]
        a_i = A[:, H:2*H]
        i_seq[t] = (1/2)*numpy.tanh((1/2)*a_i) + 1/2  # (F4)
        i = i_seq[t]
        a_g_seq[t] = A[:, 2*H:3*H]
        a_g = a_g_seq[t]
        g_seq[t] = a_g/(abs(a_g) + 1)  # (F6)
        g = g_seq[t]
        a_o = A[:, 3*H:4*H]
        o_seq[t] = (1/2)*numpy.tanh((1/2)*a_o) + 1/2  # (F8)
        o = o_seq[t]
        c_1 = c_prev*f  # (F9)
        c_2 = g*i  # (F10)
        c_seq[t + 1] = c_1 + c_2  # (F11)
        c = c_seq[t + 1]
        h_1_seq[t] = numpy.tanh(c)  # (F12)
        h_1 = h_1_seq[t]
        h_seq[t + 1] = h_1*o  # (F13)
    cache = dict(xs=xs, params=params, sizes=sizes, Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat=bcat, h_seq=h_seq, c_seq=c_seq, f_seq=f_seq, i_seq=i_seq, a_g_seq=a_g_seq, g_seq=g_seq, o_seq=o_seq, h_1_seq=h_1_seq)
    stateT = {"h": h_seq[T].copy(), "c": c_seq[T].copy()}
    return h_seq[1:].copy(), stateT, cache


def backward(params, cache, dhs, dstateT=None):
    """Gradients of a loss L given dhs = dL/dh_t (T, B, H) and dstateT = dL/dstate_T.

    Returns (grads, dxs, dstate0): grads keyed like params, dxs (T, B, D) and
    dstate0 = dL/dstate_0 as a dict.  dstateT=None means the loss does not read the final state.
    """
    xs, sizes = cache["xs"], cache["sizes"]
    dtype = xs.dtype
    D = sizes["D"]
    H = sizes["H"]
    T, B = xs.shape[:2]
    dhs = _array("dhs", dhs, (T, B, H), dtype)
    dstateT = _state(dstateT, "dstateT", B, sizes, dtype)
    Wcat_x = cache["Wcat_x"]
    Wcat_h_prev = cache["Wcat_h_prev"]
    bcat = cache["bcat"]
    h_seq = cache["h_seq"]
    c_seq = cache["c_seq"]
    f_seq = cache["f_seq"]
    i_seq = cache["i_seq"]
    a_g_seq = cache["a_g_seq"]
    g_seq = cache["g_seq"]
    o_seq = cache["o_seq"]
    h_1_seq = cache["h_1_seq"]
    dxs = numpy.zeros_like(xs)
    d_h_next = dstateT["h"]
    d_c_next = dstateT["c"]
    d_A_seq = numpy.empty((T, B, 4*H), dtype)
    d_Wcat_h_prev = numpy.zeros_like(Wcat_h_prev)
    for t in reversed(range(T)):
        h_prev = h_seq[t]
        c_prev = c_seq[t]
        f = f_seq[t]
        i = i_seq[t]
        a_g = a_g_seq[t]
        g = g_seq[t]
        o = o_seq[t]
        h_1 = h_1_seq[t]
        d_A = d_A_seq[t]
        d_h = dhs[t] + d_h_next  # (B1) fork: loss, next step
        d_h_1 = d_h*o  # (B2)
        d_c = d_h_1*(1 - h_1**2) + d_c_next  # (B3) fork: h_1, next step
        d_c_2 = d_c  # (B4)
        d_c_1 = d_c  # (B5)
        d_o = d_h*h_1  # (B6)
        d_A[:, 3*H:4*H] = d_o*o*(1 - o)  # (B7)
        d_g = d_c_2*i  # (B8)
        d_A[:, 2*H:3*H] = d_g*(-a_g*numpy.sign(a_g)/(abs(a_g) + 1)**2 + (abs(a_g) + 1)**(-1.0))  # (B9)
        d_i = d_c_2*g  # (B10)
        d_A[:, H:2*H] = d_i*i*(1 - i)  # (B11)
        d_f = c_prev*d_c_1  # (B12)
        d_A[:, 0:H] = d_f*f*(1 - f)  # (B13)
        d_c_prev = d_c_1*f  # (B14)
        d_h_prev = d_A @ Wcat_h_prev  # (B15) fork: a_f, a_i, a_g, a_o
        d_Wcat_h_prev += d_A.T @ h_prev  # (P5)-(P8)
        d_h_next = d_h_prev
        d_c_next = d_c_prev
    grads = {}
    d_A_flat = d_A_seq.reshape(T * B, 4*H)
    d_Wcat_x = d_A_flat.T @ xs.reshape(T * B, -1)  # (P1)-(P4)
    dxs += (d_A_flat @ Wcat_x).reshape(T, B, -1)  # (B16)
    d_bcat = d_A_flat.sum(axis=0)  # (P9)-(P12)
    grads["W_f"] = d_Wcat_x[0:H]
    grads["W_i"] = d_Wcat_x[H:2*H]
    grads["W_g"] = d_Wcat_x[2*H:3*H]
    grads["W_o"] = d_Wcat_x[3*H:4*H]
    grads["U_f"] = d_Wcat_h_prev[0:H]
    grads["U_i"] = d_Wcat_h_prev[H:2*H]
    grads["U_g"] = d_Wcat_h_prev[2*H:3*H]
    grads["U_o"] = d_Wcat_h_prev[3*H:4*H]
    grads["b_f"] = d_bcat[0:H]
    grads["b_i"] = d_bcat[H:2*H]
    grads["b_g"] = d_bcat[2*H:3*H]
    grads["b_o"] = d_bcat[3*H:4*H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, {"h": d_h_next, "c": d_c_next}


def _sizes(params):
    """The size symbols, read off the parameters; every parameter's shape is checked."""
    if not isinstance(params, dict):
        raise ValueError("params must be a dict of arrays keyed like PARAMS")
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"params is missing {', '.join(missing)}")
    sizes = {
        "D": numpy.shape(params["W_f"])[1] if numpy.ndim(params["W_f"]) > 1 else 0,
        "H": numpy.shape(params["W_f"])[0] if numpy.ndim(params["W_f"]) > 0 else 0,
    }
    for name, shape in PARAMS.items():
        want = tuple(sizes[s] for s in shape)
        got = numpy.shape(params[name])
        if got != want:
            raise ValueError(f'params["{name}"] has shape {got}, expected ({", ".join(shape)}) = {want}')
    return sizes


def _array(name, value, shape, dtype):
    value = numpy.asarray(value)
    if value.shape != shape:
        raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
    return value.astype(dtype, copy=False)

def _state(state, name, B, sizes, dtype):
    """A complete state dict of (B, size) arrays; None means zeros."""
    if state is None:
        return {s: numpy.zeros((B, sizes[size]), dtype) for s, size in STATE_SIZES.items()}
    if not isinstance(state, dict) or set(state) != set(STATE):
        raise ValueError(f"{name} must be None or a dict with keys {STATE}")
    return {s: _array(f'{name}["{s}"]', state[s], (B, sizes[size]), dtype)
            for s, size in STATE_SIZES.items()}
