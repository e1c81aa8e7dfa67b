"""tanh RNN with layer normalisation of its summed inputs: the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `layernorm_rnn`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/layernorm_rnn.tex.  Depends on PyTorch only; runs on any device and dtype.

`LayernormRNNFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads; `LayernormRNNRecomputeFunction` saves only the states and recomputes
the rest in its backward pass.  `LayernormRNN` is an nn.Module with torch.nn.LSTM's interface:
`LayernormRNN(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
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
    "gamma": ("H",),
    "beta": ("H",),
    "b": ("H",),
}
STATE = ("h",)
STATE_SIZES = {"h": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
INITIAL = {"beta": 0.0, "gamma": 1.0}  # parameters that start at a constant, not a random draw
OUTPUT = ("h", "H")
CACHED = ("h_seq", "h_1_seq", "h_3_seq", "h_5_seq", "h_6_seq")  # per-step storage the backward reads
SAVED = ("h_seq",)  # what the RecomputeFunction keeps for backward: the states
DERIVED = ("h_seq",)  # states their step's other cached values determine: rebuilt, not saved
KEPT = ("h_1_seq", "h_3_seq", "h_5_seq", "h_6_seq")  # what the Function keeps for backward
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
    Wcat_h_prev = params["U"]
    return dict(Wcat_x=Wcat_x, Wcat_h_prev=Wcat_h_prev, gamma=params["gamma"], beta=params["beta"], b=params["b"])


def _forward_steps(w, sizes, xs, seq):
    """All steps of xs (steps, B, D) from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    gamma = w["gamma"]
    beta = w["beta"]
    b = w["b"]
    h_seq = seq["h_seq"]
    h_1_seq = seq["h_1_seq"]
    h_3_seq = seq["h_3_seq"]
    h_5_seq = seq["h_5_seq"]
    h_6_seq = seq["h_6_seq"]
    A_x = xs.new_empty((steps, B, H))
    # the x terms of every step at once  (F1)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, H))
    A_h_prev = xs.new_empty((B, H))
    h_seq_rows = h_seq.unbind(0)
    A_x_rows = A_x.unbind(0)
    h_1_seq_rows = h_1_seq.unbind(0)
    h_3_seq_rows = h_3_seq.unbind(0)
    h_5_seq_rows = h_5_seq.unbind(0)
    h_6_seq_rows = h_6_seq.unbind(0)
    for t in range(steps):
        torch.addmm(A_x_rows[t], h_seq_rows[t], Wcat_h_prev.T, out=A_h_prev)  # (F1)
        h_1_seq_rows[t][...] = A_h_prev
        h_1 = h_1_seq_rows[t]
        h_3_seq_rows[t][...] = (h_1).mean(dim=-1, keepdim=True)  # (F2)
        h_3 = h_3_seq_rows[t]
        _cse0 = h_1 - h_3
        h_4 = torch.square(_cse0)  # (F3)
        h_5_seq_rows[t][...] = (h_4).mean(dim=-1, keepdim=True)  # (F4)
        h_5 = h_5_seq_rows[t]
        h_6_seq_rows[t][...] = torch.rsqrt(h_5 + 1/100000)  # (F5)
        h_6 = h_6_seq_rows[t]
        h_2 = _cse0*gamma*h_6 + beta  # (F6)
        a_h = b + h_2  # (F7)
        torch.tanh(a_h, out=h_seq_rows[t + 1])  # (F8)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs):
    """All steps back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    Wcat_x = w["Wcat_x"]
    Wcat_h_prev = w["Wcat_h_prev"]
    gamma = w["gamma"]
    beta = w["beta"]
    b = w["b"]
    h_seq = seq["h_seq"]
    h_1_seq = seq["h_1_seq"]
    h_3_seq = seq["h_3_seq"]
    h_5_seq = seq["h_5_seq"]
    h_6_seq = seq["h_6_seq"]
    d_h_next = d_next["h"]
    d_gamma = dw["gamma"]
    d_beta = dw["beta"]
    d_b = dw["b"]
    d_A_x_seq = xs.new_empty((steps, B, H))
    h = h_seq[1:]
    h_1 = h_1_seq[0:steps]
    h_3 = h_3_seq[0:steps]
    h_5 = h_5_seq[0:steps]
    J_B2_seq = 1 - torch.square(h)  # (B2)
    J_B4_seq = h_1 - h_3  # (B4)
    J_B5_seq = (h_5 + 1/100000)**(-3/2)  # (B5)
    J_B7_seq = 2*(-h_1 + h_3)  # (B7) fork: h_4, h_2
    J_B8_seq = 2*(h_1 - h_3)  # (B8) fork: h_3, h_4, h_2
    d_a_h_seq = xs.new_empty((steps, B, H))
    dhs_rows = dhs.unbind(0)
    J_B2_seq_rows = J_B2_seq.unbind(0)
    J_B4_seq_rows = J_B4_seq.unbind(0)
    J_B5_seq_rows = J_B5_seq.unbind(0)
    J_B7_seq_rows = J_B7_seq.unbind(0)
    J_B8_seq_rows = J_B8_seq.unbind(0)
    h_6_seq_rows = h_6_seq.unbind(0)
    d_A_x_seq_rows = d_A_x_seq.unbind(0)
    d_a_h_seq_rows = d_a_h_seq.unbind(0)
    d_A_x_seq_0_H_rows = d_A_x_seq[:, :, 0:H].unbind(0)
    for t in reversed(range(steps)):
        J_B2 = J_B2_seq_rows[t]
        J_B4 = J_B4_seq_rows[t]
        J_B5 = J_B5_seq_rows[t]
        J_B7 = J_B7_seq_rows[t]
        J_B8 = J_B8_seq_rows[t]
        h_6 = h_6_seq_rows[t]
        d_A_x = d_A_x_seq_rows[t]
        d_h = d_h_next + dhs_rows[t]  # (B1) fork: loss, next step
        torch.mul(J_B2, d_h, out=d_a_h_seq_rows[t])  # (B2)
        d_a_h = d_a_h_seq_rows[t]
        d_h_2 = d_a_h  # (B3)
        _cse0 = d_h_2*gamma
        d_h_6 = J_B4*_cse0  # (B4)
        d_h_5 = -1/2*J_B5*d_h_6  # (B5)
        d_h_4 = (d_h_5).mean(dim=-1, keepdim=True)  # (B6)
        _cse1 = _cse0*h_6
        d_h_3 = torch.addcmul(-_cse1, J_B7, d_h_4)  # (B7) fork: h_4, h_2
        d_A_x_seq_0_H_rows[t][...] = J_B8*d_h_4 + _cse1 + (d_h_3).mean(dim=-1, keepdim=True)  # (B8) fork: h_3, h_4, h_2
        d_h_prev = d_A_x @ Wcat_h_prev  # (B9)
        d_h_next = d_h_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, H).T @ xs.reshape(steps * B, D)  # (P1)
    torch.matmul(d_A_x_seq.reshape(steps * B, H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B10)
    dw["Wcat_h_prev"] += d_A_x_seq.reshape(steps * B, H).T @ h_seq[:steps].reshape(steps * B, H)  # (P2)
    h_1 = h_1_seq[0:steps]
    h_3 = h_3_seq[0:steps]
    h_6 = h_6_seq[0:steps]
    d_a_h = d_a_h_seq
    d_gamma += (d_a_h*h_6*(h_1 - h_3)).sum(dim=(0, 1))  # (P3)
    d_beta += (d_a_h).sum(dim=(0, 1))  # (P4)
    d_b += (d_a_h).sum(dim=(0, 1))  # (P5)
    return {"h": d_h_next}


def _buffers(n, B, sizes, xs, names=CACHED):
    """Storage for n steps of the named values the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    shapes = {
        "h_seq": (n + 1, B, H),
        "h_1_seq": (n, B, H),
        "h_3_seq": (n, B, H),
        "h_5_seq": (n, B, H),
        "h_6_seq": (n, B, H),
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
    gamma = w["gamma"]
    beta = w["beta"]
    b = w["b"]
    h_seq = seq["h_seq"]
    h_1_seq = seq["h_1_seq"]
    h_3_seq = seq["h_3_seq"]
    h_5_seq = seq["h_5_seq"]
    h_6_seq = seq["h_6_seq"]
    A_x = xs.new_empty((steps, B, H))
    # the x terms of every step at once  (F1)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, H))
    A_h_prev = xs.new_empty((steps, B, H))
    h_prev = h_seq[0:steps]
    torch.matmul(h_prev, Wcat_h_prev.T, out=A_h_prev)  # (F1)
    A_h_prev.add_(A_x[0:steps])
    h_1_seq[0:steps] = A_h_prev
    h_1 = h_1_seq[0:steps]
    h_3_seq[0:steps] = (h_1).mean(dim=-1, keepdim=True)  # (F2)
    h_3 = h_3_seq[0:steps]
    h_4 = torch.square(h_1 - h_3)  # (F3)
    h_5_seq[0:steps] = (h_4).mean(dim=-1, keepdim=True)  # (F4)
    h_5 = h_5_seq[0:steps]
    h_6_seq[0:steps] = torch.rsqrt(h_5 + 1/100000)  # (F5)


def _rebuild(w, sizes, xs, seq, firsts):
    """The states in DERIVED for all steps from their step's other cached values in seq, row 0
    from `firsts` (the initial states); adds them to seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    seq.update(_buffers(steps, B, sizes, xs, DERIVED))
    for name, first in zip(DERIVED, firsts):
        seq[name][0] = first
    gamma = w["gamma"]
    beta = w["beta"]
    b = w["b"]
    h_seq = seq["h_seq"]
    h_1_seq = seq["h_1_seq"]
    h_3_seq = seq["h_3_seq"]
    h_6_seq = seq["h_6_seq"]
    h_1 = h_1_seq[0:steps]
    h_3 = h_3_seq[0:steps]
    h_6 = h_6_seq[0:steps]
    h_2 = beta + gamma*h_6*(h_1 - h_3)  # (F6)
    a_h = b + h_2  # (F7)
    torch.tanh(a_h, out=h_seq[1:])  # (F8)


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
    grads = {}
    grads["W"] = dw["Wcat_x"][0:H]
    grads["U"] = dw["Wcat_h_prev"][0:H]
    grads["gamma"] = dw["gamma"]
    grads["beta"] = dw["beta"]
    grads["b"] = dw["b"]
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


class LayernormRNNFunction(torch.autograd.Function):
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


class LayernormRNNRecomputeFunction(torch.autograd.Function):
    """LayernormRNNFunction that saves less: only the states of every step (SAVED), xs and the
    parameters; its backward first recomputes the other values in CACHED, all steps at once
    (one more forward pass, done with whole-sequence products)."""

    @staticmethod
    def forward(ctx, xs, *args):
        return _forward(ctx, xs, args, SAVED)

    @staticmethod
    def backward(ctx, dhs, *dstateT):
        return _backward(ctx, dhs, dstateT)


class LayernormRNN(torch.nn.Module):
    """The cell over sequences, stacked in layers, in one or both directions (torch.nn.LSTM's interface)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 *, device=None, dtype=None, recompute=False):
        """recompute=True: keep only the states between forward and backward (less memory, more time)."""
        super().__init__()
        self.function = LayernormRNNRecomputeFunction if recompute else LayernormRNNFunction
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
