"""LSTM with a forget gate, no peepholes (Hochreiter & Schmidhuber; Gers et al.): forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/lstm.tex.  Depends on NumPy only.

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
    grads["b_f"] = dw["bcat_x"][0:H]
    grads["W_i"] = dw["Wcat_x"][H:2 * H]
    grads["b_i"] = dw["bcat_x"][H:2 * H]
    grads["W_o"] = dw["Wcat_x"][2 * H:3 * H]
    grads["b_o"] = dw["bcat_x"][2 * H:3 * H]
    grads["W_g"] = dw["Wcat_x"][3 * H:4 * H]
    grads["b_g"] = dw["bcat_x"][3 * H:4 * H]
    grads["U_f"] = dw["Wcat_h_prev"][0:H]
    grads["U_i"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_o"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["U_g"] = dw["Wcat_h_prev"][3 * H:4 * H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, d_next


def _stack(params, sizes, dtype):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = numpy.concatenate([params["W_f"], params["W_i"], params["W_o"], params["W_g"]])
    bcat_x = numpy.concatenate([params["b_f"], params["b_i"], params["b_o"], params["b_g"]])
    Wcat_h_prev = numpy.concatenate([params["U_f"], params["U_i"], params["U_o"], params["U_g"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat_x=bcat_x)


def _buffers(n, B, sizes, dtype, ws):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": _take(ws, "h_seq", (n + 1, B, H), dtype),
        "c_seq": _take(ws, "c_seq", (n + 1, B, H), dtype),
        "k_seq": _take(ws, "k_seq", (n, B, H), dtype),
        "Z_f_i_o_seq": _take(ws, "Z_f_i_o_seq", (n, 3, B, H), dtype),
        "Z_g_seq": _take(ws, "Z_g_seq", (n, B, H), dtype),
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
    k_seq = seq["k_seq"]
    Z_f_i_o_seq = seq["Z_f_i_o_seq"]
    Z_g_seq = seq["Z_g_seq"]
    Wcat_x_T = Wcat_x.T.copy()  # a contiguous copy: a faster product
    Wcat_x_T[:, 0:3 * H] *= 1/2  # folded: tanh(k z) of a block
    Wcat_h_prev_T = Wcat_h_prev.T.copy()  # a contiguous copy: a faster product
    Wcat_h_prev_T[:, 0:3 * H] *= 1/2  # folded: tanh(k z) of a block
    bcat_x_fwd = bcat_x.copy()
    bcat_x_fwd[0:3 * H] *= 1/2  # folded: tanh(k z) of a block
    A_x = _take(ws, "A_x", (steps, B, 4 * H), dtype)
    # the x terms of every step at once  (F1)-(F4)
    numpy.matmul(xs.reshape(steps * B, D), Wcat_x_T, out=A_x.reshape(steps * B, 4 * H))
    A_x += bcat_x_fwd
    A_h_prev = _take(ws, "A_h_prev", (B, 4 * H), dtype)
    for t in range(steps):
        h_prev = h_seq[t]
        c_prev = c_seq[t]
        Z_f_i_o = Z_f_i_o_seq[t]
        Z_g = Z_g_seq[t]
        numpy.matmul(h_prev, Wcat_h_prev_T, out=A_h_prev)  # (F1)-(F4)
        A_h_prev += A_x[t]
        numpy.tanh(A_h_prev, out=A_h_prev)  # (F5) (F6) (F8) (F7): tanh of the whole buffer once, contiguous (the factor 1/2 inside tanh is in the weights' copies)
        Z_f_i_o[...] = A_h_prev[:, 0:3 * H].reshape(B, 3, H).transpose(1, 0, 2)  # (F5) (F6) (F8)
        numpy.multiply(Z_f_i_o, 1/2, out=Z_f_i_o)
        numpy.add(Z_f_i_o, 1/2, out=Z_f_i_o)
        f = Z_f_i_o[0]
        i = Z_f_i_o[1]
        o = Z_f_i_o[2]
        Z_g[...] = A_h_prev[:, 3 * H:4 * H]  # (F7)
        g = Z_g
        m = c_prev*f  # (F9)
        n = g*i  # (F10)
        numpy.add(m, n, out=c_seq[t + 1])  # (F11)
        c = c_seq[t + 1]
        numpy.tanh(c, out=k_seq[t])  # (F12)
        k = k_seq[t]
        numpy.multiply(k, o, out=h_seq[t + 1])  # (F13)


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
    k_seq = seq["k_seq"]
    Z_f_i_o_seq = seq["Z_f_i_o_seq"]
    Z_g_seq = seq["Z_g_seq"]
    d_h_next = d_next["h"]
    d_c_next = d_next["c"]
    d_A_x_seq = _take(ws, "d_A_x_seq", (steps, B, 4 * H), dtype)
    d_Z_f_i_o = _take(ws, "d_Z_f_i_o", (3, B, H), dtype)
    d_Z_g = _take(ws, "d_Z_g", (B, H), dtype)
    scratch_Z_f_i_o = _take(ws, "scratch_Z_f_i_o", (3, B, H), dtype)
    scratch_Z_g = _take(ws, "scratch_Z_g", (B, H), dtype)
    d_f = d_Z_f_i_o[0]
    d_i = d_Z_f_i_o[1]
    d_o = d_Z_f_i_o[2]
    d_g = d_Z_g
    for t in reversed(range(steps)):
        c_prev = c_seq[t]
        k = k_seq[t]
        Z_f_i_o = Z_f_i_o_seq[t]
        Z_g = Z_g_seq[t]
        f = Z_f_i_o[0]
        i = Z_f_i_o[1]
        o = Z_f_i_o[2]
        g = Z_g
        d_A_x = d_A_x_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_k = d_h*o  # (B2)
        d_c = d_k*(1 - k**2) + d_c_next  # (B3) fork: k, next step
        d_n = d_c  # (B4)
        d_m = d_c  # (B5)
        numpy.multiply(d_h, k, out=d_o)  # (B6)
        numpy.multiply(d_n, i, out=d_g)  # (B7)
        numpy.multiply(d_n, g, out=d_i)  # (B8)
        numpy.multiply(c_prev, d_m, out=d_f)  # (B9)
        numpy.square(Z_g, out=scratch_Z_g)  # (B11)
        numpy.subtract(1, scratch_Z_g, out=scratch_Z_g)
        numpy.multiply(scratch_Z_g, d_Z_g, out=scratch_Z_g)
        d_A_x[:, 3 * H:4 * H] = scratch_Z_g
        numpy.subtract(1, Z_f_i_o, out=scratch_Z_f_i_o)  # (B13) (B12) (B10)
        numpy.multiply(scratch_Z_f_i_o, Z_f_i_o, out=scratch_Z_f_i_o)
        numpy.multiply(scratch_Z_f_i_o, d_Z_f_i_o, out=scratch_Z_f_i_o)
        d_A_x[:, 0:3 * H].reshape(B, 3, H).transpose(1, 0, 2)[...] = scratch_Z_f_i_o
        d_c_prev = d_m*f  # (B14)
        d_h_prev = d_A_x @ Wcat_h_prev  # (B15) fork: a_f, a_i, a_g, a_o
        d_h_next = d_h_prev
        d_c_next = d_c_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    numpy.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B16)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).sum(axis=0)  # (P9)-(P12)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    return {"h": d_h_next, "c": d_c_next}


# PyTorch's torch.nn.LSTM(input_size=D, hidden_size=H) keeps these parameters
# stacked in its state dict; each key lists the parameters in its blocks of rows.
TORCH_MODULE = "LSTM"
TORCH_KEYS = {
    "weight_ih_l0": ("W_i", "W_f", "W_g", "W_o"),
    "weight_hh_l0": ("U_i", "U_f", "U_g", "U_o"),
    "bias_ih_l0": ("b_i", "b_f", "b_g", "b_o"),
    "bias_hh_l0": ("b_i", "b_f", "b_g", "b_o"),
}


def to_torch(params):
    """The state dict of torch.nn.LSTM(input_size=D, hidden_size=H) holding these parameters.

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
    """Parameters from a torch.nn.LSTM state dict (tensors or arrays); doubled biases are added."""
    params = {}
    for key, names in TORCH_KEYS.items():
        if key not in state_dict:
            raise ValueError(f"state_dict has no {key!r}; is it a one-layer torch.nn.LSTM?")
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
        "D": numpy.shape(params["W_f"])[1] if numpy.ndim(params["W_f"]) > 1 else 0,
        "H": numpy.shape(params["W_f"])[0] if numpy.ndim(params["W_f"]) > 0 else 0,
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
