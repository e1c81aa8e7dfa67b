"""layer-normalised GRU as PyTorch computes it: the stacked input and recurrent terms normalised: the derived backward inside JAX.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_gru`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_gru.tex.  Depends on JAX only; pure functions, jit-able.

`forward(params, xs, state0=None) -> (outputs, stateT)` runs the whole sequence with
`lax.scan` on a parameter pytree (a dict keyed like PARAMS), xs (T, B, D), each state
(B, size) in a dict keyed like STATE (zeros when None).  Zeros are made `like xs`, so
they are sharded like it under `shard_map`.  It is a `jax.custom_vjp`: its
forward scan keeps only what the derived backward reads (CACHED), and its backward is the
derivation's, one scan in reverse, so `jax.grad` and `jax.vjp` of anything built on it use
the derived backward.  `derived_forward` and `derived_backward` are the two halves, with
the contract of the NumPy module generated/layernorm_gru.py.
"""
try:
    import jax
    import jax.numpy as jnp
except ImportError:
    raise ImportError("this generated module needs JAX (package jax): pip install jax") from None

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
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> argument of init_params
INITIAL = {"beta_h": 0.0, "beta_x": 0.0, "gamma_h": 1.0, "gamma_x": 1.0}  # parameters that start at a constant, not a random draw
OUTPUT = ("h", "H")
CACHED = ("h_seq", "Z_zx_seq", "Z_zh_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "r_seq", "z_seq", "a_nh_seq", "h_cand_seq", "v_seq")  # per-step values the backward reads


def init_params(key, input_size, hidden_size, dtype=jnp.float32):
    """Uniform in (-1/sqrt(H), 1/sqrt(H)), as torch.nn's recurrent modules (INITIAL: constants); key a jax.random key."""
    sizes = {"D": input_size, "H": hidden_size}
    bound = 1.0 / sizes["H"] ** 0.5
    keys = jax.random.split(key, len(PARAMS))
    return {name: jnp.full(_shape(shape, sizes), INITIAL[name], dtype) if name in INITIAL
            else jax.random.uniform(k, _shape(shape, sizes), dtype, -bound, bound)
            for k, (name, shape) in zip(keys, PARAMS.items())}


def _shape(shape, sizes):
    """A parameter's shape from its size symbols; "4*H" is 4 times H (a packed parameter)."""
    return tuple(int(s.split("*")[0]) * sizes[s.split("*")[1]] if "*" in s else sizes[s] for s in shape)


def _sizes(params, xs):
    return {
        "D": params["W_r"].shape[1],
        "H": params["W_r"].shape[0],
        "steps": xs.shape[0], "B": xs.shape[1],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    params = dict(params)   # the blocks of every packed parameter, as the stages read them
    params["gamma_x_r"] = params["gamma_x"][0:H]
    params["gamma_x_z"] = params["gamma_x"][H:2 * H]
    params["gamma_x_n"] = params["gamma_x"][2 * H:3 * H]
    params["beta_x_r"] = params["beta_x"][0:H]
    params["beta_x_z"] = params["beta_x"][H:2 * H]
    params["beta_x_n"] = params["beta_x"][2 * H:3 * H]
    params["gamma_h_r"] = params["gamma_h"][0:H]
    params["gamma_h_z"] = params["gamma_h"][H:2 * H]
    params["gamma_h_n"] = params["gamma_h"][2 * H:3 * H]
    params["beta_h_r"] = params["beta_h"][0:H]
    params["beta_h_z"] = params["beta_h"][H:2 * H]
    params["beta_h_n"] = params["beta_h"][2 * H:3 * H]
    Wcat_x = jnp.concatenate([params["W_r"], params["W_z"], params["W_n"]])
    Wcat_h_prev = jnp.concatenate([params["U_r"], params["U_z"], params["U_n"]])
    Z_gamma_x = jnp.concatenate([params["gamma_x_r"], params["gamma_x_z"], params["gamma_x_n"]])
    Z_beta_x = jnp.concatenate([params["beta_x_r"], params["beta_x_z"], params["beta_x_n"]])
    Z_gamma_h = jnp.concatenate([params["gamma_h_r"], params["gamma_h_z"], params["gamma_h_n"]])
    Z_beta_h = jnp.concatenate([params["beta_h_r"], params["beta_h_z"], params["beta_h_n"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_r=params["b_r"], b_z=params["b_z"], b_n=params["b_n"], b_hn=params["b_hn"], gamma_x_r=params["gamma_x_r"], gamma_x_z=params["gamma_x_z"], gamma_x_n=params["gamma_x_n"], beta_x_r=params["beta_x_r"], beta_x_z=params["beta_x_z"], beta_x_n=params["beta_x_n"], gamma_h_r=params["gamma_h_r"], gamma_h_z=params["gamma_h_z"], gamma_h_n=params["gamma_h_n"], beta_h_r=params["beta_h_r"], beta_h_z=params["beta_h_z"], beta_h_n=params["beta_h_n"], Z_gamma_x=Z_gamma_x, Z_beta_x=Z_beta_x, Z_gamma_h=Z_gamma_h, Z_beta_h=Z_beta_h)


def _forward_step(w, sizes, carry, step):
    """One step: the states before it (carry) and its slices of the sequences (step) ->
    the states after it and the values the backward reads."""
    D = sizes["D"]
    H = sizes["H"]
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
    h_prev, = carry
    A_x_t = step["A_x_t"]
    Z_zx = A_x_t
    A_h_prev = h_prev @ Wcat_h_prev.T  # (F4)-(F6)
    Z_zh = A_h_prev
    mu_x = (Z_zx).mean(axis=-1, keepdims=True)  # (F7)
    Z_e_zx = (Z_zx - mu_x)**2  # (F8) (F9) (F10)
    v_x = (Z_e_zx).mean(axis=-1, keepdims=True)  # (F11)
    r_x = 1/jnp.sqrt(v_x + 1/100000)  # (F12)
    Z_yx = Z_beta_x + Z_gamma_x*r_x*(Z_zx - mu_x)  # (F13) (F14) (F15)
    mu_h = (Z_zh).mean(axis=-1, keepdims=True)  # (F16)
    Z_e_zh = (Z_zh - mu_h)**2  # (F17) (F18) (F19)
    v_h = (Z_e_zh).mean(axis=-1, keepdims=True)  # (F20)
    r_h = 1/jnp.sqrt(v_h + 1/100000)  # (F21)
    Z_yh = Z_beta_h + Z_gamma_h*r_h*(Z_zh - mu_h)  # (F22) (F23) (F24)
    yh_r = Z_yh[..., 0:H]
    yx_r = Z_yx[..., 0:H]
    s_r = yh_r + yx_r  # (F25)
    a_r = b_r + s_r  # (F26)
    r = jax.nn.sigmoid(a_r)  # (F27)
    yh_z = Z_yh[..., H:2 * H]
    yx_z = Z_yx[..., H:2 * H]
    s_z = yh_z + yx_z  # (F28)
    a_z = b_z + s_z  # (F29)
    z = jax.nn.sigmoid(a_z)  # (F30)
    yh_n = Z_yh[..., 2 * H:3 * H]
    a_nh = b_hn + yh_n  # (F31)
    a_nr = a_nh*r  # (F32)
    yx_n = Z_yx[..., 2 * H:3 * H]
    a_nx = b_n + yx_n  # (F33)
    a_n = a_nr + a_nx  # (F34)
    h_cand = jnp.tanh(a_n)  # (F35)
    v = 1 - z  # (F36)
    h_new = h_cand*v  # (F37)
    h_kept = h_prev*z  # (F38)
    h = h_kept + h_new  # (F39)
    return (h,), {"h": h, "Z_zx": Z_zx, "Z_zh": Z_zh, "mu_x": mu_x, "v_x": v_x, "r_x": r_x, "mu_h": mu_h, "v_h": v_h, "r_h": r_h, "r": r, "z": z, "a_nh": a_nh, "h_cand": h_cand, "v": v}


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
    (d_h_next,), dw = carry
    dw = dict(dw)
    dhs_t = step["dhs_t"]
    h_cand = step["h_cand"]
    v = step["v"]
    r = step["r"]
    h_prev = step["h_prev"]
    z = step["z"]
    a_nh = step["a_nh"]
    Z_zh = step["Z_zh"]
    mu_h = step["mu_h"]
    v_h = step["v_h"]
    r_h = step["r_h"]
    Z_zx = step["Z_zx"]
    mu_x = step["mu_x"]
    v_x = step["v_x"]
    r_x = step["r_x"]
    d_h = d_h_next + dhs_t  # (B1) fork: loss, next step
    d_h_kept = d_h  # (B2)
    d_h_new = d_h  # (B3)
    d_v = d_h_new*h_cand  # (B4)
    d_h_cand = d_h_new*v  # (B5)
    d_a_n = d_h_cand*(1 - h_cand**2)  # (B6)
    d_a_nx = d_a_n  # (B7)
    d_a_nr = d_a_n  # (B8)
    d_Z_yh_1 = d_a_nr*r  # (B9)
    d_z = d_h_kept*h_prev - d_v  # (B10) fork: v, h_kept
    d_Z_yh_2 = d_z*z*(1 - z)  # (B11)
    d_s_z = d_Z_yh_2  # (B12)
    d_r = a_nh*d_a_nr  # (B13)
    d_Z_yh_3 = d_r*r*(1 - r)  # (B14)
    d_s_r = d_Z_yh_3  # (B15)
    d_Z_yh = jnp.concatenate([d_Z_yh_3, d_Z_yh_2, d_Z_yh_1], axis=-1)
    d_r_h = (Z_gamma_h*d_Z_yh*(Z_zh - mu_h)).reshape(-1, 3, H).sum(axis=1)  # (B19)
    d_v_h = -1/2*d_r_h/(v_h + 1/100000)**(3/2)  # (B20)
    d_Z_e_zh = (1/3)*(d_v_h).mean(axis=-1, keepdims=True)  # (B21) (B22) (B23)
    d_mu_h = (-Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(-2*Z_zh + 2*mu_h)).reshape(-1, 3, H).sum(axis=1)  # (B24)
    d_Z_yx_1 = d_s_r  # (B27)
    d_Z_yx_2 = d_s_z  # (B26)
    d_Z_yx_3 = d_a_nx  # (B25)
    d_Z_yx = jnp.concatenate([d_Z_yx_1, d_Z_yx_2, d_Z_yx_3], axis=-1)
    d_r_x = (Z_gamma_x*d_Z_yx*(Z_zx - mu_x)).reshape(-1, 3, H).sum(axis=1)  # (B28)
    d_v_x = -1/2*d_r_x/(v_x + 1/100000)**(3/2)  # (B29)
    d_Z_e_zx = (1/3)*(d_v_x).mean(axis=-1, keepdims=True)  # (B30) (B31) (B32)
    d_mu_x = (-Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(-2*Z_zx + 2*mu_x)).reshape(-1, 3, H).sum(axis=1)  # (B33)
    d_A_h_prev = Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(2*Z_zh - 2*mu_h) + (1/3)*(d_mu_h).mean(axis=-1, keepdims=True)  # (B34) (B35) (B36)
    d_A_x = Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(2*Z_zx - 2*mu_x) + (1/3)*(d_mu_x).mean(axis=-1, keepdims=True)  # (B37) (B38) (B39)
    d_h_prev = d_h_kept*z + d_A_h_prev @ Wcat_h_prev  # (B40) fork: zh_r, zh_z, zh_n, h_kept
    d_a_r = d_Z_yh[..., 0:H]
    dw["b_r"] = dw["b_r"] + (d_a_r).sum(axis=0)  # (P7)
    d_a_z = d_Z_yh[..., H:2 * H]
    dw["b_z"] = dw["b_z"] + (d_a_z).sum(axis=0)  # (P8)
    dw["b_n"] = dw["b_n"] + (d_a_nx).sum(axis=0)  # (P9)
    d_a_nh = d_Z_yh[..., 2 * H:3 * H]
    dw["b_hn"] = dw["b_hn"] + (d_a_nh).sum(axis=0)  # (P10)
    dw["Z_gamma_x"] = dw["Z_gamma_x"] + (d_Z_yx*r_x*(Z_zx - mu_x)).sum(axis=0)  # (P11) (P12) (P13)
    dw["Z_beta_x"] = dw["Z_beta_x"] + (d_Z_yx).sum(axis=0)  # (P14) (P15) (P16)
    dw["Z_gamma_h"] = dw["Z_gamma_h"] + (d_Z_yh*r_h*(Z_zh - mu_h)).sum(axis=0)  # (P17) (P18) (P19)
    dw["Z_beta_h"] = dw["Z_beta_h"] + (d_Z_yh).sum(axis=0)  # (P20) (P21) (P22)
    d_h_next = d_h_prev
    return ((d_h_next,), dw), {"d_Z_yh": d_Z_yh, "d_Z_yx": d_Z_yx, "d_A_h_prev": d_A_h_prev, "d_A_x": d_A_x}


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
    if dstateT is None:
        dstateT = {s: jnp.zeros_like(xs, shape=(B, sizes[STATE_SIZES[s]])) for s in STATE}
    dw = {name: jnp.zeros_like(xs, shape=value.shape) for name, value in w.items()}
    step = dict(dhs_t=dhs, h_cand=h_cand_seq, v=v_seq, r=r_seq, h_prev=h_seq[:-1], z=z_seq, a_nh=a_nh_seq, Z_zh=Z_zh_seq, mu_h=mu_h_seq, v_h=v_h_seq, r_h=r_h_seq, Z_zx=Z_zx_seq, mu_x=mu_x_seq, v_x=v_x_seq, r_x=r_x_seq)
    carry = (tuple(dstateT[s] for s in STATE), dw)
    (dstate0, dw), ys = jax.lax.scan(lambda c, s: _backward_step(w, sizes, c, s), carry, step, reverse=True)
    d_Z_yh_seq = ys["d_Z_yh"]
    d_Z_yx_seq = ys["d_Z_yx"]
    d_A_h_prev_seq = ys["d_A_h_prev"]
    d_A_x_seq = ys["d_A_x"]
    dw["Wcat_x"] = dw["Wcat_x"] + _t_matmul(d_A_x_seq.reshape(steps * B, 3 * H), xs.reshape(steps * B, D))  # (P1)-(P3)
    dxs = (d_A_x_seq.reshape(steps * B, 3 * H) @ Wcat_x).reshape(steps, B, D)  # (B41)
    dw["Wcat_h_prev"] = dw["Wcat_h_prev"] + _t_matmul(d_A_h_prev_seq.reshape(steps * B, 3 * H), h_seq[:steps].reshape(steps * B, H))  # (P4)-(P6)
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
    grads["gamma_x"] = jnp.concatenate([grads["gamma_x_r"], grads["gamma_x_z"], grads["gamma_x_n"]])
    grads["beta_x"] = jnp.concatenate([grads["beta_x_r"], grads["beta_x_z"], grads["beta_x_n"]])
    grads["gamma_h"] = jnp.concatenate([grads["gamma_h_r"], grads["gamma_h_z"], grads["gamma_h_n"]])
    grads["beta_h"] = jnp.concatenate([grads["beta_h_r"], grads["beta_h_z"], grads["beta_h_n"]])
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
