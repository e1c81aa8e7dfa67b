"""LSTM with peephole connections: the gates also read the cell state (Gers & Schmidhuber): the derived backward inside JAX.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `peephole_lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/peephole_lstm.tex.  Depends on JAX only; pure functions, jit-able.

`forward(params, xs, state0=None) -> (outputs, stateT)` runs the whole sequence with
`lax.scan` on a parameter pytree (a dict keyed like PARAMS), xs (T, B, D), each state
(B, size) in a dict keyed like STATE (zeros when None).  Zeros are made `like xs`, so
they are sharded like it under `shard_map`.  It is a `jax.custom_vjp`: its
forward scan keeps only what the derived backward reads (CACHED), and its backward is the
derivation's, one scan in reverse, so `jax.grad` and `jax.vjp` of anything built on it use
the derived backward.  `derived_forward` and `derived_backward` are the two halves, with
the contract of the NumPy module generated/peephole_lstm.py.
"""
try:
    import jax
    import jax.numpy as jnp
except ImportError:
    raise ImportError("this generated module needs JAX (package jax): pip install jax") from None

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
    "p_f": ("H",),
    "p_i": ("H",),
    "p_o": ("H",),
}
STATE = ("h", "c")
STATE_SIZES = {"h": "H", "c": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> argument of init_params
OUTPUT = ("h", "H")
CACHED = ("h_seq", "c_seq", "f_seq", "i_seq", "o_seq", "k_seq", "Z_g_seq")  # per-step values the backward reads


def init_params(key, input_size, hidden_size, dtype=jnp.float32):
    """Uniform in (-1/sqrt(H), 1/sqrt(H)), as torch.nn's recurrent modules; key a jax.random key."""
    sizes = {"D": input_size, "H": hidden_size}
    bound = 1.0 / sizes["H"] ** 0.5
    keys = jax.random.split(key, len(PARAMS))
    return {name: jax.random.uniform(k, tuple(sizes[s] for s in shape), dtype, -bound, bound)
            for k, (name, shape) in zip(keys, PARAMS.items())}


def _sizes(params, xs):
    return {
        "D": params["W_f"].shape[1],
        "H": params["W_f"].shape[0],
        "steps": xs.shape[0], "B": xs.shape[1],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = jnp.concatenate([params["W_g"], params["W_f"], params["W_i"], params["W_o"]])
    bcat_x = jnp.concatenate([params["b_g"], params["b_f"], params["b_i"], params["b_o"]])
    Wcat_h_prev = jnp.concatenate([params["U_g"], params["U_f"], params["U_i"], params["U_o"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat_x=bcat_x, p_f=params["p_f"], p_i=params["p_i"], p_o=params["p_o"])


def _forward_step(w, sizes, carry, step):
    """One step: the states before it (carry) and its slices of the sequences (step) ->
    the states after it and the values the backward reads."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    bcat_x = w["bcat_x"]
    p_f = w["p_f"]
    p_i = w["p_i"]
    p_o = w["p_o"]
    h_prev, c_prev = carry
    A_x_t = step["A_x_t"] + bcat_x
    A_h_prev = h_prev @ Wcat_h_prev.T  # (F1)-(F4)
    A_h_prev = A_h_prev + A_x_t
    Z_g = jnp.tanh(A_h_prev[..., 0:H])  # (F11)
    q_f = c_prev*p_f  # (F5)
    a_f = A_h_prev[..., H:2 * H]
    z_f = a_f + q_f  # (F6)
    f = jax.nn.sigmoid(z_f)  # (F7)
    q_i = c_prev*p_i  # (F8)
    a_i = A_h_prev[..., 2 * H:3 * H]
    z_i = a_i + q_i  # (F9)
    i = jax.nn.sigmoid(z_i)  # (F10)
    m = c_prev*f  # (F12)
    g = Z_g
    n = g*i  # (F13)
    c = m + n  # (F14)
    q_o = c*p_o  # (F15)
    a_o = A_h_prev[..., 3 * H:4 * H]
    z_o = a_o + q_o  # (F16)
    o = jax.nn.sigmoid(z_o)  # (F17)
    k = jnp.tanh(c)  # (F18)
    h = k*o  # (F19)
    return (h, c), {"h": h, "c": c, "f": f, "i": i, "o": o, "k": k, "Z_g": Z_g}


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
    p_f = w["p_f"]
    p_i = w["p_i"]
    p_o = w["p_o"]
    # the x terms of every step at once  (F1)-(F4)
    A_x = (xs.reshape(steps * B, D) @ Wcat_x.T).reshape(steps, B, 4 * H)
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
    p_f = w["p_f"]
    p_i = w["p_i"]
    p_o = w["p_o"]
    (d_h_next, d_c_next), dw = carry
    dw = dict(dw)
    dhs_t = step["dhs_t"]
    o = step["o"]
    k = step["k"]
    i = step["i"]
    Z_g = step["Z_g"]
    c_prev = step["c_prev"]
    f = step["f"]
    c = step["c"]
    d_h = d_h_next + dhs_t  # (B1) fork: loss, next step
    d_k = d_h*o  # (B2)
    d_o = d_h*k  # (B3)
    d_z_o = d_o*o*(1 - o)  # (B4)
    d_q_o = d_z_o  # (B5)
    d_c = d_k*(1 - k**2) + d_q_o*p_o + d_c_next  # (B6) fork: q_o, k, next step
    d_n = d_c  # (B7)
    d_m = d_c  # (B8)
    d_g = d_n*i  # (B9)
    g = Z_g
    d_i = d_n*g  # (B10)
    d_z_i = d_i*i*(1 - i)  # (B11)
    d_q_i = d_z_i  # (B12)
    d_f = c_prev*d_m  # (B13)
    d_z_f = d_f*f*(1 - f)  # (B14)
    d_q_f = d_z_f  # (B15)
    d_A_x_1 = d_z_o  # (B16)
    d_Z_g = d_g
    d_A_x_2 = d_Z_g*(1 - Z_g**2)  # (B17)
    d_A_x_3 = d_z_i  # (B18)
    d_A_x_4 = d_z_f  # (B19)
    d_c_prev = d_m*f + d_q_f*p_f + d_q_i*p_i  # (B20) fork: q_f, q_i, m
    d_A_x = jnp.concatenate([d_A_x_2, d_A_x_4, d_A_x_3, d_A_x_1], axis=-1)
    d_h_prev = d_A_x @ Wcat_h_prev  # (B21) fork: a_f, a_i, a_g, a_o
    dw["p_f"] = dw["p_f"] + (c_prev*d_q_f).sum(axis=0)  # (P13)
    dw["p_i"] = dw["p_i"] + (c_prev*d_q_i).sum(axis=0)  # (P14)
    dw["p_o"] = dw["p_o"] + (c*d_q_o).sum(axis=0)  # (P15)
    d_h_next = d_h_prev
    d_c_next = d_c_prev
    return ((d_h_next, d_c_next), dw), {"d_A_x": d_A_x}


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
    p_f = w["p_f"]
    p_i = w["p_i"]
    p_o = w["p_o"]
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    f_seq = seq["f_seq"]
    i_seq = seq["i_seq"]
    o_seq = seq["o_seq"]
    k_seq = seq["k_seq"]
    Z_g_seq = seq["Z_g_seq"]
    if dstateT is None:
        dstateT = {s: jnp.zeros_like(xs, shape=(B, sizes[STATE_SIZES[s]])) for s in STATE}
    dw = {name: jnp.zeros_like(xs, shape=value.shape) for name, value in w.items()}
    step = dict(dhs_t=dhs, o=o_seq, k=k_seq, i=i_seq, Z_g=Z_g_seq, c_prev=c_seq[:-1], f=f_seq, c=c_seq[1:])
    carry = (tuple(dstateT[s] for s in STATE), dw)
    (dstate0, dw), ys = jax.lax.scan(lambda c, s: _backward_step(w, sizes, c, s), carry, step, reverse=True)
    d_A_x_seq = ys["d_A_x"]
    dw["Wcat_x"] = dw["Wcat_x"] + _t_matmul(d_A_x_seq.reshape(steps * B, 4 * H), xs.reshape(steps * B, D))  # (P1)-(P4)
    dxs = (d_A_x_seq.reshape(steps * B, 4 * H) @ Wcat_x).reshape(steps, B, D)  # (B22)
    dw["bcat_x"] = dw["bcat_x"] + d_A_x_seq.reshape(steps * B, 4 * H).sum(axis=0)  # (P9)-(P12)
    dw["Wcat_h_prev"] = dw["Wcat_h_prev"] + _t_matmul(d_A_x_seq.reshape(steps * B, 4 * H), h_seq[:steps].reshape(steps * B, H))  # (P5)-(P8)
    grads = {}
    grads["W_g"] = dw["Wcat_x"][0:H]
    grads["b_g"] = dw["bcat_x"][0:H]
    grads["W_f"] = dw["Wcat_x"][H:2 * H]
    grads["b_f"] = dw["bcat_x"][H:2 * H]
    grads["W_i"] = dw["Wcat_x"][2 * H:3 * H]
    grads["b_i"] = dw["bcat_x"][2 * H:3 * H]
    grads["W_o"] = dw["Wcat_x"][3 * H:4 * H]
    grads["b_o"] = dw["bcat_x"][3 * H:4 * H]
    grads["U_g"] = dw["Wcat_h_prev"][0:H]
    grads["U_f"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_i"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["U_o"] = dw["Wcat_h_prev"][3 * H:4 * H]
    grads["p_f"] = dw["p_f"]
    grads["p_i"] = dw["p_i"]
    grads["p_o"] = dw["p_o"]
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
