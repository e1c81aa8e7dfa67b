"""sLSTM of xLSTM, one head: exponential input gate, normaliser n and stabiliser m (Beck et al.): forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `slstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/slstm.tex.  Depends on NumPy only.

Shapes: xs (T, B, D); the output (B, H) per step; state h (B, H), c (B, H), n (B, H), m (B, H).
"""
import numpy

PARAMS = {
    "W_z": ("H", "D"),
    "W_i": ("H", "D"),
    "W_f": ("H", "D"),
    "W_o": ("H", "D"),
    "U_z": ("H", "H"),
    "U_i": ("H", "H"),
    "U_f": ("H", "H"),
    "U_o": ("H", "H"),
    "b_z": ("H",),
    "b_i": ("H",),
    "b_f": ("H",),
    "b_o": ("H",),
}
STATE = ("h", "c", "n", "m")
STATE_SIZES = {"h": "H", "c": "H", "n": "H", "m": "H"}
POSITIVE_STATES = ("n", )  # positive in every state the cell reaches
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
        state = {"h": part["h_seq"][-1].copy(), "c": part["c_seq"][-1].copy(), "n": part["n_seq"][-1].copy(), "m": part["m_seq"][-1].copy()}
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
    grads["W_z"] = dw["Wcat_x"][0:H]
    grads["b_z"] = dw["bcat_x"][0:H]
    grads["W_f"] = dw["Wcat_x"][H:2 * H]
    grads["b_f"] = dw["bcat_x"][H:2 * H]
    grads["W_o"] = dw["Wcat_x"][2 * H:3 * H]
    grads["b_o"] = dw["bcat_x"][2 * H:3 * H]
    grads["W_i"] = dw["Wcat_x"][3 * H:4 * H]
    grads["b_i"] = dw["bcat_x"][3 * H:4 * H]
    grads["U_z"] = dw["Wcat_h_prev"][0:H]
    grads["U_f"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_o"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["U_i"] = dw["Wcat_h_prev"][3 * H:4 * H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, d_next


def _stack(params, sizes, dtype):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = numpy.concatenate([params["W_z"], params["W_f"], params["W_o"], params["W_i"]])
    bcat_x = numpy.concatenate([params["b_z"], params["b_f"], params["b_o"], params["b_i"]])
    Wcat_h_prev = numpy.concatenate([params["U_z"], params["U_f"], params["U_o"], params["U_i"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat_x=bcat_x)


def _buffers(n, B, sizes, dtype, ws):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": _take(ws, "h_seq", (n + 1, B, H), dtype),
        "c_seq": _take(ws, "c_seq", (n + 1, B, H), dtype),
        "n_seq": _take(ws, "n_seq", (n + 1, B, H), dtype),
        "m_seq": _take(ws, "m_seq", (n + 1, B, H), dtype),
        "a_i_seq": _take(ws, "a_i_seq", (n, B, H), dtype),
        "e_seq": _take(ws, "e_seq", (n, B, H), dtype),
        "i_seq": _take(ws, "i_seq", (n, B, H), dtype),
        "f_seq": _take(ws, "f_seq", (n, B, H), dtype),
        "r_seq": _take(ws, "r_seq", (n, B, H), dtype),
        "Z_z_seq": _take(ws, "Z_z_seq", (n, B, H), dtype),
        "Z_l_seq": _take(ws, "Z_l_seq", (n, B, H), dtype),
        "Z_o_seq": _take(ws, "Z_o_seq", (n, B, H), dtype),
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
    bcat_x = w["bcat_x"]
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    n_seq = seq["n_seq"]
    m_seq = seq["m_seq"]
    a_i_seq = seq["a_i_seq"]
    e_seq = seq["e_seq"]
    i_seq = seq["i_seq"]
    f_seq = seq["f_seq"]
    r_seq = seq["r_seq"]
    Z_z_seq = seq["Z_z_seq"]
    Z_l_seq = seq["Z_l_seq"]
    Z_o_seq = seq["Z_o_seq"]
    Wcat_x_T = Wcat_x.T.copy()  # a contiguous copy: a faster product
    Wcat_x_T[:, 2 * H:3 * H] *= 1/2  # folded: tanh(k z) of a block
    Wcat_h_prev_T = Wcat_h_prev.T.copy()  # a contiguous copy: a faster product
    Wcat_h_prev_T[:, 2 * H:3 * H] *= 1/2  # folded: tanh(k z) of a block
    bcat_x_fwd = bcat_x.copy()
    bcat_x_fwd[2 * H:3 * H] *= 1/2  # folded: tanh(k z) of a block
    A_x = _take(ws, "A_x", (steps, B, 4 * H), dtype)
    # the x terms of every step at once  (F1)-(F4)
    numpy.matmul(xs.reshape(steps * B, D), Wcat_x_T, out=A_x.reshape(steps * B, 4 * H))
    A_x += bcat_x_fwd
    A_h_prev = _take(ws, "A_h_prev", (B, 4 * H), dtype)
    for t in range(steps):
        h_prev = h_seq[t]
        c_prev = c_seq[t]
        n_prev = n_seq[t]
        m_prev = m_seq[t]
        Z_z = Z_z_seq[t]
        Z_l = Z_l_seq[t]
        Z_o = Z_o_seq[t]
        numpy.matmul(h_prev, Wcat_h_prev_T, out=A_h_prev)  # (F1)-(F4)
        A_h_prev += A_x[t]
        numpy.tanh(A_h_prev[:, 0:H], out=Z_z)  # (F5)
        z = Z_z
        numpy.multiply(A_h_prev[:, H:2 * H], 1/2, out=Z_l)  # (F7)
        numpy.subtract(Z_l, numpy.log(1 + numpy.exp(-abs(A_h_prev[:, H:2 * H]))), out=Z_l)
        numpy.subtract(Z_l, (1/2)*abs(A_h_prev[:, H:2 * H]), out=Z_l)
        l = Z_l
        numpy.tanh(A_h_prev[:, 2 * H:3 * H], out=Z_o)  # (F6) (the factor 1/2 inside tanh is in the weights' copies)
        numpy.multiply(Z_o, 1/2, out=Z_o)
        numpy.add(Z_o, 1/2, out=Z_o)
        o = Z_o
        a_i_seq[t] = A_h_prev[:, 3 * H:4 * H]
        a_i = a_i_seq[t]
        numpy.add(l, m_prev, out=e_seq[t])  # (F8)
        e = e_seq[t]
        m_seq[t + 1] = numpy.maximum(a_i, e)  # (F9)
        m = m_seq[t + 1]
        p = a_i - m  # (F10)
        numpy.exp(p, out=i_seq[t])  # (F11)
        i = i_seq[t]
        q = e - m  # (F12)
        numpy.exp(q, out=f_seq[t])  # (F13)
        f = f_seq[t]
        u = c_prev*f  # (F14)
        w = i*z  # (F15)
        numpy.add(u, w, out=c_seq[t + 1])  # (F16)
        c = c_seq[t + 1]
        v = f*n_prev  # (F17)
        numpy.add(i, v, out=n_seq[t + 1])  # (F18)
        n = n_seq[t + 1]
        r_seq[t] = n**(-1.0)  # (F19)
        numpy.multiply(r_seq[t], c, out=r_seq[t])
        r = r_seq[t]
        numpy.multiply(o, r, out=h_seq[t + 1])  # (F20)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs, ws):
    """Steps steps-1..0 back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs (steps, B, D) and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    dtype = xs.dtype
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    bcat_x = w["bcat_x"]
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    n_seq = seq["n_seq"]
    m_seq = seq["m_seq"]
    a_i_seq = seq["a_i_seq"]
    e_seq = seq["e_seq"]
    i_seq = seq["i_seq"]
    f_seq = seq["f_seq"]
    r_seq = seq["r_seq"]
    Z_z_seq = seq["Z_z_seq"]
    Z_l_seq = seq["Z_l_seq"]
    Z_o_seq = seq["Z_o_seq"]
    d_h_next = d_next["h"]
    d_c_next = d_next["c"]
    d_n_next = d_next["n"]
    d_m_next = d_next["m"]
    d_A_x_seq = _take(ws, "d_A_x_seq", (steps, B, 4 * H), dtype)
    d_Z_z = _take(ws, "d_Z_z", (B, H), dtype)
    d_Z_l = _take(ws, "d_Z_l", (B, H), dtype)
    d_Z_o = _take(ws, "d_Z_o", (B, H), dtype)
    scratch_Z_z = _take(ws, "scratch_Z_z", (B, H), dtype)
    scratch_Z_l = _take(ws, "scratch_Z_l", (B, H), dtype)
    scratch_Z_o = _take(ws, "scratch_Z_o", (B, H), dtype)
    d_z = d_Z_z
    d_l = d_Z_l
    d_o = d_Z_o
    for t in reversed(range(steps)):
        c_prev = c_seq[t]
        n_prev = n_seq[t]
        c = c_seq[t + 1]
        n = n_seq[t + 1]
        a_i = a_i_seq[t]
        e = e_seq[t]
        i = i_seq[t]
        f = f_seq[t]
        r = r_seq[t]
        Z_z = Z_z_seq[t]
        Z_l = Z_l_seq[t]
        Z_o = Z_o_seq[t]
        z = Z_z
        o = Z_o
        d_A_x = d_A_x_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_r = d_h*o  # (B2)
        d_n = -c*d_r/n**2 + d_n_next  # (B3) fork: r, next step
        d_v = d_n  # (B4)
        d_c = d_r/n + d_c_next  # (B5) fork: r, next step
        d_w = d_c  # (B6)
        d_u = d_c  # (B7)
        d_f = c_prev*d_u + d_v*n_prev  # (B8) fork: u, v
        d_q = d_f*f  # (B9)
        d_i = d_n + d_w*z  # (B10) fork: w, n
        d_p = d_i*i  # (B11)
        d_m = -d_p - d_q + d_m_next  # (B12) fork: p, q, next step
        d_e = d_m*((1/2)*numpy.sign(-a_i + e) + 1/2) + d_q  # (B13) fork: m, q
        d_l[...] = d_e  # (B14)
        numpy.multiply(d_h, r, out=d_o)  # (B15)
        numpy.multiply(d_w, i, out=d_z)  # (B16)
        numpy.subtract(1, Z_o, out=scratch_Z_o)  # (B17)
        numpy.multiply(scratch_Z_o, Z_o, out=scratch_Z_o)
        numpy.multiply(scratch_Z_o, d_Z_o, out=scratch_Z_o)
        d_A_x[:, 2 * H:3 * H] = scratch_Z_o
        numpy.exp(Z_l, out=scratch_Z_l)  # (B18)
        numpy.subtract(1, scratch_Z_l, out=scratch_Z_l)
        numpy.multiply(scratch_Z_l, d_Z_l, out=scratch_Z_l)
        d_A_x[:, H:2 * H] = scratch_Z_l
        d_A_x[:, 3 * H:4 * H] = d_m*((1/2)*numpy.sign(a_i - e) + 1/2) + d_p  # (B19) fork: m, p
        numpy.square(Z_z, out=scratch_Z_z)  # (B20)
        numpy.subtract(1, scratch_Z_z, out=scratch_Z_z)
        numpy.multiply(scratch_Z_z, d_Z_z, out=scratch_Z_z)
        d_A_x[:, 0:H] = scratch_Z_z
        d_m_prev = d_e  # (B21)
        d_n_prev = d_v*f  # (B22)
        d_c_prev = d_u*f  # (B23)
        d_h_prev = d_A_x @ Wcat_h_prev  # (B24) fork: a_z, a_i, a_f, a_o
        d_h_next = d_h_prev
        d_c_next = d_c_prev
        d_n_next = d_n_prev
        d_m_next = d_m_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    numpy.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B25)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).sum(axis=0)  # (P9)-(P12)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    return {"h": d_h_next, "c": d_c_next, "n": d_n_next, "m": d_m_next}


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
