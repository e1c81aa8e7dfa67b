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
    grads["W_z"] = dw["Wcat_x"][0:H]
    grads["b_z"] = dw["bcat_x"][0:H]
    grads["W_r"] = dw["Wcat_x"][H:2 * H]
    grads["b_r"] = dw["bcat_x"][H:2 * H]
    grads["W_n"] = dw["Wcat_x"][2 * H:3 * H]
    grads["b_n"] = dw["bcat_x"][2 * H:3 * H]
    grads["U_z"] = dw["Wcat_h_prev"][0:H]
    grads["U_r"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_n"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["b_hn"] = dw["bcat_h_prev"][2 * H:3 * H]
    grads = {name: grads[name] for name in PARAMS}
    return grads, dxs, d_next


def _stack(params, sizes, dtype):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = numpy.concatenate([params["W_z"], params["W_r"], params["W_n"]])
    bcat_x = numpy.concatenate([params["b_z"], params["b_r"], params["b_n"]])
    Wcat_h_prev = numpy.concatenate([params["U_z"], params["U_r"], params["U_n"]])
    bcat_h_prev = numpy.concatenate([numpy.zeros(H, dtype), numpy.zeros(H, dtype), params["b_hn"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat_x=bcat_x, bcat_h_prev=bcat_h_prev)


def _buffers(n, B, sizes, dtype, ws):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": _take(ws, "h_seq", (n + 1, B, H), dtype),
        "a_nh_seq": _take(ws, "a_nh_seq", (n, B, H), dtype),
        "h_cand_seq": _take(ws, "h_cand_seq", (n, B, H), dtype),
        "v_seq": _take(ws, "v_seq", (n, B, H), dtype),
        "Z_z_r_seq": _take(ws, "Z_z_r_seq", (n, 2, B, H), dtype),
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
    bcat_h_prev = w["bcat_h_prev"]
    h_seq = seq["h_seq"]
    a_nh_seq = seq["a_nh_seq"]
    h_cand_seq = seq["h_cand_seq"]
    v_seq = seq["v_seq"]
    Z_z_r_seq = seq["Z_z_r_seq"]
    Wcat_x_T = Wcat_x.T.copy()  # a contiguous copy: a faster product
    Wcat_x_T[:, 0:2 * H] *= 1/2  # folded: tanh(k z) of a block
    Wcat_h_prev_T = Wcat_h_prev.T.copy()  # a contiguous copy: a faster product
    Wcat_h_prev_T[:, 0:2 * H] *= 1/2  # folded: tanh(k z) of a block
    bcat_x_fwd = bcat_x.copy()
    bcat_x_fwd[0:2 * H] *= 1/2  # folded: tanh(k z) of a block
    A_x = _take(ws, "A_x", (steps, B, 3 * H), dtype)
    # the x terms of every step at once  (F1)-(F3)
    numpy.matmul(xs.reshape(steps * B, D), Wcat_x_T, out=A_x.reshape(steps * B, 3 * H))
    A_x += bcat_x_fwd
    A_h_prev = _take(ws, "A_h_prev", (B, 3 * H), dtype)
    for t in range(steps):
        h_prev = h_seq[t]
        Z_z_r = Z_z_r_seq[t]
        numpy.matmul(h_prev, Wcat_h_prev_T, out=A_h_prev)  # (F1)-(F2)
        A_h_prev += bcat_h_prev
        a_nh_seq[t] = A_h_prev[:, 2 * H:3 * H]
        A_h_prev += A_x[t]
        numpy.tanh(A_h_prev, out=A_h_prev)  # (F5) (F6): tanh of the whole buffer once, contiguous (the factor 1/2 inside tanh is in the weights' copies)
        Z_z_r[...] = A_h_prev[:, 0:2 * H].reshape(B, 2, H).transpose(1, 0, 2)  # (F5) (F6)
        numpy.multiply(Z_z_r, 1/2, out=Z_z_r)
        numpy.add(Z_z_r, 1/2, out=Z_z_r)
        z = Z_z_r[0]
        r = Z_z_r[1]
        a_nx = A_x[t, :, 2 * H:3 * H]
        a_nh = a_nh_seq[t]
        a_nr = a_nh*r  # (F7)
        a_n = a_nr + a_nx  # (F8)
        numpy.tanh(a_n, out=h_cand_seq[t])  # (F9)
        h_cand = h_cand_seq[t]
        numpy.subtract(1, z, out=v_seq[t])  # (F10)
        v = v_seq[t]
        h_new = h_cand*v  # (F11)
        h_kept = h_prev*z  # (F12)
        numpy.add(h_kept, h_new, out=h_seq[t + 1])  # (F13)


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
    bcat_h_prev = w["bcat_h_prev"]
    h_seq = seq["h_seq"]
    a_nh_seq = seq["a_nh_seq"]
    h_cand_seq = seq["h_cand_seq"]
    v_seq = seq["v_seq"]
    Z_z_r_seq = seq["Z_z_r_seq"]
    d_h_next = d_next["h"]
    d_A_x_seq = _take(ws, "d_A_x_seq", (steps, B, 3 * H), dtype)
    d_A_h_prev_seq = _take(ws, "d_A_h_prev_seq", (steps, B, 3 * H), dtype)
    d_Z_z_r = _take(ws, "d_Z_z_r", (2, B, H), dtype)
    scratch_Z_z_r = _take(ws, "scratch_Z_z_r", (2, B, H), dtype)
    d_z = d_Z_z_r[0]
    d_r = d_Z_z_r[1]
    for t in reversed(range(steps)):
        h_prev = h_seq[t]
        a_nh = a_nh_seq[t]
        h_cand = h_cand_seq[t]
        v = v_seq[t]
        Z_z_r = Z_z_r_seq[t]
        z = Z_z_r[0]
        r = Z_z_r[1]
        d_A_x = d_A_x_seq[t]
        d_A_h_prev = d_A_h_prev_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_h_kept = d_h  # (B2)
        d_h_new = d_h  # (B3)
        d_v = d_h_new*h_cand  # (B4)
        d_h_cand = d_h_new*v  # (B5)
        d_a_n = d_h_cand*(1 - h_cand**2)  # (B6)
        d_a_nr = d_a_n  # (B7)
        numpy.multiply(a_nh, d_a_nr, out=d_r)  # (B8)
        numpy.multiply(d_h_kept, h_prev, out=d_z)  # (B9) fork: v, h_kept
        numpy.subtract(d_z, d_v, out=d_z)
        d_A_h_prev[:, 2 * H:3 * H] = d_a_nr*r  # (B10)
        d_A_x[:, 2 * H:3 * H] = d_a_n  # (B11)
        numpy.subtract(1, Z_z_r, out=scratch_Z_z_r)  # (B13) (B12)
        numpy.multiply(scratch_Z_z_r, Z_z_r, out=scratch_Z_z_r)
        numpy.multiply(scratch_Z_z_r, d_Z_z_r, out=scratch_Z_z_r)
        d_A_h_prev[:, 0:2 * H].reshape(B, 2, H).transpose(1, 0, 2)[...] = scratch_Z_z_r
        d_h_prev = d_h_kept*z + d_A_h_prev @ Wcat_h_prev  # (B14) fork: a_z, a_r, a_nh, h_kept
        d_h_next = d_h_prev
    d_A_x_seq[:, :, 0:2 * H] = d_A_h_prev_seq[:, :, 0:2 * H]
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 3 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P3)
    numpy.matmul(d_A_x_seq.reshape(steps * B, 3 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B15)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, 3 * H).sum(axis=0)  # (P7)-(P9)
    dw["Wcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 3 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P4)-(P6)
    dw["bcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 3 * H).sum(axis=0)  # (P10)
    return {"h": d_h_next}


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
