"""layer-normalised LSTM: the stacked gate terms and the cell state normalised (Ba, Kiros & Hinton): the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_lstm.tex.  Depends on PyTorch only; runs on any device and dtype.

`LayernormLSTMFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads.  `LayernormLSTM` is an nn.Module with torch.nn.LSTM's interface:
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
OUTPUT = ("h", "H")
CACHED = ("h_seq", "c_seq", "zx_f_seq", "zx_i_seq", "zx_g_seq", "zx_o_seq", "zh_f_seq", "zh_i_seq", "zh_g_seq", "zh_o_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "f_seq", "i_seq", "g_seq", "o_seq", "mu_c_seq", "v_c_seq", "r_c_seq", "k_seq")  # per-step storage the backward reads
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
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_f=params["b_f"], b_i=params["b_i"], b_g=params["b_g"], b_o=params["b_o"], gamma_x_f=params["gamma_x_f"], gamma_x_i=params["gamma_x_i"], gamma_x_g=params["gamma_x_g"], gamma_x_o=params["gamma_x_o"], beta_x_f=params["beta_x_f"], beta_x_i=params["beta_x_i"], beta_x_g=params["beta_x_g"], beta_x_o=params["beta_x_o"], gamma_h_f=params["gamma_h_f"], gamma_h_i=params["gamma_h_i"], gamma_h_g=params["gamma_h_g"], gamma_h_o=params["gamma_h_o"], beta_h_f=params["beta_h_f"], beta_h_i=params["beta_h_i"], beta_h_g=params["beta_h_g"], beta_h_o=params["beta_h_o"], gamma_c=params["gamma_c"], beta_c=params["beta_c"])


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
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    zx_f_seq = seq["zx_f_seq"]
    zx_i_seq = seq["zx_i_seq"]
    zx_g_seq = seq["zx_g_seq"]
    zx_o_seq = seq["zx_o_seq"]
    zh_f_seq = seq["zh_f_seq"]
    zh_i_seq = seq["zh_i_seq"]
    zh_g_seq = seq["zh_g_seq"]
    zh_o_seq = seq["zh_o_seq"]
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
    for t in range(steps):
        h_prev = h_seq[t]
        c_prev = c_seq[t]
        zx_f_seq[t] = A_x[t, :, 0:H]
        zx_f = zx_f_seq[t]
        zx_i_seq[t] = A_x[t, :, H:2 * H]
        zx_i = zx_i_seq[t]
        zx_g_seq[t] = A_x[t, :, 2 * H:3 * H]
        zx_g = zx_g_seq[t]
        zx_o_seq[t] = A_x[t, :, 3 * H:4 * H]
        zx_o = zx_o_seq[t]
        torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F5)-(F8)
        zh_f_seq[t] = A_h_prev[:, 0:H]
        zh_f = zh_f_seq[t]
        zh_i_seq[t] = A_h_prev[:, H:2 * H]
        zh_i = zh_i_seq[t]
        zh_g_seq[t] = A_h_prev[:, 2 * H:3 * H]
        zh_g = zh_g_seq[t]
        zh_o_seq[t] = A_h_prev[:, 3 * H:4 * H]
        zh_o = zh_o_seq[t]
        mu_x_seq[t] = (1/4)*(zx_f).mean(dim=-1, keepdim=True) + (1/4)*(zx_g).mean(dim=-1, keepdim=True) + (1/4)*(zx_i).mean(dim=-1, keepdim=True) + (1/4)*(zx_o).mean(dim=-1, keepdim=True)  # (F9)
        mu_x = mu_x_seq[t]
        e_zx_f = (-mu_x + zx_f)**2  # (F10)
        e_zx_i = (-mu_x + zx_i)**2  # (F11)
        e_zx_g = (-mu_x + zx_g)**2  # (F12)
        e_zx_o = (-mu_x + zx_o)**2  # (F13)
        v_x_seq[t] = (1/4)*(e_zx_f).mean(dim=-1, keepdim=True) + (1/4)*(e_zx_g).mean(dim=-1, keepdim=True) + (1/4)*(e_zx_i).mean(dim=-1, keepdim=True) + (1/4)*(e_zx_o).mean(dim=-1, keepdim=True)  # (F14)
        v_x = v_x_seq[t]
        r_x_seq[t] = 1/torch.sqrt(v_x + 1/100000)  # (F15)
        r_x = r_x_seq[t]
        yx_f = beta_x_f + gamma_x_f*r_x*(-mu_x + zx_f)  # (F16)
        yx_i = beta_x_i + gamma_x_i*r_x*(-mu_x + zx_i)  # (F17)
        yx_g = beta_x_g + gamma_x_g*r_x*(-mu_x + zx_g)  # (F18)
        yx_o = beta_x_o + gamma_x_o*r_x*(-mu_x + zx_o)  # (F19)
        mu_h_seq[t] = (1/4)*(zh_f).mean(dim=-1, keepdim=True) + (1/4)*(zh_g).mean(dim=-1, keepdim=True) + (1/4)*(zh_i).mean(dim=-1, keepdim=True) + (1/4)*(zh_o).mean(dim=-1, keepdim=True)  # (F20)
        mu_h = mu_h_seq[t]
        e_zh_f = (-mu_h + zh_f)**2  # (F21)
        e_zh_i = (-mu_h + zh_i)**2  # (F22)
        e_zh_g = (-mu_h + zh_g)**2  # (F23)
        e_zh_o = (-mu_h + zh_o)**2  # (F24)
        v_h_seq[t] = (1/4)*(e_zh_f).mean(dim=-1, keepdim=True) + (1/4)*(e_zh_g).mean(dim=-1, keepdim=True) + (1/4)*(e_zh_i).mean(dim=-1, keepdim=True) + (1/4)*(e_zh_o).mean(dim=-1, keepdim=True)  # (F25)
        v_h = v_h_seq[t]
        r_h_seq[t] = 1/torch.sqrt(v_h + 1/100000)  # (F26)
        r_h = r_h_seq[t]
        yh_f = beta_h_f + gamma_h_f*r_h*(-mu_h + zh_f)  # (F27)
        yh_i = beta_h_i + gamma_h_i*r_h*(-mu_h + zh_i)  # (F28)
        yh_g = beta_h_g + gamma_h_g*r_h*(-mu_h + zh_g)  # (F29)
        yh_o = beta_h_o + gamma_h_o*r_h*(-mu_h + zh_o)  # (F30)
        s_f = yh_f + yx_f  # (F31)
        a_f = b_f + s_f  # (F32)
        s_i = yh_i + yx_i  # (F33)
        a_i = b_i + s_i  # (F34)
        s_g = yh_g + yx_g  # (F35)
        a_g = b_g + s_g  # (F36)
        s_o = yh_o + yx_o  # (F37)
        a_o = b_o + s_o  # (F38)
        f_seq[t] = torch.sigmoid(a_f)  # (F39)
        f = f_seq[t]
        i_seq[t] = torch.sigmoid(a_i)  # (F40)
        i = i_seq[t]
        g_seq[t] = torch.tanh(a_g)  # (F41)
        g = g_seq[t]
        o_seq[t] = torch.sigmoid(a_o)  # (F42)
        o = o_seq[t]
        m = c_prev*f  # (F43)
        n = g*i  # (F44)
        c_seq[t + 1] = m + n  # (F45)
        c = c_seq[t + 1]
        mu_c_seq[t] = (c).mean(dim=-1, keepdim=True)  # (F46)
        mu_c = mu_c_seq[t]
        e_c = (c - mu_c)**2  # (F47)
        v_c_seq[t] = (e_c).mean(dim=-1, keepdim=True)  # (F48)
        v_c = v_c_seq[t]
        r_c_seq[t] = 1/torch.sqrt(v_c + 1/100000)  # (F49)
        r_c = r_c_seq[t]
        y_c = beta_c + gamma_c*r_c*(c - mu_c)  # (F50)
        k_seq[t] = torch.tanh(y_c)  # (F51)
        k = k_seq[t]
        h_seq[t + 1] = k*o  # (F52)


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
    h_seq = seq["h_seq"]
    c_seq = seq["c_seq"]
    zx_f_seq = seq["zx_f_seq"]
    zx_i_seq = seq["zx_i_seq"]
    zx_g_seq = seq["zx_g_seq"]
    zx_o_seq = seq["zx_o_seq"]
    zh_f_seq = seq["zh_f_seq"]
    zh_i_seq = seq["zh_i_seq"]
    zh_g_seq = seq["zh_g_seq"]
    zh_o_seq = seq["zh_o_seq"]
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
    for t in reversed(range(steps)):
        c_prev = c_seq[t]
        c = c_seq[t + 1]
        zx_f = zx_f_seq[t]
        zx_i = zx_i_seq[t]
        zx_g = zx_g_seq[t]
        zx_o = zx_o_seq[t]
        zh_f = zh_f_seq[t]
        zh_i = zh_i_seq[t]
        zh_g = zh_g_seq[t]
        zh_o = zh_o_seq[t]
        mu_x = mu_x_seq[t]
        v_x = v_x_seq[t]
        r_x = r_x_seq[t]
        mu_h = mu_h_seq[t]
        v_h = v_h_seq[t]
        r_h = r_h_seq[t]
        f = f_seq[t]
        i = i_seq[t]
        g = g_seq[t]
        o = o_seq[t]
        mu_c = mu_c_seq[t]
        v_c = v_c_seq[t]
        r_c = r_c_seq[t]
        k = k_seq[t]
        d_A_x = d_A_x_seq[t]
        d_A_h_prev = d_A_h_prev_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_k = d_h*o  # (B2)
        d_y_c = d_k*(1 - k**2)  # (B3)
        d_r_c = d_y_c*gamma_c*(c - mu_c)  # (B4)
        d_v_c = -1/2*d_r_c/(v_c + 1/100000)**(3/2)  # (B5)
        d_e_c = (d_v_c).mean(dim=-1, keepdim=True)  # (B6)
        d_mu_c = d_e_c*(-2*c + 2*mu_c) - d_y_c*gamma_c*r_c  # (B7) fork: e_c, y_c
        d_c = d_e_c*(2*c - 2*mu_c) + d_y_c*gamma_c*r_c + d_c_next + (d_mu_c).mean(dim=-1, keepdim=True)  # (B8) fork: mu_c, e_c, y_c, next step
        d_n = d_c  # (B9)
        d_m = d_c  # (B10)
        d_o = d_h*k  # (B11)
        d_g = d_n*i  # (B12)
        d_i = d_n*g  # (B13)
        d_f = c_prev*d_m  # (B14)
        d_a_o = d_o*o*(1 - o)  # (B15)
        d_s_o = d_a_o  # (B16)
        d_a_g = d_g*(1 - g**2)  # (B17)
        d_s_g = d_a_g  # (B18)
        d_a_i = d_i*i*(1 - i)  # (B19)
        d_s_i = d_a_i  # (B20)
        d_a_f = d_f*f*(1 - f)  # (B21)
        d_s_f = d_a_f  # (B22)
        d_yh_o = d_s_o  # (B23)
        d_yh_g = d_s_g  # (B24)
        d_yh_i = d_s_i  # (B25)
        d_yh_f = d_s_f  # (B26)
        d_r_h = d_yh_f*gamma_h_f*(-mu_h + zh_f) + d_yh_g*gamma_h_g*(-mu_h + zh_g) + d_yh_i*gamma_h_i*(-mu_h + zh_i) + d_yh_o*gamma_h_o*(-mu_h + zh_o)  # (B27) fork: yh_f, yh_i, yh_g, yh_o
        d_v_h = -1/2*d_r_h/(v_h + 1/100000)**(3/2)  # (B28)
        d_e_zh_o = (1/4)*(d_v_h).mean(dim=-1, keepdim=True)  # (B29)
        d_e_zh_g = (1/4)*(d_v_h).mean(dim=-1, keepdim=True)  # (B30)
        d_e_zh_i = (1/4)*(d_v_h).mean(dim=-1, keepdim=True)  # (B31)
        d_e_zh_f = (1/4)*(d_v_h).mean(dim=-1, keepdim=True)  # (B32)
        d_mu_h = d_e_zh_f*(2*mu_h - 2*zh_f) + d_e_zh_g*(2*mu_h - 2*zh_g) + d_e_zh_i*(2*mu_h - 2*zh_i) + d_e_zh_o*(2*mu_h - 2*zh_o) - d_yh_f*gamma_h_f*r_h - d_yh_g*gamma_h_g*r_h - d_yh_i*gamma_h_i*r_h - d_yh_o*gamma_h_o*r_h  # (B33) fork: e_zh_f, e_zh_i, e_zh_g, e_zh_o, yh_f, yh_i, yh_g, yh_o
        d_yx_o = d_s_o  # (B34)
        d_yx_g = d_s_g  # (B35)
        d_yx_i = d_s_i  # (B36)
        d_yx_f = d_s_f  # (B37)
        d_r_x = d_yx_f*gamma_x_f*(-mu_x + zx_f) + d_yx_g*gamma_x_g*(-mu_x + zx_g) + d_yx_i*gamma_x_i*(-mu_x + zx_i) + d_yx_o*gamma_x_o*(-mu_x + zx_o)  # (B38) fork: yx_f, yx_i, yx_g, yx_o
        d_v_x = -1/2*d_r_x/(v_x + 1/100000)**(3/2)  # (B39)
        d_e_zx_o = (1/4)*(d_v_x).mean(dim=-1, keepdim=True)  # (B40)
        d_e_zx_g = (1/4)*(d_v_x).mean(dim=-1, keepdim=True)  # (B41)
        d_e_zx_i = (1/4)*(d_v_x).mean(dim=-1, keepdim=True)  # (B42)
        d_e_zx_f = (1/4)*(d_v_x).mean(dim=-1, keepdim=True)  # (B43)
        d_mu_x = d_e_zx_f*(2*mu_x - 2*zx_f) + d_e_zx_g*(2*mu_x - 2*zx_g) + d_e_zx_i*(2*mu_x - 2*zx_i) + d_e_zx_o*(2*mu_x - 2*zx_o) - d_yx_f*gamma_x_f*r_x - d_yx_g*gamma_x_g*r_x - d_yx_i*gamma_x_i*r_x - d_yx_o*gamma_x_o*r_x  # (B44) fork: e_zx_f, e_zx_i, e_zx_g, e_zx_o, yx_f, yx_i, yx_g, yx_o
        d_A_h_prev[:, 3 * H:4 * H] = d_e_zh_o*(-2*mu_h + 2*zh_o) + d_yh_o*gamma_h_o*r_h + (1/4)*(d_mu_h).mean(dim=-1, keepdim=True)  # (B45) fork: mu_h, e_zh_o, yh_o
        d_A_h_prev[:, 2 * H:3 * H] = d_e_zh_g*(-2*mu_h + 2*zh_g) + d_yh_g*gamma_h_g*r_h + (1/4)*(d_mu_h).mean(dim=-1, keepdim=True)  # (B46) fork: mu_h, e_zh_g, yh_g
        d_A_h_prev[:, H:2 * H] = d_e_zh_i*(-2*mu_h + 2*zh_i) + d_yh_i*gamma_h_i*r_h + (1/4)*(d_mu_h).mean(dim=-1, keepdim=True)  # (B47) fork: mu_h, e_zh_i, yh_i
        d_A_h_prev[:, 0:H] = d_e_zh_f*(-2*mu_h + 2*zh_f) + d_yh_f*gamma_h_f*r_h + (1/4)*(d_mu_h).mean(dim=-1, keepdim=True)  # (B48) fork: mu_h, e_zh_f, yh_f
        d_A_x[:, 3 * H:4 * H] = d_e_zx_o*(-2*mu_x + 2*zx_o) + d_yx_o*gamma_x_o*r_x + (1/4)*(d_mu_x).mean(dim=-1, keepdim=True)  # (B49) fork: mu_x, e_zx_o, yx_o
        d_A_x[:, 2 * H:3 * H] = d_e_zx_g*(-2*mu_x + 2*zx_g) + d_yx_g*gamma_x_g*r_x + (1/4)*(d_mu_x).mean(dim=-1, keepdim=True)  # (B50) fork: mu_x, e_zx_g, yx_g
        d_A_x[:, H:2 * H] = d_e_zx_i*(-2*mu_x + 2*zx_i) + d_yx_i*gamma_x_i*r_x + (1/4)*(d_mu_x).mean(dim=-1, keepdim=True)  # (B51) fork: mu_x, e_zx_i, yx_i
        d_A_x[:, 0:H] = d_e_zx_f*(-2*mu_x + 2*zx_f) + d_yx_f*gamma_x_f*r_x + (1/4)*(d_mu_x).mean(dim=-1, keepdim=True)  # (B52) fork: mu_x, e_zx_f, yx_f
        d_c_prev = d_m*f  # (B53)
        d_h_prev = d_A_h_prev @ Wcat_h_prev  # (B54) fork: zh_f, zh_i, zh_g, zh_o
        d_b_f += (d_a_f).sum(dim=0)  # (P9)
        d_b_i += (d_a_i).sum(dim=0)  # (P10)
        d_b_g += (d_a_g).sum(dim=0)  # (P11)
        d_b_o += (d_a_o).sum(dim=0)  # (P12)
        d_gamma_x_f += (d_yx_f*r_x*(-mu_x + zx_f)).sum(dim=0)  # (P13)
        d_gamma_x_i += (d_yx_i*r_x*(-mu_x + zx_i)).sum(dim=0)  # (P14)
        d_gamma_x_g += (d_yx_g*r_x*(-mu_x + zx_g)).sum(dim=0)  # (P15)
        d_gamma_x_o += (d_yx_o*r_x*(-mu_x + zx_o)).sum(dim=0)  # (P16)
        d_beta_x_f += (d_yx_f).sum(dim=0)  # (P17)
        d_beta_x_i += (d_yx_i).sum(dim=0)  # (P18)
        d_beta_x_g += (d_yx_g).sum(dim=0)  # (P19)
        d_beta_x_o += (d_yx_o).sum(dim=0)  # (P20)
        d_gamma_h_f += (d_yh_f*r_h*(-mu_h + zh_f)).sum(dim=0)  # (P21)
        d_gamma_h_i += (d_yh_i*r_h*(-mu_h + zh_i)).sum(dim=0)  # (P22)
        d_gamma_h_g += (d_yh_g*r_h*(-mu_h + zh_g)).sum(dim=0)  # (P23)
        d_gamma_h_o += (d_yh_o*r_h*(-mu_h + zh_o)).sum(dim=0)  # (P24)
        d_beta_h_f += (d_yh_f).sum(dim=0)  # (P25)
        d_beta_h_i += (d_yh_i).sum(dim=0)  # (P26)
        d_beta_h_g += (d_yh_g).sum(dim=0)  # (P27)
        d_beta_h_o += (d_yh_o).sum(dim=0)  # (P28)
        d_gamma_c += (d_y_c*r_c*(c - mu_c)).sum(dim=0)  # (P29)
        d_beta_c += (d_y_c).sum(dim=0)  # (P30)
        d_h_next = d_h_prev
        d_c_next = d_c_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    torch.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B55)
    dw["Wcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    return {"h": d_h_next, "c": d_c_next}


def _buffers(n, B, sizes, xs):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": xs.new_empty((n + 1, B, H)),
        "c_seq": xs.new_empty((n + 1, B, H)),
        "zx_f_seq": xs.new_empty((n, B, H)),
        "zx_i_seq": xs.new_empty((n, B, H)),
        "zx_g_seq": xs.new_empty((n, B, H)),
        "zx_o_seq": xs.new_empty((n, B, H)),
        "zh_f_seq": xs.new_empty((n, B, H)),
        "zh_i_seq": xs.new_empty((n, B, H)),
        "zh_g_seq": xs.new_empty((n, B, H)),
        "zh_o_seq": xs.new_empty((n, B, H)),
        "mu_x_seq": xs.new_empty((n, B, H)),
        "v_x_seq": xs.new_empty((n, B, H)),
        "r_x_seq": xs.new_empty((n, B, H)),
        "mu_h_seq": xs.new_empty((n, B, H)),
        "v_h_seq": xs.new_empty((n, B, H)),
        "r_h_seq": xs.new_empty((n, B, H)),
        "f_seq": xs.new_empty((n, B, H)),
        "i_seq": xs.new_empty((n, B, H)),
        "g_seq": xs.new_empty((n, B, H)),
        "o_seq": xs.new_empty((n, B, H)),
        "mu_c_seq": xs.new_empty((n, B, H)),
        "v_c_seq": xs.new_empty((n, B, H)),
        "r_c_seq": xs.new_empty((n, B, H)),
        "k_seq": xs.new_empty((n, B, H)),
    }


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
    grads["b_f"] = dw["b_f"]
    grads["b_i"] = dw["b_i"]
    grads["b_g"] = dw["b_g"]
    grads["b_o"] = dw["b_o"]
    grads["gamma_x_f"] = dw["gamma_x_f"]
    grads["gamma_x_i"] = dw["gamma_x_i"]
    grads["gamma_x_g"] = dw["gamma_x_g"]
    grads["gamma_x_o"] = dw["gamma_x_o"]
    grads["beta_x_f"] = dw["beta_x_f"]
    grads["beta_x_i"] = dw["beta_x_i"]
    grads["beta_x_g"] = dw["beta_x_g"]
    grads["beta_x_o"] = dw["beta_x_o"]
    grads["gamma_h_f"] = dw["gamma_h_f"]
    grads["gamma_h_i"] = dw["gamma_h_i"]
    grads["gamma_h_g"] = dw["gamma_h_g"]
    grads["gamma_h_o"] = dw["gamma_h_o"]
    grads["beta_h_f"] = dw["beta_h_f"]
    grads["beta_h_i"] = dw["beta_h_i"]
    grads["beta_h_g"] = dw["beta_h_g"]
    grads["beta_h_o"] = dw["beta_h_o"]
    grads["gamma_c"] = dw["gamma_c"]
    grads["beta_c"] = dw["beta_c"]
    grads["gamma_x"] = torch.cat([grads["gamma_x_f"], grads["gamma_x_i"], grads["gamma_x_g"], grads["gamma_x_o"]])
    grads["beta_x"] = torch.cat([grads["beta_x_f"], grads["beta_x_i"], grads["beta_x_g"], grads["beta_x_o"]])
    grads["gamma_h"] = torch.cat([grads["gamma_h_f"], grads["gamma_h_i"], grads["gamma_h_g"], grads["gamma_h_o"]])
    grads["beta_h"] = torch.cat([grads["beta_h_f"], grads["beta_h_i"], grads["beta_h_g"], grads["beta_h_o"]])
    return [grads[name] for name in PARAMS]


class LayernormLSTMFunction(torch.autograd.Function):
    """(xs, *state0, *params in PARAMS order) -> (outputs, *stateT), with the derived backward.

    xs is (T, B, D), each state (B, size).  The forward saves only the per-step values
    the backward reads (CACHED), xs and the parameters (not copied).
    """

    @staticmethod
    def forward(ctx, xs, *args):
        xs, state0, params = xs.contiguous(), args[:len(STATE)], dict(zip(PARAMS, args[len(STATE):]))
        sizes = _sizes(params)
        seq = _buffers(xs.shape[0], xs.shape[1], sizes, xs)
        for s, value in zip(STATE, state0):
            seq[f"{s}_seq"][0] = value
        _forward_steps(_stack(params, sizes, xs), sizes, xs, seq)
        ctx.save_for_backward(xs, *params.values(), *seq.values())
        outputs = seq["h_seq"][1:]
        return (outputs, *(seq[f"{s}_seq"][-1].clone() for s in STATE))

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        xs, *rest = ctx.saved_tensors
        params = dict(zip(PARAMS, rest[:len(PARAMS)]))
        seq = dict(zip(CACHED, rest[len(PARAMS):]))
        sizes = _sizes(params)
        w = _stack(params, sizes, xs)
        dw = {name: torch.zeros_like(value) for name, value in w.items()}
        dxs = torch.empty_like(xs)
        d_next = {s: d.clone() for s, d in zip(STATE, dstateT)}
        dstate0 = _backward_steps(w, sizes, xs, seq, dhs.contiguous(), d_next, dw, dxs)
        return (dxs, *(dstate0[s] for s in STATE), *_grads(dw, sizes))


class LayernormLSTM(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None):
        super().__init__()
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

    def _layer_sizes(self, layer):
        width = self.sizes[OUTPUT[1]] * self.directions
        return dict(self.sizes, D=self.sizes["D"] if layer == 0 else width)

    def layer_params(self, layer, reverse=False):
        """The parameters of one layer and direction keyed like PARAMS (views; summed doubles)."""
        sizes, suffix, params = self._layer_sizes(layer), "_reverse" if reverse else "", {}
        for key, names in LAYOUT.items():
            blocks = torch.split(getattr(self, f"{key}_l{layer}{suffix}"),
                                 [_dim(PARAMS[name][0], sizes) for name in names])
            for name, block in zip(names, blocks):
                params[name] = params[name] + block if name in params else block
        return params

    def forward(self, input, state0=None):
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
                out, *stateT = LayernormLSTMFunction.apply(run, *(s[k] for s in state0),
                                                       *(params[name] for name in PARAMS))
                outputs.append(out.flip(0) if direction else out)
                final.append(stateT)
            xs = torch.cat(outputs, dim=2) if self.directions == 2 else outputs[0]
        output = xs.transpose(0, 1) if self.batch_first else xs
        return output, tuple(torch.stack([f[n] for f in final]) for n in range(len(STATE)))
