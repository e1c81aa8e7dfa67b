"""The generated framework modules against what a user would otherwise write, ratios in one run.

    python benchmarks/bench_frameworks.py                 # the sizes of bench.py, a few minutes
    python benchmarks/bench_frameworks.py --sizes medium --repeats 5 --compile-sizes ''

Every measurement is forward + backward of L = sum(outputs * G), float32, one thread and
the process's CPU time by default (`--clock wall` for elapsed time); every implementation
is warmed up, then they take turns (`--repeats` rounds) and each keeps its fastest run,
which a busy machine disturbs least.  Per cell (lstm, gru, the
spec cell examples/mgu, indrnn, slstm, layernorm_lstm and layernorm_gru, whose plain
versions use torch's F.layer_norm) and size:
- `ours/plain`: generated/torch/<cell>.py's two Functions against the same cell written
  plainly in PyTorch (a Python loop over steps, autograd): `cached` keeps every value its
  backward reads, `recompute` only the states -- time, and bytes saved for backward.
  Saved bytes are counted the same way on both sides: `saved_tensors_hooks` sees every
  tensor autograd keeps for backward (ours through `ctx.save_for_backward`, which is all our
  Functions keep: nothing is stashed on ctx), each storage once; `made` leaves out the
  storages of the inputs and parameters (which exist anyway), `all` counts them;
- `compiled`: the plain cell under `torch.compile` (compile time reported apart), when it works,
  at --compile-sizes only;
- `ours/nn`: the generated LSTM and GRU (reset after, PyTorch's) against `nn.LSTM`/`nn.GRU`;
- `jax ours/plain`: generated/jax/<cell>.py against `jax.grad` of the plain cell under
  `lax.scan`, both jitted, with XLA's temporary bytes for each when it reports them.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import SIZES  # noqa: E402

CELLS = {"lstm": "generated", "gru": "generated", "mgu": "examples", "indrnn": "generated",
         "slstm": "generated", "layernorm_lstm": "generated", "layernorm_gru": "generated"}
NN = {"lstm": ("lstm", "LSTM"), "gru": ("gru_reset_after", "GRU")}


def load(folder, target, name):
    path = ROOT / folder / target / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{target}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the cells written plainly, for any array library: `fn` holds its elementwise functions -----
def lstm_step(p, x, s, fn):
    h, c = s
    f = fn.sigmoid(x @ p["W_f"].T + h @ p["U_f"].T + p["b_f"])
    i = fn.sigmoid(x @ p["W_i"].T + h @ p["U_i"].T + p["b_i"])
    g = fn.tanh(x @ p["W_g"].T + h @ p["U_g"].T + p["b_g"])
    o = fn.sigmoid(x @ p["W_o"].T + h @ p["U_o"].T + p["b_o"])
    c = f * c + i * g
    return (o * fn.tanh(c), c)


def gru_step(p, x, s, fn):
    (h,) = s
    z = fn.sigmoid(x @ p["W_z"].T + h @ p["U_z"].T + p["b_z"])
    r = fn.sigmoid(x @ p["W_r"].T + h @ p["U_r"].T + p["b_r"])
    n = fn.tanh(x @ p["W_n"].T + (r * h) @ p["U_n"].T + p["b_n"])
    return ((1 - z) * n + z * h,)


def mgu_step(p, x, s, fn):
    (h,) = s
    f = fn.sigmoid(x @ p["W_f"].T + h @ p["U_f"].T + p["b_f"])
    n = fn.tanh(x @ p["W_n"].T + (f * h) @ p["U_n"].T + p["b_n"])
    return ((1 - f) * h + f * n,)


def indrnn_step(p, x, s, fn):
    (h,) = s
    return (fn.relu(x @ p["W"].T + p["u"] * h + p["b"]),)


def slstm_step(p, x, s, fn):
    """Beck et al. (2024), one head: exponential input gate, normaliser n, stabiliser m."""
    h, c, n, m = s
    a = {g: x @ p[f"W_{g}"].T + h @ p[f"U_{g}"].T + p[f"b_{g}"] for g in "zifo"}
    log_f = fn.logsigmoid(a["f"])
    m_new = fn.maximum(log_f + m, a["i"])
    i, f = fn.exp(a["i"] - m_new), fn.exp(log_f + m - m_new)
    c = f * c + i * fn.tanh(a["z"])
    n = f * n + i
    return (fn.sigmoid(a["o"]) * c / n, c, n, m_new)


def layer_norm(v, gain, shift):
    """LN over the last axis: torch's own F.layer_norm for tensors, written out otherwise (JAX)."""
    if torch.is_tensor(v):
        return torch.nn.functional.layer_norm(v, v.shape[-1:], gain, shift, 1e-5)
    mean = v.mean(-1)[..., None]
    var = ((v - mean) ** 2).mean(-1)[..., None]
    return gain * (v - mean) * (var + 1e-5) ** -0.5 + shift


def cat(arrays):
    return torch.cat(arrays) if torch.is_tensor(arrays[0]) else __import__("jax").numpy.concatenate(arrays)


def layernorm_lstm_step(p, x, s, fn):
    h, c = s
    W, U = cat([p[f"W_{g}"] for g in "figo"]), cat([p[f"U_{g}"] for g in "figo"])
    a = (layer_norm(x @ W.T, p["gamma_x"], p["beta_x"]) + layer_norm(h @ U.T, p["gamma_h"], p["beta_h"])
         + cat([p[f"b_{g}"] for g in "figo"]))
    H = h.shape[-1]
    f, i, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
    c = fn.sigmoid(f) * c + fn.sigmoid(i) * fn.tanh(g)
    return (fn.sigmoid(o) * fn.tanh(layer_norm(c, p["gamma_c"], p["beta_c"])), c)


def layernorm_gru_step(p, x, s, fn):
    (h,) = s
    H = h.shape[-1]
    ax = layer_norm(x @ cat([p[f"W_{g}"] for g in "rzn"]).T, p["gamma_x"], p["beta_x"])
    ah = layer_norm(h @ cat([p[f"U_{g}"] for g in "rzn"]).T, p["gamma_h"], p["beta_h"])
    r = fn.sigmoid(ax[:, :H] + ah[:, :H] + p["b_r"])
    z = fn.sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H] + p["b_z"])
    n = fn.tanh(ax[:, 2 * H:] + p["b_n"] + r * (ah[:, 2 * H:] + p["b_hn"]))
    return ((1 - z) * n + z * h,)




def dim(size, sizes):
    """A size symbol's value; "4*H" (a packed gain's rows) is 4 times H."""
    count, _, symbol = size.rpartition("*")
    return int(count or 1) * sizes[symbol]

STEPS = {"lstm": lstm_step, "gru": gru_step, "mgu": mgu_step, "indrnn": indrnn_step,
         "slstm": slstm_step, "layernorm_lstm": layernorm_lstm_step,
         "layernorm_gru": layernorm_gru_step}
TORCH_FN = SimpleNamespace(sigmoid=torch.sigmoid, tanh=torch.tanh, relu=torch.relu, exp=torch.exp,
                           logsigmoid=torch.nn.functional.logsigmoid, maximum=torch.maximum)


def torch_plain(name):
    step = STEPS[name]

    def run(params, xs, state0):
        state, outputs = state0, []
        for x in xs:
            state = step(params, x, state, TORCH_FN)
            outputs.append(state[0])
        return torch.stack(outputs)
    return run


# -- measuring ---------------------------------------------------------------------------------
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def interleaved(runs, repeats):
    """The fastest of `repeats` runs of each, taking turns after two warm-up runs each."""
    for run in runs.values():
        run()
        run()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            start = clock()
            run()
            times[k].append(clock() - start)
    return {k: min(v) for k, v in times.items()}


def saved_bytes(run, given):
    """(made, all): bytes autograd saves for backward during `run()`, each storage once, without
    and with the storages of the tensors in `given` (inputs, parameters)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(backward=False)
    inputs = {t.untyped_storage().data_ptr() for t in given}
    return sum(n for ptr, n in seen.items() if ptr not in inputs), sum(seen.values())


def torch_problem(module, size, seed=0):
    T, B, D, H = size
    g = torch.Generator().manual_seed(seed)
    params = {k: (0.1 * torch.randn(*(dim(s, dict(D=D, H=H)) for s in shape), generator=g)).requires_grad_()
              for k, shape in module.PARAMS.items()}
    xs = torch.randn(T, B, D, generator=g).requires_grad_()
    state0 = tuple(torch.zeros(B, H) for _ in module.STATE)
    return params, xs, state0, torch.randn(T, B, H, generator=g)


def functions(module):
    """The module's two autograd.Functions: keeping every cached value, keeping the states."""
    name = next(k for k in dir(module) if k.endswith("RecomputeFunction"))
    return getattr(module, name.replace("RecomputeFunction", "Function")), getattr(module, name)


def torch_runs(name, size, compile_plain):
    module = load(CELLS[name], "torch", name)
    cached, recompute = functions(module)
    params, xs, state0, G = torch_problem(module, size)
    plain = torch_plain(name)

    def ours(function=cached, backward=True):
        out = function.apply(xs, *state0, *(params[k] for k in module.PARAMS))[0]
        if backward:
            (out * G).sum().backward()

    def ours_recompute(backward=True):
        ours(recompute, backward)

    def theirs(fn=plain, backward=True):
        out = fn(params, xs, state0)
        if backward:
            (out * G).sum().backward()

    with torch.no_grad():
        assert torch.allclose(cached.apply(xs, *state0, *(params[k] for k in module.PARAMS))[0],
                              plain(params, xs, state0), atol=1e-4), f"{name}: plain cell differs"
    runs = {"ours": ours, "recompute": ours_recompute, "plain": theirs}
    compile_note = ""
    if compile_plain:
        try:
            compiled = torch.compile(plain)
            start = time.perf_counter()
            theirs(compiled)
            compile_note = f"{time.perf_counter() - start:.1f}s"
            runs["compiled"] = lambda: theirs(compiled)
        except Exception as error:   # inductor needs a C++ compiler; say so and go on
            compile_note = f"failed ({type(error).__name__})"
    given = (xs, *params.values(), *state0)
    saved = {k: saved_bytes(runs[k], given) for k in ("ours", "recompute", "plain")}
    return runs, saved, compile_note


def nn_runs(name, size):
    cell, nn_name = NN[name]
    T, B, D, H = size
    module = load("generated", "torch", cell)
    cls = next(getattr(module, k) for k in dir(module)
               if isinstance(getattr(module, k), type) and issubclass(getattr(module, k), torch.nn.Module)
               and not k.endswith("Function"))
    reference = getattr(torch.nn, nn_name)(D, H)
    ours, lean = cls(D, H), cls(D, H, recompute=True)
    ours.load_state_dict(reference.state_dict())
    lean.load_state_dict(reference.state_dict())
    xs = torch.randn(T, B, D, requires_grad=True)
    G = torch.randn(T, B, H)
    return {"ours": lambda: (ours(xs)[0] * G).sum().backward(),
            "recompute": lambda: (lean(xs)[0] * G).sum().backward(),
            "nn": lambda: (reference(xs)[0] * G).sum().backward()}


def jax_runs(name, size):
    import jax
    import jax.numpy as jnp
    module = load(CELLS[name], "jax", name)
    T, B, D, H = size
    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(0.1 * rng.normal(size=tuple(dim(s, dict(D=D, H=H)) for s in shape)), jnp.float32)
              for k, shape in module.PARAMS.items()}
    xs = jnp.asarray(rng.normal(size=(T, B, D)), jnp.float32)
    G = jnp.asarray(rng.normal(size=(T, B, H)), jnp.float32)
    state0 = {s: jnp.zeros((B, H), jnp.float32) for s in module.STATE}
    step = STEPS[name]
    elementwise = SimpleNamespace(sigmoid=jax.nn.sigmoid, tanh=jnp.tanh, relu=jax.nn.relu, exp=jnp.exp,
                                  logsigmoid=jax.nn.log_sigmoid, maximum=jnp.maximum)

    def plain(p, xs, state0):
        def body(state, x):
            state = step(p, x, state, elementwise)
            return state, state[0]
        return jax.lax.scan(body, tuple(state0[s] for s in module.STATE), xs)[1]

    def ours(p, xs, state0):
        return module.forward(p, xs, state0)[0]

    functions = {}
    for key, fn in (("ours", ours), ("plain", plain)):
        grad = jax.jit(jax.grad(lambda p, xs, s, fn=fn: jnp.sum(fn(p, xs, s) * G), argnums=(0, 1)))
        compiled = grad.lower(params, xs, state0).compile()
        try:
            temp = compiled.memory_analysis().temp_size_in_bytes
        except Exception:
            temp = None
        functions[key] = (lambda c=compiled: jax.block_until_ready(c(params, xs, state0)), temp)
    np.testing.assert_allclose(np.asarray(ours(params, xs, state0)), np.asarray(plain(params, xs, state0)),
                               atol=1e-4)
    for _, (run, _) in functions.items():
        run()
    return {k: run for k, (run, _) in functions.items()}, {k: temp for k, (_, temp) in functions.items()}


def machine() -> str:
    """The CPU, whether it has AVX-512 (its flags, and the kernels torch chose), threads, load."""
    model, flags = "unknown CPU", ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    avx512 = "AVX-512 in its flags" if "avx512f" in flags.split() else "no AVX-512 in its flags"
    return (f"{model} ({os.cpu_count()} cores), {avx512}; torch {torch.__version__} with "
            f"{torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} thread(s); {load_average()}")


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def mib(n):
    return "n/a" if n is None else f"{n / 2**20:.2f} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: the process's CPU time, which other jobs on the machine disturb least")
    parser.add_argument("--compile-sizes", default="small",
                        help="sizes at which to torch.compile the plain cell (it unrolls the loop: ~2 min a cell here)")
    parser.add_argument("--no-jax", action="store_true")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print("GPU: " + (torch.cuda.get_device_name() if torch.cuda.is_available()
                     else "none here (torch.cuda.is_available() is False): nothing measured on CUDA"))
    for size_name in args.sizes.split(","):
        size = SIZES[size_name]
        print(f"\n== {size_name}: T={size[0]} B={size[1]} D={size[2]} H={size[3]}, float32, fwd+bwd, "
              f"fastest of {args.repeats} interleaved runs, {args.clock} clock")
        for name in CELLS:
            torch_line(name, size, args, size_name in args.compile_sizes.split(","))
        for name in NN:
            t = interleaved(nn_runs(name, size), args.repeats)
            print(f"torch {name:14s} vs nn.{NN[name][1]:5s} ours {t['ours'] * 1e3:8.2f} ms  recompute=True"
                  f" {t['recompute'] * 1e3:8.2f} ms  nn {t['nn'] * 1e3:8.2f} ms   ours/nn {t['ours'] / t['nn']:.2f}"
                  f"  recompute/nn {t['recompute'] / t['nn']:.2f}")
        if not args.no_jax:
            for name in CELLS:
                runs, temp = jax_runs(name, size)
                t = interleaved(runs, args.repeats)
                print(f"jax   {name:14s} ours {t['ours'] * 1e3:8.2f} ms  plain {t['plain'] * 1e3:8.2f} ms"
                      f"  ours/plain {t['ours'] / t['plain']:.2f}  XLA temp {mib(temp['ours'])} / {mib(temp['plain'])}")
    print(f"\nafter the run: {load_average()}")
    return 0


def torch_line(name, size, args, compile_plain):
    """Time and saved bytes of both Functions against the plain cell (and its compiled form)."""
    runs, saved, compile_note = torch_runs(name, size, compile_plain)
    t = interleaved(runs, args.repeats)
    print(f"torch {name:14s} time   cached {t['ours'] * 1e3:8.2f} ms  recompute {t['recompute'] * 1e3:8.2f} ms"
          f"  plain {t['plain'] * 1e3:8.2f} ms   cached/plain {t['ours'] / t['plain']:.2f}"
          f"  recompute/plain {t['recompute'] / t['plain']:.2f}")
    made = {k: v[0] for k, v in saved.items()}
    total = {k: v[1] for k, v in saved.items()}
    print(f"{'':20s} saved  cached {mib(made['ours'])}  recompute {mib(made['recompute'])}  plain "
          f"{mib(made['plain'])}   cached/plain {made['ours'] / made['plain']:.2f}  recompute/plain "
          f"{made['recompute'] / made['plain']:.2f}  (with inputs and parameters: "
          f"{total['ours'] / total['plain']:.2f}, {total['recompute'] / total['plain']:.2f})")
    if "compiled" in t:
        print(f"{'':20s} torch.compile of plain {t['compiled'] * 1e3:.2f} ms (compile {compile_note}):"
              f"  cached/compiled {t['ours'] / t['compiled']:.2f}")
    elif compile_note:
        print(f"{'':20s} torch.compile of plain: {compile_note}")


if __name__ == "__main__":
    sys.exit(main())
