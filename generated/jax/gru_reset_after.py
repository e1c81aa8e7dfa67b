"""GRU as PyTorch and cuDNN compute it: reset gate applied after the recurrent product: the derived backward inside JAX.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `gru_reset_after`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/gru_reset_after.tex.  Depends on JAX only; pure functions, jit-able.

`forward(params, xs, state0=None) -> (outputs, stateT)` runs the whole sequence with
`lax.scan` on a parameter pytree (a dict keyed like PARAMS), xs (T, B, D), each state
(B, size) in a dict keyed like STATE (zeros when None).  Zeros are made `like xs`, so
they are sharded like it under `shard_map`.  It is a `jax.custom_vjp`: its
forward scan keeps only what the derived backward reads (CACHED), and its backward is the
derivation's, one scan in reverse, so `jax.grad` and `jax.vjp` of anything built on it use
the derived backward.  `derived_forward` and `derived_backward` are the two halves, with
the contract of the NumPy module generated/gru_reset_after.py.
"""
try:
    import jax
    import jax.numpy as jnp
except ImportError:
    raise ImportError("this generated module needs JAX (package jax): pip install jax") from None

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
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> argument of init_params
OUTPUT = ("h", "H")
CACHED = ("h_seq", "a_nh_seq", "h_cand_seq", "v_seq", "Z_z_r_seq")  # per-step values the backward reads


def init_params(key, input_size, hidden_size, dtype=jnp.float32):
    """Uniform in (-1/sqrt(H), 1/sqrt(H)), as torch.nn's recurrent modules; key a jax.random key."""
    sizes = {"D": input_size, "H": hidden_size}
    bound = 1.0 / sizes["H"] ** 0.5
    keys = jax.random.split(key, len(PARAMS))
    return {name: jax.random.uniform(k, tuple(sizes[s] for s in shape), dtype, -bound, bound)
            for k, (name, shape) in zip(keys, PARAMS.items())}


def _sizes(params, xs):
    return {
        "D": params["W_z"].shape[1],
        "H": params["W_z"].shape[0],
        "steps": xs.shape[0], "B": xs.shape[1],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = jnp.concatenate([params["W_z"], params["W_r"], params["W_n"]])
    bcat_x = jnp.concatenate([params["b_z"], params["b_r"], params["b_n"]])
    Wcat_h_prev = jnp.concatenate([params["U_z"], params["U_r"], params["U_n"]])
    bcat_h_prev = jnp.concatenate([jnp.zeros(H, xs.dtype), jnp.zeros(H, xs.dtype), params["b_hn"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat_x=bcat_x, bcat_h_prev=bcat_h_prev)


def _forward_step(w, sizes, carry, step):
    """One step: the states before it (carry) and its slices of the sequences (step) ->
    the states after it and the values the backward reads."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    bcat_x = w["bcat_x"]
    bcat_h_prev = w["bcat_h_prev"]
    h_prev, = carry
    A_x_t = step["A_x_t"] + bcat_x
    A_h_prev = h_prev @ Wcat_h_prev.T  # (F1)-(F2)
    A_h_prev_1 = A_h_prev[..., 0:2 * H] + A_x_t[..., 0:2 * H]
    Z_z_r = jax.nn.sigmoid(A_h_prev_1)  # (F5) (F6)
    A_h_prev_2 = A_h_prev[..., 2 * H:3 * H] + bcat_h_prev[2 * H:3 * H]
    a_nh = A_h_prev_2
    r = Z_z_r[..., H:2 * H]
    a_nr = a_nh*r  # (F7)
    a_nx = A_x_t[..., 2 * H:3 * H]
    a_n = a_nr + a_nx  # (F8)
    h_cand = jnp.tanh(a_n)  # (F9)
    z = Z_z_r[..., 0:H]
    v = 1 - z  # (F10)
    h_new = h_cand*v  # (F11)
    h_kept = h_prev*z  # (F12)
    h = h_kept + h_new  # (F13)
    return (h,), {"h": h, "a_nh": a_nh, "h_cand": h_cand, "v": v, "Z_z_r": Z_z_r}


def _check_xs(xs):
    if len(xs.shape) != 3:
        raise ValueError(f"xs has shape {tuple(xs.shape)}, expected (T, B, D)")


def _check_shapes(xs, state0, params, sizes):
    """A ValueError naming the expected shape, before a product fails with the framework's
    message about a reshape: xs (T, B, D), each state (B, size), each parameter as PARAMS."""
    def dim(s):
        return int(s.split("*")[0]) * sizes[s.split("*")[1]] if "*" in s else sizes[s]
    _check_xs(xs)
    for name, value in (("xs", xs), *((f"params[{n!r}]", params[n]) for n in PARAMS)):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise ValueError(f"{name} has dtype {value.dtype}; the cell takes real floating-point arrays")
    for name, shape in PARAMS.items():
        want = tuple(dim(s) for s in shape)
        if tuple(params[name].shape) != want:
            raise ValueError(f"params[{name!r}] has shape {tuple(params[name].shape)}, expected {shape} = {want}")
    if xs.shape[2] != sizes["D"]:
        raise ValueError(f"xs has shape {tuple(xs.shape)}, expected (T, B, D) with D = {sizes['D']}")
    for s, value in zip(STATE, state0):
        want = (xs.shape[1], sizes[STATE_SIZES[s]])
        if tuple(value.shape) != want:
            raise ValueError(f"state {s} has shape {tuple(value.shape)}, expected (B, {STATE_SIZES[s]}) = {want}")


def derived_forward(params, xs, state0=None):
    """(outputs, stateT, cache): all steps of xs (T, B, D) from state0, and what the backward reads."""
    _check_xs(xs)
    sizes = _sizes(params, xs)
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    if state0 is None:
        state0 = {s: jnp.zeros_like(xs, shape=(B, sizes[STATE_SIZES[s]])) for s in STATE}
    _check_shapes(xs, [state0[s] for s in STATE], params, sizes)
    w = _stack(params, sizes, xs)
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    bcat_x = w["bcat_x"]
    bcat_h_prev = w["bcat_h_prev"]
    # the x terms of every step at once  (F1)-(F3)
    A_x = (xs.reshape(steps * B, D) @ Wcat_x.T).reshape(steps, B, 3 * H)
    step = dict(A_x_t=A_x)
    carry = tuple(state0[s] for s in STATE)
    stateT, ys = jax.lax.scan(lambda c, s: _forward_step(w, sizes, c, s), carry, step)
    seq = {f"{name}_seq": ys[name] for name in ys}
    for s in STATE:
        if f"{s}_seq" in seq:   # a state's sequence keeps its value before step 0 in row 0
            seq[f"{s}_seq"] = jnp.concatenate([state0[s][None], seq[f"{s}_seq"]])
    outputs = seq["h_seq"][1:]
    return outputs, dict(zip(STATE, stateT)), dict(xs=xs, seq=seq)


def _backward_step(w, sizes, carry, step):
    """One step back: the state gradients after it and the parameter gradients so far
    (carry), its slices of the sequences (step) -> the carry before it and its adjoints."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    bcat_x = w["bcat_x"]
    bcat_h_prev = w["bcat_h_prev"]
    (d_h_next,), dw = carry
    dw = dict(dw)
    dhs_t = step["dhs_t"]
    h_cand = step["h_cand"]
    v = step["v"]
    a_nh = step["a_nh"]
    h_prev = step["h_prev"]
    Z_z_r = step["Z_z_r"]
    d_h = d_h_next + dhs_t  # (B1) fork: loss, next step
    d_h_kept = d_h  # (B2)
    d_h_new = d_h  # (B3)
    d_v = d_h_new*h_cand  # (B4)
    d_h_cand = d_h_new*v  # (B5)
    d_a_n = d_h_cand*(1 - h_cand**2)  # (B6)
    d_a_nr = d_a_n  # (B7)
    d_r = a_nh*d_a_nr  # (B8)
    d_z = d_h_kept*h_prev - d_v  # (B9) fork: v, h_kept
    r = Z_z_r[..., H:2 * H]
    d_A_h_prev_1 = d_a_nr*r  # (B10)
    d_A_x_1 = d_a_n  # (B11)
    d_Z_z_r = jnp.concatenate([d_z, d_r], axis=-1)
    d_A_h_prev_2 = Z_z_r*d_Z_z_r*(1 - Z_z_r)  # (B13) (B12)
    d_A_h_prev = jnp.concatenate([d_A_h_prev_2, d_A_h_prev_1], axis=-1)
    z = Z_z_r[..., 0:H]
    d_h_prev = d_h_kept*z + d_A_h_prev @ Wcat_h_prev  # (B14) fork: a_z, a_r, a_nh, h_kept
    d_h_next = d_h_prev
    d_A_x = jnp.zeros((*d_A_x_1.shape[:-1], 3 * H), d_A_x_1.dtype)
    d_A_x = d_A_x.at[..., 2 * H:3 * H].set(d_A_x_1)
    return ((d_h_next,), dw), {"d_A_h_prev": d_A_h_prev, "d_A_x": d_A_x}


def _t_matmul(lhs, rhs):
    """lhs.T @ rhs (lhs (N, M), rhs (N, K), N the long axis) as (rhs.T @ lhs).T with the
    transpose kept apart: XLA's CPU dot contracting the long axis of its left operand ran the
    weight gradients at the sizes of benchmarks/bench.py at 0.45-0.7x the speed of the swapped
    product (JAX 0.10, one run), and without the barrier XLA folds the transpose back in."""
    return jax.lax.optimization_barrier(rhs.T @ lhs).T


def derived_backward(params, cache, dhs, dstateT=None):
    """(grads, dxs, dstate0): the derived backward of `derived_forward`, grads keyed like params."""
    xs, seq = cache["xs"], cache["seq"]
    sizes = _sizes(params, xs)
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    w = _stack(params, sizes, xs)
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    bcat_x = w["bcat_x"]
    bcat_h_prev = w["bcat_h_prev"]
    h_seq = seq["h_seq"]
    a_nh_seq = seq["a_nh_seq"]
    h_cand_seq = seq["h_cand_seq"]
    v_seq = seq["v_seq"]
    Z_z_r_seq = seq["Z_z_r_seq"]
    if dstateT is None:
        dstateT = {s: jnp.zeros_like(xs, shape=(B, sizes[STATE_SIZES[s]])) for s in STATE}
    dw = {name: jnp.zeros_like(xs, shape=value.shape) for name, value in w.items()}
    step = dict(dhs_t=dhs, h_cand=h_cand_seq, v=v_seq, a_nh=a_nh_seq, h_prev=h_seq[:-1], Z_z_r=Z_z_r_seq)
    carry = (tuple(dstateT[s] for s in STATE), dw)
    (dstate0, dw), ys = jax.lax.scan(lambda c, s: _backward_step(w, sizes, c, s), carry, step, reverse=True)
    d_A_h_prev_seq = ys["d_A_h_prev"]
    d_A_x_seq = ys["d_A_x"]
    d_A_x_seq_1 = d_A_h_prev_seq[..., 0:2 * H]
    d_A_x_seq = d_A_x_seq.at[..., 0:2 * H].set(d_A_x_seq_1)
    dw["Wcat_x"] = dw["Wcat_x"] + _t_matmul(d_A_x_seq.reshape(steps * B, 3 * H), xs.reshape(steps * B, D))  # (P1)-(P3)
    dxs = (d_A_x_seq.reshape(steps * B, 3 * H) @ Wcat_x).reshape(steps, B, D)  # (B15)
    dw["bcat_x"] = dw["bcat_x"] + d_A_x_seq.reshape(steps * B, 3 * H).sum(axis=0)  # (P7)-(P9)
    dw["Wcat_h_prev"] = dw["Wcat_h_prev"] + _t_matmul(d_A_h_prev_seq.reshape(steps * B, 3 * H), h_seq[:steps].reshape(steps * B, H))  # (P4)-(P6)
    dw["bcat_h_prev"] = dw["bcat_h_prev"] + d_A_h_prev_seq.reshape(steps * B, 3 * H).sum(axis=0)  # (P10)
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
    return {name: grads[name] for name in PARAMS}, dxs, dict(zip(STATE, dstate0))


def forward(params, xs, state0=None):
    """(outputs, stateT) of the sequence xs from state0 (a dict keyed like STATE, zeros when
    None); differentiated by JAX with the derived backward."""
    _check_xs(xs)
    if state0 is None:
        state0 = {s: jnp.zeros_like(xs, shape=(xs.shape[1], _sizes(params, xs)[STATE_SIZES[s]])) for s in STATE}
    return _run(params, xs, state0)


@jax.custom_vjp
def _run(params, xs, state0):
    outputs, stateT, _ = derived_forward(params, xs, state0)
    return outputs, stateT


def _forward_fwd(params, xs, state0):
    outputs, stateT, cache = derived_forward(params, xs, state0)
    return (outputs, stateT), (params, cache)


def _forward_bwd(saved, cotangents):
    params, cache = saved
    dhs, dstateT = cotangents
    grads, dxs, dstate0 = derived_backward(params, cache, dhs, dstateT)
    return {name: _summed_like(grads[name], params[name]) for name in grads}, dxs, dstate0


def _summed_like(gradient, primal):
    """Under shard_map a parameter replicated over mesh axes gets its gradient summed over
    them, as JAX's own differentiation does; elsewhere the gradient as it is."""
    extra = tuple(sorted(_varying_axes(gradient) - _varying_axes(primal)))
    return jax.lax.psum(gradient, extra) if extra else gradient


def _varying_axes(value):
    """The mesh axes a value varies over inside shard_map (`vma`; `mat.varying` since JAX 0.10)."""
    aval = jax.typeof(value) if hasattr(jax, "typeof") else None
    found = getattr(aval, "vma", None)
    if found is None:
        found = getattr(getattr(aval, "mat", None), "varying", None)
    return frozenset(found or ())


_run.defvjp(_forward_fwd, _forward_bwd)
