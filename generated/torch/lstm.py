"""LSTM with a forget gate, no peepholes (Hochreiter & Schmidhuber; Gers et al.): the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `lstm`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/lstm.tex.  Depends on PyTorch only; runs on any device and dtype.

`LSTMFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads; `LSTMRecomputeFunction` saves only the states and recomputes
the rest in its backward pass.  `LSTM` is an nn.Module with torch.nn.LSTM's interface:
`LSTM(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
called as `module(input, state0=None) -> (output, stateT)`, input (T, B, D) or (B, T, D),
the state a tuple in the order of STATE, each (num_layers * directions, B, size).
Its state dict is torch.nn.LSTM's (input_size=D, hidden_size=H): load_state_dict takes one.
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
}
STATE = ("h", "c")
STATE_SIZES = {"h": "H", "c": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
OUTPUT = ("h", "H")
CACHED = ("h_seq", "c_seq", "k_seq", "Z_f_i_o_seq", "Z_g_seq")  # per-step storage the backward reads
SAVED = ("h_seq", "c_seq")  # what the RecomputeFunction keeps for backward: the states
DERIVED = ("h_seq",)  # states their step's other cached values determine: rebuilt, not saved
KEPT = ("c_seq", "k_seq", "Z_f_i_o_seq", "Z_g_seq")  # what the Function keeps for backward
# torch.nn.LSTM keeps the parameters stacked: each key lists those in its blocks of rows;
# a parameter in two keys (PyTorch's two biases) is their sum.
LAYOUT = {
    "weight_ih": ("W_i", "W_f", "W_g", "W_o"),
    "weight_hh": ("U_i", "U_f", "U_g", "U_o"),
    "bias_ih": ("b_i", "b_f", "b_g", "b_o"),
    "bias_hh": ("b_i", "b_f", "b_g", "b_o"),
}


def _sizes(params):
    return {
        "D": params["W_f"].shape[1],
        "H": params["W_f"].shape[0],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = torch.cat([params["W_f"], params["W_i"], params["W_o"], params["W_g"]])
    bcat_x = torch.cat([params["b_f"], params["b_i"], params["b_o"], params["b_g"]])
    Wcat_h_prev = torch.cat([params["U_f"], params["U_i"], params["U_o"], params["U_g"]])
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
    k_seq = seq["k_seq"]
    Z_f_i_o_seq = seq["Z_f_i_o_seq"]
    Z_g_seq = seq["Z_g_seq"]
    A_x = xs.new_empty((steps, B, 4 * H))
    # the x terms of every step at once  (F1)-(F4)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 4 * H))
    A_x.add_(bcat_x)
    A_h_prev = xs.new_empty((B, 4 * H))
    A_h_prev_0_3H = A_h_prev[:, 0:3 * H]
    A_h_prev_3H_4H = A_h_prev[:, 3 * H:4 * H]
    h_seq_rows = h_seq.unbind(0)
    c_seq_rows = c_seq.unbind(0)
    Z_f_i_o_seq_rows = Z_f_i_o_seq.unbind(0)
    Z_g_seq_rows = Z_g_seq.unbind(0)
    A_x_rows = A_x.unbind(0)
    f_rows = Z_f_i_o_seq[:, :, 0:H].unbind(0)
    i_rows = Z_f_i_o_seq[:, :, H:2 * H].unbind(0)
    o_rows = Z_f_i_o_seq[:, :, 2 * H:3 * H].unbind(0)
    k_seq_rows = k_seq.unbind(0)
    for t in range(steps):
        c_prev = c_seq_rows[t]
        torch.addmm(A_x_rows[t], h_seq_rows[t], Wcat_h_prev.T, out=A_h_prev)  # (F1)-(F4)
        torch.sigmoid(A_h_prev_0_3H, out=Z_f_i_o_seq_rows[t])  # (F5) (F6) (F8)
        f = f_rows[t]
        i = i_rows[t]
        o = o_rows[t]
        torch.tanh(A_h_prev_3H_4H, out=Z_g_seq_rows[t])  # (F7)
        g = Z_g_seq_rows[t]
        n = g*i  # (F10)
        torch.addcmul(n, c_prev, f, out=c_seq_rows[t + 1])  # (F9) (F11)
        c = c_seq_rows[t + 1]
        torch.tanh(c, out=k_seq_rows[t])  # (F12)
        k = k_seq_rows[t]
        torch.mul(k, o, out=h_seq_rows[t + 1])  # (F13)


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
    k_seq = seq["k_seq"]
    Z_f_i_o_seq = seq["Z_f_i_o_seq"]
    Z_g_seq = seq["Z_g_seq"]
    d_h_next = d_next["h"]
    d_c_next = d_next["c"]
    F_A_x_seq = xs.new_empty((steps, B, 4 * H))
    F_c_prev_seq = xs.new_empty((steps, B, H))
    F_c_h_seq = xs.new_empty((steps, B, H))
    c_prev = c_seq[0:steps]
    k = k_seq[0:steps]
    Z_f_i_o = Z_f_i_o_seq[0:steps]
    Z_g = Z_g_seq[0:steps]
    f = Z_f_i_o[:, :, 0:H]
    i = Z_f_i_o[:, :, H:2 * H]
    o = Z_f_i_o[:, :, 2 * H:3 * H]
    g = Z_g
    torch.mul(c_prev, f*(1 - f), out=F_A_x_seq[0:steps, :, 0:H])  # (B13) (B9) (B5)
    torch.mul(g, i*(1 - i), out=F_A_x_seq[0:steps, :, H:2 * H])  # (B12) (B8) (B4)
    torch.mul(k, o*(1 - o), out=F_A_x_seq[0:steps, :, 2 * H:3 * H])  # (B10) (B6)
    torch.mul(i, 1 - torch.square(g), out=F_A_x_seq[0:steps, :, 3 * H:4 * H])  # (B11) (B7) (B4)
    F_c_prev_seq[0:steps] = f  # (B14) (B5)
    torch.mul(o, 1 - torch.square(k), out=F_c_h_seq[0:steps])  # (B2)
    d_A_x_seq = xs.new_empty((steps, B, 4 * H))
    dhs_rows = dhs.unbind(0)
    F_c_prev_seq_rows = F_c_prev_seq.unbind(0)
    F_c_h_seq_rows = F_c_h_seq.unbind(0)
    d_A_x_seq_rows = d_A_x_seq.unbind(0)
    d_A_x_seq_4x_rows = d_A_x_seq.unflatten(2, (4, H)).unbind(0)
    F_A_x_seq_4x_rows = F_A_x_seq.unflatten(2, (4, H)).unbind(0)
    d_A_x_seq_2H_3H_rows = d_A_x_seq[:, :, 2 * H:3 * H].unbind(0)
    F_A_x_seq_2H_3H_rows = F_A_x_seq[:, :, 2 * H:3 * H].unbind(0)
    for t in reversed(range(steps)):
        F_c_prev = F_c_prev_seq_rows[t]
        F_c_h = F_c_h_seq_rows[t]
        d_A_x = d_A_x_seq_rows[t]
        d_h = d_h_next + dhs_rows[t]  # (B1) fork: loss, next step
        d_c = torch.addcmul(d_c_next, F_c_h, d_h)  # (B3) fork: k, next step; through (B2)
        # (B9) (B5) (B8) (B4) (B7) enter the next line through its stored factors
        torch.mul(F_A_x_seq_4x_rows[t], d_c.unsqueeze(1), out=d_A_x_seq_4x_rows[t])  # (B13) (B12) (B11)
        # (B6) enter the next line through its stored factors
        torch.mul(F_A_x_seq_2H_3H_rows[t], d_h, out=d_A_x_seq_2H_3H_rows[t])  # (B10)
        d_c_prev = F_c_prev*d_c  # (B14) through (B5)
        d_h_prev = d_A_x @ Wcat_h_prev  # (B15) fork: a_f, a_i, a_g, a_o
        d_h_next = d_h_prev
        d_c_next = d_c_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ xs.reshape(steps * B, D)  # (P1)-(P4)
    torch.matmul(d_A_x_seq.reshape(steps * B, 4 * H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B16)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, 4 * H).sum(dim=0)  # (P9)-(P12)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, 4 * H).T @ h_seq[:steps].reshape(steps * B, H)  # (P5)-(P8)
    return {"h": d_h_next, "c": d_c_next}


def _buffers(n, B, sizes, xs, names=CACHED):
    """Storage for n steps of the named values the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    shapes = {
        "h_seq": (n + 1, B, H),
        "c_seq": (n + 1, B, H),
        "k_seq": (n, B, H),
        "Z_f_i_o_seq": (n, B, 3 * H),
        "Z_g_seq": (n, B, H),
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
    k_seq = seq["k_seq"]
    Z_f_i_o_seq = seq["Z_f_i_o_seq"]
    Z_g_seq = seq["Z_g_seq"]
    A_x = xs.new_empty((steps, B, 4 * H))
    # the x terms of every step at once  (F1)-(F4)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, 4 * H))
    A_x.add_(bcat_x)
    A_h_prev = xs.new_empty((steps, B, 4 * H))
    h_prev = h_seq[0:steps]
    Z_f_i_o = Z_f_i_o_seq[0:steps]
    Z_g = Z_g_seq[0:steps]
    torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F1)-(F4)
    A_h_prev.add_(A_x[0:steps])
    torch.sigmoid(A_h_prev[:, :, 0:3 * H], out=Z_f_i_o)  # (F5) (F6) (F8)
    torch.tanh(A_h_prev[:, :, 3 * H:4 * H], out=Z_g)  # (F7)
    c = c_seq[1:]
    torch.tanh(c, out=k_seq[0:steps])  # (F12)


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
    k_seq = seq["k_seq"]
    Z_f_i_o_seq = seq["Z_f_i_o_seq"]
    Z_f_i_o = Z_f_i_o_seq[0:steps]
    o = Z_f_i_o[:, :, 2 * H:3 * H]
    k = k_seq[0:steps]
    torch.mul(k, o, out=h_seq[1:])  # (F13)


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
    grads = {}
    grads["W_f"] = dw["Wcat_x"][0:H]
    grads["b_f"] = dw["bcat_x"][0:H]
    grads["W_i"] = dw["Wcat_x"][H:2 * H]
    grads["b_i"] = dw["bcat_x"][H:2 * H]
    grads["W_o"] = dw["Wcat_x"][2 * H:3 * H]
    grads["b_o"] = dw["bcat_x"][2 * H:3 * H]
    grads["W_g"] = dw["Wcat_x"][3 * H:4 * H]
    grads["b_g"] = dw["bcat_x"][3 * H:4 * H]
    grads["U_f"] = dw["Wcat_h_prev"][0:H]
    grads["U_i"] = dw["Wcat_h_prev"][H:2 * H]
    grads["U_o"] = dw["Wcat_h_prev"][2 * H:3 * H]
    grads["U_g"] = dw["Wcat_h_prev"][3 * H:4 * H]
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


class LSTMFunction(torch.autograd.Function):
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


class LSTMRecomputeFunction(torch.autograd.Function):
    """LSTMFunction that saves less: only the states of every step (SAVED), xs and the
    parameters; its backward first recomputes the other values in CACHED, all steps at once
    (one more forward pass, done with whole-sequence products)."""

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, SAVED)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class LSTM(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None, recompute=False):
        """recompute=True: keep only the states between forward and backward (less memory, more time)."""
        super().__init__()
        self.function = LSTMRecomputeFunction if recompute else LSTMFunction
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
