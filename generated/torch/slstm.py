"""sLSTM of xLSTM, one head: exponential input gate, normaliser n and stabiliser m (Beck et al.): the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `slstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/slstm.tex.  Depends on PyTorch only; runs on any device and dtype.

`SlstmFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads; `SlstmRecomputeFunction` saves only the states and recomputes
the rest in its backward pass.  `Slstm` is an nn.Module with torch.nn.LSTM's interface:
`Slstm(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
called as `module(input, state0=None) -> (output, stateT)`, input (T, B, D) or (B, T, D),
the state a tuple in the order of STATE, each (num_layers * directions, B, size).
"""
try:
    import torch
except ImportError:
    raise ImportError("this generated module needs PyTorch (package torch): pip install torch") from None

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
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
OUTPUT = ("h", "H")
CACHED = ("h_seq", "c_seq", "n_seq", "m_seq", "a_i_seq", "e_seq", "i_seq", "f_seq", "r_seq", "Z_z_seq", "Z_l_seq", "Z_o_seq")  # per-step storage the backward reads
SAVED = ("h_seq", "c_seq", "n_seq", "m_seq")  # what the RecomputeFunction keeps for backward: the states
DERIVED = ("h_seq", "m_seq")  # states their step's other cached values determine: rebuilt, not saved
KEPT = ("c_seq", "n_seq", "a_i_seq", "e_seq", "i_seq", "f_seq", "r_seq", "Z_z_seq", "Z_l_seq", "Z_o_seq")  # what the Function keeps for backward
LAYOUT = {name: (name,) for name in PARAMS}  # no torch.nn counterpart: one tensor per parameter


def _sizes(params):
    return {
        "D": params["W_z"].shape[1],
        "H": params["W_z"].shape[0],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = torch.cat([params["W_z"], params["W_f"], params["W_o"], params["W_i"]])
    bcat_x = torch.cat([params["b_z"], params["b_f"], params["b_o"], params["b_i"]])
    Wcat_h_prev = torch.cat([params["U_z"], params["U_f"], params["U_o"], params["U_i"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, bcat_x=bcat_x)


def _forward_steps(w, sizes, xs, seq):
    """All steps of xs (steps, B, D) from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
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
    A_x = xs.new_empty((steps, B, 4 * H))
    # the x terms of every step at once  (F1)-(F4)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 4 * H))
    A_x.add_(bcat_x)
    A_h_prev = xs.new_empty((B, 4 * H))
    A_h_prev_0_H = A_h_prev[:, 0:H]
    A_h_prev_H_2H = A_h_prev[:, H:2 * H]
    A_h_prev_2H_3H = A_h_prev[:, 2 * H:3 * H]
    A_h_prev_3H_4H = A_h_prev[:, 3 * H:4 * H]
    h_seq_rows = h_seq.unbind(0)
    c_seq_rows = c_seq.unbind(0)
    n_seq_rows = n_seq.unbind(0)
    m_seq_rows = m_seq.unbind(0)
    Z_z_seq_rows = Z_z_seq.unbind(0)
    Z_l_seq_rows = Z_l_seq.unbind(0)
    Z_o_seq_rows = Z_o_seq.unbind(0)
    A_x_rows = A_x.unbind(0)
    a_i_seq_rows = a_i_seq.unbind(0)
    e_seq_rows = e_seq.unbind(0)
    i_seq_rows = i_seq.unbind(0)
    f_seq_rows = f_seq.unbind(0)
    r_seq_rows = r_seq.unbind(0)
    for t in range(steps):
        c_prev = c_seq_rows[t]
        n_prev = n_seq_rows[t]
        m_prev = m_seq_rows[t]
        torch.addmm(A_x_rows[t], h_seq_rows[t], Wcat_h_prev.T, out=A_h_prev)  # (F1)-(F4)
        torch.tanh(A_h_prev_0_H, out=Z_z_seq_rows[t])  # (F5)
        z = Z_z_seq_rows[t]
        torch.add((1/2)*A_h_prev_H_2H, -torch.log(1 + torch.exp(-abs(A_h_prev_H_2H))) - 1/2*abs(A_h_prev_H_2H), out=Z_l_seq_rows[t])  # (F7)
        l = Z_l_seq_rows[t]
        torch.sigmoid(A_h_prev_2H_3H, out=Z_o_seq_rows[t])  # (F6)
        o = Z_o_seq_rows[t]
        a_i_seq_rows[t][...] = A_h_prev_3H_4H
        a_i = a_i_seq_rows[t]
        torch.add(l, m_prev, out=e_seq_rows[t])  # (F8)
        e = e_seq_rows[t]
        torch.maximum(a_i, e, out=m_seq_rows[t + 1])  # (F9)
        m = m_seq_rows[t + 1]
        p = a_i - m  # (F10)
        torch.exp(p, out=i_seq_rows[t])  # (F11)
        i = i_seq_rows[t]
        q = e - m  # (F12)
        torch.exp(q, out=f_seq_rows[t])  # (F13)
        f = f_seq_rows[t]
        w = i*z  # (F15)
        torch.addcmul(w, c_prev, f, out=c_seq_rows[t + 1])  # (F14) (F16)
        c = c_seq_rows[t + 1]
        torch.addcmul(i, f, n_prev, out=n_seq_rows[t + 1])  # (F17) (F18)
        n = n_seq_rows[t + 1]
        torch.mul(c, torch.reciprocal(n), out=r_seq_rows[t])  # (F19)
        r = r_seq_rows[t]
        torch.mul(o, r, out=h_seq_rows[t + 1])  # (F20)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs):
    """All steps back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
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
    d_A_x_seq = xs.new_empty((steps, B, 4 * H))
    d_Z_z = xs.new_empty((B, H))
    d_Z_l = xs.new_empty((B, H))
    d_Z_o = xs.new_empty((B, H))
    d_z = d_Z_z
    d_l = d_Z_l
    d_o = d_Z_o
    c = c_seq[1:]
    n = n_seq[1:]
    a_i = a_i_seq[0:steps]
    e = e_seq[0:steps]
    Z_z = Z_z_seq[0:steps]
    Z_l = Z_l_seq[0:steps]
    Z_o = Z_o_seq[0:steps]
    J_B3_seq = c/torch.square(n)  # (B3) fork: r, next step
    J_B5_seq = torch.reciprocal(n)  # (B5) fork: r, next step
    J_B13_seq = (1/2)*torch.sign(-a_i + e) + 1/2  # (B13) fork: m, q
    J_B17_seq = Z_o*(1 - Z_o)  # (B17)
    J_B18_seq = 1 - torch.exp(Z_l)  # (B18)
    J_B19_seq = (1/2)*torch.sign(a_i - e) + 1/2  # (B19) fork: m, p
    J_B20_seq = 1 - torch.square(Z_z)  # (B20)
    dhs_rows = dhs.unbind(0)
    J_B3_seq_rows = J_B3_seq.unbind(0)
    J_B5_seq_rows = J_B5_seq.unbind(0)
    J_B13_seq_rows = J_B13_seq.unbind(0)
    J_B17_seq_rows = J_B17_seq.unbind(0)
    J_B18_seq_rows = J_B18_seq.unbind(0)
    J_B19_seq_rows = J_B19_seq.unbind(0)
    J_B20_seq_rows = J_B20_seq.unbind(0)
    c_seq_rows = c_seq.unbind(0)
    n_seq_rows = n_seq.unbind(0)
    i_seq_rows = i_seq.unbind(0)
    f_seq_rows = f_seq.unbind(0)
    r_seq_rows = r_seq.unbind(0)
    Z_z_seq_rows = Z_z_seq.unbind(0)
    Z_o_seq_rows = Z_o_seq.unbind(0)
    d_A_x_seq_rows = d_A_x_seq.unbind(0)
    d_A_x_seq_2H_3H_rows = d_A_x_seq[:, :, 2 * H:3 * H].unbind(0)
    d_A_x_seq_H_2H_rows = d_A_x_seq[:, :, H:2 * H].unbind(0)
    d_A_x_seq_3H_4H_rows = d_A_x_seq[:, :, 3 * H:4 * H].unbind(0)
    d_A_x_seq_0_H_rows = d_A_x_seq[:, :, 0:H].unbind(0)
    for t in reversed(range(steps)):
        J_B3 = J_B3_seq_rows[t]
        J_B5 = J_B5_seq_rows[t]
        J_B13 = J_B13_seq_rows[t]
        J_B17 = J_B17_seq_rows[t]
        J_B18 = J_B18_seq_rows[t]
        J_B19 = J_B19_seq_rows[t]
        J_B20 = J_B20_seq_rows[t]
        c_prev = c_seq_rows[t]
        n_prev = n_seq_rows[t]
        i = i_seq_rows[t]
        f = f_seq_rows[t]
        r = r_seq_rows[t]
        z = Z_z_seq_rows[t]
        o = Z_o_seq_rows[t]
        d_A_x = d_A_x_seq_rows[t]
        d_h = d_h_next + dhs_rows[t]  # (B1) fork: loss, next step
        d_r = d_h*o  # (B2)
        d_n = torch.addcmul(d_n_next, J_B3, d_r, value=-1)  # (B3) fork: r, next step
        d_v = d_n  # (B4)
        d_c = torch.addcmul(d_c_next, J_B5, d_r)  # (B5) fork: r, next step
        d_w = d_c  # (B6)
        d_u = d_c  # (B7)
        d_f = torch.addcmul(d_v*n_prev, c_prev, d_u)  # (B8) fork: u, v
        d_q = d_f*f  # (B9)
        d_i = torch.addcmul(d_n, d_w, z)  # (B10) fork: w, n
        d_p = d_i*i  # (B11)
        d_m = -d_p - d_q + d_m_next  # (B12) fork: p, q, next step
        d_e = torch.addcmul(d_q, J_B13, d_m)  # (B13) fork: m, q
        d_l[...] = d_e  # (B14)
        torch.mul(d_h, r, out=d_o)  # (B15)
        torch.mul(d_w, i, out=d_z)  # (B16)
        torch.mul(J_B17, d_Z_o, out=d_A_x_seq_2H_3H_rows[t])  # (B17)
        torch.mul(J_B18, d_Z_l, out=d_A_x_seq_H_2H_rows[t])  # (B18)
        torch.addcmul(d_p, J_B19, d_m, out=d_A_x_seq_3H_4H_rows[t])  # (B19) fork: m, p
        torch.mul(J_B20, d_Z_z, out=d_A_x_seq_0_H_rows[t])  # (B20)
        d_m_prev = d_e  # (B21)
        d_n_prev = d_v*f  # (B22)
        d_c_prev = d_u*f  # (B23)
        d_h_prev = d_A_x @ Wcat_h_prev  # (B24) fork: a_z, a_i, a_f, a_o
        d_h_next = d_h_prev
        d_c_next = d_c_prev
        d_n_next = d_n_prev
        d_m_next = d_m_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    torch.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B25)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).sum(dim=0)  # (P9)-(P12)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    return {"h": d_h_next, "c": d_c_next, "n": d_n_next, "m": d_m_next}


def _buffers(n, B, sizes, xs, names=CACHED):
    """Storage for n steps of the named values the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    shapes = {
        "h_seq": (n + 1, B, H),
        "c_seq": (n + 1, B, H),
        "n_seq": (n + 1, B, H),
        "m_seq": (n + 1, B, H),
        "a_i_seq": (n, B, H),
        "e_seq": (n, B, H),
        "i_seq": (n, B, H),
        "f_seq": (n, B, H),
        "r_seq": (n, B, H),
        "Z_z_seq": (n, B, H),
        "Z_l_seq": (n, B, H),
        "Z_o_seq": (n, B, H),
    }
    return {name: xs.new_empty(shapes[name]) for name in names}


def _recompute(w, sizes, xs, seq):
    """Every step's other cached values from the states in seq (all steps at once: given the
    states, the steps are independent); adds them to seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    seq.update(_buffers(steps, B, sizes, xs, tuple(n for n in CACHED if n not in SAVED)))
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
    A_x = xs.new_empty((steps, B, 4 * H))
    # the x terms of every step at once  (F1)-(F4)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 4 * H))
    A_x.add_(bcat_x)
    A_h_prev = xs.new_empty((steps, B, 4 * H))
    h_prev = h_seq[0:steps]
    m_prev = m_seq[0:steps]
    Z_z = Z_z_seq[0:steps]
    Z_l = Z_l_seq[0:steps]
    Z_o = Z_o_seq[0:steps]
    torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F1)-(F4)
    A_h_prev.add_(A_x[0:steps])
    torch.tanh(A_h_prev[:, :, 0:H], out=Z_z)  # (F5)
    torch.add((1/2)*A_h_prev[:, :, H:2 * H], -torch.log(1 + torch.exp(-abs(A_h_prev[:, :, H:2 * H]))) - 1/2*abs(A_h_prev[:, :, H:2 * H]), out=Z_l)  # (F7)
    l = Z_l
    torch.sigmoid(A_h_prev[:, :, 2 * H:3 * H], out=Z_o)  # (F6)
    a_i_seq[0:steps] = A_h_prev[:, :, 3 * H:4 * H]
    a_i = a_i_seq[0:steps]
    torch.add(l, m_prev, out=e_seq[0:steps])  # (F8)
    e = e_seq[0:steps]
    m = m_seq[1:]
    p = a_i - m  # (F10)
    torch.exp(p, out=i_seq[0:steps])  # (F11)
    q = e - m  # (F12)
    torch.exp(q, out=f_seq[0:steps])  # (F13)
    c = c_seq[1:]
    n = n_seq[1:]
    torch.mul(c, torch.reciprocal(n), out=r_seq[0:steps])  # (F19)


def _rebuild(w, sizes, xs, seq, firsts):
    """The states in DERIVED for all steps from their step's other cached values in seq, row 0
    from `firsts` (the initial states); adds them to seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    seq.update(_buffers(steps, B, sizes, xs, DERIVED))
    for name, first in zip(DERIVED, firsts):
        seq[name][0] = first
    h_seq = seq["h_seq"]
    m_seq = seq["m_seq"]
    a_i_seq = seq["a_i_seq"]
    e_seq = seq["e_seq"]
    r_seq = seq["r_seq"]
    Z_o_seq = seq["Z_o_seq"]
    Z_o = Z_o_seq[0:steps]
    o = Z_o
    a_i = a_i_seq[0:steps]
    e = e_seq[0:steps]
    torch.maximum(a_i, e, out=m_seq[1:])  # (F9)
    r = r_seq[0:steps]
    torch.mul(o, r, out=h_seq[1:])  # (F20)


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
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
    return [grads[name] for name in PARAMS]


def _check_xs(xs):
    if len(xs.shape) != 3:
        raise ValueError(f"xs has shape {tuple(xs.shape)}, expected (T, B, D)")


def _check_shapes(xs, state0, params, sizes):
    """A ValueError naming the expected shape, before a product fails with the framework's
    message about a reshape: xs (T, B, D), each state (B, size), each parameter as PARAMS."""
    def dim(s):
        return int(s.split("*")[0]) * sizes[s.split("*")[1]] if "*" in s else sizes[s]
    _check_xs(xs)
    dtypes = {value.dtype for value in (*params.values(), *state0)}
    if not xs.is_floating_point() or dtypes != {xs.dtype}:
        raise ValueError(f"xs, the states and the parameters must share one floating dtype; got xs {xs.dtype}, "
                         f"others {', '.join(sorted(str(d) for d in dtypes))}")
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


def _forward(ctx, xs, args, keep):
    """The forward pass of a Function that keeps the values named in `keep` for its backward."""
    xs, state0, params = xs.contiguous(), args[:len(STATE)], dict(zip(PARAMS, args[len(STATE):]))
    sizes = _sizes(params)
    _check_shapes(xs, state0, params, sizes)
    seq = _buffers(xs.shape[0], xs.shape[1], sizes, xs)
    for s, value in zip(STATE, state0):
        seq[f"{s}_seq"][0] = value
    _forward_steps(_stack(params, sizes, xs), sizes, xs, seq)
    ctx.kept = keep
    firsts = (value for s, value in zip(STATE, state0) if f"{s}_seq" not in keep)  # rows 0 of rebuilt states
    ctx.save_for_backward(xs, *params.values(), *(seq[name] for name in keep), *firsts)
    outputs = seq["h_seq"][1:]
    return (outputs, *(seq[f"{s}_seq"][-1].clone() for s in STATE))


def _backward(ctx, dhs, dstateT):
    """The derived backward pass, after recomputing what the forward did not keep."""
    xs, *rest = ctx.saved_tensors
    params = dict(zip(PARAMS, rest[:len(PARAMS)]))
    seq = dict(zip(ctx.kept, rest[len(PARAMS):]))
    sizes = _sizes(params)
    w = _stack(params, sizes, xs)
    if not set(SAVED) <= seq.keys():
        _rebuild(w, sizes, xs, seq, rest[len(PARAMS) + len(seq):])
    if len(seq) < len(CACHED):
        _recompute(w, sizes, xs, seq)
    dw = {name: torch.zeros_like(value) for name, value in w.items()}
    dxs = torch.empty_like(xs)
    d_next = {s: d.clone() for s, d in zip(STATE, dstateT)}
    dstate0 = _backward_steps(w, sizes, xs, seq, dhs.contiguous(), d_next, dw, dxs)
    return (dxs, *(dstate0[s] for s in STATE), *_grads(dw, sizes))


class SlstmFunction(torch.autograd.Function):
    """(xs, *state0, *params in PARAMS order) -> (outputs, *stateT), with the derived backward.

    xs is (T, B, D), each state (B, size).  The forward saves for backward every per-step
    value the backward reads (CACHED) but the states it rebuilds from the others (KEPT), xs,
    the parameters and those states' initial values (not copied).
    """

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, KEPT)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class SlstmRecomputeFunction(torch.autograd.Function):
    """SlstmFunction that saves less: only the states of every step (SAVED), xs and the
    parameters; its backward first recomputes the other values in CACHED, all steps at once
    (one more forward pass, done with whole-sequence products)."""

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, SAVED)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class Slstm(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None, recompute=False):
        """recompute=True: keep only the states between forward and backward (less memory, more time)."""
        super().__init__()
        self.function = SlstmRecomputeFunction if recompute else SlstmFunction
        self.sizes = {"D": int(input_size), "H": int(hidden_size)}
        self.num_layers, self.bidirectional, self.batch_first = num_layers, bidirectional, batch_first
        self.directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            sizes = self._layer_sizes(layer)
            for suffix in ("", "_reverse")[:self.directions]:
                for key, names in LAYOUT.items():
                    rows = sum(sizes[PARAMS[name][0]] for name in names)
                    shape = (rows, *(sizes[s] for s in PARAMS[names[0]][1:]))
                    self.register_parameter(f"{key}_l{layer}{suffix}", torch.nn.Parameter(
                        torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        """Uniform in (-1/sqrt(H), 1/sqrt(H)), as torch.nn's recurrent modules."""
        bound = 1.0 / self.sizes["H"] ** 0.5
        for value in self.parameters():
            torch.nn.init.uniform_(value, -bound, bound)

    def _layer_sizes(self, layer):
        width = self.sizes[OUTPUT[1]] * self.directions
        return dict(self.sizes, D=self.sizes["D"] if layer == 0 else width)

    def layer_params(self, layer, reverse=False):
        """The parameters of one layer and direction keyed like PARAMS (views; summed doubles)."""
        sizes, suffix, params, stacks = self._layer_sizes(layer), "_reverse" if reverse else "", {}, {}
        for key, names in LAYOUT.items():  # keys with the same blocks (PyTorch's two biases): one sum
            value = getattr(self, f"{key}_l{layer}{suffix}")
            stacks[names] = stacks[names] + value if names in stacks else value
        for names, value in stacks.items():
            blocks = torch.split(value,
                                 [sizes[PARAMS[name][0]] for name in names])
            for name, block in zip(names, blocks):
                params[name] = params[name] + block if name in params else block
        return params

    def forward(self, input, state0=None):
        """input (T, B, D), or (B, T, D) with batch_first, or one unbatched sequence (T, D) whose
        output is (T, H) and state (layers * directions, H), as torch.nn.LSTM's."""
        if input.dim() == 2:
            if isinstance(state0, torch.Tensor):
                state0 = (state0,)
            state0 = None if state0 is None else tuple(s.unsqueeze(1) for s in state0)
            batch = 0 if self.batch_first else 1   # where a batch of one goes, and comes off again
            output, stateT = self.forward(input.unsqueeze(batch), state0)
            return output.squeeze(batch), tuple(s.squeeze(1) for s in stateT)
        if input.dim() != 3:
            raise ValueError(f"input has shape {tuple(input.shape)}, expected (T, B, D), (B, T, D) "
                             f"with batch_first, or (T, D)")
        xs = input.transpose(0, 1) if self.batch_first else input
        B = xs.shape[1]
        if state0 is None:
            state0 = tuple(xs.new_zeros((self.num_layers * self.directions, B, self.sizes[STATE_SIZES[s]]))
                           for s in STATE)
        elif isinstance(state0, torch.Tensor):
            state0 = (state0,)
        final = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.directions):
                k = layer * self.directions + direction
                params = self.layer_params(layer, reverse=direction == 1)
                run = xs.flip(0) if direction else xs
                out, *stateT = self.function.apply(run, *(s[k] for s in state0),
                                                   *(params[name] for name in PARAMS))
                outputs.append(out.flip(0) if direction else out)
                final.append(stateT)
            xs = torch.cat(outputs, dim=2) if self.directions == 2 else outputs[0]
        output = xs.transpose(0, 1) if self.batch_first else xs
        return output, tuple(torch.stack([f[n] for f in final]) for n in range(len(STATE)))
