"""GRU as PyTorch and cuDNN compute it: reset gate applied after the recurrent product: forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `gru_reset_after`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/gru_reset_after.tex.  Depends on NumPy only.

Shapes: xs (T, B, D); the output (B, H) per step; state h (B, H).
"""
import numpy

PARAMS = {
    "W_z": ("H", "D"),
    "W_r": ("H", "D"),
    "W_n": ("H", "D"),
    "U_z": ("H", "H"),
    "U_r": ("H", "H"),
    "U_n": ("H", "H"),
    "b_z": ("H",),
    "b_r": ("H",),
    "b_n": ("H",),
    "b_hn": ("H",),
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
    Wcat_x = numpy.concatenate([params["W_z"], params["W_r"]])
    Wcat_h_prev = numpy.concatenate([params["U_z"], params["U_r"]])
    bcat = numpy.concatenate([params["b_z"], params["b_r"]])
    Wcat1_x = numpy.concatenate([params["W_n"]])
    bcat1 = numpy.concatenate([params["b_n"]])
    Wcat2_h_prev = numpy.concatenate([params["U_n"]])
    bcat2 = numpy.concatenate([params["b_hn"]])
    # input terms of a_z, a_r for all steps
    A_x = (xs.reshape(T * B, -1) @ Wcat_x.T + bcat).reshape(T, B, 2*H)
    # input terms of a_nx for all steps
    A1_x = (xs.reshape(T * B, -1) @ Wcat1_x.T + bcat1).reshape(T, B, H)
    h_seq = numpy.empty((T + 1, B, H), dtype)
    h_seq[0] = state0["h"]
    a_nh_seq = numpy.empty((T, B, H), dtype)
    z_seq = numpy.empty((T, B, H), dtype)
    r_seq = numpy.empty((T, B, H), dtype)
    n_seq = numpy.empty((T, B, H), dtype)
    v_seq = numpy.empty((T, B, H), dtype)
    for t in range(T):
        h_prev = h_seq[t]
        A = A_x[t] + h_prev @ Wcat_h_prev.T  # (F1)-(F2)
        a_z = A[:, 0:H]
        a_r = A[:, H:2*H]
        A1 = A1_x[t]  # (F3)
        a_nx = A1[:, 0:H]
        A2 = h_prev @ Wcat2_h_prev.T + bcat2  # (F4)
        a_nh_seq[t] = A2[:, 0:H]
        a_nh = a_nh_seq[t]
        z_seq[t] = (1/2)*numpy.tanh((1/2)*a_z) + 1/2  # (F5)
        z = z_seq[t]
        r_seq[t] = (1/2)*numpy.tanh((1/2)*a_r) + 1/2  # (F6)
        r = r_seq[t]
        s = a_nh*r  # (F7)
        a_n = a_nx + s  # (F8)
        n_seq[t] = numpy.tanh(a_n)  # (F9)
        n = n_seq[t]
        v_seq[t] = 1 - z  # (F10)
        v = v_seq[t]
        m = n*v  # (F11)
        q = h_prev*z  # (F12)
        h_seq[t + 1] = m + q  # (F13)
    cache = dict(xs=xs, params=params, sizes=sizes, Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat=bcat, Wcat1_x=Wcat1_x, bcat1=bcat1, Wcat2_h_prev=Wcat2_h_prev, bcat2=bcat2, h_seq=h_seq, a_nh_seq=a_nh_seq, z_seq=z_seq, r_seq=r_seq, n_seq=n_seq, v_seq=v_seq)
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
    bcat1 = cache["bcat1"]
    Wcat2_h_prev = cache["Wcat2_h_prev"]
    bcat2 = cache["bcat2"]
    h_seq = cache["h_seq"]
    a_nh_seq = cache["a_nh_seq"]
    z_seq = cache["z_seq"]
    r_seq = cache["r_seq"]
    n_seq = cache["n_seq"]
    v_seq = cache["v_seq"]
    dxs = numpy.zeros_like(xs)
    d_h_next = dstateT["h"]
    d_A_seq = numpy.empty((T, B, 2*H), dtype)
    d_Wcat_h_prev = numpy.zeros_like(Wcat_h_prev)
    d_A1_seq = numpy.empty((T, B, H), dtype)
    d_A2 = numpy.empty((B, H), dtype)
    d_Wcat2_h_prev = numpy.zeros_like(Wcat2_h_prev)
    d_bcat2 = numpy.zeros_like(bcat2)
    for t in reversed(range(T)):
        h_prev = h_seq[t]
        a_nh = a_nh_seq[t]
        z = z_seq[t]
        r = r_seq[t]
        n = n_seq[t]
        v = v_seq[t]
        d_A = d_A_seq[t]
        d_A1 = d_A1_seq[t]
        d_h = dhs[t] + d_h_next  # (B1) fork: loss, next step
        d_q = d_h  # (B2)
        d_m = d_h  # (B3)
        d_v = d_m*n  # (B4)
        d_n = d_m*v  # (B5)
        d_a_n = d_n*(1 - n**2)  # (B6)
        d_s = d_a_n  # (B7)
        d_r = a_nh*d_s  # (B8)
        d_z = d_q*h_prev - d_v  # (B9) fork: v, q
        d_A2[:, 0:H] = d_s*r  # (B10)
        d_A1[:, 0:H] = d_a_n  # (B11)
        d_A[:, H:2*H] = d_r*r*(1 - r)  # (B12)
        d_A[:, 0:H] = d_z*z*(1 - z)  # (B13)
        d_h_prev = d_q*z + d_A @ Wcat_h_prev + d_A2 @ Wcat2_h_prev  # (B14) fork: a_z, a_r, a_nh, q
        d_Wcat_h_prev += d_A.T @ h_prev  # (P4)-(P5)
        d_Wcat2_h_prev += d_A2.T @ h_prev  # (P6)
        d_bcat2 += d_A2.sum(axis=0)  # (P10)
        d_h_next = d_h_prev
    grads = {}
    d_A_flat = d_A_seq.reshape(T * B, 2*H)
    d_Wcat_x = d_A_flat.T @ xs.reshape(T * B, -1)  # (P1)-(P2)
    dxs += (d_A_flat @ Wcat_x).reshape(T, B, -1)  # (B15)
    d_bcat = d_A_flat.sum(axis=0)  # (P7)-(P8)
    d_A1_flat = d_A1_seq.reshape(T * B, H)
    d_Wcat1_x = d_A1_flat.T @ xs.reshape(T * B, -1)  # (P3)
    dxs += (d_A1_flat @ Wcat1_x).reshape(T, B, -1)  # (B15)
    d_bcat1 = d_A1_flat.sum(axis=0)  # (P9)
    grads["W_z"] = d_Wcat_x[0:H]
    grads["W_r"] = d_Wcat_x[H:2*H]
    grads["U_z"] = d_Wcat_h_prev[0:H]
    grads["U_r"] = d_Wcat_h_prev[H:2*H]
    grads["b_z"] = d_bcat[0:H]
    grads["b_r"] = d_bcat[H:2*H]
    grads["W_n"] = d_Wcat1_x[0:H]
    grads["b_n"] = d_bcat1[0:H]
    grads["U_n"] = d_Wcat2_h_prev[0:H]
    grads["b_hn"] = d_bcat2[0:H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, {"h": d_h_next}


# PyTorch's torch.nn.GRU(input_size=D, hidden_size=H) keeps these parameters
# stacked in its state dict; each key lists the parameters in its blocks of rows.
TORCH_MODULE = "GRU"
TORCH_KEYS = {
    "weight_ih_l0": ("W_r", "W_z", "W_n"),
    "weight_hh_l0": ("U_r", "U_z", "U_n"),
    "bias_ih_l0": ("b_r", "b_z", "b_n"),
    "bias_hh_l0": ("b_r", "b_z", "b_hn"),
}


def to_torch(params):
    """The state dict of torch.nn.GRU(input_size=D, hidden_size=H) holding these parameters.

    Values are NumPy arrays: `module.load_state_dict({k: torch.from_numpy(v) for k, v in ...})`.
    A parameter PyTorch keeps twice (its two biases) goes into the first key, zeros into the other.
    """
    written, state = set(), {}
    for key, names in TORCH_KEYS.items():
        state[key] = numpy.concatenate([numpy.zeros_like(params[name]) if name in written
                                        else numpy.asarray(params[name]) for name in names])
        written.update(names)
    return state


def from_torch(state_dict):
    """Parameters from a torch.nn.GRU state dict (tensors or arrays); doubled biases are added."""
    params = {}
    for key, names in TORCH_KEYS.items():
        if key not in state_dict:
            raise ValueError(f"state_dict has no {key!r}; is it a one-layer torch.nn.GRU?")
        value = state_dict[key]
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else numpy.asarray(value)
        for name, block in zip(names, numpy.split(value, len(names))):
            params[name] = params[name] + block if name in params else block.copy()
    return {name: params[name] for name in PARAMS}


def _sizes(params):
    """The size symbols, read off the parameters; every parameter's shape is checked."""
    if not isinstance(params, dict):
        raise ValueError("params must be a dict of arrays keyed like PARAMS")
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"params is missing {', '.join(missing)}")
    sizes = {
        "D": numpy.shape(params["W_z"])[1] if numpy.ndim(params["W_z"]) > 1 else 0,
        "H": numpy.shape(params["W_z"])[0] if numpy.ndim(params["W_z"]) > 0 else 0,
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
