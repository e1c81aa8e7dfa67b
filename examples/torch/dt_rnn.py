"""deep-transition RNN: one hidden layer inside each step, between the previous state and the new one: the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `dt_rnn`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/dt_rnn.tex.  Depends on PyTorch only; runs on any device and dtype.

`DtRNNFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads; `DtRNNRecomputeFunction` saves only the states and recomputes
the rest in its backward pass.  `DtRNN` is an nn.Module with torch.nn.LSTM's interface:
`DtRNN(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
called as `module(input, state0=None) -> (output, stateT)`, input (T, B, D) or (B, T, D),
the state a tuple in the order of STATE, each (num_layers * directions, B, size).
"""
try:
    import torch
except ImportError:
    raise ImportError("this generated module needs PyTorch (package torch): pip install torch") from None

PARAMS = {
    "W": ("H", "D"),
    "U": ("H", "H"),
    "V": ("H", "H"),
    "b": ("H",),
    "c": ("H",),
}
STATE = ("h",)
STATE_SIZES = {"h": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
OUTPUT = ("h", "H")
CACHED = ("h_seq", "Z_u_seq")  # per-step storage the backward reads
SAVED = ("h_seq",)  # what the RecomputeFunction keeps for backward: the states
KEPT = ("h_seq", "Z_u_seq")  # what the Function keeps for backward
LAYOUT = {name: (name,) for name in PARAMS}  # no torch.nn counterpart: one tensor per parameter


def _sizes(params):
    return {
        "D": params["W"].shape[1],
        "H": params["W"].shape[0],
    }


def _stack(params, sizes, xs):
    """The weights of every input stacked into one matrix (and biases into one vector)."""
    D = sizes["D"]
    H = sizes["H"]
    Wcat_x = params["W"]
    bcat_x = params["b"]
    Wcat_h_prev = params["U"]
    Wcat_u = params["V"]
    bcat_u = params["c"]
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, Wcat_u=Wcat_u, bcat_x=bcat_x, bcat_u=bcat_u)


def _forward_steps(w, sizes, xs, seq):
    """All steps of xs (steps, B, D) from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    Wcat_u = w["Wcat_u"]
    bcat_x = w["bcat_x"]
    bcat_u = w["bcat_u"]
    h_seq = seq["h_seq"]
    Z_u_seq = seq["Z_u_seq"]
    A_x = xs.new_empty((steps, B, H))
    # the x terms of every step at once  (F1)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, H))
    A_x.add_(bcat_x)
    A_h_prev = xs.new_empty((B, H))
    A_u = xs.new_empty((B, H))
    A_h_prev_0_H = A_h_prev[:, 0:H]
    h_seq_rows = h_seq.unbind(0)
    Z_u_seq_rows = Z_u_seq.unbind(0)
    A_x_rows = A_x.unbind(0)
    for t in range(steps):
        torch.addmm(A_x_rows[t], h_seq_rows[t], Wcat_h_prev.T, out=A_h_prev)  # (F1)
        torch.sigmoid(A_h_prev_0_H, out=Z_u_seq_rows[t])  # (F2)
        torch.addmm(bcat_u[0:H], Z_u_seq_rows[t], Wcat_u.T, out=A_u)  # (F3)
        a_h = A_u
        torch.tanh(a_h, out=h_seq_rows[t + 1])  # (F4)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs):
    """All steps back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    Wcat_u = w["Wcat_u"]
    bcat_x = w["bcat_x"]
    bcat_u = w["bcat_u"]
    h_seq = seq["h_seq"]
    Z_u_seq = seq["Z_u_seq"]
    d_h_next = d_next["h"]
    d_A_x_seq = xs.new_empty((steps, B, H))
    d_A_u_seq = xs.new_empty((steps, B, H))
    d_Z_u = xs.new_empty((B, H))
    d_u = d_Z_u
    h = h_seq[1:]
    Z_u = Z_u_seq[0:steps]
    J_B2_seq = 1 - torch.square(h)  # (B2)
    J_B4_seq = Z_u*(1 - Z_u)  # (B4)
    dhs_rows = dhs.unbind(0)
    J_B2_seq_rows = J_B2_seq.unbind(0)
    J_B4_seq_rows = J_B4_seq.unbind(0)
    d_A_x_seq_rows = d_A_x_seq.unbind(0)
    d_A_u_seq_rows = d_A_u_seq.unbind(0)
    d_A_u_seq_0_H_rows = d_A_u_seq[:, :, 0:H].unbind(0)
    d_A_x_seq_0_H_rows = d_A_x_seq[:, :, 0:H].unbind(0)
    for t in reversed(range(steps)):
        J_B2 = J_B2_seq_rows[t]
        J_B4 = J_B4_seq_rows[t]
        d_A_x = d_A_x_seq_rows[t]
        d_A_u = d_A_u_seq_rows[t]
        d_h = d_h_next + dhs_rows[t]  # (B1) fork: loss, next step
        torch.mul(J_B2, d_h, out=d_A_u_seq_0_H_rows[t])  # (B2)
        d_u[...] = d_A_u @ Wcat_u  # (B3)
        torch.mul(J_B4, d_Z_u, out=d_A_x_seq_0_H_rows[t])  # (B4)
        d_h_prev = d_A_x @ Wcat_h_prev  # (B5)
        d_h_next = d_h_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, H).T @ xs.reshape(steps * B, D)  # (P1)
    torch.matmul(d_A_x_seq.reshape(steps * B, H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B6)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, H).sum(dim=0)  # (P4)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, H).T @ h_seq[:steps].reshape(steps * B, H)  # (P2)
    dw["Wcat_u"] += d_A_u_seq.reshape(steps * B, H).T @ Z_u_seq[:, :, 0:H].reshape(steps * B, H)  # (P3)
    dw["bcat_u"] += d_A_u_seq.reshape(steps * B, H).sum(dim=0)  # (P5)
    return {"h": d_h_next}


def _buffers(n, B, sizes, xs, names=CACHED):
    """Storage for n steps of the named values the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    shapes = {
        "h_seq": (n + 1, B, H),
        "Z_u_seq": (n, B, H),
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
    Wcat_u = w["Wcat_u"]
    bcat_x = w["bcat_x"]
    bcat_u = w["bcat_u"]
    h_seq = seq["h_seq"]
    Z_u_seq = seq["Z_u_seq"]
    A_x = xs.new_empty((steps, B, H))
    # the x terms of every step at once  (F1)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, H))
    A_x.add_(bcat_x)
    A_h_prev = xs.new_empty((steps, B, H))
    h_prev = h_seq[0:steps]
    Z_u = Z_u_seq[0:steps]
    torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F1)
    A_h_prev.add_(A_x[0:steps])
    torch.sigmoid(A_h_prev[:, :, 0:H], out=Z_u)  # (F2)


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
    grads = {}
    grads["W"] = dw["Wcat_x"][0:H]
    grads["b"] = dw["bcat_x"][0:H]
    grads["U"] = dw["Wcat_h_prev"][0:H]
    grads["V"] = dw["Wcat_u"][0:H]
    grads["c"] = dw["bcat_u"][0:H]
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


class DtRNNFunction(torch.autograd.Function):
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


class DtRNNRecomputeFunction(torch.autograd.Function):
    """DtRNNFunction that saves less: only the states of every step (SAVED), xs and the
    parameters; its backward first recomputes the other values in CACHED, all steps at once
    (one more forward pass, done with whole-sequence products)."""

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, SAVED)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class DtRNN(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None, recompute=False):
        """recompute=True: keep only the states between forward and backward (less memory, more time)."""
        super().__init__()
        self.function = DtRNNRecomputeFunction if recompute else DtRNNFunction
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
