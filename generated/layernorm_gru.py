"""layer-normalised GRU as PyTorch computes it: the stacked input and recurrent terms normalised: forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_gru`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_gru.tex.  Depends on NumPy only.

Shapes: xs (T, B, D); the output (B, H) per step; state h (B, H).
"""
import numpy

PARAMS = {
    "W_r": ("H", "D"),
    "W_z": ("H", "D"),
    "W_n": ("H", "D"),
    "U_r": ("H", "H"),
    "U_z": ("H", "H"),
    "U_n": ("H", "H"),
    "b_r": ("H",),
    "b_z": ("H",),
    "b_n": ("H",),
    "b_hn": ("H",),
    "gamma_x": ("3*H",),
    "beta_x": ("3*H",),
    "gamma_h": ("3*H",),
    "beta_h": ("3*H",),
}
STATE = ("h",)
STATE_SIZES = {"h": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> init_params argument
INITIAL = {"beta_h": 0.0, "beta_x": 0.0, "gamma_h": 1.0, "gamma_x": 1.0}  # parameters that start at a constant, not a random draw


def init_params(input_size, hidden_size, *, seed=0, dtype=numpy.float64):
    """Parameters drawn uniformly from (-1/sqrt(H), 1/sqrt(H)), the usual recurrent-cell scale;
    beta_h, beta_x, gamma_h, gamma_x start at a constant (INITIAL: a layer norm's gains at 1, shifts at 0)."""
    sizes = {"D": int(input_size), "H": int(hidden_size)}
    if min(sizes.values()) < 1:
        raise ValueError(f"sizes must be positive, got {sizes}")
    rng = numpy.random.default_rng(seed)
    bound = 1.0 / numpy.sqrt(sizes["H"])
    drawn = {name: rng.uniform(-bound, bound, size=_shape(shape, sizes)).astype(dtype)
             for name, shape in PARAMS.items()}
    return {name: numpy.full_like(value, INITIAL[name]) if name in INITIAL else value
            for name, value in drawn.items()}

def forward(params, xs, state0=None, *, checkpoint=None, workspace=None):
    """Run the cell over xs (T, B, D) from state0 (a dict of (B, size) arrays; zeros when None).

    Returns (hs, stateT, cache): the per-step outputs (T, B, H), the final state as a
    dict, and what `backward` needs.  The dtype of xs is kept (float32 in, float32 out).
    checkpoint=k keeps the state only every k steps; `backward` then recomputes each stretch
    of k steps before going back through it (about k times less memory, one more forward).
    The cache owns what `backward` reads (a copy of xs and of the parameters): changing the
    caller's arrays afterwards never changes a gradient.  Memory is fresh unless a
    `Workspace` is given: its buffers are reused by every call given it, so a later forward
    with the same workspace invalidates this cache (its backward then raises ValueError).
    """
    xs = _real("xs", numpy.asarray(xs))
    if xs.ndim != 3:
        raise ValueError(f"xs has shape {xs.shape}, expected (T, B, D)")
    dtype = xs.dtype if numpy.issubdtype(xs.dtype, numpy.floating) else numpy.dtype(numpy.float64)
    sizes = _sizes(params)
    D = sizes["D"]
    H = sizes["H"]
    T, B = xs.shape[:2]
    if xs.shape[2] != D:
        raise ValueError(f"xs has shape {xs.shape}, expected (T, B, D) = ({T}, {B}, {D})")
    if checkpoint is not None and (isinstance(checkpoint, bool) or not isinstance(checkpoint, (int, numpy.integer)) or checkpoint < 1):
        raise ValueError(f"checkpoint must be None or a positive int, got {checkpoint!r}")
    xs = numpy.array(xs, dtype=dtype)  # the cache's own copy
    params = {name: _real(f'params["{name}"]', numpy.asarray(params[name])).astype(dtype, copy=False)
              for name in PARAMS}
    params.update(_unpack(params, sizes))
    state = {s: value.copy() for s, value in _state(state0, "state0", B, sizes, dtype).items()}
    w = _stack(params, sizes, dtype)
    k = max(T, 1) if checkpoint is None else int(checkpoint)
    ws = workspace
    if ws is not None:
        ws.calls += 1
    seq = _buffers(min(k, T), B, sizes, dtype, ws)
    hs = numpy.empty((T, B, H), dtype)
    saved = []
    for start in range(0, T, k):
        stop = min(start + k, T)
        saved.append(state)
        part = _part(seq, stop - start, state)
        _forward_steps(w, sizes, xs[start:stop], part, ws)
        hs[start:stop] = part["h_seq"][1:]
        state = {"h": part["h_seq"][-1].copy()}
    cache = dict(xs=xs, sizes=sizes, w=w, k=k, saved=saved, seq=seq if checkpoint is None else None,
                 workspace=ws, call=ws and ws.calls)
    return hs, state, cache


def backward(params, cache, dhs, dstateT=None):
    """Gradients of a loss L = sum_t l_t + l_fin given dhs = dl_t/dh_t (T, B, H),
    the direct gradient of each step's loss term, and dstateT = dl_fin/dstate_T, that of the
    term reading the final state (dL/dh_t itself also has the part from later steps).

    Returns (grads, dxs, dstate0): grads keyed like params, dxs (T, B, D) and
    dstate0 = dL/dstate_0 as a dict.  dstateT=None means the loss does not read the final state.
    Every returned array is new.  Scratch memory comes from the cache's workspace, if any.
    """
    if not isinstance(cache, dict) or "workspace" not in cache:
        raise ValueError("cache must be the third value forward(params, xs) returned")
    xs, sizes, w, k, ws = cache["xs"], cache["sizes"], cache["w"], cache["k"], cache["workspace"]
    if ws is not None and cache["call"] != ws.calls:
        raise ValueError("the cache's workspace was used by a later forward, which overwrote the cache")
    dtype = xs.dtype
    D = sizes["D"]
    H = sizes["H"]
    T, B = xs.shape[:2]
    dhs = _array("dhs", dhs, (T, B, H), dtype)
    d_next = {s: value.copy() for s, value in _state(dstateT, "dstateT", B, sizes, dtype).items()}
    dw = {name: numpy.zeros_like(value) for name, value in w.items()}
    dxs = numpy.empty_like(xs)
    recompute = cache["seq"] is None
    seq = _buffers(min(k, T), B, sizes, dtype, ws) if recompute else cache["seq"]
    for start, state in reversed(list(zip(range(0, T, k), cache["saved"]))):
        stop = min(start + k, T)
        part = _part(seq, stop - start, state if recompute else None)
        if recompute:  # checkpointed: recompute this stretch from its saved state
            _forward_steps(w, sizes, xs[start:stop], part, ws)
        d_next = _backward_steps(w, sizes, xs[start:stop], part, dhs[start:stop], d_next, dw,
                                 dxs[start:stop], ws)
    grads = {}
    grads["W_r"] = dw["Wcat_x"][0:H]
    grads["W_z"] = dw["Wcat_x"][H:2 * H]
    grads["W_n"] = dw["Wcat_x"][2 * H:3 * H]
    grads["U_r"] = dw["Wcat_h_prev"][0:H]
    grads["U_z"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_n"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["b_r"] = dw["b_r"]
    grads["b_z"] = dw["b_z"]
    grads["b_n"] = dw["b_n"]
    grads["b_hn"] = dw["b_hn"]
    grads["gamma_x_r"] = dw["Z_gamma_x"][0:H]
    grads["gamma_x_z"] = dw["Z_gamma_x"][H:2 * H]
    grads["gamma_x_n"] = dw["Z_gamma_x"][2 * H:3 * H]
    grads["beta_x_r"] = dw["Z_beta_x"][0:H]
    grads["beta_x_z"] = dw["Z_beta_x"][H:2 * H]
    grads["beta_x_n"] = dw["Z_beta_x"][2 * H:3 * H]
    grads["gamma_h_r"] = dw["Z_gamma_h"][0:H]
    grads["gamma_h_z"] = dw["Z_gamma_h"][H:2 * H]
    grads["gamma_h_n"] = dw["Z_gamma_h"][2 * H:3 * H]
    grads["beta_h_r"] = dw["Z_beta_h"][0:H]
    grads["beta_h_z"] = dw["Z_beta_h"][H:2 * H]
    grads["beta_h_n"] = dw["Z_beta_h"][2 * H:3 * H]
    grads["gamma_x"] = numpy.concatenate([grads["gamma_x_r"], grads["gamma_x_z"], grads["gamma_x_n"]])
    grads["beta_x"] = numpy.concatenate([grads["beta_x_r"], grads["beta_x_z"], grads["beta_x_n"]])
    grads["gamma_h"] = numpy.concatenate([grads["gamma_h_r"], grads["gamma_h_z"], grads["gamma_h_n"]])
    grads["beta_h"] = numpy.concatenate([grads["beta_h_r"], grads["beta_h_z"], grads["beta_h_n"]])
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, d_next


def _unpack(params, sizes):
    """The blocks of every packed parameter, by the names the stages read them (views)."""
    H = sizes["H"]
    return {
        "gamma_x_r": params["gamma_x"][0:H],
        "gamma_x_z": params["gamma_x"][H:2 * H],
        "gamma_x_n": params["gamma_x"][2 * H:3 * H],
        "beta_x_r": params["beta_x"][0:H],
        "beta_x_z": params["beta_x"][H:2 * H],
        "beta_x_n": params["beta_x"][2 * H:3 * H],
        "gamma_h_r": params["gamma_h"][0:H],
        "gamma_h_z": params["gamma_h"][H:2 * H],
        "gamma_h_n": params["gamma_h"][2 * H:3 * H],
        "beta_h_r": params["beta_h"][0:H],
        "beta_h_z": params["beta_h"][H:2 * H],
        "beta_h_n": params["beta_h"][2 * H:3 * H],
    }


def _stack(params, sizes, dtype):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = numpy.concatenate([params["W_r"], params["W_z"], params["W_n"]])
    Wcat_h_prev = numpy.concatenate([params["U_r"], params["U_z"], params["U_n"]])
    Z_gamma_x = numpy.concatenate([params["gamma_x_r"], params["gamma_x_z"], params["gamma_x_n"]])
    Z_beta_x = numpy.concatenate([params["beta_x_r"], params["beta_x_z"], params["beta_x_n"]])
    Z_gamma_h = numpy.concatenate([params["gamma_h_r"], params["gamma_h_z"], params["gamma_h_n"]])
    Z_beta_h = numpy.concatenate([params["beta_h_r"], params["beta_h_z"], params["beta_h_n"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_r=params["b_r"].copy(), b_z=params["b_z"].copy(), b_n=params["b_n"].copy(), b_hn=params["b_hn"].copy(), gamma_x_r=params["gamma_x_r"].copy(), gamma_x_z=params["gamma_x_z"].copy(), gamma_x_n=params["gamma_x_n"].copy(), beta_x_r=params["beta_x_r"].copy(), beta_x_z=params["beta_x_z"].copy(), beta_x_n=params["beta_x_n"].copy(), gamma_h_r=params["gamma_h_r"].copy(), gamma_h_z=params["gamma_h_z"].copy(), gamma_h_n=params["gamma_h_n"].copy(), beta_h_r=params["beta_h_r"].copy(), beta_h_z=params["beta_h_z"].copy(), beta_h_n=params["beta_h_n"].copy(), Z_gamma_x=Z_gamma_x, Z_beta_x=Z_beta_x, Z_gamma_h=Z_gamma_h, Z_beta_h=Z_beta_h)


def _buffers(n, B, sizes, dtype, ws):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": _take(ws, "h_seq", (n + 1, B, H), dtype),
        "Z_zx_seq": _take(ws, "Z_zx_seq", (n, B, 3 * H), dtype),
        "Z_zh_seq": _take(ws, "Z_zh_seq", (n, B, 3 * H), dtype),
        "mu_x_seq": _take(ws, "mu_x_seq", (n, B, 1), dtype),
        "v_x_seq": _take(ws, "v_x_seq", (n, B, 1), dtype),
        "r_x_seq": _take(ws, "r_x_seq", (n, B, 1), dtype),
        "mu_h_seq": _take(ws, "mu_h_seq", (n, B, 1), dtype),
        "v_h_seq": _take(ws, "v_h_seq", (n, B, 1), dtype),
        "r_h_seq": _take(ws, "r_h_seq", (n, B, 1), dtype),
        "r_seq": _take(ws, "r_seq", (n, B, H), dtype),
        "z_seq": _take(ws, "z_seq", (n, B, H), dtype),
        "a_nh_seq": _take(ws, "a_nh_seq", (n, B, H), dtype),
        "h_cand_seq": _take(ws, "h_cand_seq", (n, B, H), dtype),
        "v_seq": _take(ws, "v_seq", (n, B, H), dtype),
    }


class Workspace:
    """Buffers reused by the calls given it: `forward(..., workspace=ws)` and the `backward` of
    its cache.  Fresh memory costs a page fault per 4 KiB on first touch (up to a fifth of the
    time at some sizes); a workspace pays that once.  A cache's storage lives in its workspace,
    so one workspace serves one live cache: a later forward with it overwrites the earlier
    cache, whose backward then raises ValueError.  Owned by the caller; one per thread.
    """

    def __init__(self):
        self.calls = 0
        self._arrays = {}

    def take(self, name, shape, dtype):
        """The workspace's uninitialised array called name, of this shape and dtype."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = numpy.empty(shape, dtype)
        return array


def _take(ws, name, shape, dtype):
    """An uninitialised array: fresh without a workspace, the workspace's own with one."""
    return numpy.empty(shape, dtype) if ws is None else ws.take(name, shape, dtype)


def _part(seq, n, state):
    """The first n steps of the storage, views; the states' first rows set from state (if given)."""
    part = {name: value[:n + 1] if name[:-4] in STATE else value[:n] for name, value in seq.items()}
    for s in STATE if state is not None else ():
        part[f"{s}_seq"][0] = state[s]
    return part


def _forward_steps(w, sizes, xs, seq, ws):
    """Steps 0..steps-1 of xs (steps, B, D), from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    dtype = xs.dtype
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    b_r = w["b_r"]
    b_z = w["b_z"]
    b_n = w["b_n"]
    b_hn = w["b_hn"]
    gamma_x_r = w["gamma_x_r"]
    gamma_x_z = w["gamma_x_z"]
    gamma_x_n = w["gamma_x_n"]
    beta_x_r = w["beta_x_r"]
    beta_x_z = w["beta_x_z"]
    beta_x_n = w["beta_x_n"]
    gamma_h_r = w["gamma_h_r"]
    gamma_h_z = w["gamma_h_z"]
    gamma_h_n = w["gamma_h_n"]
    beta_h_r = w["beta_h_r"]
    beta_h_z = w["beta_h_z"]
    beta_h_n = w["beta_h_n"]
    Z_gamma_x = w["Z_gamma_x"]
    Z_beta_x = w["Z_beta_x"]
    Z_gamma_h = w["Z_gamma_h"]
    Z_beta_h = w["Z_beta_h"]
    h_seq = seq["h_seq"]
    Z_zx_seq = seq["Z_zx_seq"]
    Z_zh_seq = seq["Z_zh_seq"]
    mu_x_seq = seq["mu_x_seq"]
    v_x_seq = seq["v_x_seq"]
    r_x_seq = seq["r_x_seq"]
    mu_h_seq = seq["mu_h_seq"]
    v_h_seq = seq["v_h_seq"]
    r_h_seq = seq["r_h_seq"]
    r_seq = seq["r_seq"]
    z_seq = seq["z_seq"]
    a_nh_seq = seq["a_nh_seq"]
    h_cand_seq = seq["h_cand_seq"]
    v_seq = seq["v_seq"]
    Wcat_x_T = Wcat_x.T.copy()  # a contiguous copy: a faster product
    Wcat_h_prev_T = Wcat_h_prev.T.copy()  # a contiguous copy: a faster product
    A_x = _take(ws, "A_x", (steps, B, 3 * H), dtype)
    # the x terms of every step at once  (F1)-(F3)
    numpy.matmul(xs.reshape(steps * B, D), Wcat_x_T, out=A_x.reshape(steps * B, 3 * H))
    A_h_prev = _take(ws, "A_h_prev", (B, 3 * H), dtype)
    Z_yx = _take(ws, "Z_yx", (B, 3 * H), dtype)
    Z_yh = _take(ws, "Z_yh", (B, 3 * H), dtype)
    for t in range(steps):
        h_prev = h_seq[t]
        Z_zx_seq[t] = A_x[t]
        Z_zx = Z_zx_seq[t]
        numpy.matmul(h_prev, Wcat_h_prev_T, out=A_h_prev)  # (F4)-(F6)
        Z_zh_seq[t] = A_h_prev
        Z_zh = Z_zh_seq[t]
        mu_x_seq[t] = (Z_zx).mean(axis=-1, keepdims=True)  # (F7)
        mu_x = mu_x_seq[t]
        Z_e_zx = (Z_zx - mu_x)**2  # (F8) (F9) (F10)
        v_x_seq[t] = (Z_e_zx).mean(axis=-1, keepdims=True)  # (F11)
        v_x = v_x_seq[t]
        r_x_seq[t] = 1/numpy.sqrt(v_x + 1/100000)  # (F12)
        r_x = r_x_seq[t]
        numpy.subtract(Z_zx, mu_x, out=Z_yx)  # (F13) (F14) (F15)
        numpy.multiply(Z_yx, Z_gamma_x, out=Z_yx)
        numpy.multiply(Z_yx, r_x, out=Z_yx)
        numpy.add(Z_yx, Z_beta_x, out=Z_yx)
        yx_r = Z_yx[:, 0:H]
        yx_z = Z_yx[:, H:2 * H]
        yx_n = Z_yx[:, 2 * H:3 * H]
        mu_h_seq[t] = (Z_zh).mean(axis=-1, keepdims=True)  # (F16)
        mu_h = mu_h_seq[t]
        Z_e_zh = (Z_zh - mu_h)**2  # (F17) (F18) (F19)
        v_h_seq[t] = (Z_e_zh).mean(axis=-1, keepdims=True)  # (F20)
        v_h = v_h_seq[t]
        r_h_seq[t] = 1/numpy.sqrt(v_h + 1/100000)  # (F21)
        r_h = r_h_seq[t]
        numpy.subtract(Z_zh, mu_h, out=Z_yh)  # (F22) (F23) (F24)
        numpy.multiply(Z_yh, Z_gamma_h, out=Z_yh)
        numpy.multiply(Z_yh, r_h, out=Z_yh)
        numpy.add(Z_yh, Z_beta_h, out=Z_yh)
        yh_r = Z_yh[:, 0:H]
        yh_z = Z_yh[:, H:2 * H]
        yh_n = Z_yh[:, 2 * H:3 * H]
        s_r = yh_r + yx_r  # (F25)
        a_r = b_r + s_r  # (F26)
        _sigmoid(a_r, out=r_seq[t])  # (F27)
        r = r_seq[t]
        s_z = yh_z + yx_z  # (F28)
        a_z = b_z + s_z  # (F29)
        _sigmoid(a_z, out=z_seq[t])  # (F30)
        z = z_seq[t]
        numpy.add(b_hn, yh_n, out=a_nh_seq[t])  # (F31)
        a_nh = a_nh_seq[t]
        a_nr = a_nh*r  # (F32)
        a_nx = b_n + yx_n  # (F33)
        a_n = a_nr + a_nx  # (F34)
        numpy.tanh(a_n, out=h_cand_seq[t])  # (F35)
        h_cand = h_cand_seq[t]
        numpy.subtract(1, z, out=v_seq[t])  # (F36)
        v = v_seq[t]
        h_new = h_cand*v  # (F37)
        h_kept = h_prev*z  # (F38)
        numpy.add(h_kept, h_new, out=h_seq[t + 1])  # (F39)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs, ws):
    """Steps steps-1..0 back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs (steps, B, D) and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    dtype = xs.dtype
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    b_r = w["b_r"]
    b_z = w["b_z"]
    b_n = w["b_n"]
    b_hn = w["b_hn"]
    gamma_x_r = w["gamma_x_r"]
    gamma_x_z = w["gamma_x_z"]
    gamma_x_n = w["gamma_x_n"]
    beta_x_r = w["beta_x_r"]
    beta_x_z = w["beta_x_z"]
    beta_x_n = w["beta_x_n"]
    gamma_h_r = w["gamma_h_r"]
    gamma_h_z = w["gamma_h_z"]
    gamma_h_n = w["gamma_h_n"]
    beta_h_r = w["beta_h_r"]
    beta_h_z = w["beta_h_z"]
    beta_h_n = w["beta_h_n"]
    Z_gamma_x = w["Z_gamma_x"]
    Z_beta_x = w["Z_beta_x"]
    Z_gamma_h = w["Z_gamma_h"]
    Z_beta_h = w["Z_beta_h"]
    h_seq = seq["h_seq"]
    Z_zx_seq = seq["Z_zx_seq"]
    Z_zh_seq = seq["Z_zh_seq"]
    mu_x_seq = seq["mu_x_seq"]
    v_x_seq = seq["v_x_seq"]
    r_x_seq = seq["r_x_seq"]
    mu_h_seq = seq["mu_h_seq"]
    v_h_seq = seq["v_h_seq"]
    r_h_seq = seq["r_h_seq"]
    r_seq = seq["r_seq"]
    z_seq = seq["z_seq"]
    a_nh_seq = seq["a_nh_seq"]
    h_cand_seq = seq["h_cand_seq"]
    v_seq = seq["v_seq"]
    d_h_next = d_next["h"]
    d_b_r = dw["b_r"]
    d_b_z = dw["b_z"]
    d_b_n = dw["b_n"]
    d_b_hn = dw["b_hn"]
    d_gamma_x_r = dw["gamma_x_r"]
    d_gamma_x_z = dw["gamma_x_z"]
    d_gamma_x_n = dw["gamma_x_n"]
    d_beta_x_r = dw["beta_x_r"]
    d_beta_x_z = dw["beta_x_z"]
    d_beta_x_n = dw["beta_x_n"]
    d_gamma_h_r = dw["gamma_h_r"]
    d_gamma_h_z = dw["gamma_h_z"]
    d_gamma_h_n = dw["gamma_h_n"]
    d_beta_h_r = dw["beta_h_r"]
    d_beta_h_z = dw["beta_h_z"]
    d_beta_h_n = dw["beta_h_n"]
    d_A_x_seq = _take(ws, "d_A_x_seq", (steps, B, 3 * H), dtype)
    d_A_h_prev_seq = _take(ws, "d_A_h_prev_seq", (steps, B, 3 * H), dtype)
    d_Z_gamma_x = dw["Z_gamma_x"]
    d_Z_beta_x = dw["Z_beta_x"]
    d_Z_gamma_h = dw["Z_gamma_h"]
    d_Z_beta_h = dw["Z_beta_h"]
    d_Z_yx_seq = _take(ws, "d_Z_yx_seq", (steps, B, 3 * H), dtype)
    d_Z_yh_seq = _take(ws, "d_Z_yh_seq", (steps, B, 3 * H), dtype)
    for t in reversed(range(steps)):
        d_Z_yh = d_Z_yh_seq[t]
        h_prev = h_seq[t]
        Z_zx = Z_zx_seq[t]
        Z_zh = Z_zh_seq[t]
        mu_x = mu_x_seq[t]
        v_x = v_x_seq[t]
        r_x = r_x_seq[t]
        mu_h = mu_h_seq[t]
        v_h = v_h_seq[t]
        r_h = r_h_seq[t]
        r = r_seq[t]
        z = z_seq[t]
        a_nh = a_nh_seq[t]
        h_cand = h_cand_seq[t]
        v = v_seq[t]
        d_A_x = d_A_x_seq[t]
        d_A_h_prev = d_A_h_prev_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_h_kept = d_h  # (B2)
        d_h_new = d_h  # (B3)
        d_v = d_h_new*h_cand  # (B4)
        d_h_cand = d_h_new*v  # (B5)
        d_a_n = d_h_cand*(1 - h_cand**2)  # (B6)
        d_a_nx = d_a_n  # (B7)
        d_a_nr = d_a_n  # (B8)
        d_Z_yh[:, 2 * H:3 * H] = d_a_nr*r  # (B9)
        d_a_nh = d_Z_yh[:, 2 * H:3 * H]
        d_z = d_h_kept*h_prev - d_v  # (B10) fork: v, h_kept
        d_Z_yh[:, H:2 * H] = d_z*z*(1 - z)  # (B11)
        d_a_z = d_Z_yh[:, H:2 * H]
        d_s_z = d_a_z  # (B12)
        d_r = a_nh*d_a_nr  # (B13)
        d_Z_yh[:, 0:H] = d_r*r*(1 - r)  # (B14)
        d_a_r = d_Z_yh[:, 0:H]
        d_s_r = d_a_r  # (B15)
        d_Z_yh = d_Z_yh_seq[t]  # (B16) (B17) (B18)
        d_r_h = (Z_gamma_h*d_Z_yh*(Z_zh - mu_h)).reshape(-1, 3, H).sum(axis=1)  # (B19)
        d_v_h = -1/2*d_r_h/(v_h + 1/100000)**(3/2)  # (B20)
        d_Z_e_zh = (1/3)*(d_v_h).mean(axis=-1, keepdims=True)  # (B21) (B22) (B23)
        d_mu_h = (-Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(-2*Z_zh + 2*mu_h)).reshape(-1, 3, H).sum(axis=1)  # (B24)
        d_Z_yx = d_Z_yx_seq[t]
        d_Z_yx[:, 0:H] = d_s_r  # (B27)
        d_Z_yx[:, H:2 * H] = d_s_z  # (B26)
        d_Z_yx[:, 2 * H:3 * H] = d_a_nx  # (B25)
        d_r_x = (Z_gamma_x*d_Z_yx*(Z_zx - mu_x)).reshape(-1, 3, H).sum(axis=1)  # (B28)
        d_v_x = -1/2*d_r_x/(v_x + 1/100000)**(3/2)  # (B29)
        d_Z_e_zx = (1/3)*(d_v_x).mean(axis=-1, keepdims=True)  # (B30) (B31) (B32)
        d_mu_x = (-Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(-2*Z_zx + 2*mu_x)).reshape(-1, 3, H).sum(axis=1)  # (B33)
        d_A_h_prev[:, 0:3 * H] = Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(2*Z_zh - 2*mu_h) + (1/3)*(d_mu_h).mean(axis=-1, keepdims=True)  # (B34) (B35) (B36)
        d_A_x[:, 0:3 * H] = Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(2*Z_zx - 2*mu_x) + (1/3)*(d_mu_x).mean(axis=-1, keepdims=True)  # (B37) (B38) (B39)
        d_h_prev = d_h_kept*z + d_A_h_prev @ Wcat_h_prev  # (B40) fork: zh_r, zh_z, zh_n, h_kept
        d_b_r += (d_a_r).sum(axis=0)  # (P7)
        d_b_z += (d_a_z).sum(axis=0)  # (P8)
        d_b_n += (d_a_nx).sum(axis=0)  # (P9)
        d_b_hn += (d_a_nh).sum(axis=0)  # (P10)
        d_Z_gamma_x += (d_Z_yx*r_x*(Z_zx - mu_x)).sum(axis=0)  # (P11) (P12) (P13)
        d_Z_beta_x += (d_Z_yx).sum(axis=0)  # (P14) (P15) (P16)
        d_Z_gamma_h += (d_Z_yh*r_h*(Z_zh - mu_h)).sum(axis=0)  # (P17) (P18) (P19)
        d_Z_beta_h += (d_Z_yh).sum(axis=0)  # (P20) (P21) (P22)
        d_h_next = d_h_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 3 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P3)
    numpy.matmul(d_A_x_seq.reshape(steps * B, 3 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B41)
    dw["Wcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 3 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P4)-(P6)
    return {"h": d_h_next}


def _sigmoid(z, out=None):
    """The logistic sigmoid 1 / (1 + exp(-z)), computed as (1 + tanh(z / 2)) / 2 (never overflows)."""
    out = numpy.multiply(z, 0.5, out=out)
    numpy.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def _sizes(params):
    """The size symbols, read off the parameters; every parameter's shape is checked."""
    if not isinstance(params, dict):
        raise ValueError("params must be a dict of arrays keyed like PARAMS")
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"params is missing {', '.join(missing)}")
    sizes = {
        "D": numpy.shape(params["W_r"])[1] if numpy.ndim(params["W_r"]) > 1 else 0,
        "H": numpy.shape(params["W_r"])[0] if numpy.ndim(params["W_r"]) > 0 else 0,
    }
    for name, shape in PARAMS.items():
        want = _shape(shape, sizes)
        got = numpy.shape(params[name])
        if got != want:
            raise ValueError(f'params["{name}"] has shape {got}, expected ({", ".join(shape)}) = {want}')
    return sizes


def _shape(shape, sizes):
    """A parameter's shape from its size symbols; "4*H" is 4 times H (a packed parameter)."""
    return tuple(int(s.split("*")[0]) * sizes[s.split("*")[1]] if "*" in s else sizes[s] for s in shape)


def _real(name, value):
    """value, unless it is complex: the cell is defined for real numbers."""
    if numpy.iscomplexobj(value):
        raise ValueError(f"{name} is complex ({value.dtype}); the cell takes real arrays")
    return value


def _array(name, value, shape, dtype):
    value = _real(name, numpy.asarray(value))
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
