"""deep-transition RNN: one hidden layer inside each step, between the previous state and the new one: forward and backward over whole sequences.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `dt_rnn`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/dt_rnn.tex.  Depends on NumPy only.

Shapes: xs (T, B, D); the output (B, H) per step; state h (B, H).
"""
import numpy

PARAMS = {
    "W": ("H", "D"),
    "U": ("H", "H"),
    "V": ("H", "H"),
    "b": ("H",),
    "c": ("H",),
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
    grads["W"] = dw["Wcat_x"][0:H]
    grads["b"] = dw["bcat_x"][0:H]
    grads["U"] = dw["Wcat_h_prev"][0:H]
    grads["V"] = dw["Wcat_u"][0:H]
    grads["c"] = dw["bcat_u"][0:H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, d_next


def _stack(params, sizes, dtype):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = numpy.concatenate([params["W"]])
    bcat_x = numpy.concatenate([params["b"]])
    Wcat_h_prev = numpy.concatenate([params["U"]])
    Wcat_u = numpy.concatenate([params["V"]])
    bcat_u = numpy.concatenate([params["c"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, Wcat_u=Wcat_u, bcat_x=bcat_x, bcat_u=bcat_u)


def _buffers(n, B, sizes, dtype, ws):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": _take(ws, "h_seq", (n + 1, B, H), dtype),
        "Z_u_seq": _take(ws, "Z_u_seq", (n, B, H), dtype),
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
    Wcat_u = w["Wcat_u"]
    bcat_x = w["bcat_x"]
    bcat_u = w["bcat_u"]
    h_seq = seq["h_seq"]
    Z_u_seq = seq["Z_u_seq"]
    Wcat_x_T = Wcat_x.T.copy()  # a contiguous copy: a faster product
    Wcat_x_T[:, 0:H] *= 1/2  # folded: tanh(k z) of a block
    Wcat_h_prev_T = Wcat_h_prev.T.copy()  # a contiguous copy: a faster product
    Wcat_h_prev_T[:, 0:H] *= 1/2  # folded: tanh(k z) of a block
    Wcat_u_T = Wcat_u.T.copy()  # a contiguous copy: a faster product
    bcat_x_fwd = bcat_x.copy()
    bcat_x_fwd[0:H] *= 1/2  # folded: tanh(k z) of a block
    A_x = _take(ws, "A_x", (steps, B, H), dtype)
    # the x terms of every step at once  (F1)
    numpy.matmul(xs.reshape(steps * B, D), Wcat_x_T, out=A_x.reshape(steps * B, H))
    A_x += bcat_x_fwd
    A_h_prev = _take(ws, "A_h_prev", (B, H), dtype)
    A_u = _take(ws, "A_u", (B, H), dtype)
    for t in range(steps):
        h_prev = h_seq[t]
        Z_u = Z_u_seq[t]
        numpy.matmul(h_prev, Wcat_h_prev_T, out=A_h_prev)  # (F1)
        A_h_prev += A_x[t]
        numpy.tanh(A_h_prev[:, 0:H], out=Z_u)  # (F2) (the factor 1/2 inside tanh is in the weights' copies)
        numpy.multiply(Z_u, 1/2, out=Z_u)
        numpy.add(Z_u, 1/2, out=Z_u)
        u = Z_u
        numpy.matmul(u, Wcat_u_T, out=A_u)  # (F3)
        A_u += bcat_u[0:H]
        a_h = A_u
        numpy.tanh(a_h, out=h_seq[t + 1])  # (F4)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs, ws):
    """Steps steps-1..0 back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs (steps, B, D) and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    dtype = xs.dtype
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    Wcat_u = w["Wcat_u"]
    bcat_x = w["bcat_x"]
    bcat_u = w["bcat_u"]
    h_seq = seq["h_seq"]
    Z_u_seq = seq["Z_u_seq"]
    d_h_next = d_next["h"]
    d_A_x_seq = _take(ws, "d_A_x_seq", (steps, B, H), dtype)
    d_A_u_seq = _take(ws, "d_A_u_seq", (steps, B, H), dtype)
    d_Z_u = _take(ws, "d_Z_u", (B, H), dtype)
    scratch_Z_u = _take(ws, "scratch_Z_u", (B, H), dtype)
    d_u = d_Z_u
    for t in reversed(range(steps)):
        h = h_seq[t + 1]
        Z_u = Z_u_seq[t]
        d_A_x = d_A_x_seq[t]
        d_A_u = d_A_u_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        numpy.square(h, out=d_A_u[:, 0:H])  # (B2)
        numpy.subtract(1, d_A_u[:, 0:H], out=d_A_u[:, 0:H])
        numpy.multiply(d_A_u[:, 0:H], d_h, out=d_A_u[:, 0:H])
        d_u[...] = d_A_u @ Wcat_u  # (B3)
        numpy.subtract(1, Z_u, out=d_A_x[:, 0:H])  # (B4)
        numpy.multiply(d_A_x[:, 0:H], Z_u, out=d_A_x[:, 0:H])
        numpy.multiply(d_A_x[:, 0:H], d_Z_u, out=d_A_x[:, 0:H])
        d_h_prev = d_A_x @ Wcat_h_prev  # (B5)
        d_h_next = d_h_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, H).T @ xs.reshape(steps * B, D)  # (P1)
    numpy.matmul(d_A_x_seq.reshape(steps * B, H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B6)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, H).sum(axis=0)  # (P4)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, H).T @ h_seq[:steps].reshape(steps * B, H)  # (P2)
    dw["Wcat_u"] += d_A_u_seq.reshape(steps * B, H).T @ Z_u_seq[:, :, 0:H].reshape(steps * B, H)  # (P3)
    dw["bcat_u"] += d_A_u_seq.reshape(steps * B, H).sum(axis=0)  # (P5)
    return {"h": d_h_next}


def _sizes(params):
    """The size symbols, read off the parameters; every parameter's shape is checked."""
    if not isinstance(params, dict):
        raise ValueError("params must be a dict of arrays keyed like PARAMS")
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"params is missing {', '.join(missing)}")
    sizes = {
        "D": numpy.shape(params["W"])[1] if numpy.ndim(params["W"]) > 1 else 0,
        "H": numpy.shape(params["W"])[0] if numpy.ndim(params["W"]) > 0 else 0,
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
