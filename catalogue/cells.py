"""The built-in cells: each an `Entry`, a cell's ordered stages (data, not code) with its words.

Recurrent cells name their weights W_* (input), U_* (recurrent) and b_* (bias), the
gates f, i, g, o (LSTM) or z, r (GRU, whose candidate state is h_cand).  No stage name
means two things across the built-in cells (a test checks): the GRU's parts of the new
state are h_new and h_kept, not the LSTM's m and n.  The words in `notes` go into the cell's
document, to say how it differs from the cell it is compared with (`compare`: the LSTM
unless it names another; the LSTM's own notes map its letters to the literature's); they
cite equations by value ([[B:h_prev]], see `codegen.latex_compare`), never by typed label.  `CELLS` maps each name to
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
        'The cell state $c_t$ is, in Olah\'s picture, a conveyor belt through time: each step only scales it '
        'elementwise and adds to it, so what was written many steps ago can still be read.',
        'Three sigmoid gates, each a number between 0 and 1 per unit, decide what happens to '
        'it: the forget gate $f_t$ how much of the old state to keep, the input gate $i_t$ '
        'how much of the candidate $g_t$ (a tanh proposal in $(-1, 1)$) to write, and the '
        'output gate $o_t$ how much of the squashed state to show as $h_t$.',
        'Backwards, the additive update $c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$ is what '
        'matters: along it the gradient reaching $c_{t-1}$ from $c_t$ is only multiplied by '
        '$f_t$, with no weight matrix and no squashing derivative. Over $\\tau$ steps that path '
        'scales the gradient by a product of $\\tau$ forget gates: it still shrinks, but where the '
        'gates stay close to 1 it shrinks slowly, at a rate the network learns, instead of at '
        'the rate that weights and squashing derivatives impose. [[S:flow]] measures both.',
    ),
    cites=("hochreiter1997", "gers2000forget", "greff2017", "olah2015"),   # Olah: the conveyor belt
    # compared with no cell: its notes are said with the notation, for reading the literature
    notes=(
        "In the literature the letters differ. Greff et al.[[C:greff2017]] write the block input $z_t$ for our "
        "candidate $g_t$, the block output $y_t$ for our $h_t$, $R$ for our recurrent weights $U$ "
        "and a bar for a pre-activation (their $\\bar{z}_t$ is our $a^g_t$); their vanilla LSTM "
        "also has peepholes, which the peephole LSTM's document derives. Olah[[C:olah2015]] draws the same cell "
        "with $\\tilde{C}_t$ for our $g_t$ and $C_t$ for our $c_t$.",
    ),
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
    notes=(
        "Gers and Schmidhuber added peepholes so that the gates can see the cell state they "
        "control: in the LSTM the gates read only $x_t$ and $h_{t-1}$, and $h_{t-1}$ shows "
        "the cell only through the output gate, so when that gate is shut the gates are blind "
        "to the memory. A peephole is one weight per unit, a vector read elementwise: the "
        "forget and input gates add $q^f_t = p_f \\odot c_{t-1}$ and $q^i_t = p_i \\odot "
        "c_{t-1}$ to their pre-activations, and the output gate adds $q^o_t = p_o \\odot c_t$, "
        "a term of the new cell state, because it decides what of that state to show.",
        "For the gradient, the cell state becomes a fork with more branches. The new state "
        "$c_t$ also feeds the output gate, so its gradient [[B:c]] gains a branch through "
        "$p_o$ and the output gate's sigmoid derivative, beside the branch through the tanh "
        "and the one from the next step. The previous state $c_{t-1}$ feeds the forget and "
        "input gates as well as the kept part $m_t$, so the part of its gradient computed at "
        "step $t$ [[B:c_prev]] gains two such branches beside the LSTM's $f_t \\odot \\delta "
        "m_t$. That weight-free term is still there; each new branch passes through a sigmoid "
        "derivative (at most $1/4$) and a peephole weight.",
        "The peepholes are vectors, so their gradients ([[S:params]]) are sums over steps and "
        "examples of elementwise products, where a weight matrix gets outer products.",
    ),
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
    description="LSTM with coupled input and forget gates: the input gate is one minus the forget gate (Greff et al.)",
    notes=(
        "Greff et al.'s variant with coupled input and forget gates (CIFG) drops the input "
        "gate's own weights and computes it from the forget gate, $i_t = 1 - f_t$ [[F:i]]. "
        "Where the LSTM can keep old content and write new content independently, each unit "
        "here writes exactly as much as it forgets, so the cell state is a running blend of "
        "old and new. One of the four affine stages, and with it $W_i$, $U_i$ and $b_i$, is "
        "gone.",
        "Backwards, the forget gate plays two roles and its gradient [[B:f]] is a fork: the "
        "LSTM's branch through the kept part, $\\delta m_t \\odot c_{t-1}$, and a new branch "
        "$-\\delta i_t$ through the complement; the minus sign says that opening the forget "
        "gate closes the input gate. The previous hidden state and the input feed three "
        "pre-activations instead of four, so the gradient of $h_{t-1}$ [[B:h_prev]] has one "
        "term fewer.",
    ),
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
    notes=(
        "The GRU of Cho et al. keeps the LSTM's central idea, a state updated by gated "
        "interpolation, with fewer parts. It has no separate cell state: $h_t$ is both the "
        "memory and the output, so there is no output gate and no tanh between the memory and "
        "what the next step reads. Its update gate $z_t$ does the work of the LSTM's forget "
        "and input gates together: the old state is kept in the share $z_t$ [[F:h_kept]] and "
        "the candidate written in the share $v_t = 1 - z_t$ [[F:v]], so the two shares add to "
        "one, where the LSTM's $f_t$ and $i_t$ are independent.",
        "The reset gate $r_t$ has no counterpart in the LSTM. It scales the old state before "
        "the candidate reads it, $s_t = r_t \\odot h_{t-1}$ [[F:s]], so that where the gate is "
        "shut the candidate is computed as if from a fresh start.",
        "For the gradient this means one carried gradient, that of $h$, instead of the LSTM's "
        "two, and a fork of four branches at $h_{t-1}$ [[B:h_prev]]: into the two gates, into "
        "the reset product $s_t$ and into the kept part $h^{\\mathrm{kept}}_t = z_t \\odot "
        "h_{t-1}$. The last one, $z_t \\odot \\delta h^{\\mathrm{kept}}_t$ with $\\delta "
        "h^{\\mathrm{kept}}_t = \\delta h_t$, plays the role of the LSTM's $f_t \\odot \\delta "
        "m_t$: it reaches the previous state with no weight matrix and no squashing "
        "derivative. In the LSTM that path runs through the cell state, which the output "
        "reads only through a tanh; in the GRU it runs through the output itself.",
        "The update gate's gradient [[B:z]] has two branches, through $v_t$ and through "
        "$h^{\\mathrm{kept}}_t$; written out they combine to $\\delta h_t \\odot (h_{t-1} - "
        "h^{\\mathrm{cand}}_t)$: raising $z_t$ moves $h_t$ from the candidate toward the old "
        "state, so the loss pushes the gate toward whichever of the two it prefers, and not at "
        "all where they agree.",
        "The letters are chosen so that none means two things in the two documents: the "
        "candidate $h^{\\mathrm{cand}}_t$ (Cho et al.'s $\\tilde{h}_t$; its parameters $W_n$, "
        "$U_n$, $b_n$ keep PyTorch's letter $n$) has the role of the LSTM's $g_t$, and the "
        "two parts of the new state, $h^{\\mathrm{new}}_t$ and $h^{\\mathrm{kept}}_t$, those of "
        "its $n_t$ and $m_t$.",
    ),
    intuition=(
        'The GRU keeps one state $h_t$ and no separate cell. Its update gate $z_t$ '
        'interpolates: $h_t = (1 - z_t) \\odot h^{\\mathrm{cand}}_t + z_t \\odot h_{t-1}$, per unit a convex mix'
        ' of the candidate and the old state, so $z_t$ near 1 copies the state forward '
        'untouched. The candidate $h^{\\mathrm{cand}}_t$ is the new content on offer, a tanh '
        'of the input and of the old state as the reset gate lets it through.',
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
    notes=(
        "This is the GRU as cuDNN and PyTorch compute it. It differs from the GRU as Cho et "
        "al. published it in one place, where the reset gate acts. The published GRU resets "
        "the state before the recurrent product: $r_t \\odot h_{t-1}$ is what $U_n$ "
        "multiplies; here the reset gate scales the product, $a^{\\mathrm{nr}}_t = r_t \\odot "
        "a^{\\mathrm{nh}}_t$ with $a^{\\mathrm{nh}}_t = U_n h_{t-1} + b_{hn}$ [[F:a_nh]]. The "
        "two are different functions of the parameters, not two spellings of one.",
        "The reason is speed: now all three recurrent products $U_z h_{t-1}$, $U_r h_{t-1}$ "
        "and $U_n h_{t-1}$ read the same vector, so they are one matrix product with the "
        "stacked weights, computed before the reset gate is known. In the published GRU, "
        "$U_n$ must wait for $r_t$: a second matrix product per step, in sequence with the "
        "first.",
        "For the gradient, the reset gate now sees the whole recurrent term: its gradient "
        "[[B:r]] is the candidate's pre-activation gradient times $a^{\\mathrm{nh}}_t$, where "
        "the published GRU first takes that gradient back through $U_n^{\\top}$ and then "
        "multiplies by $h_{t-1}$. The reset gate's factor moves across $U_n^{\\top}$ in the "
        "branch of $h_{t-1}$ [[B:h_prev]] and in the gradient of $U_n$ in the same way, as "
        "the equations below show. The second bias $b_{hn}$ sits inside the reset: it is "
        "scaled by $r_t$ and so is not interchangeable with $b_n$, and its gradient is the "
        "reset-scaled one.",
    ),
    torch=_torch_layout("GRU", "rzn", ("b_r", "b_z", "b_hn")),
    compare="gru",   # the difference worth teaching is the one from the GRU as published
    intuition=(
        'The same interpolation as the GRU: the update gate $z_t$ mixes the candidate and the'
        ' old state per unit, and $z_t \\odot h_{t-1}$ is the additive path backwards.',
        'Only the reset gate acts at another place: it scales the recurrent part $U_n h_{t-1} + '
        'b_{hn}$ after the product, where the published GRU scales the old state before it. '
        '[[S:differences]] says why the fast libraries do so and what it changes in the gradient.',
    ),
    cites=("cho2014",),
)

RNN = Entry(
    Cell(name="rnn", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
         stages=(affine("a", ("x", "h_prev"), ("W", "U"), "b", "H", note="pre-activation"),
                 elementwise(_TANH, "h", "a", note="new hidden state and output"))),
    description="plain (Elman) tanh RNN",
    notes=(
        "The plain RNN is where the LSTM started: one affine stage and a tanh, the state "
        "$h_t$ rewritten from scratch at every step. It has no gates and no cell state, so it "
        "has no additive path: the only way back from $h_t$ to $h_{t-1}$ [[B:h_prev]] passes "
        "through the tanh derivative and $U^{\\top}$ at every step. That is the path whose "
        "repeated product vanishes or explodes over many steps, and the one the LSTM's cell "
        "state bypasses: its $c_{t-1}$ receives $f_t \\odot \\delta m_t$ from $c_t$, with no "
        "weight matrix.",
    ),
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
    description="LSTM with a projection: the output, of size P, is a learned linear map of the gated squashed "
                "cell state, of size H, and is what the next step reads (Sak et al.)",
    size_args=(("D", "input_size"), ("H", "hidden_size"), ("P", "proj_size")),
    notes=(
        "Sak et al.'s projection LSTM multiplies the LSTM's output $o_t \\odot k_t$, here "
        "called $h^{\\mathrm{full}}_t$, by a projection $W_{hr}$ of $P \\times H$ entries and "
        "no bias [[F:h]]: the projected $h_t$, of $P < H$ units, is both the output and the "
        "state fed back. The recurrent weights $U_*$ read it, so they are $H \\times P$ "
        "instead of $H \\times H$, which is where the parameters are saved; the cell state "
        "keeps all $H$ units.",
        "For the gradient, the output gate and the squashed cell state no longer receive "
        "$\\delta h_t$ itself but its projection back, $\\delta h^{\\mathrm{full}}_t = "
        "W_{hr}^{\\top} \\delta h_t$ [[B:h_full]]: the affine pattern takes the gradient from "
        "$P$ entries back to $H$. The two carried gradients have different sizes, $P$ entries "
        "for $h$ and $H$ for $c$, and $W_{hr}$ gets an outer-product gradient like any other "
        "weight.",
    ),
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
    description="independently recurrent network: each ReLU unit reads its own previous value only, through "
                "one recurrent weight per unit (Li et al.)",
    compare="rnn",
    notes=(
        "Li et al.'s IndRNN changes the plain RNN in two places. The recurrent weight is a "
        "vector $u$, one weight per unit, so each unit reads only its own previous value, "
        "$q_t = u \\odot h_{t-1}$ [[F:q]], instead of a matrix that mixes all of them; and the "
        "activation is the rectifier instead of the tanh.",
        "Backwards, the step from $h_t$ to $h_{t-1}$ [[B:h_prev]] is therefore elementwise: "
        "no $U^{\\top}$ product, only $u$ times the rectifier's derivative $(1 + "
        "\\operatorname{sign} z_t)/2$, which is one where the unit is active and zero where it "
        "is not. Over $\\tau$ steps along which a unit stays active, its gradient is multiplied "
        "by $u^{\\tau}$ exactly, so whether it vanishes or explodes is set by one number per unit, "
        "which Li et al. keep in a range.",
    ),
    intuition=(
        'In the IndRNN every unit is its own small recurrent network: $h_t = \\operatorname{relu}'
        '(W x_t + u \\odot h_{t-1} + b)$, with one recurrent weight per unit. Units interact only '
        'through the input weights of the next layer, so each one can be read on its own.',
        'Backwards, the gradient reaching $h_{t-\\tau}$ from $h_t$ of a unit is $u^{\\tau}$ times the '
        'rectifier derivatives along the way, each 0 or 1: as long as the unit stays active, the '
        'product is $u^{\\tau}$ exactly, and choosing $|u|$ near 1 keeps a memory over thousands of '
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
    notes=(
        "Beck et al.'s sLSTM keeps the LSTM's additive cell update, $c_t = f_t \\odot c_{t-1} "
        "+ i_t \\odot z_t$ [[F:c]], with the cell input $z_t$ in the place of the LSTM's "
        "candidate $g_t$, and changes the gates. The input gate is exponential and can write "
        "with a weight far above one; the forget gate is the LSTM's sigmoid, used through its "
        "logarithm $l_t$. To keep the exponentials in range both are rescaled by "
        "$\\exp(-m_t)$, where the stabiliser $m_t$ [[F:m]] is a running maximum of the log "
        "gates and a third state. A fourth state, the normaliser $n_t$ [[F:n]], sums the same "
        "gates, and the output reads the cell state divided by it, $r_t = c_t \\oslash n_t$, "
        "where the LSTM takes a tanh.",
        "For the gradient, four states carry gradients back instead of two. The cell state "
        "and the normaliser each fork into the quotient $r_t$ and into the next step, and "
        "both gates feed the cell and the normaliser, so the gradients of $f_t$ and $i_t$ "
        "[[B:i]] are forks where the LSTM's have one branch. The maximum's derivative is a "
        "step, $\\theta(x - y)$ in its first argument (one half at a tie); [[S:stabiliser]] "
        "proves that the stabiliser nonetheless contributes nothing to the gradient of a loss "
        "of the outputs.",
    ),
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
    notes=(
        "Ba, Kiros and Hinton's layer-normalised LSTM keeps the gates, the cell update and "
        "the output of the LSTM and inserts layer normalisations in two places. The input "
        "terms $W x_t$ of the four gates are normalised as one stacked vector of $4H$ "
        "entries, and so are the recurrent terms $U h_{t-1}$, each with its own gains and "
        "shifts, before the bias is added; and the cell state is normalised before its tanh "
        "[[F:k]], while $c_t$ itself is carried to the next step unchanged, so the additive "
        "path is kept.",
        "Backwards, a normalisation is not elementwise: its mean and variance read all of its "
        "entries ([[S:layernorm]]), so the gradient of one gate's input term reaches the "
        "input terms of all four gates through the two means, and the tanh branch of the cell "
        "state's gradient [[B:c]] gains the same two mean terms. The weights' gradients are "
        "outer products of the gradients of the products $W x_t$ and $U h_{t-1}$ taken before "
        "the normalisation; the gains and shifts are vectors, with elementwise gradients.",
    ),
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
    notes=(
        "This is the GRU with the reset gate applied after the recurrent product, as PyTorch "
        "computes it (biases $b_n$ and $b_{hn}$ apart), with layer normalisation placed as Ba "
        "et al. place it in the LSTM: the input terms $W x_t$ of its three gates are "
        "normalised as one stacked vector of $3H$ entries, gates in PyTorch's order $r, z, "
        "n$, and so are the recurrent terms $U h_{t-1}$, before the biases are added. The "
        "state is not normalised: $h_t$ remains the convex mix of candidate and old state, "
        "and its additive path $z_t \\odot h_{t-1}$ is kept.",
        "Backwards, each normalisation's mean and variance read all $3H$ entries "
        "([[S:layernorm]]), so the gradient of one gate's term reaches the terms of the other "
        "two. From the normalised terms on, every backward step is the same as without the "
        "normalisation.",
    ),
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
    notes=(),
    intuition=(
        'A feed-forward network with one hidden layer: each hidden unit computes a feature of'
        ' the input, a weighted sum squashed by a sigmoid, and each output unit weighs the '
        'features.',
        "Backpropagation is the chain rule run from the error back to every weight: the output error is passed through the output layer's weights to the hidden units, each of which receives the sum over the outputs it feeds.",
    ),
    cites=("rumelhart1986", "mazur2015"),
    compare=None,   # the first network: the others are compared with it, or with the LSTM
)

MLP_SOFTMAX = Entry(
    Cell(name="mlp_softmax", inputs=(("x", "D"),), state=(), output="y",
         stages=(*_HIDDEN, elementwise(Kind.SOFTMAX, "y", "a2", note="class probabilities")),
         loss=Loss.CROSS_ENTROPY),
    description="feed-forward network, one sigmoid hidden layer, softmax outputs, cross-entropy",
    size_args=_FF_SIZES,
    notes=(
        "The same network as a classifier: only the output layer and the loss change. The "
        "sigmoid outputs, each between 0 and 1 on its own, become a softmax [[F:y]], whose "
        "entries are positive and sum to one, a distribution over the $K$ classes; and the "
        "squared error becomes the cross-entropy, the negative log-probability of the true "
        "class.",
        "Backwards, the softmax is the first stage that is not elementwise: every output "
        "depends on every logit, so the gradient of the logits [[B:a2]] contracts a full "
        "Jacobian with $\\delta y$ instead of multiplying $\\delta y$ by the sigmoid's "
        "derivative entry by entry ([[S:softmax]]). Composed with the cross-entropy, that "
        "contraction collapses to the predicted distribution minus the one-hot target "
        "([[S:loss]]).",
    ),
    intuition=(
        'The same network as a classifier: the softmax turns the output scores into '
        'probabilities that sum to one, and the cross-entropy loss is the negative '
        'log-probability of the true class.',
        'Their composition has the simplest gradient there is: the logits receive the '
        'predicted probabilities minus the one-hot target.',
    ),
    cites=("rumelhart1986",),
    compare="mlp",   # the same network with another output layer and loss
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
