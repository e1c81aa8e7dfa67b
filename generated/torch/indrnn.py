"""independently recurrent network: h = relu(W x + u * h_prev + b), u one weight per unit (Li et al.): the derived backward inside PyTorch.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
cell `indrnn`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/indrnn.tex.  Depends on PyTorch only; runs on any device and dtype.

`IndrnnFunction` runs the whole sequence: the input terms of all steps in one product
before the loop, one stacked product per step, and it saves for backward only what the
derived backward reads.  `Indrnn` is an nn.Module with torch.nn.LSTM's interface:
`Indrnn(input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False)`,
called as `module(input, state0=None) -> (output, stateT)`, input (T, B, D) or (B, T, D),
the state a tuple in the order of STATE, each (num_layers * directions, B, size).
"""
try:
    import torch
except ImportError:
    raise ImportError("this generated module needs PyTorch (package torch): pip install torch") from None

PARAMS = {
    "W": ("H", "D"),
    "b": ("H",),
    "u": ("H",),
}
STATE = ("h",)
STATE_SIZES = {"h": "H"}
SIZES = {"D": "input_size", "H": "hidden_size"}  # size symbol -> constructor argument
OUTPUT = ("h", "H")
CACHED = ("h_seq", "z_seq")  # per-step storage the backward reads
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
    Wcat_x = torch.cat([params["W"]])
    bcat_x = torch.cat([params["b"]])
    return dict(Wcat_x=Wcat_x, bcat_x=bcat_x, u=params["u"])


def _forward_steps(w, sizes, xs, seq):
    """All steps of xs (steps, B, D) from the states in row 0 of seq; fills seq."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    Wcat_x = w["Wcat_x"]
    bcat_x = w["bcat_x"]
    u = w["u"]
    h_seq = seq["h_seq"]
    z_seq = seq["z_seq"]
    A_x = xs.new_empty((steps, B, H))
    # the x terms of every step at once  (F1)
    torch.matmul(xs.reshape(steps * B, D), Wcat_x.T, out=A_x.reshape(steps * B, H))
    A_x += bcat_x
    for t in range(steps):
        h_prev = h_seq[t]
        a = A_x[t]
        q = h_prev*u  # (F2)
        z_seq[t] = a + q  # (F3)
        z = z_seq[t]
        h_seq[t + 1] = torch.clamp(z, min=0)  # (F4)


def _backward_steps(w, sizes, xs, seq, dhs, d_next, dw, dxs):
    """All steps back from d_next (the state gradients after the last step); adds the parameter
    gradients into dw, writes dxs and returns the state gradients before step 0."""
    D = sizes["D"]
    H = sizes["H"]
    steps, B = xs.shape[:2]
    Wcat_x = w["Wcat_x"]
    bcat_x = w["bcat_x"]
    u = w["u"]
    h_seq = seq["h_seq"]
    z_seq = seq["z_seq"]
    d_h_next = d_next["h"]
    d_u = dw["u"]
    d_A_x_seq = xs.new_empty((steps, B, H))
    for t in reversed(range(steps)):
        h_prev = h_seq[t]
        z = z_seq[t]
        d_A_x = d_A_x_seq[t]
        d_h = d_h_next + dhs[t]  # (B1) fork: loss, next step
        d_z = d_h*((1/2)*torch.sign(z) + 1/2)  # (B2)
        d_q = d_z  # (B3)
        d_A_x[:, 0:H] = d_z  # (B4)
        d_h_prev = d_q*u  # (B5)
        d_u += (d_q*h_prev).sum(dim=0)  # (P3)
        d_h_next = d_h_prev
    dw["Wcat_x"] += d_A_x_seq.reshape(steps * B, H).T @ xs.reshape(steps * B, D)  # (P1)
    torch.matmul(d_A_x_seq.reshape(steps * B, H), Wcat_x, out=dxs.reshape(steps * B, D))  # (B6)
    dw["bcat_x"] += d_A_x_seq.reshape(steps * B, H).sum(dim=0)  # (P2)
    return {"h": d_h_next}


def _buffers(n, B, sizes, xs):
    """Storage for n steps of what the backward pass reads (a state has n + 1 rows)."""
    D = sizes["D"]
    H = sizes["H"]
    return {
        "h_seq": xs.new_empty((n + 1, B, H)),
        "z_seq": xs.new_empty((n, B, H)),
    }


def _grads(dw, sizes):
    """Each parameter's gradient: its rows of a stacked gradient."""
    D = sizes["D"]
    H = sizes["H"]
    grads = {}
    grads["W"] = dw["Wcat_x"][0:H]
    grads["b"] = dw["bcat_x"][0:H]
    grads["u"] = dw["u"]
    return [grads[name] for name in PARAMS]


class IndrnnFunction(torch.autograd.Function):
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


class Indrnn(torch.nn.Module):
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
        sizes, suffix, params = self._layer_sizes(layer), "_reverse" if reverse else "", {}
        for key, names in LAYOUT.items():
            blocks = torch.split(getattr(self, f"{key}_l{layer}{suffix}"),
                                 [sizes[PARAMS[name][0]] for name in names])
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
                out, *stateT = IndrnnFunction.apply(run, *(s[k] for s in state0),
                                                       *(params[name] for name in PARAMS))
                outputs.append(out.flip(0) if direction else out)
                final.append(stateT)
            xs = torch.cat(outputs, dim=2) if self.directions == 2 else outputs[0]
        output = xs.transpose(0, 1) if self.batch_first else xs
        return output, tuple(torch.stack([f[n] for f in final]) for n in range(len(STATE)))
