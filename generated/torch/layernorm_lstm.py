"""layer-normalised LSTM: the stacked gate terms and the cell state normalised (Ba, Kiros & Hinton): the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_lstm.tex.  Depends on PyTorch only; runs on any device and dtype.

`LayernormLSTMFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads; `LayernormLSTMRecomputeFunction` saves only the states and recomputes
the rest in its backward pass.  `LayernormLSTM` is an nn.Module with torch.nn.LSTM's interface:
`LayernormLSTM(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
called as `module(input, state0=None) -> (output, stateT)`, input (T, B, D) or (B, T, D),
the state a tuple in the order of STATE, each (num_layers * directions, B, size).
"""
try:
    import torch
except ImportError:
    raise ImportError("this generated module needs PyTorch (package torch): pip install torch") from None

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
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
INITIAL = {"beta_c": 0.0, "beta_h": 0.0, "beta_x": 0.0, "gamma_c": 1.0, "gamma_h": 1.0, "gamma_x": 1.0}  # parameters that start at a constant, not a random draw
OUTPUT = ("h", "H")
CACHED = ("h_seq", "c_seq", "Z_zx_seq", "Z_zh_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "f_seq", "i_seq", "g_seq", "o_seq", "mu_c_seq", "v_c_seq", "r_c_seq", "k_seq")  # per-step storage the backward reads
SAVED = ("h_seq", "c_seq")  # what the RecomputeFunction keeps for backward: the states
DERIVED = ("h_seq",)  # states their step's other cached values determine: rebuilt, not saved
KEPT = ("c_seq", "Z_zx_seq", "Z_zh_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "f_seq", "i_seq", "g_seq", "o_seq", "mu_c_seq", "v_c_seq", "r_c_seq", "k_seq")  # what the Function keeps for backward
LAYOUT = {name: (name,) for name in PARAMS}  # no torch.nn counterpart: one tensor per parameter


def _sizes(params):
    return {
        "D": params["W_f"].shape[1],
        "H": params["W_f"].shape[0],
    }


def _dim(size, sizes):
    """A size symbol's value; "4*H" is 4 times H (a packed parameter)."""
    return int(size.split("*")[0]) * sizes[size.split("*")[1]] if "*" in size else sizes[size]


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
    Wcat_x = torch.cat([params["W_f"], params["W_i"], params["W_g"], params["W_o"]])
    Wcat_h_prev = torch.cat([params["U_f"], params["U_i"], params["U_g"], params["U_o"]])
    Z_gamma_x = torch.cat([params["gamma_x_f"], params["gamma_x_i"], params["gamma_x_g"], params["gamma_x_o"]])
    Z_beta_x = torch.cat([params["beta_x_f"], params["beta_x_i"], params["beta_x_g"], params["beta_x_o"]])
    Z_gamma_h = torch.cat([params["gamma_h_f"], params["gamma_h_i"], params["gamma_h_g"], params["gamma_h_o"]])
    Z_beta_h = torch.cat([params["beta_h_f"], params["beta_h_i"], params["beta_h_g"], params["beta_h_o"]])
    Z_b = torch.cat([params["b_f"], params["b_i"], params["b_g"], params["b_o"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_f=params["b_f"], b_i=params["b_i"], b_g=params["b_g"], b_o=params["b_o"], gamma_x_f=params["gamma_x_f"], gamma_x_i=params["gamma_x_i"], gamma_x_g=params["gamma_x_g"], gamma_x_o=params["gamma_x_o"], beta_x_f=params["beta_x_f"], beta_x_i=params["beta_x_i"], beta_x_g=params["beta_x_g"], beta_x_o=params["beta_x_o"], gamma_h_f=params["gamma_h_f"], gamma_h_i=params["gamma_h_i"], gamma_h_g=params["gamma_h_g"], gamma_h_o=params["gamma_h_o"], beta_h_f=params["beta_h_f"], beta_h_i=params["beta_h_i"], beta_h_g=params["beta_h_g"], beta_h_o=params["beta_h_o"], gamma_c=params["gamma_c"], beta_c=params["beta_c"], Z_gamma_x=Z_gamma_x, Z_beta_x=Z_beta_x, Z_gamma_h=Z_gamma_h, Z_beta_h=Z_beta_h, Z_b=Z_b)


def _forward_steps(w, sizes, xs, seq):
    """All steps of xs (steps, B, D) from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
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
    A_x = xs.new_empty((steps, B, 4 * H))
    # the x terms of every step at once  (F1)-(F4)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 4 * H))
    A_h_prev = xs.new_empty((B, 4 * H))
    Z_a = xs.new_empty((B, 4 * H))
    Z_a_0_H = Z_a[:, 0:H]
    Z_a_H_2H = Z_a[:, H:2 * H]
    Z_a_2H_3H = Z_a[:, 2 * H:3 * H]
    Z_a_3H_4H = Z_a[:, 3 * H:4 * H]
    h_seq_rows = h_seq.unbind(0)
    c_seq_rows = c_seq.unbind(0)
    Z_zx_seq_rows = Z_zx_seq.unbind(0)
    A_x_rows = A_x.unbind(0)
    Z_zh_seq_rows = Z_zh_seq.unbind(0)
    mu_x_seq_rows = mu_x_seq.unbind(0)
    v_x_seq_rows = v_x_seq.unbind(0)
    r_x_seq_rows = r_x_seq.unbind(0)
    mu_h_seq_rows = mu_h_seq.unbind(0)
    v_h_seq_rows = v_h_seq.unbind(0)
    r_h_seq_rows = r_h_seq.unbind(0)
    f_seq_rows = f_seq.unbind(0)
    i_seq_rows = i_seq.unbind(0)
    g_seq_rows = g_seq.unbind(0)
    o_seq_rows = o_seq.unbind(0)
    mu_c_seq_rows = mu_c_seq.unbind(0)
    v_c_seq_rows = v_c_seq.unbind(0)
    r_c_seq_rows = r_c_seq.unbind(0)
    k_seq_rows = k_seq.unbind(0)
    for t in range(steps):
        c_prev = c_seq_rows[t]
        Z_zx_seq_rows[t][...] = A_x_rows[t]
        Z_zx = Z_zx_seq_rows[t]
        torch.matmul(h_seq_rows[t], Wcat_h_prev.T, out=A_h_prev)  # (F5)-(F8)
        Z_zh_seq_rows[t][...] = A_h_prev
        Z_zh = Z_zh_seq_rows[t]
        mu_x_seq_rows[t][...] = (Z_zx).mean(dim=-1, keepdim=True)  # (F9)
        mu_x = mu_x_seq_rows[t]
        _cse0 = Z_zx - mu_x
        Z_e_zx = torch.square(_cse0)  # (F10) (F11) (F12) (F13)
        v_x_seq_rows[t][...] = (Z_e_zx).mean(dim=-1, keepdim=True)  # (F14)
        v_x = v_x_seq_rows[t]
        r_x_seq_rows[t][...] = torch.rsqrt(v_x + 1/100000)  # (F15)
        r_x = r_x_seq_rows[t]
        Z_yx = Z_beta_x + Z_gamma_x*_cse0*r_x  # (F16) (F17) (F18) (F19)
        mu_h_seq_rows[t][...] = (Z_zh).mean(dim=-1, keepdim=True)  # (F20)
        mu_h = mu_h_seq_rows[t]
        _cse1 = Z_zh - mu_h
        Z_e_zh = torch.square(_cse1)  # (F21) (F22) (F23) (F24)
        v_h_seq_rows[t][...] = (Z_e_zh).mean(dim=-1, keepdim=True)  # (F25)
        v_h = v_h_seq_rows[t]
        r_h_seq_rows[t][...] = torch.rsqrt(v_h + 1/100000)  # (F26)
        r_h = r_h_seq_rows[t]
        Z_yh = Z_beta_h + Z_gamma_h*_cse1*r_h  # (F27) (F28) (F29) (F30)
        Z_s = Z_yh + Z_yx  # (F31) (F33) (F35) (F37)
        torch.add(Z_b, Z_s, out=Z_a)  # (F32) (F34) (F36) (F38)
        a_f = Z_a_0_H
        a_i = Z_a_H_2H
        a_g = Z_a_2H_3H
        a_o = Z_a_3H_4H
        torch.sigmoid(a_f, out=f_seq_rows[t])  # (F39)
        f = f_seq_rows[t]
        torch.sigmoid(a_i, out=i_seq_rows[t])  # (F40)
        i = i_seq_rows[t]
        torch.tanh(a_g, out=g_seq_rows[t])  # (F41)
        g = g_seq_rows[t]
        torch.sigmoid(a_o, out=o_seq_rows[t])  # (F42)
        o = o_seq_rows[t]
        n = g*i  # (F44)
        torch.addcmul(n, c_prev, f, out=c_seq_rows[t + 1])  # (F43) (F45)
        c = c_seq_rows[t + 1]
        mu_c_seq_rows[t][...] = (c).mean(dim=-1, keepdim=True)  # (F46)
        mu_c = mu_c_seq_rows[t]
        _cse2 = c - mu_c
        e_c = torch.square(_cse2)  # (F47)
        v_c_seq_rows[t][...] = (e_c).mean(dim=-1, keepdim=True)  # (F48)
        v_c = v_c_seq_rows[t]
        r_c_seq_rows[t][...] = torch.rsqrt(v_c + 1/100000)  # (F49)
        r_c = r_c_seq_rows[t]
        y_c = _cse2*gamma_c*r_c + beta_c  # (F50)
        torch.tanh(y_c, out=k_seq_rows[t])  # (F51)
        k = k_seq_rows[t]
        torch.mul(k, o, out=h_seq_rows[t + 1])  # (F52)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs):
    """All steps back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
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
    d_A_x_seq = xs.new_empty((steps, B, 4 * H))
    d_A_h_prev_seq = xs.new_empty((steps, B, 4 * H))
    d_Z_gamma_x = dw["Z_gamma_x"]
    d_Z_beta_x = dw["Z_beta_x"]
    d_Z_gamma_h = dw["Z_gamma_h"]
    d_Z_beta_h = dw["Z_beta_h"]
    d_Z_b = dw["Z_b"]
    d_Z_a_seq = xs.new_empty((steps, B, 4 * H))
    c = c_seq[1:]
    Z_zx = Z_zx_seq[0:steps]
    Z_zh = Z_zh_seq[0:steps]
    mu_x = mu_x_seq[0:steps]
    v_x = v_x_seq[0:steps]
    mu_h = mu_h_seq[0:steps]
    v_h = v_h_seq[0:steps]
    f = f_seq[0:steps]
    i = i_seq[0:steps]
    g = g_seq[0:steps]
    o = o_seq[0:steps]
    mu_c = mu_c_seq[0:steps]
    v_c = v_c_seq[0:steps]
    k = k_seq[0:steps]
    J_B3_seq = 1 - torch.square(k)  # (B3)
    J_B4_seq = c - mu_c  # (B4)
    J_B5_seq = (v_c + 1/100000)**(-3/2)  # (B5)
    J_B7_seq = 2*(-c + mu_c)  # (B7) fork: e_c, y_c
    J_B8_seq = 2*(c - mu_c)  # (B8) fork: mu_c, e_c, y_c, next step
    J_B21_seq = f*(1 - f)  # (B21)
    J_B19_seq = i*(1 - i)  # (B19)
    J_B17_seq = 1 - torch.square(g)  # (B17)
    J_B15_seq = o*(1 - o)  # (B15)
    J_B27_seq = Z_zh - mu_h  # (B27)
    J_B28_seq = (v_h + 1/100000)**(-3/2)  # (B28)
    J_B33_seq = 2*(-Z_zh + mu_h)  # (B33)
    J_B38_seq = Z_zx - mu_x  # (B38)
    J_B39_seq = (v_x + 1/100000)**(-3/2)  # (B39)
    J_B44_seq = 2*(-Z_zx + mu_x)  # (B44)
    J_B45_seq = 2*(Z_zh - mu_h)  # (B45) (B46) (B47) (B48)
    J_B49_seq = 2*(Z_zx - mu_x)  # (B49) (B50) (B51) (B52)
    d_y_c_seq = xs.new_empty((steps, B, H))
    dhs_rows = dhs.unbind(0)
    J_B3_seq_rows = J_B3_seq.unbind(0)
    J_B4_seq_rows = J_B4_seq.unbind(0)
    J_B5_seq_rows = J_B5_seq.unbind(0)
    J_B7_seq_rows = J_B7_seq.unbind(0)
    J_B8_seq_rows = J_B8_seq.unbind(0)
    J_B21_seq_rows = J_B21_seq.unbind(0)
    J_B19_seq_rows = J_B19_seq.unbind(0)
    J_B17_seq_rows = J_B17_seq.unbind(0)
    J_B15_seq_rows = J_B15_seq.unbind(0)
    J_B27_seq_rows = J_B27_seq.unbind(0)
    J_B28_seq_rows = J_B28_seq.unbind(0)
    J_B33_seq_rows = J_B33_seq.unbind(0)
    J_B38_seq_rows = J_B38_seq.unbind(0)
    J_B39_seq_rows = J_B39_seq.unbind(0)
    J_B44_seq_rows = J_B44_seq.unbind(0)
    J_B45_seq_rows = J_B45_seq.unbind(0)
    J_B49_seq_rows = J_B49_seq.unbind(0)
    c_seq_rows = c_seq.unbind(0)
    r_x_seq_rows = r_x_seq.unbind(0)
    r_h_seq_rows = r_h_seq.unbind(0)
    f_seq_rows = f_seq.unbind(0)
    i_seq_rows = i_seq.unbind(0)
    g_seq_rows = g_seq.unbind(0)
    o_seq_rows = o_seq.unbind(0)
    r_c_seq_rows = r_c_seq.unbind(0)
    k_seq_rows = k_seq.unbind(0)
    d_A_h_prev_seq_rows = d_A_h_prev_seq.unbind(0)
    d_y_c_seq_rows = d_y_c_seq.unbind(0)
    d_Z_a_seq_rows = d_Z_a_seq.unbind(0)
    d_Z_a_seq_0_H_rows = d_Z_a_seq[:, :, 0:H].unbind(0)
    d_Z_a_seq_H_2H_rows = d_Z_a_seq[:, :, H:2 * H].unbind(0)
    d_Z_a_seq_2H_3H_rows = d_Z_a_seq[:, :, 2 * H:3 * H].unbind(0)
    d_Z_a_seq_3H_4H_rows = d_Z_a_seq[:, :, 3 * H:4 * H].unbind(0)
    d_A_h_prev_seq_0_4H_rows = d_A_h_prev_seq[:, :, 0:4 * H].unbind(0)
    d_A_x_seq_0_4H_rows = d_A_x_seq[:, :, 0:4 * H].unbind(0)
    for t in reversed(range(steps)):
        J_B3 = J_B3_seq_rows[t]
        J_B4 = J_B4_seq_rows[t]
        J_B5 = J_B5_seq_rows[t]
        J_B7 = J_B7_seq_rows[t]
        J_B8 = J_B8_seq_rows[t]
        J_B21 = J_B21_seq_rows[t]
        J_B19 = J_B19_seq_rows[t]
        J_B17 = J_B17_seq_rows[t]
        J_B15 = J_B15_seq_rows[t]
        J_B27 = J_B27_seq_rows[t]
        J_B28 = J_B28_seq_rows[t]
        J_B33 = J_B33_seq_rows[t]
        J_B38 = J_B38_seq_rows[t]
        J_B39 = J_B39_seq_rows[t]
        J_B44 = J_B44_seq_rows[t]
        J_B45 = J_B45_seq_rows[t]
        J_B49 = J_B49_seq_rows[t]
        c_prev = c_seq_rows[t]
        r_x = r_x_seq_rows[t]
        r_h = r_h_seq_rows[t]
        f = f_seq_rows[t]
        i = i_seq_rows[t]
        g = g_seq_rows[t]
        o = o_seq_rows[t]
        r_c = r_c_seq_rows[t]
        k = k_seq_rows[t]
        d_A_h_prev = d_A_h_prev_seq_rows[t]
        d_h = d_h_next + dhs_rows[t]  # (B1) fork: loss, next step
        d_k = d_h*o  # (B2)
        torch.mul(J_B3, d_k, out=d_y_c_seq_rows[t])  # (B3)
        d_y_c = d_y_c_seq_rows[t]
        _cse0 = d_y_c*gamma_c
        d_r_c = J_B4*_cse0  # (B4)
        d_v_c = -1/2*J_B5*d_r_c  # (B5)
        d_e_c = (d_v_c).mean(dim=-1, keepdim=True)  # (B6)
        _cse1 = _cse0*r_c
        d_mu_c = torch.addcmul(-_cse1, J_B7, d_e_c)  # (B7) fork: e_c, y_c
        d_c = torch.addcmul(_cse1 + d_c_next + (d_mu_c).mean(dim=-1, keepdim=True), J_B8, d_e_c)  # (B8) fork: mu_c, e_c, y_c, next step
        d_n = d_c  # (B9)
        d_m = d_c  # (B10)
        d_o = d_h*k  # (B11)
        d_g = d_n*i  # (B12)
        d_i = d_n*g  # (B13)
        d_f = c_prev*d_m  # (B14)
        torch.mul(J_B21, d_f, out=d_Z_a_seq_0_H_rows[t])  # (B21)
        torch.mul(J_B19, d_i, out=d_Z_a_seq_H_2H_rows[t])  # (B19)
        torch.mul(J_B17, d_g, out=d_Z_a_seq_2H_3H_rows[t])  # (B17)
        torch.mul(J_B15, d_o, out=d_Z_a_seq_3H_4H_rows[t])  # (B15)
        d_Z_yh = d_Z_a_seq_rows[t]  # (B23) (B24) (B25) (B26)
        _cse2 = Z_gamma_h*d_Z_yh
        d_r_h = (J_B27*_cse2).reshape(-1, 4, H).sum(dim=1)  # (B27)
        d_v_h = -1/2*J_B28*d_r_h  # (B28)
        d_Z_e_zh = (1/4)*(d_v_h).mean(dim=-1, keepdim=True)  # (B29) (B30) (B31) (B32)
        _cse3 = _cse2*r_h
        d_mu_h = (J_B33*d_Z_e_zh - _cse3).reshape(-1, 4, H).sum(dim=1)  # (B33)
        d_Z_yx = d_Z_a_seq_rows[t]  # (B34) (B35) (B36) (B37)
        _cse4 = Z_gamma_x*d_Z_yx
        d_r_x = (J_B38*_cse4).reshape(-1, 4, H).sum(dim=1)  # (B38)
        d_v_x = -1/2*J_B39*d_r_x  # (B39)
        d_Z_e_zx = (1/4)*(d_v_x).mean(dim=-1, keepdim=True)  # (B40) (B41) (B42) (B43)
        _cse5 = _cse4*r_x
        d_mu_x = (J_B44*d_Z_e_zx - _cse5).reshape(-1, 4, H).sum(dim=1)  # (B44)
        d_A_h_prev_seq_0_4H_rows[t][...] = J_B45*d_Z_e_zh + _cse3 + (1/4)*(d_mu_h).mean(dim=-1, keepdim=True)  # (B45) (B46) (B47) (B48)
        d_A_x_seq_0_4H_rows[t][...] = J_B49*d_Z_e_zx + _cse5 + (1/4)*(d_mu_x).mean(dim=-1, keepdim=True)  # (B49) (B50) (B51) (B52)
        d_c_prev = d_m*f  # (B53)
        d_h_prev = d_A_h_prev @ Wcat_h_prev  # (B54) fork: zh_f, zh_i, zh_g, zh_o
        d_h_next = d_h_prev
        d_c_next = d_c_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    torch.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B55)
    dw["Wcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    c = c_seq[1:]
    Z_zx = Z_zx_seq[0:steps]
    Z_zh = Z_zh_seq[0:steps]
    mu_x = mu_x_seq[0:steps]
    r_x = r_x_seq[0:steps]
    mu_h = mu_h_seq[0:steps]
    r_h = r_h_seq[0:steps]
    mu_c = mu_c_seq[0:steps]
    r_c = r_c_seq[0:steps]
    d_Z_a = d_Z_a_seq[0:steps]
    d_Z_yh = d_Z_a_seq[0:steps]  # (B23) (B24) (B25) (B26)
    d_Z_yx = d_Z_a_seq[0:steps]  # (B34) (B35) (B36) (B37)
    d_y_c = d_y_c_seq
    d_Z_b += (d_Z_a).sum(dim=(0, 1))  # (P9) (P10) (P11) (P12)
    d_Z_gamma_x += (d_Z_yx*r_x*(Z_zx - mu_x)).sum(dim=(0, 1))  # (P13) (P14) (P15) (P16)
    d_Z_beta_x += (d_Z_yx).sum(dim=(0, 1))  # (P17) (P18) (P19) (P20)
    d_Z_gamma_h += (d_Z_yh*r_h*(Z_zh - mu_h)).sum(dim=(0, 1))  # (P21) (P22) (P23) (P24)
    d_Z_beta_h += (d_Z_yh).sum(dim=(0, 1))  # (P25) (P26) (P27) (P28)
    d_gamma_c += (d_y_c*r_c*(c - mu_c)).sum(dim=(0, 1))  # (P29)
    d_beta_c += (d_y_c).sum(dim=(0, 1))  # (P30)
    return {"h": d_h_next, "c": d_c_next}


def _buffers(n, B, sizes, xs, names=CACHED):
    """Storage for n steps of the named values the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    shapes = {
        "h_seq": (n + 1, B, H),
        "c_seq": (n + 1, B, H),
        "Z_zx_seq": (n, B, 4 * H),
        "Z_zh_seq": (n, B, 4 * H),
        "mu_x_seq": (n, B, 1),
        "v_x_seq": (n, B, 1),
        "r_x_seq": (n, B, 1),
        "mu_h_seq": (n, B, 1),
        "v_h_seq": (n, B, 1),
        "r_h_seq": (n, B, 1),
        "f_seq": (n, B, H),
        "i_seq": (n, B, H),
        "g_seq": (n, B, H),
        "o_seq": (n, B, H),
        "mu_c_seq": (n, B, H),
        "v_c_seq": (n, B, H),
        "r_c_seq": (n, B, H),
        "k_seq": (n, B, H),
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
    A_x = xs.new_empty((steps, B, 4 * H))
    # the x terms of every step at once  (F1)-(F4)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 4 * H))
    A_h_prev = xs.new_empty((steps, B, 4 * H))
    Z_a = xs.new_empty((steps, B, 4 * H))
    h_prev = h_seq[0:steps]
    Z_zx_seq[0:steps] = A_x[0:steps]
    Z_zx = Z_zx_seq[0:steps]
    torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F5)-(F8)
    Z_zh_seq[0:steps] = A_h_prev
    Z_zh = Z_zh_seq[0:steps]
    mu_x_seq[0:steps] = (Z_zx).mean(dim=-1, keepdim=True)  # (F9)
    mu_x = mu_x_seq[0:steps]
    Z_e_zx = torch.square(Z_zx - mu_x)  # (F10) (F11) (F12) (F13)
    v_x_seq[0:steps] = (Z_e_zx).mean(dim=-1, keepdim=True)  # (F14)
    v_x = v_x_seq[0:steps]
    r_x_seq[0:steps] = torch.rsqrt(v_x + 1/100000)  # (F15)
    r_x = r_x_seq[0:steps]
    Z_yx = Z_beta_x + Z_gamma_x*r_x*(Z_zx - mu_x)  # (F16) (F17) (F18) (F19)
    mu_h_seq[0:steps] = (Z_zh).mean(dim=-1, keepdim=True)  # (F20)
    mu_h = mu_h_seq[0:steps]
    Z_e_zh = torch.square(Z_zh - mu_h)  # (F21) (F22) (F23) (F24)
    v_h_seq[0:steps] = (Z_e_zh).mean(dim=-1, keepdim=True)  # (F25)
    v_h = v_h_seq[0:steps]
    r_h_seq[0:steps] = torch.rsqrt(v_h + 1/100000)  # (F26)
    r_h = r_h_seq[0:steps]
    Z_yh = Z_beta_h + Z_gamma_h*r_h*(Z_zh - mu_h)  # (F27) (F28) (F29) (F30)
    Z_s = Z_yh + Z_yx  # (F31) (F33) (F35) (F37)
    torch.add(Z_b, Z_s, out=Z_a)  # (F32) (F34) (F36) (F38)
    a_f = Z_a[:, :, 0:H]
    a_i = Z_a[:, :, H:2 * H]
    a_g = Z_a[:, :, 2 * H:3 * H]
    a_o = Z_a[:, :, 3 * H:4 * H]
    torch.sigmoid(a_f, out=f_seq[0:steps])  # (F39)
    torch.sigmoid(a_i, out=i_seq[0:steps])  # (F40)
    torch.tanh(a_g, out=g_seq[0:steps])  # (F41)
    torch.sigmoid(a_o, out=o_seq[0:steps])  # (F42)
    c = c_seq[1:]
    mu_c_seq[0:steps] = (c).mean(dim=-1, keepdim=True)  # (F46)
    mu_c = mu_c_seq[0:steps]
    e_c = torch.square(c - mu_c)  # (F47)
    v_c_seq[0:steps] = (e_c).mean(dim=-1, keepdim=True)  # (F48)
    v_c = v_c_seq[0:steps]
    r_c_seq[0:steps] = torch.rsqrt(v_c + 1/100000)  # (F49)
    r_c = r_c_seq[0:steps]
    y_c = beta_c + gamma_c*r_c*(c - mu_c)  # (F50)
    torch.tanh(y_c, out=k_seq[0:steps])  # (F51)


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
    o_seq = seq["o_seq"]
    k_seq = seq["k_seq"]
    o = o_seq[0:steps]
    k = k_seq[0:steps]
    torch.mul(k, o, out=h_seq[1:])  # (F52)


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
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
    grads["gamma_x"] = torch.cat([grads["gamma_x_f"], grads["gamma_x_i"], grads["gamma_x_g"], grads["gamma_x_o"]])
    grads["beta_x"] = torch.cat([grads["beta_x_f"], grads["beta_x_i"], grads["beta_x_g"], grads["beta_x_o"]])
    grads["gamma_h"] = torch.cat([grads["gamma_h_f"], grads["gamma_h_i"], grads["gamma_h_g"], grads["gamma_h_o"]])
    grads["beta_h"] = torch.cat([grads["beta_h_f"], grads["beta_h_i"], grads["beta_h_g"], grads["beta_h_o"]])
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


class LayernormLSTMFunction(torch.autograd.Function):
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


class LayernormLSTMRecomputeFunction(torch.autograd.Function):
    """LayernormLSTMFunction that saves less: only the states of every step (SAVED), xs and the
    parameters; its backward first recomputes the other values in CACHED, all steps at once
    (one more forward pass, done with whole-sequence products)."""

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, SAVED)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class LayernormLSTM(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None, recompute=False):
        """recompute=True: keep only the states between forward and backward (less memory, more time)."""
        super().__init__()
        self.function = LayernormLSTMRecomputeFunction if recompute else LayernormLSTMFunction
        self.sizes = {"D": int(input_size), "H": int(hidden_size)}
        self.num_layers, self.bidirectional, self.batch_first = num_layers, bidirectional, batch_first
        self.directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            sizes = self._layer_sizes(layer)
            for suffix in ("", "_reverse")[:self.directions]:
                for key, names in LAYOUT.items():
                    rows = sum(_dim(PARAMS[name][0], sizes) for name in names)
                    shape = (rows, *(sizes[s] for s in PARAMS[names[0]][1:]))
                    self.register_parameter(f"{key}_l{layer}{suffix}", torch.nn.Parameter(
                        torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        """Uniform in (-1/sqrt(H), 1/sqrt(H)), as torch.nn's recurrent modules."""
        bound = 1.0 / self.sizes["H"] ** 0.5
        for value in self.parameters():
            torch.nn.init.uniform_(value, -bound, bound)
        with torch.no_grad():   # a layer norm's gains start at 1, its shifts at 0 (as torch.nn.LayerNorm)
            for key, value in self.named_parameters():
                name = key.rsplit("_l", 1)[0]
                if name in INITIAL:
                    value.fill_(INITIAL[name])

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
                                 [_dim(PARAMS[name][0], sizes) for name in names])
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
