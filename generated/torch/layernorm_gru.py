"""layer-normalised GRU as PyTorch computes it: the stacked input and recurrent terms normalised: the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_gru`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_gru.tex.  Depends on PyTorch only; runs on any device and dtype.

`LayernormGRUFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads; `LayernormGRURecomputeFunction` saves only the states and recomputes
the rest in its backward pass.  `LayernormGRU` is an nn.Module with torch.nn.LSTM's interface:
`LayernormGRU(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
called as `module(input, state0=None) -> (output, stateT)`, input (T, B, D) or (B, T, D),
the state a tuple in the order of STATE, each (num_layers * directions, B, size).
"""
try:
    import torch
except ImportError:
    raise ImportError("this generated module needs PyTorch (package torch): pip install torch") from None

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
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
INITIAL = {"beta_h": 0.0, "beta_x": 0.0, "gamma_h": 1.0, "gamma_x": 1.0}  # parameters that start at a constant, not a random draw
OUTPUT = ("h", "H")
CACHED = ("h_seq", "Z_zx_seq", "Z_zh_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "r_seq", "z_seq", "a_nh_seq", "h_cand_seq", "v_seq")  # per-step storage the backward reads
SAVED = ("h_seq",)  # what the RecomputeFunction keeps for backward: the states
KEPT = ("h_seq", "Z_zx_seq", "Z_zh_seq", "mu_x_seq", "v_x_seq", "r_x_seq", "mu_h_seq", "v_h_seq", "r_h_seq", "r_seq", "z_seq", "a_nh_seq", "h_cand_seq", "v_seq")  # what the Function keeps for backward
LAYOUT = {name: (name,) for name in PARAMS}  # no torch.nn counterpart: one tensor per parameter


def _sizes(params):
    return {
        "D": params["W_r"].shape[1],
        "H": params["W_r"].shape[0],
    }


def _dim(size, sizes):
    """A size symbol's value; "4*H" is 4 times H (a packed parameter)."""
    return int(size.split("*")[0]) * sizes[size.split("*")[1]] if "*" in size else sizes[size]


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
    Wcat_x = torch.cat([params["W_r"], params["W_z"], params["W_n"]])
    Wcat_h_prev = torch.cat([params["U_r"], params["U_z"], params["U_n"]])
    Z_gamma_x = torch.cat([params["gamma_x_r"], params["gamma_x_z"], params["gamma_x_n"]])
    Z_beta_x = torch.cat([params["beta_x_r"], params["beta_x_z"], params["beta_x_n"]])
    Z_gamma_h = torch.cat([params["gamma_h_r"], params["gamma_h_z"], params["gamma_h_n"]])
    Z_beta_h = torch.cat([params["beta_h_r"], params["beta_h_z"], params["beta_h_n"]])
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, b_r=params["b_r"], b_z=params["b_z"], b_n=params["b_n"], b_hn=params["b_hn"], gamma_x_r=params["gamma_x_r"], gamma_x_z=params["gamma_x_z"], gamma_x_n=params["gamma_x_n"], beta_x_r=params["beta_x_r"], beta_x_z=params["beta_x_z"], beta_x_n=params["beta_x_n"], gamma_h_r=params["gamma_h_r"], gamma_h_z=params["gamma_h_z"], gamma_h_n=params["gamma_h_n"], beta_h_r=params["beta_h_r"], beta_h_z=params["beta_h_z"], beta_h_n=params["beta_h_n"], Z_gamma_x=Z_gamma_x, Z_beta_x=Z_beta_x, Z_gamma_h=Z_gamma_h, Z_beta_h=Z_beta_h)


def _forward_steps(w, sizes, xs, seq):
    """All steps of xs (steps, B, D) from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
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
    A_x = xs.new_empty((steps, B, 3 * H))
    # the x terms of every step at once  (F1)-(F3)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 3 * H))
    A_h_prev = xs.new_empty((B, 3 * H))
    Z_yx = xs.new_empty((B, 3 * H))
    Z_yh = xs.new_empty((B, 3 * H))
    Z_yx_0_H = Z_yx[:, 0:H]
    Z_yx_H_2H = Z_yx[:, H:2 * H]
    Z_yx_2H_3H = Z_yx[:, 2 * H:3 * H]
    Z_yh_0_H = Z_yh[:, 0:H]
    Z_yh_H_2H = Z_yh[:, H:2 * H]
    Z_yh_2H_3H = Z_yh[:, 2 * H:3 * H]
    h_seq_rows = h_seq.unbind(0)
    Z_zx_seq_rows = Z_zx_seq.unbind(0)
    A_x_rows = A_x.unbind(0)
    Z_zh_seq_rows = Z_zh_seq.unbind(0)
    mu_x_seq_rows = mu_x_seq.unbind(0)
    v_x_seq_rows = v_x_seq.unbind(0)
    r_x_seq_rows = r_x_seq.unbind(0)
    mu_h_seq_rows = mu_h_seq.unbind(0)
    v_h_seq_rows = v_h_seq.unbind(0)
    r_h_seq_rows = r_h_seq.unbind(0)
    r_seq_rows = r_seq.unbind(0)
    z_seq_rows = z_seq.unbind(0)
    a_nh_seq_rows = a_nh_seq.unbind(0)
    h_cand_seq_rows = h_cand_seq.unbind(0)
    v_seq_rows = v_seq.unbind(0)
    for t in range(steps):
        h_prev = h_seq_rows[t]
        Z_zx_seq_rows[t][...] = A_x_rows[t]
        Z_zx = Z_zx_seq_rows[t]
        torch.matmul(h_seq_rows[t], Wcat_h_prev.T, out=A_h_prev)  # (F4)-(F6)
        Z_zh_seq_rows[t][...] = A_h_prev
        Z_zh = Z_zh_seq_rows[t]
        mu_x_seq_rows[t][...] = (Z_zx).mean(dim=-1, keepdim=True)  # (F7)
        mu_x = mu_x_seq_rows[t]
        _cse0 = Z_zx - mu_x
        Z_e_zx = torch.square(_cse0)  # (F8) (F9) (F10)
        v_x_seq_rows[t][...] = (Z_e_zx).mean(dim=-1, keepdim=True)  # (F11)
        v_x = v_x_seq_rows[t]
        r_x_seq_rows[t][...] = torch.rsqrt(v_x + 1/100000)  # (F12)
        r_x = r_x_seq_rows[t]
        torch.add(Z_beta_x, Z_gamma_x*_cse0*r_x, out=Z_yx)  # (F13) (F14) (F15)
        yx_r = Z_yx_0_H
        yx_z = Z_yx_H_2H
        yx_n = Z_yx_2H_3H
        mu_h_seq_rows[t][...] = (Z_zh).mean(dim=-1, keepdim=True)  # (F16)
        mu_h = mu_h_seq_rows[t]
        _cse1 = Z_zh - mu_h
        Z_e_zh = torch.square(_cse1)  # (F17) (F18) (F19)
        v_h_seq_rows[t][...] = (Z_e_zh).mean(dim=-1, keepdim=True)  # (F20)
        v_h = v_h_seq_rows[t]
        r_h_seq_rows[t][...] = torch.rsqrt(v_h + 1/100000)  # (F21)
        r_h = r_h_seq_rows[t]
        torch.add(Z_beta_h, Z_gamma_h*_cse1*r_h, out=Z_yh)  # (F22) (F23) (F24)
        yh_r = Z_yh_0_H
        yh_z = Z_yh_H_2H
        yh_n = Z_yh_2H_3H
        s_r = yh_r + yx_r  # (F25)
        a_r = b_r + s_r  # (F26)
        torch.sigmoid(a_r, out=r_seq_rows[t])  # (F27)
        r = r_seq_rows[t]
        s_z = yh_z + yx_z  # (F28)
        a_z = b_z + s_z  # (F29)
        torch.sigmoid(a_z, out=z_seq_rows[t])  # (F30)
        z = z_seq_rows[t]
        torch.add(b_hn, yh_n, out=a_nh_seq_rows[t])  # (F31)
        a_nh = a_nh_seq_rows[t]
        a_nx = b_n + yx_n  # (F33)
        a_n = torch.addcmul(a_nx, a_nh, r)  # (F32) (F34)
        torch.tanh(a_n, out=h_cand_seq_rows[t])  # (F35)
        h_cand = h_cand_seq_rows[t]
        torch.add(-z, 1, out=v_seq_rows[t])  # (F36)
        v = v_seq_rows[t]
        h_kept = h_prev*z  # (F38)
        torch.addcmul(h_kept, h_cand, v, out=h_seq_rows[t + 1])  # (F37) (F39)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs):
    """All steps back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
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
    d_h_next = d_next["h"]
    d_b_r = dw["b_r"]
    d_b_z = dw["b_z"]
    d_b_n = dw["b_n"]
    d_b_hn = dw["b_hn"]
    d_gamma_x_r = dw["gamma_x_r"]
    d_gamma_x_z = dw["gamma_x_z"]
    d_gamma_x_n = dw["gamma_x_n"]
    d_beta_x_r = dw["beta_x_r"]
    d_beta_x_z = dw["beta_x_z"]
    d_beta_x_n = dw["beta_x_n"]
    d_gamma_h_r = dw["gamma_h_r"]
    d_gamma_h_z = dw["gamma_h_z"]
    d_gamma_h_n = dw["gamma_h_n"]
    d_beta_h_r = dw["beta_h_r"]
    d_beta_h_z = dw["beta_h_z"]
    d_beta_h_n = dw["beta_h_n"]
    d_A_x_seq = xs.new_empty((steps, B, 3 * H))
    d_A_h_prev_seq = xs.new_empty((steps, B, 3 * H))
    d_Z_gamma_x = dw["Z_gamma_x"]
    d_Z_beta_x = dw["Z_beta_x"]
    d_Z_gamma_h = dw["Z_gamma_h"]
    d_Z_beta_h = dw["Z_beta_h"]
    d_Z_yx_seq = xs.new_empty((steps, B, 3 * H))
    d_Z_yh_seq = xs.new_empty((steps, B, 3 * H))
    Z_zx = Z_zx_seq[0:steps]
    Z_zh = Z_zh_seq[0:steps]
    mu_x = mu_x_seq[0:steps]
    v_x = v_x_seq[0:steps]
    mu_h = mu_h_seq[0:steps]
    v_h = v_h_seq[0:steps]
    r = r_seq[0:steps]
    z = z_seq[0:steps]
    h_cand = h_cand_seq[0:steps]
    J_B6_seq = 1 - torch.square(h_cand)  # (B6)
    J_B11_seq = z*(1 - z)  # (B11)
    J_B14_seq = r*(1 - r)  # (B14)
    J_B19_seq = Z_zh - mu_h  # (B19)
    J_B20_seq = (v_h + 1/100000)**(-3/2)  # (B20)
    J_B24_seq = 2*(-Z_zh + mu_h)  # (B24)
    J_B28_seq = Z_zx - mu_x  # (B28)
    J_B29_seq = (v_x + 1/100000)**(-3/2)  # (B29)
    J_B33_seq = 2*(-Z_zx + mu_x)  # (B33)
    J_B34_seq = 2*(Z_zh - mu_h)  # (B34) (B35) (B36)
    J_B37_seq = 2*(Z_zx - mu_x)  # (B37) (B38) (B39)
    d_a_n_seq = xs.new_empty((steps, B, H))
    dhs_rows = dhs.unbind(0)
    J_B6_seq_rows = J_B6_seq.unbind(0)
    J_B11_seq_rows = J_B11_seq.unbind(0)
    J_B14_seq_rows = J_B14_seq.unbind(0)
    J_B19_seq_rows = J_B19_seq.unbind(0)
    J_B20_seq_rows = J_B20_seq.unbind(0)
    J_B24_seq_rows = J_B24_seq.unbind(0)
    J_B28_seq_rows = J_B28_seq.unbind(0)
    J_B29_seq_rows = J_B29_seq.unbind(0)
    J_B33_seq_rows = J_B33_seq.unbind(0)
    J_B34_seq_rows = J_B34_seq.unbind(0)
    J_B37_seq_rows = J_B37_seq.unbind(0)
    d_Z_yh_seq_rows = d_Z_yh_seq.unbind(0)
    h_seq_rows = h_seq.unbind(0)
    r_x_seq_rows = r_x_seq.unbind(0)
    r_h_seq_rows = r_h_seq.unbind(0)
    r_seq_rows = r_seq.unbind(0)
    z_seq_rows = z_seq.unbind(0)
    a_nh_seq_rows = a_nh_seq.unbind(0)
    h_cand_seq_rows = h_cand_seq.unbind(0)
    v_seq_rows = v_seq.unbind(0)
    d_A_h_prev_seq_rows = d_A_h_prev_seq.unbind(0)
    d_a_n_seq_rows = d_a_n_seq.unbind(0)
    d_a_nh_rows = d_Z_yh_seq[:, :, 2 * H:3 * H].unbind(0)
    d_a_z_rows = d_Z_yh_seq[:, :, H:2 * H].unbind(0)
    d_a_r_rows = d_Z_yh_seq[:, :, 0:H].unbind(0)
    d_Z_yx_seq_rows = d_Z_yx_seq.unbind(0)
    d_Z_yx_seq_0_H_rows = d_Z_yx_seq[:, :, 0:H].unbind(0)
    d_Z_yx_seq_H_2H_rows = d_Z_yx_seq[:, :, H:2 * H].unbind(0)
    d_Z_yx_seq_2H_3H_rows = d_Z_yx_seq[:, :, 2 * H:3 * H].unbind(0)
    d_A_h_prev_seq_0_3H_rows = d_A_h_prev_seq[:, :, 0:3 * H].unbind(0)
    d_A_x_seq_0_3H_rows = d_A_x_seq[:, :, 0:3 * H].unbind(0)
    for t in reversed(range(steps)):
        J_B6 = J_B6_seq_rows[t]
        J_B11 = J_B11_seq_rows[t]
        J_B14 = J_B14_seq_rows[t]
        J_B19 = J_B19_seq_rows[t]
        J_B20 = J_B20_seq_rows[t]
        J_B24 = J_B24_seq_rows[t]
        J_B28 = J_B28_seq_rows[t]
        J_B29 = J_B29_seq_rows[t]
        J_B33 = J_B33_seq_rows[t]
        J_B34 = J_B34_seq_rows[t]
        J_B37 = J_B37_seq_rows[t]
        d_Z_yh = d_Z_yh_seq_rows[t]
        h_prev = h_seq_rows[t]
        r_x = r_x_seq_rows[t]
        r_h = r_h_seq_rows[t]
        r = r_seq_rows[t]
        z = z_seq_rows[t]
        a_nh = a_nh_seq_rows[t]
        h_cand = h_cand_seq_rows[t]
        v = v_seq_rows[t]
        d_A_h_prev = d_A_h_prev_seq_rows[t]
        d_h = d_h_next + dhs_rows[t]  # (B1) fork: loss, next step
        d_h_kept = d_h  # (B2)
        d_h_new = d_h  # (B3)
        d_v = d_h_new*h_cand  # (B4)
        d_h_cand = d_h_new*v  # (B5)
        torch.mul(J_B6, d_h_cand, out=d_a_n_seq_rows[t])  # (B6)
        d_a_n = d_a_n_seq_rows[t]
        d_a_nx = d_a_n  # (B7)
        d_a_nr = d_a_n  # (B8)
        torch.mul(d_a_nr, r, out=d_a_nh_rows[t])  # (B9)
        d_z = torch.addcmul(-d_v, d_h_kept, h_prev)  # (B10) fork: v, h_kept
        torch.mul(J_B11, d_z, out=d_a_z_rows[t])  # (B11)
        d_a_z = d_a_z_rows[t]
        d_s_z = d_a_z  # (B12)
        d_r = a_nh*d_a_nr  # (B13)
        torch.mul(J_B14, d_r, out=d_a_r_rows[t])  # (B14)
        d_a_r = d_a_r_rows[t]
        d_s_r = d_a_r  # (B15)
        d_Z_yh = d_Z_yh_seq_rows[t]  # (B16) (B17) (B18)
        _cse0 = Z_gamma_h*d_Z_yh
        d_r_h = (J_B19*_cse0).reshape(-1, 3, H).sum(dim=1)  # (B19)
        d_v_h = -1/2*J_B20*d_r_h  # (B20)
        d_Z_e_zh = (1/3)*(d_v_h).mean(dim=-1, keepdim=True)  # (B21) (B22) (B23)
        _cse1 = _cse0*r_h
        d_mu_h = (J_B24*d_Z_e_zh - _cse1).reshape(-1, 3, H).sum(dim=1)  # (B24)
        d_Z_yx = d_Z_yx_seq_rows[t]
        d_Z_yx_seq_0_H_rows[t][...] = d_s_r  # (B27)
        d_Z_yx_seq_H_2H_rows[t][...] = d_s_z  # (B26)
        d_Z_yx_seq_2H_3H_rows[t][...] = d_a_nx  # (B25)
        _cse2 = Z_gamma_x*d_Z_yx
        d_r_x = (J_B28*_cse2).reshape(-1, 3, H).sum(dim=1)  # (B28)
        d_v_x = -1/2*J_B29*d_r_x  # (B29)
        d_Z_e_zx = (1/3)*(d_v_x).mean(dim=-1, keepdim=True)  # (B30) (B31) (B32)
        _cse3 = _cse2*r_x
        d_mu_x = (J_B33*d_Z_e_zx - _cse3).reshape(-1, 3, H).sum(dim=1)  # (B33)
        d_A_h_prev_seq_0_3H_rows[t][...] = J_B34*d_Z_e_zh + _cse1 + (1/3)*(d_mu_h).mean(dim=-1, keepdim=True)  # (B34) (B35) (B36)
        d_A_x_seq_0_3H_rows[t][...] = J_B37*d_Z_e_zx + _cse3 + (1/3)*(d_mu_x).mean(dim=-1, keepdim=True)  # (B37) (B38) (B39)
        d_h_prev = torch.addmm(d_h_kept*z, d_A_h_prev, Wcat_h_prev)  # (B40) fork: zh_r, zh_z, zh_n, h_kept
        d_h_next = d_h_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 3 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P3)
    torch.matmul(d_A_x_seq.reshape(steps * B, 3 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B41)
    dw["Wcat_h_prev"] += d_A_h_prev_seq.reshape(steps * B, 3 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P4)-(P6)
    d_Z_yh = d_Z_yh_seq[0:steps]  # (B16) (B17) (B18)
    Z_zx = Z_zx_seq[0:steps]
    Z_zh = Z_zh_seq[0:steps]
    mu_x = mu_x_seq[0:steps]
    r_x = r_x_seq[0:steps]
    mu_h = mu_h_seq[0:steps]
    r_h = r_h_seq[0:steps]
    d_a_nh = d_Z_yh[:, :, 2 * H:3 * H]
    d_a_z = d_Z_yh[:, :, H:2 * H]
    d_a_r = d_Z_yh[:, :, 0:H]
    d_Z_yx = d_Z_yx_seq[0:steps]
    d_a_n = d_a_n_seq
    d_b_r += (d_a_r).sum(dim=(0, 1))  # (P7)
    d_b_z += (d_a_z).sum(dim=(0, 1))  # (P8)
    d_b_n += (d_a_n).sum(dim=(0, 1))  # (P9)
    d_b_hn += (d_a_nh).sum(dim=(0, 1))  # (P10)
    d_Z_gamma_x += (d_Z_yx*r_x*(Z_zx - mu_x)).sum(dim=(0, 1))  # (P11) (P12) (P13)
    d_Z_beta_x += (d_Z_yx).sum(dim=(0, 1))  # (P14) (P15) (P16)
    d_Z_gamma_h += (d_Z_yh*r_h*(Z_zh - mu_h)).sum(dim=(0, 1))  # (P17) (P18) (P19)
    d_Z_beta_h += (d_Z_yh).sum(dim=(0, 1))  # (P20) (P21) (P22)
    return {"h": d_h_next}


def _buffers(n, B, sizes, xs, names=CACHED):
    """Storage for n steps of the named values the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    shapes = {
        "h_seq": (n + 1, B, H),
        "Z_zx_seq": (n, B, 3 * H),
        "Z_zh_seq": (n, B, 3 * H),
        "mu_x_seq": (n, B, 1),
        "v_x_seq": (n, B, 1),
        "r_x_seq": (n, B, 1),
        "mu_h_seq": (n, B, 1),
        "v_h_seq": (n, B, 1),
        "r_h_seq": (n, B, 1),
        "r_seq": (n, B, H),
        "z_seq": (n, B, H),
        "a_nh_seq": (n, B, H),
        "h_cand_seq": (n, B, H),
        "v_seq": (n, B, H),
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
    A_x = xs.new_empty((steps, B, 3 * H))
    # the x terms of every step at once  (F1)-(F3)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 3 * H))
    A_h_prev = xs.new_empty((steps, B, 3 * H))
    Z_yx = xs.new_empty((steps, B, 3 * H))
    Z_yh = xs.new_empty((steps, B, 3 * H))
    h_prev = h_seq[0:steps]
    Z_zx_seq[0:steps] = A_x[0:steps]
    Z_zx = Z_zx_seq[0:steps]
    torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F4)-(F6)
    Z_zh_seq[0:steps] = A_h_prev
    Z_zh = Z_zh_seq[0:steps]
    mu_x_seq[0:steps] = (Z_zx).mean(dim=-1, keepdim=True)  # (F7)
    mu_x = mu_x_seq[0:steps]
    Z_e_zx = torch.square(Z_zx - mu_x)  # (F8) (F9) (F10)
    v_x_seq[0:steps] = (Z_e_zx).mean(dim=-1, keepdim=True)  # (F11)
    v_x = v_x_seq[0:steps]
    r_x_seq[0:steps] = torch.rsqrt(v_x + 1/100000)  # (F12)
    r_x = r_x_seq[0:steps]
    torch.add(Z_beta_x, Z_gamma_x*r_x*(Z_zx - mu_x), out=Z_yx)  # (F13) (F14) (F15)
    yx_r = Z_yx[:, :, 0:H]
    yx_z = Z_yx[:, :, H:2 * H]
    yx_n = Z_yx[:, :, 2 * H:3 * H]
    mu_h_seq[0:steps] = (Z_zh).mean(dim=-1, keepdim=True)  # (F16)
    mu_h = mu_h_seq[0:steps]
    Z_e_zh = torch.square(Z_zh - mu_h)  # (F17) (F18) (F19)
    v_h_seq[0:steps] = (Z_e_zh).mean(dim=-1, keepdim=True)  # (F20)
    v_h = v_h_seq[0:steps]
    r_h_seq[0:steps] = torch.rsqrt(v_h + 1/100000)  # (F21)
    r_h = r_h_seq[0:steps]
    torch.add(Z_beta_h, Z_gamma_h*r_h*(Z_zh - mu_h), out=Z_yh)  # (F22) (F23) (F24)
    yh_r = Z_yh[:, :, 0:H]
    yh_z = Z_yh[:, :, H:2 * H]
    yh_n = Z_yh[:, :, 2 * H:3 * H]
    s_r = yh_r + yx_r  # (F25)
    a_r = b_r + s_r  # (F26)
    torch.sigmoid(a_r, out=r_seq[0:steps])  # (F27)
    r = r_seq[0:steps]
    s_z = yh_z + yx_z  # (F28)
    a_z = b_z + s_z  # (F29)
    torch.sigmoid(a_z, out=z_seq[0:steps])  # (F30)
    z = z_seq[0:steps]
    torch.add(b_hn, yh_n, out=a_nh_seq[0:steps])  # (F31)
    a_nh = a_nh_seq[0:steps]
    a_nr = a_nh*r  # (F32)
    a_nx = b_n + yx_n  # (F33)
    a_n = a_nr + a_nx  # (F34)
    torch.tanh(a_n, out=h_cand_seq[0:steps])  # (F35)
    torch.add(-z, 1, out=v_seq[0:steps])  # (F36)


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
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
    grads["gamma_x"] = torch.cat([grads["gamma_x_r"], grads["gamma_x_z"], grads["gamma_x_n"]])
    grads["beta_x"] = torch.cat([grads["beta_x_r"], grads["beta_x_z"], grads["beta_x_n"]])
    grads["gamma_h"] = torch.cat([grads["gamma_h_r"], grads["gamma_h_z"], grads["gamma_h_n"]])
    grads["beta_h"] = torch.cat([grads["beta_h_r"], grads["beta_h_z"], grads["beta_h_n"]])
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
    if len(seq) < len(CACHED):
        _recompute(w, sizes, xs, seq)
    dw = {name: torch.zeros_like(value) for name, value in w.items()}
    dxs = torch.empty_like(xs)
    d_next = {s: d.clone() for s, d in zip(STATE, dstateT)}
    dstate0 = _backward_steps(w, sizes, xs, seq, dhs.contiguous(), d_next, dw, dxs)
    return (dxs, *(dstate0[s] for s in STATE), *_grads(dw, sizes))


class LayernormGRUFunction(torch.autograd.Function):
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


class LayernormGRURecomputeFunction(torch.autograd.Function):
    """LayernormGRUFunction that saves less: only the states of every step (SAVED), xs and the
    parameters; its backward first recomputes the other values in CACHED, all steps at once
    (one more forward pass, done with whole-sequence products)."""

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, SAVED)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class LayernormGRU(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None, recompute=False):
        """recompute=True: keep only the states between forward and backward (less memory, more time)."""
        super().__init__()
        self.function = LayernormGRURecomputeFunction if recompute else LayernormGRUFunction
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
