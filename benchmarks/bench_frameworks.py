"""The generated framework modules against what a user would otherwise write, ratios in one run.

    python benchmarks/bench_frameworks.py                 # the sizes of bench.py, a few minutes
    python benchmarks/bench_frameworks.py --sizes medium --repeats 5 --compile-sizes ''

Every measurement is forward + backward of L = sum(outputs * G), float32, the median of
interleaved runs.  Per cell (lstm, gru, the spec cell examples/mgu, layernorm_lstm and
layernorm_gru, whose plain versions use torch's F.layer_norm) and size:
- `ours/plain`: generated/torch/<cell>.py's Function against the same cell written plainly
  in PyTorch (a Python loop over steps, autograd) -- time, and bytes saved for backward
  (every tensor autograd saves, counted once per storage by `saved_tensors_hooks`);
- `compiled`: the plain cell under `torch.compile` (compile time reported apart), when it works,
  at --compile-sizes only;
- `ours/nn`: the generated LSTM and GRU (reset after, PyTorch's) against `nn.LSTM`/`nn.GRU`;
- `jax ours/plain`: generated/jax/<cell>.py against `jax.grad` of the plain cell under
  `lax.scan`, both jitted, with XLA's temporary bytes for each when it reports them.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import SIZES  # noqa: E402

CELLS = {"lstm": "generated", "gru": "generated", "mgu": "examples",
         "layernorm_lstm": "generated", "layernorm_gru": "generated"}
NN = {"lstm": ("lstm", "LSTM"), "gru": ("gru_reset_after", "GRU")}


def load(folder, target, name):
    path = ROOT / folder / target / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{target}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the cells written plainly, for any array library with @, .T, sigmoid and tanh ------------
def lstm_step(p, x, s, sigmoid, tanh):
    h, c = s
    f = sigmoid(x @ p["W_f"].T + h @ p["U_f"].T + p["b_f"])
    i = sigmoid(x @ p["W_i"].T + h @ p["U_i"].T + p["b_i"])
    g = tanh(x @ p["W_g"].T + h @ p["U_g"].T + p["b_g"])
    o = sigmoid(x @ p["W_o"].T + h @ p["U_o"].T + p["b_o"])
    c = f * c + i * g
    return (o * tanh(c), c)


def gru_step(p, x, s, sigmoid, tanh):
    (h,) = s
    z = sigmoid(x @ p["W_z"].T + h @ p["U_z"].T + p["b_z"])
    r = sigmoid(x @ p["W_r"].T + h @ p["U_r"].T + p["b_r"])
    n = tanh(x @ p["W_n"].T + (r * h) @ p["U_n"].T + p["b_n"])
    return ((1 - z) * n + z * h,)


def mgu_step(p, x, s, sigmoid, tanh):
    (h,) = s
    f = sigmoid(x @ p["W_f"].T + h @ p["U_f"].T + p["b_f"])
    n = tanh(x @ p["W_n"].T + (f * h) @ p["U_n"].T + p["b_n"])
    return ((1 - f) * h + f * n,)


def layer_norm(v, gain, shift):
    """LN over the last axis: torch's own F.layer_norm for tensors, written out otherwise (JAX)."""
    if torch.is_tensor(v):
        return torch.nn.functional.layer_norm(v, v.shape[-1:], gain, shift, 1e-5)
    mean = v.mean(-1)[..., None]
    var = ((v - mean) ** 2).mean(-1)[..., None]
    return gain * (v - mean) * (var + 1e-5) ** -0.5 + shift


def cat(arrays):
    return torch.cat(arrays) if torch.is_tensor(arrays[0]) else __import__("jax").numpy.concatenate(arrays)


def layernorm_lstm_step(p, x, s, sigmoid, tanh):
    h, c = s
    W, U = cat([p[f"W_{g}"] for g in "figo"]), cat([p[f"U_{g}"] for g in "figo"])
    a = (layer_norm(x @ W.T, p["gamma_x"], p["beta_x"]) + layer_norm(h @ U.T, p["gamma_h"], p["beta_h"])
         + cat([p[f"b_{g}"] for g in "figo"]))
    H = h.shape[-1]
    f, i, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
    c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return (sigmoid(o) * tanh(layer_norm(c, p["gamma_c"], p["beta_c"])), c)


def layernorm_gru_step(p, x, s, sigmoid, tanh):
    (h,) = s
    H = h.shape[-1]
    ax = layer_norm(x @ cat([p[f"W_{g}"] for g in "rzn"]).T, p["gamma_x"], p["beta_x"])
    ah = layer_norm(h @ cat([p[f"U_{g}"] for g in "rzn"]).T, p["gamma_h"], p["beta_h"])
    r = sigmoid(ax[:, :H] + ah[:, :H] + p["b_r"])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H] + p["b_z"])
    n = tanh(ax[:, 2 * H:] + p["b_n"] + r * (ah[:, 2 * H:] + p["b_hn"]))
    return ((1 - z) * n + z * h,)


STEPS = {"lstm": lstm_step, "gru": gru_step, "mgu": mgu_step,
         "layernorm_lstm": layernorm_lstm_step, "layernorm_gru": layernorm_gru_step}


def dim(size, sizes):
    """A size symbol's value; "4*H" (a packed gain's rows) is 4 times H."""
    count, _, symbol = size.rpartition("*")
    return int(count or 1) * sizes[symbol]


def torch_plain(name):
    step = STEPS[name]

    def run(params, xs, state0):
        state, outputs = state0, []
        for x in xs:
            state = step(params, x, state, torch.sigmoid, torch.tanh)
            outputs.append(state[0])
        return torch.stack(outputs)
    return run


# -- measuring ---------------------------------------------------------------------------------
def interleaved(runs, repeats):
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            start = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def saved_bytes(run):
    """Bytes autograd saves for backward during `run()` (each storage once)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(backward=False)
    return sum(seen.values())


def torch_problem(module, size, seed=0):
    T, B, D, H = size
    g = torch.Generator().manual_seed(seed)
    params = {k: (0.1 * torch.randn(*(dim(s, dict(D=D, H=H)) for s in shape), generator=g)).requires_grad_()
              for k, shape in module.PARAMS.items()}
    xs = torch.randn(T, B, D, generator=g).requires_grad_()
    state0 = tuple(torch.zeros(B, H) for _ in module.STATE)
    return params, xs, state0, torch.randn(T, B, H, generator=g)


def torch_runs(name, size, compile_plain):
    module = load(CELLS[name], "torch", name)
    function = next(getattr(module, k) for k in dir(module) if k.endswith("Function") and k != "Function")
    params, xs, state0, G = torch_problem(module, size)
    plain = torch_plain(name)

    def ours(backward=True):
        out = function.apply(xs, *state0, *(params[k] for k in module.PARAMS))[0]
        if backward:
            (out * G).sum().backward()

    def theirs(fn=plain, backward=True):
        out = fn(params, xs, state0)
        if backward:
            (out * G).sum().backward()

    with torch.no_grad():
        assert torch.allclose(function.apply(xs, *state0, *(params[k] for k in module.PARAMS))[0],
                              plain(params, xs, state0), atol=1e-4), f"{name}: plain cell differs"
    runs = {"ours": ours, "plain": theirs}
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
    return runs, (saved_bytes(ours), saved_bytes(theirs)), compile_note


def nn_runs(name, size):
    cell, nn_name = NN[name]
    T, B, D, H = size
    module = load("generated", "torch", cell)
    cls = next(getattr(module, k) for k in dir(module)
               if isinstance(getattr(module, k), type) and issubclass(getattr(module, k), torch.nn.Module)
               and not k.endswith("Function"))
    reference = getattr(torch.nn, nn_name)(D, H)
    ours = cls(D, H)
    ours.load_state_dict(reference.state_dict())
    xs = torch.randn(T, B, D, requires_grad=True)
    G = torch.randn(T, B, H)
    return {"ours": lambda: (ours(xs)[0] * G).sum().backward(),
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

    def plain(p, xs, state0):
        def body(state, x):
            state = step(p, x, state, jax.nn.sigmoid, jnp.tanh)
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
    model, flags = "unknown CPU", ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    avx512 = "AVX-512 present" if "avx512f" in flags else "no AVX-512"
    return f"{model}, {avx512}, torch {torch.__version__} with {torch.get_num_threads()} threads"


def mib(n):
    return "n/a" if n is None else f"{n / 2**20:.2f} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile-sizes", default="small",
                        help="sizes at which to torch.compile the plain cell (it unrolls the loop: ~2 min a cell here)")
    parser.add_argument("--no-jax", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    if not torch.cuda.is_available():
        print("no GPU here: CUDA not measured")
    for size_name in args.sizes.split(","):
        size = SIZES[size_name]
        print(f"\n== {size_name}: T={size[0]} B={size[1]} D={size[2]} H={size[3]}, float32, fwd+bwd")
        for name in CELLS:
            runs, (ours_b, plain_b), compile_note = torch_runs(name, size, size_name in args.compile_sizes.split(","))
            t = interleaved(runs, args.repeats)
            line = (f"torch {name:14s} ours {t['ours'] * 1e3:8.2f} ms  plain {t['plain'] * 1e3:8.2f} ms"
                    f"  time ours/plain {t['ours'] / t['plain']:.2f}"
                    f"  saved ours/plain {ours_b / plain_b:.2f} ({mib(ours_b)} / {mib(plain_b)})")
            if "compiled" in t:
                line += f"  compiled {t['compiled'] * 1e3:.2f} ms (ours/compiled {t['ours'] / t['compiled']:.2f}, compile {compile_note})"
            elif compile_note:
                line += f"  compile {compile_note}"
            print(line)
        for name in NN:
            t = interleaved(nn_runs(name, size), args.repeats)
            print(f"torch {name:14s} ours {t['ours'] * 1e3:8.2f} ms  nn.{NN[name][1]} {t['nn'] * 1e3:8.2f} ms"
                  f"  ours/nn {t['ours'] / t['nn']:.2f}")
        if not args.no_jax:
            for name in CELLS:
                runs, temp = jax_runs(name, size)
                t = interleaved(runs, args.repeats)
                print(f"jax   {name:14s} ours {t['ours'] * 1e3:8.2f} ms  plain {t['plain'] * 1e3:8.2f} ms"
                      f"  ours/plain {t['ours'] / t['plain']:.2f}  XLA temp {mib(temp['ours'])} / {mib(temp['plain'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
