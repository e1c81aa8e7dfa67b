"""layer-normalised LSTM: the stacked gate terms and the cell state normalised (Ba, Kiros & Hinton): forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_lstm.tex.  Depends on NumPy only.

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
    "gamma_x": ("4*H",),
    "beta_x": ("4*H",),
    "gamma_h": ("4*H",),
    "beta_h": ("4*H",),
    "gamma_c": ("H",),
    "beta_c": ("H",),
}
STATE = ("h", "c")
STATE_SIZES = {"h": "H", "c": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> init_params argument
INITIAL = {"beta_c": 0.0, "beta_h": 0.0, "beta_x": 0.0, "gamma_c": 1.0, "gamma_h": 1.0, "gamma_x": 1.0}  # parameters that start at a constant, not a random draw


def init_params(input_size, hidden_size, *, seed=0, dtype=numpy.float64):
    """Parameters drawn uniformly from (-1/sqrt(H), 1/sqrt(H)), the usual recurrent-cell scale;
    beta_c, beta_h, beta_x, gamma_c, gamma_h, gamma_x start at a constant (INITIAL: a layer norm's gains at 1, shifts at 0)."""
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
        state = {"h": part["h_seq"][-1].copy(), "c": part["c_seq"][-1].copy()}
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
    grads["W_f"] = dw["Wcat_x"][0:H]
    grads["W_i"] = dw["Wcat_x"][H:2 * H]
    grads["W_g"] = dw["Wcat_x"][2 * H:3 * H]
    grads["W_o"] = dw["Wcat_x"][3 * H:4 * H]
    grads["U_f"] = dw["Wcat_h_prev"][0:H]
    grads["U_i"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_g"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["U_o"] = dw["Wcat_h_prev"][3 * H:4 * H]
    grads["b_f"] = dw["Z_b"][0:H]
    grads["b_i"] = dw["Z_b"][H:2 * H]
    grads["b_g"] = dw["Z_b"][2 * H:3 * H]
    grads["b_o"] = dw["Z_b"][3 * H:4 * H]
    grads["gamma_x_f"] = dw["Z_gamma_x"][0:H]
    grads["gamma_x_i"] = dw["Z_gamma_x"][H:2 * H]
    grads["gamma_x_g"] = dw["Z_gamma_x"][2 * H:3 * H]
    grads["gamma_x_o"] = dw["Z_gamma_x"][3 * H:4 * H]
    grads["beta_x_f"] = dw["Z_beta_x"][0:H]
    grads["beta_x_i"] = dw["Z_beta_x"][H:2 * H]
    grads["beta_x_g"] = dw["Z_beta_x"][2 * H:3 * H]
    grads["beta_x_o"] = dw["Z_beta_x"][3 * H:4 * H]
    grads["gamma_h_f"] = dw["Z_gamma_h"][0:H]
    grads["gamma_h_i"] = dw["Z_gamma_h"][H:2 * H]
    grads["gamma_h_g"] = dw["Z_gamma_h"][2 * H:3 * H]
    grads["gamma_h_o"] = dw["Z_gamma_h"][3 * H:4 * H]
    grads["beta_h_f"] = dw["Z_beta_h"][0:H]
    grads["beta_h_i"] = dw["Z_beta_h"][H:2 * H]
    grads["beta_h_g"] = dw["Z_beta_h"][2 * H:3 * H]
    grads["beta_h_o"] = dw["Z_beta_h"][3 * H:4 * H]
    grads["gamma_c"] = dw["gamma_c"]
    grads["beta_c"] = dw["beta_c"]
    grads["gamma_x"] = numpy.concatenate([grads["gamma_x_f"], grads["gamma_x_i"], grads["gamma_x_g"], grads["gamma_x_o"]])
    grads["beta_x"] = numpy.concatenate([grads["beta_x_f"], grads["beta_x_i"], grads["beta_x_g"], grads["beta_x_o"]])
    grads["gamma_h"] = numpy.concatenate([grads["gamma_h_f"], grads["gamma_h_i"], grads["gamma_h_g"], grads["gamma_h_o"]])
    grads["beta_h"] = numpy.concatenate([grads["beta_h_f"], grads["beta_h_i"], grads["beta_h_g"], grads["beta_h_o"]])
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, d_next


def _unpack(params, sizes):
    """The blocks of every packed parameter, by the names the stages read them (views)."""
    H = sizes["H"]
    return {
        "gamma_x_f": params["gamma_x"][0:H],
        "gamma_x_i": params["gamma_x"][H:2 * H],
        "gamma_x_g": params["gamma_x"][2 * H:3 * H],
        "gamma_x_o": params["gamma_x"][3 * H:4 * H],
        "beta_x_f": params["beta_x"][0:H],
        "beta_x_i": params["beta_x"][H:2 * H],
        "beta_x_g": params["beta_x"][2 * H:3 * H],
        "beta_x_o": params["beta_x"][3 * H:4 * H],
        "gamma_h_f": params["gamma_h"][0:H],
        "gamma_h_i": params["gamma_h"][H:2 * H],
        "gamma_h_g": params["gamma_h"][2 * H:3 * H],
        "gamma_h_o": params["gamma_h"][3 * H:4 * H],
        "beta_h_f": params["beta_h"][0:H],
        "beta_h_i": params["beta_h"][H:2 * H],
        "beta_h_g": params["beta_h"][2 * H:3 * H],
        "beta_h_o": params["beta_h"][3 * H:4 * H],
    }


def _stack(params, sizes, dtype):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = numpy.concatenate([params["W_f"], params["W_i"], params["W_g"], params["W_o"]])
    Wcat_h_prev = numpy.concatenate([params["U_f"], params["U_i"], params["U_g"], params["U_o"]])
    Z_gamma_x = numpy.concatenate([params["gamma_x_f"], params["gamma_x_i"], params["gamma_x_g"], params["gamma_x_o"]])
    Z_beta_x = numpy.concatenate([params["beta_x_f"], params["beta_x_i"], params["beta_x_g"], params["beta_x_o"]])
    Z_gamma_h = numpy.concatenate([params["gamma_h_f"], params["gamma_h_i"], params["gamma_h_g"], params["gamma_h_o"]])
    Z_beta_h = numpy.concatenate([params["beta_h_f"], params["beta_h_i"], params["beta_h_g"], params["beta_h_o"]])
    Z_b = numpy.concatenate([params["b_f"], params["b_i"], params["b_g"], params["b_o"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_f=params["b_f"].copy(), b_i=params["b_i"].copy(), b_g=params["b_g"].copy(), b_o=params["b_o"].copy(), gamma_x_f=params["gamma_x_f"].copy(), gamma_x_i=params["gamma_x_i"].copy(), gamma_x_g=params["gamma_x_g"].copy(), gamma_x_o=params["gamma_x_o"].copy(), beta_x_f=params["beta_x_f"].copy(), beta_x_i=params["beta_x_i"].copy(), beta_x_g=params["beta_x_g"].copy(), beta_x_o=params["beta_x_o"].copy(), gamma_h_f=params["gamma_h_f"].copy(), gamma_h_i=params["gamma_h_i"].copy(), gamma_h_g=params["gamma_h_g"].copy(), gamma_h_o=params["gamma_h_o"].copy(), beta_h_f=params["beta_h_f"].copy(), beta_h_i=params["beta_h_i"].copy(), beta_h_g=params["beta_h_g"].copy(), beta_h_o=params["beta_h_o"].copy(), gamma_c=params["gamma_c"].copy(), beta_c=params["beta_c"].copy(), Z_gamma_x=Z_gamma_x, Z_beta_x=Z_beta_x, Z_gamma_h=Z_gamma_h, Z_beta_h=Z_beta_h, Z_b=Z_b)


def _buffers(n, B, sizes, dtype, ws):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": _take(ws, "h_seq", (n + 1, B, H), dtype),
        "c_seq": _take(ws, "c_seq", (n + 1, B, H), dtype),
        "Z_zx_seq": _take(ws, "Z_zx_seq", (n, B, 4 * H), dtype),
        "Z_zh_seq": _take(ws, "Z_zh_seq", (n, B, 4 * H), dtype),
        "mu_x_seq": _take(ws, "mu_x_seq", (n, B, 1), dtype),
        "v_x_seq": _take(ws, "v_x_seq", (n, B, 1), dtype),
        "r_x_seq": _take(ws, "r_x_seq", (n, B, 1), dtype),
        "mu_h_seq": _take(ws, "mu_h_seq", (n, B, 1), dtype),
        "v_h_seq": _take(ws, "v_h_seq", (n, B, 1), dtype),
        "r_h_seq": _take(ws, "r_h_seq", (n, B, 1), dtype),
        "f_seq": _take(ws, "f_seq", (n, B, H), dtype),
        "i_seq": _take(ws, "i_seq", (n, B, H), dtype),
        "g_seq": _take(ws, "g_seq", (n, B, H), dtype),
        "o_seq": _take(ws, "o_seq", (n, B, H), dtype),
        "mu_c_seq": _take(ws, "mu_c_seq", (n, B, H), dtype),
        "v_c_seq": _take(ws, "v_c_seq", (n, B, H), dtype),
        "r_c_seq": _take(ws, "r_c_seq", (n, B, H), dtype),
        "k_seq": _take(ws, "k_seq", (n, B, H), dtype),
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
    b_f = w["b_f"]
    b_i = w["b_i"]
    b_g = w["b_g"]
    b_o = w["b_o"]
    gamma_x_f = w["gamma_x_f"]
    gamma_x_i = w["gamma_x_i"]
    gamma_x_g = w["gamma_x_g"]
    gamma_x_o = w["gamma_x_o"]
    beta_x_f = w["beta_x_f"]
    beta_x_i = w["beta_x_i"]
    beta_x_g = w["beta_x_g"]
    beta_x_o = w["beta_x_o"]
    gamma_h_f = w["gamma_h_f"]
    gamma_h_i = w["gamma_h_i"]
    gamma_h_g = w["gamma_h_g"]
    gamma_h_o = w["gamma_h_o"]
    beta_h_f = w["beta_h_f"]
    beta_h_i = w["beta_h_i"]
    beta_h_g = w["beta_h_g"]
    beta_h_o = w["beta_h_o"]
    gamma_c = w["gamma_c"]
    beta_c = w["beta_c"]
    Z_gamma_x = w["Z_gamma_x"]
    Z_beta_x = w["Z_beta_x"]
    Z_gamma_h = w["Z_gamma_h"]
    Z_beta_h = w["Z_beta_h"]
    Z_b = w["Z_b"]
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    Z_zx_seq = seq["Z_zx_seq"]
    Z_zh_seq = seq["Z_zh_seq"]
    mu_x_seq = seq["mu_x_seq"]
    v_x_seq = seq["v_x_seq"]
    r_x_seq = seq["r_x_seq"]
    mu_h_seq = seq["mu_h_seq"]
    v_h_seq = seq["v_h_seq"]
    r_h_seq = seq["r_h_seq"]
    f_seq = seq["f_seq"]
    i_seq = seq["i_seq"]
    g_seq = seq["g_seq"]
    o_seq = seq["o_seq"]
    mu_c_seq = seq["mu_c_seq"]
    v_c_seq = seq["v_c_seq"]
    r_c_seq = seq["r_c_seq"]
    k_seq = seq["k_seq"]
    Wcat_x_T = Wcat_x.T.copy()  # a contiguous copy: a faster product
    Wcat_h_prev_T = Wcat_h_prev.T.copy()  # a contiguous copy: a faster product
    A_x = _take(ws, "A_x", (steps, B, 4 * H), dtype)
    # the x terms of every step at once  (F1)-(F4)
    numpy.matmul(xs.reshape(steps * B, D), Wcat_x_T, out=A_x.reshape(steps * B, 4 * H))
    A_h_prev = _take(ws, "A_h_prev", (B, 4 * H), dtype)
    Z_a = _take(ws, "Z_a", (B, 4 * H), dtype)
    for t in range(steps):
        h_prev = h_seq[t]
        c_prev = c_seq[t]
        Z_zx_seq[t] = A_x[t]
        Z_zx = Z_zx_seq[t]
        numpy.matmul(h_prev, Wcat_h_prev_T, out=A_h_prev)  # (F5)-(F8)
        Z_zh_seq[t] = A_h_prev
        Z_zh = Z_zh_seq[t]
        mu_x_seq[t] = (Z_zx).mean(axis=-1, keepdims=True)  # (F9)
        mu_x = mu_x_seq[t]
        Z_e_zx = (Z_zx - mu_x)**2  # (F10) (F11) (F12) (F13)
        v_x_seq[t] = (Z_e_zx).mean(axis=-1, keepdims=True)  # (F14)
        v_x = v_x_seq[t]
        r_x_seq[t] = 1/numpy.sqrt(v_x + 1/100000)  # (F15)
        r_x = r_x_seq[t]
        Z_yx = Z_beta_x + Z_gamma_x*r_x*(Z_zx - mu_x)  # (F16) (F17) (F18) (F19)
        mu_h_seq[t] = (Z_zh).mean(axis=-1, keepdims=True)  # (F20)
        mu_h = mu_h_seq[t]
        Z_e_zh = (Z_zh - mu_h)**2  # (F21) (F22) (F23) (F24)
        v_h_seq[t] = (Z_e_zh).mean(axis=-1, keepdims=True)  # (F25)
        v_h = v_h_seq[t]
        r_h_seq[t] = 1/numpy.sqrt(v_h + 1/100000)  # (F26)
        r_h = r_h_seq[t]
        Z_yh = Z_beta_h + Z_gamma_h*r_h*(Z_zh - mu_h)  # (F27) (F28) (F29) (F30)
        Z_s = Z_yh + Z_yx  # (F31) (F33) (F35) (F37)
        numpy.add(Z_b, Z_s, out=Z_a)  # (F32) (F34) (F36) (F38)
        a_f = Z_a[:, 0:H]
        a_i = Z_a[:, H:2 * H]
        a_g = Z_a[:, 2 * H:3 * H]
        a_o = Z_a[:, 3 * H:4 * H]
        _sigmoid(a_f, out=f_seq[t])  # (F39)
        f = f_seq[t]
        _sigmoid(a_i, out=i_seq[t])  # (F40)
        i = i_seq[t]
        numpy.tanh(a_g, out=g_seq[t])  # (F41)
        g = g_seq[t]
        _sigmoid(a_o, out=o_seq[t])  # (F42)
        o = o_seq[t]
        m = c_prev*f  # (F43)
        n = g*i  # (F44)
        numpy.add(m, n, out=c_seq[t + 1])  # (F45)
        c = c_seq[t + 1]
        mu_c_seq[t] = (c).mean(axis=-1, keepdims=True)  # (F46)
        mu_c = mu_c_seq[t]
        e_c = (c - mu_c)**2  # (F47)
        v_c_seq[t] = (e_c).mean(axis=-1, keepdims=True)  # (F48)
        v_c = v_c_seq[t]
        r_c_seq[t] = 1/numpy.sqrt(v_c + 1/100000)  # (F49)
        r_c = r_c_seq[t]
        y_c = beta_c + gamma_c*r_c*(c - mu_c)  # (F50)
        numpy.tanh(y_c, out=k_seq[t])  # (F51)
        k = k_seq[t]
        numpy.multiply(k, o, out=h_seq[t + 1])  # (F52)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs, ws):
    """Steps steps-1..0 back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs (steps, B, D) and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    dtype = xs.dtype
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    b_f = w["b_f"]
    b_i = w["b_i"]
    b_g = w["b_g"]
    b_o = w["b_o"]
    gamma_x_f = w["gamma_x_f"]
    gamma_x_i = w["gamma_x_i"]
    gamma_x_g = w["gamma_x_g"]
    gamma_x_o = w["gamma_x_o"]
    beta_x_f = w["beta_x_f"]
    beta_x_i = w["beta_x_i"]
    beta_x_g = w["beta_x_g"]
    beta_x_o = w["beta_x_o"]
    gamma_h_f = w["gamma_h_f"]
    gamma_h_i = w["gamma_h_i"]
    gamma_h_g = w["gamma_h_g"]
    gamma_h_o = w["gamma_h_o"]
    beta_h_f = w["beta_h_f"]
    beta_h_i = w["beta_h_i"]
    beta_h_g = w["beta_h_g"]
    beta_h_o = w["beta_h_o"]
    gamma_c = w["gamma_c"]
    beta_c = w["beta_c"]
    Z_gamma_x = w["Z_gamma_x"]
    Z_beta_x = w["Z_beta_x"]
    Z_gamma_h = w["Z_gamma_h"]
    Z_beta_h = w["Z_beta_h"]
    Z_b = w["Z_b"]
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    Z_zx_seq = seq["Z_zx_seq"]
    Z_zh_seq = seq["Z_zh_seq"]
    mu_x_seq = seq["mu_x_seq"]
    v_x_seq = seq["v_x_seq"]
    r_x_seq = seq["r_x_seq"]
    mu_h_seq = seq["mu_h_seq"]
    v_h_seq = seq["v_h_seq"]
    r_h_seq = seq["r_h_seq"]
    f_seq = seq["f_seq"]
    i_seq = seq["i_seq"]
    g_seq = seq["g_seq"]
    o_seq = seq["o_seq"]
    mu_c_seq = seq["mu_c_seq"]
    v_c_seq = seq["v_c_seq"]
    r_c_seq = seq["r_c_seq"]
    k_seq = seq["k_seq"]
    d_h_next = d_next["h"]
    d_c_next = d_next["c"]
    d_b_f = dw["b_f"]
    d_b_i = dw["b_i"]
    d_b_g = dw["b_g"]
    d_b_o = dw["b_o"]
    d_gamma_x_f = dw["gamma_x_f"]
    d_gamma_x_i = dw["gamma_x_i"]
    d_gamma_x_g = dw["gamma_x_g"]
    d_gamma_x_o = dw["gamma_x_o"]
    d_beta_x_f = dw["beta_x_f"]
    d_beta_x_i = dw["beta_x_i"]
    d_beta_x_g = dw["beta_x_g"]
    d_beta_x_o = dw["beta_x_o"]
    d_gamma_h_f = dw["gamma_h_f"]
    d_gamma_h_i = dw["gamma_h_i"]
    d_gamma_h_g = dw["gamma_h_g"]
    d_gamma_h_o = dw["gamma_h_o"]
    d_beta_h_f = dw["beta_h_f"]
    d_beta_h_i = dw["beta_h_i"]
    d_beta_h_g = dw["beta_h_g"]
    d_beta_h_o = dw["beta_h_o"]
    d_gamma_c = dw["gamma_c"]
    d_beta_c = dw["beta_c"]
    d_A_x_seq = _take(ws, "d_A_x_seq", (steps, B, 4 * H), dtype)
    d_A_h_prev_seq = _take(ws, "d_A_h_prev_seq", (steps, B, 4 * H), dtype)
    d_Z_gamma_x = dw["Z_gamma_x"]
    d_Z_beta_x = dw["Z_beta_x"]
    d_Z_gamma_h = dw["Z_gamma_h"]
    d_Z_beta_h = dw["Z_beta_h"]
    d_Z_b = dw["Z_b"]
    d_Z_a_seq = _take(ws, "d_Z_a_seq", (steps, B, 4 * H), dtype)
    for t in reversed(range(steps)):
        c_prev = c_seq[t]
        c = c_seq[t + 1]
        Z_zx = Z_zx_seq[t]
        Z_zh = Z_zh_seq[t]
        mu_x = mu_x_seq[t]
        v_x = v_x_seq[t]
        r_x = r_x_seq[t]
        mu_h = mu_h_seq[t]
        v_h = v_h_seq[t]
        r_h = r_h_seq[t]
        f = f_seq[t]
        i = i_seq[t]
        g = g_seq[t]
        o = o_seq[t]
        mu_c = mu_c_seq[t]
        v_c = v_c_seq[t]
        r_c = r_c_seq[t]
        k = k_seq[t]
        d_A_x = d_A_x_seq[t]
        d_A_h_prev = d_A_h_prev_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_k = d_h*o  # (B2)
        d_y_c = d_k*(1 - k**2)  # (B3)
        d_r_c = d_y_c*gamma_c*(c - mu_c)  # (B4)
        d_v_c = -1/2*d_r_c/(v_c + 1/100000)**(3/2)  # (B5)
        d_e_c = (d_v_c).mean(axis=-1, keepdims=True)  # (B6)
        d_mu_c = d_e_c*(-2*c + 2*mu_c) - d_y_c*gamma_c*r_c  # (B7) fork: e_c, y_c
        d_c = d_e_c*(2*c - 2*mu_c) + d_y_c*gamma_c*r_c + d_c_next + (d_mu_c).mean(axis=-1, keepdims=True)  # (B8) fork: mu_c, e_c, y_c, next step
        d_n = d_c  # (B9)
        d_m = d_c  # (B10)
        d_o = d_h*k  # (B11)
        d_g = d_n*i  # (B12)
        d_i = d_n*g  # (B13)
        d_f = c_prev*d_m  # (B14)
        d_Z_a = d_Z_a_seq[t]
        d_Z_a[:, 0:H] = d_f*f*(1 - f)  # (B21)
        d_Z_a[:, H:2 * H] = d_i*i*(1 - i)  # (B19)
        d_Z_a[:, 2 * H:3 * H] = d_g*(1 - g**2)  # (B17)
        d_Z_a[:, 3 * H:4 * H] = d_o*o*(1 - o)  # (B15)
        d_Z_s = d_Z_a_seq[t]  # (B16) (B18) (B20) (B22)
        d_Z_yh = d_Z_a_seq[t]  # (B23) (B24) (B25) (B26)
        d_r_h = (Z_gamma_h*d_Z_yh*(Z_zh - mu_h)).reshape(-1, 4, H).sum(axis=1)  # (B27)
        d_v_h = -1/2*d_r_h/(v_h + 1/100000)**(3/2)  # (B28)
        d_Z_e_zh = (1/4)*(d_v_h).mean(axis=-1, keepdims=True)  # (B29) (B30) (B31) (B32)
        d_mu_h = (-Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(-2*Z_zh + 2*mu_h)).reshape(-1, 4, H).sum(axis=1)  # (B33)
        d_Z_yx = d_Z_a_seq[t]  # (B34) (B35) (B36) (B37)
        d_r_x = (Z_gamma_x*d_Z_yx*(Z_zx - mu_x)).reshape(-1, 4, H).sum(axis=1)  # (B38)
        d_v_x = -1/2*d_r_x/(v_x + 1/100000)**(3/2)  # (B39)
        d_Z_e_zx = (1/4)*(d_v_x).mean(axis=-1, keepdims=True)  # (B40) (B41) (B42) (B43)
        d_mu_x = (-Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(-2*Z_zx + 2*mu_x)).reshape(-1, 4, H).sum(axis=1)  # (B44)
        d_A_h_prev[:, 0:4 * H] = Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(2*Z_zh - 2*mu_h) + (1/4)*(d_mu_h).mean(axis=-1, keepdims=True)  # (B45) (B46) (B47) (B48)
        d_A_x[:, 0:4 * H] = Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(2*Z_zx - 2*mu_x) + (1/4)*(d_mu_x).mean(axis=-1, keepdims=True)  # (B49) (B50) (B51) (B52)
        d_c_prev = d_m*f  # (B53)
        d_h_prev = d_A_h_prev @ Wcat_h_prev  # (B54) fork: zh_f, zh_i, zh_g, zh_o
        d_Z_b += (d_Z_a).sum(axis=0)  # (P9) (P10) (P11) (P12)
        d_Z_gamma_x += (d_Z_yx*r_x*(Z_zx - mu_x)).sum(axis=0)  # (P13) (P14) (P15) (P16)
        d_Z_beta_x += (d_Z_yx).sum(axis=0)  # (P17) (P18) (P19) (P20)
        d_Z_gamma_h += (d_Z_yh*r_h*(Z_zh - mu_h)).sum(axis=0)  # (P21) (P22) (P23) (P24)
        d_Z_beta_h += (d_Z_yh).sum(axis=0)  # (P25) (P26) (P27) (P28)
        d_gamma_c += (d_y_c*r_c*(c - mu_c)).sum(axis=0)  # (P29)
        d_beta_c += (d_y_c).sum(axis=0)  # (P30)
        d_h_next = d_h_prev
        d_c_next = d_c_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    numpy.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B55)
    dw["Wcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    return {"h": d_h_next, "c": d_c_next}


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
        "D": numpy.shape(params["W_f"])[1] if numpy.ndim(params["W_f"]) > 1 else 0,
        "H": numpy.shape(params["W_f"])[0] if numpy.ndim(params["W_f"]) > 0 else 0,
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
