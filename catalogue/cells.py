"""The built-in cells: each an `Entry`, a cell's ordered stages (data, not code) with its words.

Recurrent cells name their weights W_* (input), U_* (recurrent) and b_* (bias), the
gates f, i, g, o (LSTM) or z, r (GRU, whose candidate state is h_cand).  No stage name
means two things across the built-in cells (a test checks): the GRU's parts of the new
state are h_new and h_kept, not the LSTM's m and n.  The words in `notes` go into the cell's
document, to say how its derivation differs from the LSTM's.  `CELLS` maps each name to
its entry; `get_cell(name)` is the mathematics alone, `get_entry(name)` the whole entry.
"""
from __future__ import annotations

from derive.errors import DeriveError
from catalogue.entry import Entry, TorchLayout
from derive.stages import Cell, Kind, Loss, affine, elementwise, layer_norm

_ROLE = {"f": "forget gate", "i": "input gate", "g": "candidate cell value", "o": "output gate",
         "z": "update gate", "r": "reset gate", "n": "candidate state", "h_cand": "candidate state"}
_SIG, _TANH, _MUL, _ADD, _ONE_MINUS = Kind.SIGMOID, Kind.TANH, Kind.MUL, Kind.ADD, Kind.ONE_MINUS


def _gate(name, reads="h_prev"):
    """Affine pre-activation a_<name> = W_<name> x + U_<name> <reads> + b_<name>."""
    return affine(f"a_{name}", ("x", reads), (f"W_{name}", f"U_{name}"), f"b_{name}", "H",
                  note=f"pre-activation of the {_ROLE[name]}")


def _act(kind, name, arg):
    return elementwise(kind, name, arg, note=_ROLE[name])


_CELL_UPDATE = (
    elementwise(_MUL, "m", "f", "c_prev", note="part of the old cell that is kept"),
    elementwise(_MUL, "n", "i", "g", note="new content written to the cell"),
    elementwise(_ADD, "c", "m", "n", note="new cell state"),
    elementwise(_TANH, "k", "c", note="squashed cell state"),
)
_LSTM_STATE = (("h", "H"), ("c", "H"))


def _torch_layout(module, gates, two_biases, extra=(), options=""):
    """PyTorch's stacking: weight_ih, weight_hh, bias_ih, bias_hh, gates in its order."""
    suffix = (lambda g: f"_{g}") if gates != ("",) else (lambda g: "")
    keys = (("weight_ih_l0", tuple(f"W{suffix(g)}" for g in gates)),
            ("weight_hh_l0", tuple(f"U{suffix(g)}" for g in gates)),
            ("bias_ih_l0", tuple(f"b{suffix(g)}" for g in gates)),
            ("bias_hh_l0", two_biases), *extra)
    return TorchLayout(module, keys, options)

LSTM = Entry(
    Cell(name="lstm", inputs=(("x", "D"),), state=_LSTM_STATE, output="h",
         stages=(_gate("f"), _gate("i"), _gate("g"), _gate("o"),
                 _act(_SIG, "f", "a_f"), _act(_SIG, "i", "a_i"), _act(_TANH, "g", "a_g"),
                 _act(_SIG, "o", "a_o"), *_CELL_UPDATE,
                 elementwise(_MUL, "h", "o", "k", note="new hidden state and output"))),
    description="LSTM with a forget gate, no peepholes (Hochreiter & Schmidhuber; Gers et al.)",
    torch=_torch_layout("LSTM", "ifgo", ("b_i", "b_f", "b_g", "b_o")),
    intuition=(
        'The cell state $c_t$ is a conveyor belt through time: each step only scales it '
        'elementwise and adds to it, so what was written many steps ago can still be read.',
        'Three sigmoid gates, each a number between 0 and 1 per unit, decide what happens to '
        'it: the forget gate $f_t$ how much of the old state to keep, the input gate $i_t$ '
        'how much of the candidate $g_t$ (a tanh proposal in $(-1, 1)$) to write, and the '
        'output gate $o_t$ how much of the squashed state to show as $h_t$.',
        'Backwards, the additive update $c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$ is what '
        'matters: the gradient reaching $c_{t-1}$ from $c_t$ is only multiplied by $f_t$, '
        'with no weight matrix and no squashing derivative, so it survives many steps while '
        'the forget gate stays open.',
    ),
    cites=("hochreiter1997", "gers2000forget", "greff2017"),
)


def _peephole(gate, reads):
    return (elementwise(_MUL, f"q_{gate}", f"p_{gate}", reads,
                        note=f"peephole term of the {_ROLE[gate]}"),
            elementwise(_ADD, f"z_{gate}", f"a_{gate}", f"q_{gate}",
                        note=f"full pre-activation of the {_ROLE[gate]}"),
            _act(_SIG, gate, f"z_{gate}"))


PEEPHOLE_LSTM = Entry(
    Cell(name="peephole_lstm", inputs=(("x", "D"),), state=_LSTM_STATE, output="h",
         stages=(_gate("f"), _gate("i"), _gate("g"), _gate("o"),
                 *_peephole("f", "c_prev"), *_peephole("i", "c_prev"), _act(_TANH, "g", "a_g"),
                 *_CELL_UPDATE[:3], *_peephole("o", "c"), _CELL_UPDATE[3],
                 elementwise(_MUL, "h", "o", "k", note="new hidden state and output")),
         vector_params=(("p_f", "H"), ("p_i", "H"), ("p_o", "H"))),
    description="LSTM with peephole connections: the gates also read the cell state (Gers & Schmidhuber)",
    notes=("The forget and input gates read the previous cell state through the peepholes "
           "$p_f$ and $p_i$, and the output gate reads the new cell state through $p_o$.",
           "So $c_{t-1}$ gains two branches (into $q^f_t$ and $q^i_t$) and the new cell state "
           "$c_t$ gains the branch into $q^o_t$: the output gate's gradient flows back into the cell.",
           "The peepholes are vectors read elementwise: their gradients are sums over time and "
           "batch of elementwise products, not outer products."),
    intuition=(
        'An ordinary LSTM decides its gates from $x_t$ and $h_{t-1}$ alone, and $h_{t-1}$ '
        'shows the cell state only through the output gate: when that gate is shut, the gates'
        ' are blind to the very memory they control.',
        'Peepholes let each gate look at the cell state directly, one weight per unit: the '
        'forget and input gates at $c_{t-1}$, the output gate at the new $c_t$. That helps '
        'with timing and counting, where the decision depends on how much has accumulated.',
        'The price, backwards, is that the cell state now forks into the gates too, so its '
        'gradient collects those extra branches on top of the additive path.',
    ),
    cites=("gers2000peephole", "hochreiter1997", "greff2017"),
)

CIFG_LSTM = Entry(
    Cell(name="cifg_lstm", inputs=(("x", "D"),), state=_LSTM_STATE, output="h",
         stages=(_gate("f"), _gate("g"), _gate("o"),
                 _act(_SIG, "f", "a_f"),
                 elementwise(_ONE_MINUS, "i", "f", note="input gate, coupled to the forget gate"),
                 _act(_TANH, "g", "a_g"), _act(_SIG, "o", "a_o"), *_CELL_UPDATE,
                 elementwise(_MUL, "h", "o", "k", note="new hidden state and output"))),
    description="LSTM with coupled input and forget gates: i = 1 - f (Greff et al.)",
    notes=("There is no input-gate affine stage (no $W_i$, $U_i$, $b_i$): the input gate is "
           "$i_t = 1 - f_t$.",
           "So $f_t$ becomes a fork with two branches, into $m_t = f_t \\odot c_{t-1}$ and into "
           "$i_t = 1 - f_t$, and "
           "the gradient of the forget gate's pre-activation collects both; $h_{t-1}$ and $x_t$ feed "
           "three gates instead of four."),
    intuition=(
        'Coupling the gates, $i_t = 1 - f_t$, says: write new content exactly where old '
        'content is forgotten. The state becomes a running blend of old and new, and one gate'
        ' (with its weights) is saved.',
        "Greff et al. found this variant about as good as the full LSTM on their tasks; backwards, the forget gate's pre-activation collects the gradient of both roles.",
    ),
    cites=("greff2017", "hochreiter1997"),
)

# The GRU's own letters: its parts of the new state are not the LSTM's m_t and n_t (its
# document compares the two cells); the candidate is h^cand (Cho et al.'s h-tilde), while
# its parameters keep PyTorch's letter n (W_n, U_n, b_n, b_hn).
_GRU_OUTPUT = (
    elementwise(_ONE_MINUS, "v", "z", note="share of the candidate"),
    elementwise(_MUL, "h_new", "v", "h_cand", note="candidate part of the new state"),
    elementwise(_MUL, "h_kept", "z", "h_prev", note="kept part of the old state"),
    elementwise(_ADD, "h", "h_new", "h_kept", note="new hidden state and output"),
)

GRU = Entry(
    Cell(name="gru", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
         stages=(_gate("z"), _gate("r"), _act(_SIG, "z", "a_z"), _act(_SIG, "r", "a_r"),
                 elementwise(_MUL, "s", "r", "h_prev", note="reset previous state"),
                 _gate("n", reads="s"), _act(_TANH, "h_cand", "a_n"), *_GRU_OUTPUT)),
    description="GRU as originally published, reset gate applied before the recurrent product (Cho et al.)",
    notes=("There is no cell state: $h$ is the only state, so the only carried gradient is the "
           "one of $h$.",
           "$h_{t-1}$ is a fork with four branches: the two gates, the reset product "
           "$s_t = r_t \\odot h_{t-1}$ and the kept part $h^{\\mathrm{kept}}_t = z_t \\odot h_{t-1}$; "
           "the update gate $z_t$ also forks (into $v_t = 1 - z_t$ and $h^{\\mathrm{kept}}_t$).",
           "Its letters are its own: the candidate $h^{\\mathrm{cand}}_t$ (Cho et al.'s "
           "$\\tilde{h}_t$; its parameters $W_n$, $U_n$, $b_n$ keep PyTorch's letter $n$) plays "
           "the role of the LSTM's candidate $g_t$, and "
           "the two parts of the new state, $h^{\\mathrm{new}}_t$ and $h^{\\mathrm{kept}}_t$, "
           "those of its $n_t$ and $m_t$."),
    intuition=(
        'The GRU keeps one state $h_t$ and no separate cell. Its update gate $z_t$ '
        'interpolates: $h_t = (1 - z_t) \\odot h^{\\mathrm{cand}}_t + z_t \\odot h_{t-1}$, per unit a convex mix'
        ' of the candidate and the old state, so $z_t$ near 1 copies the state forward '
        'untouched.',
        'The reset gate $r_t$ decides how much of the old state the candidate may look at: '
        'with $r_t$ near 0 the candidate is computed as if from a fresh start.',
        "Backwards, the kept part $z_t \\odot h_{t-1}$ is the GRU's additive path: the gradient of $h_{t-1}$ gets a term scaled by $z_t$ alone, with no weight matrix.",
    ),
    cites=("cho2014",),
)

GRU_RESET_AFTER = Entry(
    Cell(name="gru_reset_after", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
         stages=(_gate("z"), _gate("r"),
                 affine("a_nx", ("x",), ("W_n",), "b_n", "H", note="input part of the candidate"),
                 affine("a_nh", ("h_prev",), ("U_n",), "b_hn", "H",
                        note="recurrent part of the candidate"),
                 _act(_SIG, "z", "a_z"), _act(_SIG, "r", "a_r"),
                 elementwise(_MUL, "a_nr", "r", "a_nh", note="reset recurrent part"),
                 elementwise(_ADD, "a_n", "a_nx", "a_nr", note="pre-activation of the candidate state"),
                 _act(_TANH, "h_cand", "a_n"), *_GRU_OUTPUT)),
    description="GRU as PyTorch and cuDNN compute it: reset gate applied after the recurrent product",
    notes=("The reset gate multiplies $U_n h_{t-1} + b_{hn}$ after the product, so the recurrent "
           "bias $b_{hn}$ is scaled by $r_t$ and is not interchangeable with $b_n$: its gradient "
           "sums $r_t \\odot \\delta a^{\\mathrm{nr}}_t$, while $b_n$ gets the unscaled gradient of the "
           "candidate's pre-activation.",
           "$h_{t-1}$ feeds three affine stages and the kept part $h^{\\mathrm{kept}}_t = z_t \\odot h_{t-1}$."),
    torch=_torch_layout("GRU", "rzn", ("b_r", "b_z", "b_hn")),
    compare="gru",   # the difference worth teaching is the one from the GRU as published
    intuition=(
        'The same interpolation as the GRU: the update gate $z_t$ mixes the candidate and the'
        ' old state per unit, and $z_t \\odot h_{t-1}$ is the additive path backwards.',
        'Only the reset gate acts later: it scales the recurrent part $U_n h_{t-1} + b_{hn}$ '
        'after the product, so all three recurrent products can be computed in one matrix '
        'product per step, which is why cuDNN and PyTorch compute the GRU this way.',
    ),
    cites=("cho2014",),
)

RNN = Entry(
    Cell(name="rnn", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
         stages=(affine("a", ("x", "h_prev"), ("W", "U"), "b", "H", note="pre-activation"),
                 elementwise(_TANH, "h", "a", note="new hidden state and output"))),
    description="plain (Elman) tanh RNN",
    notes=("One affine stage and one tanh: the only path back in time goes through $U^\\top$ "
           "and the tanh derivative at every step, with no additive path like the LSTM's cell "
           "state.",),
    torch=_torch_layout("RNN", ("",), ("b",), options="nonlinearity='tanh'"),
    intuition=(
        'The plain recurrent network feeds its state back through one affine map and a tanh: '
        '$h_t$ is the whole memory, rewritten from scratch at every step.',
        'Backwards, every step multiplies the gradient by $U^\\top$ and by the tanh '
        'derivative, at most one: over many steps the product shrinks (or, with large '
        'weights, grows) geometrically. This is the problem the gated cells were designed to '
        'solve, and the reference curve of the gradient-flow plots.',
    ),
    cites=("elman1990", "rumelhart1986"),
)

LSTMP = Entry(
    Cell(name="lstmp", inputs=(("x", "D"),), state=(("h", "P"), ("c", "H")), output="h",
         stages=(_gate("f"), _gate("i"), _gate("g"), _gate("o"),
                 _act(_SIG, "f", "a_f"), _act(_SIG, "i", "a_i"), _act(_TANH, "g", "a_g"),
                 _act(_SIG, "o", "a_o"), *_CELL_UPDATE,
                 elementwise(_MUL, "h_full", "o", "k", note="unprojected output"),
                 affine("h", ("h_full",), ("W_hr",), None, "P",
                        note="projected hidden state and output"))),
    description="LSTM with a projection: h = W_hr (o * tanh c), h of size P, c of size H (Sak et al.)",
    size_args=(("D", "input_size"), ("H", "hidden_size"), ("P", "proj_size")),
    notes=("The hidden state is a linear projection of $o_t \\odot \\tanh(c_t)$: one more "
           "affine stage, without bias, whose weight gradient is an outer product like any other.",
           "The recurrent weights $U_*$ are $H \\times P$, so the carried gradient of $h$ has $P$ "
           "entries while the cell's has $H$."),
    torch=_torch_layout("LSTM", "ifgo", ("b_i", "b_f", "b_g", "b_o"),
                        extra=(("weight_hr_l0", ("W_hr",)),), options="proj_size=P"),
    intuition=(
        'A large LSTM spends most of its parameters on the recurrent weights, $4H \\times H$. '
        'Projecting the output down to $P < H$ units before feeding it back makes them $4H '
        '\\times P$, while the cell state keeps all $H$ units of memory.',
        'The cell state and its additive path are untouched; only what the gates see of the '
        'past, and what the next layer sees, is compressed.',
    ),
    cites=("sak2014", "hochreiter1997"),
)

INDRNN = Entry(
    Cell(name="indrnn", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
         stages=(affine("a", ("x",), ("W",), "b", "H", note="input part of the pre-activation"),
                 elementwise(_MUL, "q", "u", "h_prev", note="independent recurrence, one weight per unit"),
                 elementwise(_ADD, "z", "a", "q", note="pre-activation"),
                 elementwise(Kind.RELU, "h", "z", note="new hidden state and output")),
         vector_params=(("u", "H"),)),
    description="independently recurrent network: h = relu(W x + u * h_prev + b), u one weight per unit (Li et al.)",
    compare="rnn",
    notes=("The recurrent weight is a vector $u$, not a matrix: each unit reads only its own "
           "previous value, $q_t = u \\odot h_{t-1}$, so no $U^\\top$ product appears backwards "
           "and $h_{t-1}$ receives its gradient through $u$ alone.",
           "The activation is the rectifier, whose derivative is obtained from "
           "$\\operatorname{relu}(z) = (z + |z|)/2$: it is $(1 + \\operatorname{sign} z)/2$, "
           "one where the unit is active and zero where it is not."),
    intuition=(
        'In the IndRNN every unit is its own small recurrent network: $h_t = \\operatorname{relu}'
        '(W x_t + u \\odot h_{t-1} + b)$, with one recurrent weight per unit. Units interact only '
        'through the input weights of the next layer, so each one can be read on its own.',
        'Backwards, the gradient reaching $h_{t-k}$ from $h_t$ of a unit is $u^k$ times the '
        'rectifier derivatives along the way, each 0 or 1: as long as the unit stays active, the '
        'product is $u^k$ exactly, and choosing $|u|$ near 1 keeps a memory over thousands of '
        'steps without the squashing of a tanh; a unit that switches off cuts its own gradient.',
        'Li et al. bound each $|u|$ to keep that product from exploding, and stack layers to '
        'mix units; this document derives one layer.',
    ),
    cites=("li2018indrnn",),
)

_SLSTM_ROLE = {"z": "cell input", "i": "input gate (its logarithm)", "f": "forget gate",
               "o": "output gate"}


def _slstm_gate(name):
    return affine(f"a_{name}", ("x", "h_prev"), (f"W_{name}", f"U_{name}"), f"b_{name}", "H",
                  note=f"pre-activation of the {_SLSTM_ROLE[name]}")


SLSTM = Entry(
    Cell(name="slstm", inputs=(("x", "D"),),
         state=(("h", "H"), ("c", "H"), ("n", "H"), ("m", "H")), output="h",
         stages=(*(_slstm_gate(g) for g in "zifo"),
                 elementwise(_TANH, "z", "a_z", note="cell input"),
                 elementwise(_SIG, "o", "a_o", note="output gate"),
                 elementwise(Kind.LOGSIGMOID, "l", "a_f", note="logarithm of the forget gate"),
                 elementwise(_ADD, "e", "l", "m_prev", note="log forget gate plus the old stabiliser"),
                 elementwise(Kind.MAX, "m", "e", "a_i", note="new stabiliser"),
                 elementwise(Kind.SUB, "p", "a_i", "m", note="stabilised log input gate"),
                 elementwise(Kind.EXP, "i", "p", note="stabilised input gate"),
                 elementwise(Kind.SUB, "q", "e", "m", note="stabilised log forget gate"),
                 elementwise(Kind.EXP, "f", "q", note="stabilised forget gate"),
                 elementwise(_MUL, "u", "f", "c_prev", note="part of the old cell that is kept"),
                 elementwise(_MUL, "w", "i", "z", note="new content written to the cell"),
                 elementwise(_ADD, "c", "u", "w", note="new cell state"),
                 elementwise(_MUL, "v", "f", "n_prev", note="part of the old normaliser that is kept"),
                 elementwise(_ADD, "n", "v", "i", note="new normaliser state"),
                 elementwise(Kind.DIV, "r", "c", "n", note="normalised cell state"),
                 elementwise(_MUL, "h", "o", "r", note="new hidden state and output")),
         positive=("n",)),
    description="sLSTM of xLSTM, one head: exponential input gate, normaliser n and stabiliser m "
                "(Beck et al.)",
    notes=("The input gate is exponential, $\\exp(a^i_t)$, and the forget gate is used through its "
           "logarithm $l_t = \\log\\sigma(a^f_t)$; both are rescaled by $\\exp(-m_t)$, where the "
           "stabiliser $m_t = \\max(l_t + m_{t-1}, a^i_t)$ is a third state next to $c$ and the "
           "normaliser $n$.",
           "The output is the cell state divided by the normaliser, "
           "$h_t = o_t \\odot c_t \\oslash n_t$, so $c_t$ and $n_t$ both fork into that quotient "
           "and into the next step; the maximum's derivative is the unit step "
           "$\\theta(x - y)$ in its first argument (one half at a tie)."),
    intuition=(
        'A sigmoid input gate can only write a bounded amount; the exponential gate '
        '$\\exp(a^i_t)$ of the sLSTM can write with a weight far above one, so a new, more '
        'important input can outvote what the cell holds rather than being mixed in at a fixed '
        'rate: Beck et al. describe this as revising a storage decision.',
        'Unbounded gates need a yardstick: the normaliser $n_t$ sums the same gates that write '
        'the cell, so from a zero initial state $c_t \\oslash n_t$ is a weighted average of the '
        'written inputs $z$, between $-1$ and $1$ whatever the scale of the gates, and $h_t$ is '
        'that average passed through the output gate.',
        'The exponentials themselves would overflow, so the stabiliser $m_t$, a running maximum '
        'of the log gates, is subtracted in the exponent of both gates. It scales $c_t$ and '
        '$n_t$ by the same factor $\\exp(-m_t)$, which cancels in the quotient: the section on '
        'the stabiliser below proves that it contributes nothing to the gradient of any loss of '
        'the outputs.',
    ),
    cites=("beck2024xlstm", "hochreiter1997", "nxai2024xlstm"),
    stabiliser="m",
)


def _stacked_norm(tag, reads, weight, gates):
    """Bias-free products `z<tag>_<g> = <weight>_<g> <reads>` of the gates, layer-normalised as
    one stacked vector with gain gamma_<tag> and shift beta_<tag> (blocks in gate order)."""
    products = tuple(affine(f"z{tag}_{g}", (reads,), (f"{weight}_{g}",), None, "H",
                            note=f"{reads} term of the {_ROLE[g]}") for g in gates)
    norm = layer_norm(tag, [p.name for p in products], [f"y{tag}_{g}" for g in gates],
                      [f"gamma_{tag}_{g}" for g in gates], [f"beta_{tag}_{g}" for g in gates],
                      note=f"the stacked {reads} terms")
    return products, norm


def _norm_params(tags, gates):
    """The layer norms' gains and shifts, each packed into one public vector over the gates."""
    packed = tuple((f"{kind}_{tag}", tuple(f"{kind}_{tag}_{g}" for g in gates))
                   for tag in tags for kind in ("gamma", "beta"))
    return tuple((b, "H") for _, blocks in packed for b in blocks), packed


_LN_GATES = ("f", "i", "g", "o")
_LNX, _NORM_X = _stacked_norm("x", "x", "W", _LN_GATES)
_LNH, _NORM_H = _stacked_norm("h", "h_prev", "U", _LN_GATES)
_LN_VECTORS, _LN_PACKED = _norm_params(("x", "h"), _LN_GATES)

LAYERNORM_LSTM = Entry(
    Cell(name="layernorm_lstm", inputs=(("x", "D"),), state=_LSTM_STATE, output="h",
         stages=(*_LNX, *_LNH, *_NORM_X, *_NORM_H,
                 *(s for g in _LN_GATES for s in (
                     elementwise(_ADD, f"s_{g}", f"yx_{g}", f"yh_{g}",
                                 note=f"normalised terms of the {_ROLE[g]}"),
                     elementwise(_ADD, f"a_{g}", f"s_{g}", f"b_{g}",
                                 note=f"pre-activation of the {_ROLE[g]}"))),
                 _act(_SIG, "f", "a_f"), _act(_SIG, "i", "a_i"), _act(_TANH, "g", "a_g"),
                 _act(_SIG, "o", "a_o"), *_CELL_UPDATE[:3],
                 *layer_norm("c", ("c",), ("y_c",), ("gamma_c",), ("beta_c",),
                             note="the cell state"),
                 elementwise(_TANH, "k", "y_c", note="squashed cell state, normalised first"),
                 elementwise(_MUL, "h", "o", "k", note="new hidden state and output")),
         vector_params=(*((f"b_{g}", "H") for g in _LN_GATES), *_LN_VECTORS,
                        ("gamma_c", "H"), ("beta_c", "H")),
         packed=_LN_PACKED),
    description="layer-normalised LSTM: the stacked gate terms and the cell state normalised (Ba, Kiros & Hinton)",
    notes=("The input terms $W x_t$ and the recurrent terms $U h_{t-1}$ of the four gates are "
           "each normalised as one stacked vector of $4H$ entries: their mean and variance are "
           "sums over all four gates, so the gradient of one gate's term reaches every other gate's.",
           "The cell state is normalised before the tanh, but $c_t$ itself, not its normalised "
           "value, is carried to the next step: the additive path is kept."),
    intuition=(
        'Layer normalisation rescales a vector of pre-activations to mean zero and variance '
        'one, over its own entries and for each example separately, and then applies a '
        'learned gain $\\gamma$ and shift $\\beta$ per entry.',
        'For the gates this means that the size of $W x_t$ and of $U h_{t-1}$ no longer '
        'decides how saturated the sigmoids are: whatever the scale of the input or of the '
        'state, the gates start from standardised pre-activations and the gains choose how '
        'sharp each one is. That is what keeps the gates away from the flat ends of the '
        'sigmoid and makes training less sensitive to the weights\' scale.',
        'Normalising the cell state before the tanh does the same for the output: $h_t$ '
        'sees a standardised $c_t$, while $c_t$ itself still flows on unchanged.',
        'Backwards, the normalisation is no longer elementwise: the mean and the variance '
        'read every entry, so each entry of the gradient of $W x_t$ receives a share of the '
        'gradient of all $4H$ normalised entries, through the two means.',
    ),
    cites=("ba2016", "hochreiter1997", "gers2000forget"),
)

_GRU_GATES = ("r", "z", "n")   # PyTorch's order of the stacked gates
_GX, _GNORM_X = _stacked_norm("x", "x", "W", _GRU_GATES)
_GH, _GNORM_H = _stacked_norm("h", "h_prev", "U", _GRU_GATES)
_GRU_VECTORS, _GRU_PACKED = _norm_params(("x", "h"), _GRU_GATES)

LAYERNORM_GRU = Entry(
    Cell(name="layernorm_gru", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
         stages=(*_GX, *_GH, *_GNORM_X, *_GNORM_H,
                 *(s for g in ("r", "z") for s in (
                     elementwise(_ADD, f"s_{g}", f"yx_{g}", f"yh_{g}",
                                 note=f"normalised terms of the {_ROLE[g]}"),
                     elementwise(_ADD, f"a_{g}", f"s_{g}", f"b_{g}",
                                 note=f"pre-activation of the {_ROLE[g]}"),
                     _act(_SIG, g, f"a_{g}"))),
                 elementwise(_ADD, "a_nh", "yh_n", "b_hn", note="recurrent part of the candidate"),
                 elementwise(_MUL, "a_nr", "r", "a_nh", note="reset recurrent part"),
                 elementwise(_ADD, "a_nx", "yx_n", "b_n", note="input part of the candidate"),
                 elementwise(_ADD, "a_n", "a_nx", "a_nr", note="pre-activation of the candidate state"),
                 _act(_TANH, "h_cand", "a_n"), *_GRU_OUTPUT),
         vector_params=(("b_r", "H"), ("b_z", "H"), ("b_n", "H"), ("b_hn", "H"), *_GRU_VECTORS),
         packed=_GRU_PACKED),
    description="layer-normalised GRU as PyTorch computes it: the stacked input and recurrent terms normalised",
    notes=("The GRU of PyTorch (reset gate applied after the recurrent product, biases $b_n$ and "
           "$b_{hn}$ apart) with the input terms $W x_t$ and the recurrent terms $U h_{t-1}$ of its "
           "three gates each normalised as one stacked vector of $3H$ entries, gates in PyTorch's "
           "order $r, z, n$, before the biases are added.",
           "The equations: $[\\alpha^{r}_t; \\alpha^{z}_t; \\alpha^{n}_t] = \\mathrm{LN}(W x_t; \\gamma_x, \\beta_x)$, "
           "$[\\eta^{r}_t; \\eta^{z}_t; \\eta^{n}_t] = \\mathrm{LN}(U h_{t-1}; \\gamma_h, \\beta_h)$, "
           "$r_t = \\sigma(\\alpha^{r}_t + \\eta^{r}_t + b_r)$, $z_t = \\sigma(\\alpha^{z}_t + \\eta^{z}_t + b_z)$, "
           "$h^{\\mathrm{cand}}_t = \\tanh(\\alpha^{n}_t + b_n + r_t \\odot (\\eta^{n}_t + b_{hn}))$, "
           "$h_t = (1 - z_t) \\odot h^{\\mathrm{cand}}_t + z_t \\odot h_{t-1}$: the GRU of Cho et al.\\ in PyTorch's "
           "formulation, with layer normalisation placed as Ba et al.\\ place it in the LSTM."),
    compare="gru_reset_after",
    intuition=(
        'The GRU mixes a candidate with the old state through its update gate and lets its '
        'reset gate decide how much of the old state the candidate sees. Normalising the '
        'stacked input terms and the stacked recurrent terms puts all three gates on a '
        'standard scale whatever the size of $x_t$ and $h_{t-1}$, with learned gains and '
        'shifts per entry.',
        'The state itself is not normalised: $h_t$ stays the convex mix of candidate and old '
        'state, and its additive path $z_t \\odot h_{t-1}$ is kept.',
        'Backwards, the two means of each normalisation read all $3H$ entries, so the '
        'gradient of one gate\'s term reaches the terms of the other two.',
    ),
    cites=("ba2016", "cho2014"),
)

_FF_SIZES = (("D", "input_size"), ("H", "hidden_size"), ("K", "output_size"))
_HIDDEN = (affine("a1", ("x",), ("W1",), "b1", "H", note="hidden pre-activation"),
           elementwise(_SIG, "h", "a1", note="hidden layer"),
           affine("a2", ("h",), ("W2",), "b2", "K", note="output pre-activation"))

MLP = Entry(
    Cell(name="mlp", inputs=(("x", "D"),), state=(), output="y",
         stages=(*_HIDDEN, elementwise(_SIG, "y", "a2", note="output")), loss=Loss.SQUARED_ERROR),
    description="feed-forward network, one sigmoid hidden layer, sigmoid outputs, squared error",
    size_args=_FF_SIZES,
    notes=("No time and no state: nothing is carried, and the parameter gradients are sums over "
           "the batch only.",),
    intuition=(
        'A feed-forward network with one hidden layer: each hidden unit computes a feature of'
        ' the input, a weighted sum squashed by a sigmoid, and each output unit weighs the '
        'features.',
        "Backpropagation is the chain rule run from the error back to every weight: the output error is passed through the output layer's weights to the hidden units, each of which receives the sum over the outputs it feeds.",
    ),
    cites=("rumelhart1986", "mazur2015"),
)

MLP_SOFTMAX = Entry(
    Cell(name="mlp_softmax", inputs=(("x", "D"),), state=(), output="y",
         stages=(*_HIDDEN, elementwise(Kind.SOFTMAX, "y", "a2", note="class probabilities")),
         loss=Loss.CROSS_ENTROPY),
    description="feed-forward network, one sigmoid hidden layer, softmax outputs, cross-entropy",
    size_args=_FF_SIZES,
    notes=("The softmax is not elementwise: every output depends on every logit, so its "
           "Jacobian is a full matrix, $\\mathrm{diag}(y) - y y^\\top$, and the backward step "
           "contracts it.",),
    intuition=(
        'The same network as a classifier: the softmax turns the output scores into '
        'probabilities that sum to one, and the cross-entropy loss is the negative '
        'log-probability of the true class.',
        'Their composition has the simplest gradient there is: the logits receive the '
        'predicted probabilities minus the one-hot target.',
    ),
    cites=("rumelhart1986",),
)

CELLS = {entry.name: entry for entry in (LSTM, PEEPHOLE_LSTM, CIFG_LSTM, GRU, GRU_RESET_AFTER,
                                         RNN, LSTMP, INDRNN, SLSTM, MLP, MLP_SOFTMAX,
                                         LAYERNORM_LSTM, LAYERNORM_GRU)}


def get_entry(name: str) -> Entry:
    """The built-in entry called `name`, or a DeriveError listing the known ones."""
    try:
        return CELLS[name]
    except KeyError:
        raise DeriveError(f"unknown cell {name!r}; known cells: {', '.join(sorted(CELLS))}") from None


def get_cell(name: str) -> Cell:
    """The mathematics of the built-in cell called `name` (what `derive` takes)."""
    return get_entry(name).cell
