"""minimal gated unit: a single forget gate both resets and updates the state: forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `mgu`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/mgu.tex.  Depends on NumPy only.

Shapes: xs (T, B, D); the output (B, H) per step; state h (B, H).
"""
import numpy

PARAMS = {
    "W_f": ("H", "D"),
    "W_n": ("H", "D"),
    "U_f": ("H", "H"),
    "U_n": ("H", "H"),
    "b_f": ("H",),
    "b_n": ("H",),
}
STATE = ("h",)
STATE_SIZES = {"h": "H"}
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
    Wcat_x = numpy.concatenate([params["W_f"]])
    Wcat_h_prev = numpy.concatenate([params["U_f"]])
    bcat = numpy.concatenate([params["b_f"]])
    Wcat1_x = numpy.concatenate([params["W_n"]])
    Wcat1_n_1 = numpy.concatenate([params["U_n"]])
    bcat1 = numpy.concatenate([params["b_n"]])
    # input terms of a_f for all steps
    A_x = (xs.reshape(T * B, -1) @ Wcat_x.T + bcat).reshape(T, B, H)
    # input terms of a_n for all steps
    A1_x = (xs.reshape(T * B, -1) @ Wcat1_x.T + bcat1).reshape(T, B, H)
    h_seq = numpy.empty((T + 1, B, H), dtype)
    h_seq[0] = state0["h"]
    f_seq = numpy.empty((T, B, H), dtype)
    n_1_seq = numpy.empty((T, B, H), dtype)
    n_seq = numpy.empty((T, B, H), dtype)
    h_1_seq = numpy.empty((T, B, H), dtype)
    for t in range(T):
        h_prev = h_seq[t]
        A = A_x[t] + h_prev @ Wcat_h_prev.T  # (F1)
        a_f = A[:, 0:H]
        f_seq[t] = (1/2)*numpy.tanh((1/2)*a_f) + 1/2  # (F2)
        f = f_seq[t]
        n_1_seq[t] = f*h_prev  # (F3)
        n_1 = n_1_seq[t]
        A1 = A1_x[t] + n_1 @ Wcat1_n_1.T  # (F4)
        a_n = A1[:, 0:H]
        n_seq[t] = numpy.tanh(a_n)  # (F5)
        n = n_seq[t]
        h_1_seq[t] = 1 - f  # (F6)
        h_1 = h_1_seq[t]
        h_2 = h_1*h_prev  # (F7)
        h_3 = f*n  # (F8)
        h_seq[t + 1] = h_2 + h_3  # (F9)
    cache = dict(xs=xs, params=params, sizes=sizes, Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat=bcat, Wcat1_x=Wcat1_x, Wcat1_n_1=Wcat1_n_1, bcat1=bcat1, h_seq=h_seq, f_seq=f_seq, n_1_seq=n_1_seq, n_seq=n_seq, h_1_seq=h_1_seq)
    stateT = {"h": h_seq[T].copy()}
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
    Wcat1_x = cache["Wcat1_x"]
    Wcat1_n_1 = cache["Wcat1_n_1"]
    bcat1 = cache["bcat1"]
    h_seq = cache["h_seq"]
    f_seq = cache["f_seq"]
    n_1_seq = cache["n_1_seq"]
    n_seq = cache["n_seq"]
    h_1_seq = cache["h_1_seq"]
    dxs = numpy.zeros_like(xs)
    d_h_next = dstateT["h"]
    d_A_seq = numpy.empty((T, B, H), dtype)
    d_Wcat_h_prev = numpy.zeros_like(Wcat_h_prev)
    d_A1_seq = numpy.empty((T, B, H), dtype)
    d_Wcat1_n_1 = numpy.zeros_like(Wcat1_n_1)
    for t in reversed(range(T)):
        h_prev = h_seq[t]
        f = f_seq[t]
        n_1 = n_1_seq[t]
        n = n_seq[t]
        h_1 = h_1_seq[t]
        d_A = d_A_seq[t]
        d_A1 = d_A1_seq[t]
        d_h = dhs[t] + d_h_next  # (B1) fork: loss, next step
        d_h_3 = d_h  # (B2)
        d_h_2 = d_h  # (B3)
        d_h_1 = d_h_2*h_prev  # (B4)
        d_n = d_h_3*f  # (B5)
        d_A1[:, 0:H] = d_n*(1 - n**2)  # (B6)
        d_n_1 = d_A1 @ Wcat1_n_1  # (B7)
        d_f = -d_h_1 + d_h_3*n + d_n_1*h_prev  # (B8) fork: n_1, h_1, h_3
        d_A[:, 0:H] = d_f*f*(1 - f)  # (B9)
        d_h_prev = d_h_2*h_1 + d_n_1*f + d_A @ Wcat_h_prev  # (B10) fork: a_f, n_1, h_2
        d_Wcat_h_prev += d_A.T @ h_prev  # (P3)
        d_Wcat1_n_1 += d_A1.T @ n_1  # (P4)
        d_h_next = d_h_prev
    grads = {}
    d_A_flat = d_A_seq.reshape(T * B, H)
    d_Wcat_x = d_A_flat.T @ xs.reshape(T * B, -1)  # (P1)
    dxs += (d_A_flat @ Wcat_x).reshape(T, B, -1)  # (B11)
    d_bcat = d_A_flat.sum(axis=0)  # (P5)
    d_A1_flat = d_A1_seq.reshape(T * B, H)
    d_Wcat1_x = d_A1_flat.T @ xs.reshape(T * B, -1)  # (P2)
    dxs += (d_A1_flat @ Wcat1_x).reshape(T, B, -1)  # (B11)
    d_bcat1 = d_A1_flat.sum(axis=0)  # (P6)
    grads["W_f"] = d_Wcat_x[0:H]
    grads["U_f"] = d_Wcat_h_prev[0:H]
    grads["b_f"] = d_bcat[0:H]
    grads["W_n"] = d_Wcat1_x[0:H]
    grads["U_n"] = d_Wcat1_n_1[0:H]
    grads["b_n"] = d_bcat1[0:H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, {"h": d_h_next}


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
