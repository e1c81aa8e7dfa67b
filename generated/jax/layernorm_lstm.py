"""layer-normalised LSTM: the stacked gate terms and the cell state normalised (Ba, Kiros & Hinton): the derived backward inside JAX.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_lstm.tex.  Depends on JAX only; pure functions, jit-able.

`forward(params, xs, state0=None) -> (outputs, stateT)` runs the whole sequence with
`lax.scan` on a parameter pytree (a dict keyed like PARAMS), xs (T, B, D), each state
(B, size) in a dict keyed like STATE (zeros when None).  Zeros are made `like xs`, so
they are sharded like it under `shard_map`.  It is a `jax.custom_vjp`: its
forward scan keeps only what the derived backward reads (CACHED), and its backward is the
derivation's, one scan in reverse, so `jax.grad` and `jax.vjp` of anything built on it use
the derived backward.  `derived_forward` and `derived_backward` are the two halves, with
the contract of the NumPy module generated/layernorm_lstm.py.
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
    "gamma_x": ("4*H",),
    "beta_x": ("4*H",),
    "gamma_h": ("4*H",),
    "beta_h": ("4*H",),
    "gamma_c": ("H",),
    "beta_c": ("H",),
}
STATE = ("h", "c")
STATE_SIZES = {"h": "H", "c": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> argument of init_params
INITIAL = {"beta_c": 0.0, "beta_h": 0.0, "beta_x": 0.0, "gamma_c": 1.0, "gamma_h": 1.0, "gamma_x": 1.0}  # parameters that start at a constant, not a random draw
OUTPUT = ("h", "H")
CACHED = ("h_seq", "c_seq", "Z_zx_seq", "Z_zh_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "f_seq", "i_seq", "g_seq", "o_seq", "mu_c_seq", "v_c_seq", "r_c_seq", "k_seq")  # per-step values the backward reads


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
        "D": params["W_f"].shape[1],
        "H": params["W_f"].shape[0],
        "steps": xs.shape[0], "B": xs.shape[1],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    params = dict(params)   # the blocks of every packed parameter, as the stages read them
    params["gamma_x_f"] = params["gamma_x"][0:H]
    params["gamma_x_i"] = params["gamma_x"][H:2 * H]
    params["gamma_x_g"] = params["gamma_x"][2 * H:3 * H]
    params["gamma_x_o"] = params["gamma_x"][3 * H:4 * H]
    params["beta_x_f"] = params["beta_x"][0:H]
    params["beta_x_i"] = params["beta_x"][H:2 * H]
    params["beta_x_g"] = params["beta_x"][2 * H:3 * H]
    params["beta_x_o"] = params["beta_x"][3 * H:4 * H]
    params["gamma_h_f"] = params["gamma_h"][0:H]
    params["gamma_h_i"] = params["gamma_h"][H:2 * H]
    params["gamma_h_g"] = params["gamma_h"][2 * H:3 * H]
    params["gamma_h_o"] = params["gamma_h"][3 * H:4 * H]
    params["beta_h_f"] = params["beta_h"][0:H]
    params["beta_h_i"] = params["beta_h"][H:2 * H]
    params["beta_h_g"] = params["beta_h"][2 * H:3 * H]
    params["beta_h_o"] = params["beta_h"][3 * H:4 * H]
    Wcat_x = jnp.concatenate([params["W_f"], params["W_i"], params["W_g"], params["W_o"]])
    Wcat_h_prev = jnp.concatenate([params["U_f"], params["U_i"], params["U_g"], params["U_o"]])
    Z_gamma_x = jnp.concatenate([params["gamma_x_f"], params["gamma_x_i"], params["gamma_x_g"], params["gamma_x_o"]])
    Z_beta_x = jnp.concatenate([params["beta_x_f"], params["beta_x_i"], params["beta_x_g"], params["beta_x_o"]])
    Z_gamma_h = jnp.concatenate([params["gamma_h_f"], params["gamma_h_i"], params["gamma_h_g"], params["gamma_h_o"]])
    Z_beta_h = jnp.concatenate([params["beta_h_f"], params["beta_h_i"], params["beta_h_g"], params["beta_h_o"]])
    Z_b = jnp.concatenate([params["b_f"], params["b_i"], params["b_g"], params["b_o"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_f=params["b_f"], b_i=params["b_i"], b_g=params["b_g"], b_o=params["b_o"], gamma_x_f=params["gamma_x_f"], gamma_x_i=params["gamma_x_i"], gamma_x_g=params["gamma_x_g"], gamma_x_o=params["gamma_x_o"], beta_x_f=params["beta_x_f"], beta_x_i=params["beta_x_i"], beta_x_g=params["beta_x_g"], beta_x_o=params["beta_x_o"], gamma_h_f=params["gamma_h_f"], gamma_h_i=params["gamma_h_i"], gamma_h_g=params["gamma_h_g"], gamma_h_o=params["gamma_h_o"], beta_h_f=params["beta_h_f"], beta_h_i=params["beta_h_i"], beta_h_g=params["beta_h_g"], beta_h_o=params["beta_h_o"], gamma_c=params["gamma_c"], beta_c=params["beta_c"], Z_gamma_x=Z_gamma_x, Z_beta_x=Z_beta_x, Z_gamma_h=Z_gamma_h, Z_beta_h=Z_beta_h, Z_b=Z_b)


def _forward_step(w, sizes, carry, step):
    """One step: the states before it (carry) and its slices of the sequences (step) ->
    the states after it and the values the backward reads."""
    D = sizes["D"]
    H = sizes["H"]
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
    h_prev, c_prev = carry
    A_x_t = step["A_x_t"]
    Z_zx = A_x_t
    A_h_prev = h_prev @ Wcat_h_prev.T  # (F5)-(F8)
    Z_zh = A_h_prev
    mu_x = (Z_zx).mean(axis=-1, keepdims=True)  # (F9)
    Z_e_zx = (Z_zx - mu_x)**2  # (F10) (F11) (F12) (F13)
    v_x = (Z_e_zx).mean(axis=-1, keepdims=True)  # (F14)
    r_x = 1/jnp.sqrt(v_x + 1/100000)  # (F15)
    Z_yx = Z_beta_x + Z_gamma_x*r_x*(Z_zx - mu_x)  # (F16) (F17) (F18) (F19)
    mu_h = (Z_zh).mean(axis=-1, keepdims=True)  # (F20)
    Z_e_zh = (Z_zh - mu_h)**2  # (F21) (F22) (F23) (F24)
    v_h = (Z_e_zh).mean(axis=-1, keepdims=True)  # (F25)
    r_h = 1/jnp.sqrt(v_h + 1/100000)  # (F26)
    Z_yh = Z_beta_h + Z_gamma_h*r_h*(Z_zh - mu_h)  # (F27) (F28) (F29) (F30)
    Z_s = Z_yh + Z_yx  # (F31) (F33) (F35) (F37)
    Z_a = Z_b + Z_s  # (F32) (F34) (F36) (F38)
    a_f = Z_a[..., 0:H]
    f = jax.nn.sigmoid(a_f)  # (F39)
    a_i = Z_a[..., H:2 * H]
    i = jax.nn.sigmoid(a_i)  # (F40)
    a_g = Z_a[..., 2 * H:3 * H]
    g = jnp.tanh(a_g)  # (F41)
    a_o = Z_a[..., 3 * H:4 * H]
    o = jax.nn.sigmoid(a_o)  # (F42)
    m = c_prev*f  # (F43)
    n = g*i  # (F44)
    c = m + n  # (F45)
    mu_c = (c).mean(axis=-1, keepdims=True)  # (F46)
    e_c = (c - mu_c)**2  # (F47)
    v_c = (e_c).mean(axis=-1, keepdims=True)  # (F48)
    r_c = 1/jnp.sqrt(v_c + 1/100000)  # (F49)
    y_c = beta_c + gamma_c*r_c*(c - mu_c)  # (F50)
    k = jnp.tanh(y_c)  # (F51)
    h = k*o  # (F52)
    return (h, c), {"h": h, "c": c, "Z_zx": Z_zx, "Z_zh": Z_zh, "mu_x": mu_x, "v_x": v_x, "r_x": r_x, "mu_h": mu_h, "v_h": v_h, "r_h": r_h, "f": f, "i": i, "g": g, "o": o, "mu_c": mu_c, "v_c": v_c, "r_c": r_c, "k": k}


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
    (d_h_next, d_c_next), dw = carry
    dw = dict(dw)
    dhs_t = step["dhs_t"]
    o = step["o"]
    k = step["k"]
    c = step["c"]
    mu_c = step["mu_c"]
    v_c = step["v_c"]
    r_c = step["r_c"]
    i = step["i"]
    g = step["g"]
    c_prev = step["c_prev"]
    f = step["f"]
    Z_zh = step["Z_zh"]
    mu_h = step["mu_h"]
    v_h = step["v_h"]
    r_h = step["r_h"]
    Z_zx = step["Z_zx"]
    mu_x = step["mu_x"]
    v_x = step["v_x"]
    r_x = step["r_x"]
    d_h = d_h_next + dhs_t  # (B1) fork: loss, next step
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
    d_Z_a_1 = d_f*f*(1 - f)  # (B21)
    d_Z_a_2 = d_i*i*(1 - i)  # (B19)
    d_Z_a_3 = d_g*(1 - g**2)  # (B17)
    d_Z_a_4 = d_o*o*(1 - o)  # (B15)
    d_Z_a = jnp.concatenate([d_Z_a_1, d_Z_a_2, d_Z_a_3, d_Z_a_4], axis=-1)
    d_Z_yh = d_Z_a
    d_r_h = (Z_gamma_h*d_Z_yh*(Z_zh - mu_h)).reshape(-1, 4, H).sum(axis=1)  # (B27)
    d_v_h = -1/2*d_r_h/(v_h + 1/100000)**(3/2)  # (B28)
    d_Z_e_zh = (1/4)*(d_v_h).mean(axis=-1, keepdims=True)  # (B29) (B30) (B31) (B32)
    d_mu_h = (-Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(-2*Z_zh + 2*mu_h)).reshape(-1, 4, H).sum(axis=1)  # (B33)
    d_Z_yx = d_Z_a
    d_r_x = (Z_gamma_x*d_Z_yx*(Z_zx - mu_x)).reshape(-1, 4, H).sum(axis=1)  # (B38)
    d_v_x = -1/2*d_r_x/(v_x + 1/100000)**(3/2)  # (B39)
    d_Z_e_zx = (1/4)*(d_v_x).mean(axis=-1, keepdims=True)  # (B40) (B41) (B42) (B43)
    d_mu_x = (-Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(-2*Z_zx + 2*mu_x)).reshape(-1, 4, H).sum(axis=1)  # (B44)
    d_A_h_prev = Z_gamma_h*d_Z_yh*r_h + d_Z_e_zh*(2*Z_zh - 2*mu_h) + (1/4)*(d_mu_h).mean(axis=-1, keepdims=True)  # (B45) (B46) (B47) (B48)
    d_A_x = Z_gamma_x*d_Z_yx*r_x + d_Z_e_zx*(2*Z_zx - 2*mu_x) + (1/4)*(d_mu_x).mean(axis=-1, keepdims=True)  # (B49) (B50) (B51) (B52)
    d_c_prev = d_m*f  # (B53)
    d_h_prev = d_A_h_prev @ Wcat_h_prev  # (B54) fork: zh_f, zh_i, zh_g, zh_o
    dw["Z_b"] = dw["Z_b"] + (d_Z_a).sum(axis=0)  # (P9) (P10) (P11) (P12)
    dw["Z_gamma_x"] = dw["Z_gamma_x"] + (d_Z_yx*r_x*(Z_zx - mu_x)).sum(axis=0)  # (P13) (P14) (P15) (P16)
    dw["Z_beta_x"] = dw["Z_beta_x"] + (d_Z_yx).sum(axis=0)  # (P17) (P18) (P19) (P20)
    dw["Z_gamma_h"] = dw["Z_gamma_h"] + (d_Z_yh*r_h*(Z_zh - mu_h)).sum(axis=0)  # (P21) (P22) (P23) (P24)
    dw["Z_beta_h"] = dw["Z_beta_h"] + (d_Z_yh).sum(axis=0)  # (P25) (P26) (P27) (P28)
    dw["gamma_c"] = dw["gamma_c"] + (d_y_c*r_c*(c - mu_c)).sum(axis=0)  # (P29)
    dw["beta_c"] = dw["beta_c"] + (d_y_c).sum(axis=0)  # (P30)
    d_h_next = d_h_prev
    d_c_next = d_c_prev
    return ((d_h_next, d_c_next), dw), {"d_Z_a": d_Z_a, "d_A_h_prev": d_A_h_prev, "d_A_x": d_A_x}


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
    if dstateT is None:
        dstateT = {s: jnp.zeros_like(xs, shape=(B, sizes[STATE_SIZES[s]])) for s in STATE}
    dw = {name: jnp.zeros_like(xs, shape=value.shape) for name, value in w.items()}
    step = dict(dhs_t=dhs, o=o_seq, k=k_seq, c=c_seq[1:], mu_c=mu_c_seq, v_c=v_c_seq, r_c=r_c_seq, i=i_seq, g=g_seq, c_prev=c_seq[:-1], f=f_seq, Z_zh=Z_zh_seq, mu_h=mu_h_seq, v_h=v_h_seq, r_h=r_h_seq, Z_zx=Z_zx_seq, mu_x=mu_x_seq, v_x=v_x_seq, r_x=r_x_seq)
    carry = (tuple(dstateT[s] for s in STATE), dw)
    (dstate0, dw), ys = jax.lax.scan(lambda c, s: _backward_step(w, sizes, c, s), carry, step, reverse=True)
    d_Z_a_seq = ys["d_Z_a"]
    d_A_h_prev_seq = ys["d_A_h_prev"]
    d_A_x_seq = ys["d_A_x"]
    dw["Wcat_x"] = dw["Wcat_x"] + _t_matmul(d_A_x_seq.reshape(steps * B, 4 * H), xs.reshape(steps * B, D))  # (P1)-(P4)
    dxs = (d_A_x_seq.reshape(steps * B, 4 * H) @ Wcat_x).reshape(steps, B, D)  # (B55)
    dw["Wcat_h_prev"] = dw["Wcat_h_prev"] + _t_matmul(d_A_h_prev_seq.reshape(steps * B, 4 * H), h_seq[:steps].reshape(steps * B, H))  # (P5)-(P8)
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
    grads["gamma_x"] = jnp.concatenate([grads["gamma_x_f"], grads["gamma_x_i"], grads["gamma_x_g"], grads["gamma_x_o"]])
    grads["beta_x"] = jnp.concatenate([grads["beta_x_f"], grads["beta_x_i"], grads["beta_x_g"], grads["beta_x_o"]])
    grads["gamma_h"] = jnp.concatenate([grads["gamma_h_f"], grads["gamma_h_i"], grads["gamma_h_g"], grads["gamma_h_o"]])
    grads["beta_h"] = jnp.concatenate([grads["beta_h_f"], grads["beta_h_i"], grads["beta_h_g"], grads["beta_h_o"]])
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
