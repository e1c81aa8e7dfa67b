"""Benchmark the generated recurrent cells against PyTorch and the hand-written reference.

    python benchmarks/bench.py            # every size, a few minutes
    python benchmarks/bench.py --quick    # fewer repetitions, well under a minute
    python benchmarks/bench.py --sizes medium,large --repeats 15
    python benchmarks/bench.py --threads 1 --clock cpu   # one thread each, CPU time: for a busy machine
    python benchmarks/bench.py --baseline OLD_DIR --cells lstm,gru   # these modules against older copies

Every measurement is forward + backward of the same loss, L = sum(hs * G) for a fixed
random G, in float32 on the same data.  Implementations are interleaved (three turns of
each in rotation, a few runs per turn) and the median time is reported, so a busy machine
slows all of them alike; compare the ratios, not the absolute times.  GEMM efficiency is the matrix-product
FLOPs of forward + backward (6 T B rows cols per weight matrix: the product, its weight
gradient and its input gradient) per second, divided by numpy's float32 1024x1024 GEMM
throughput measured in the same rounds.  Memory is the peak traced by tracemalloc during
forward + backward (NumPy only), the bytes the cache holds, and the lower bound: the
per-step values the derived backward pass reads (`Derivation.cached_values`).  Cells PyTorch
has no module for (IndRNN, sLSTM) are timed against the same equations written plainly in
PyTorch with autograd (bench_frameworks.STEPS), with the bytes autograd saves for backward.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path


def threads_option(argv) -> int:
    """--threads N, read before NumPy is imported: OpenBLAS fixes its thread count on import."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_known_args(argv)[0].threads


if __name__ == "__main__":
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads_option(sys.argv[1:]))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]   # bench_frameworks: the plain cells

SIZES = {  # T steps, B batch, D input, H hidden
    "small": (16, 8, 32, 32),
    "medium": (32, 32, 128, 128),
    "large": (64, 64, 256, 256),
    "tall": (256, 16, 64, 128),
}
TORCH_CELLS = {"gru_reset_after": "GRU", "rnn": "RNN", "lstmp": "LSTM(proj_size=H/2)"}
# every recurrent cell: the built-in ones (generated/) and the spec cells of examples/
RECURRENT_CELLS = ("lstm", "gru_reset_after", "rnn", "lstmp", "gru", "peephole_lstm", "cifg_lstm",
                   "indrnn", "slstm", "layernorm_lstm", "layernorm_gru",
                   "mgu", "dt_rnn", "softsign_lstm", "layernorm_rnn")


DTYPE = np.float32   # --dtype float64


def load(name, folder=None):
    path = Path(folder) / f"{name}.py" if folder else ROOT / "generated" / f"{name}.py"
    if not path.exists() and folder is None:
        path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def problem(module, size, seed=0):
    T, B, D, H = size
    args = {"D": D, "H": H, "P": H // 2}
    params = module.init_params(*(args[s] for s in module.SIZES), seed=seed, dtype=DTYPE)
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, D)).astype(DTYPE)
    hs, _, _ = module.forward(params, xs[:1])
    G = rng.normal(size=(T, B, hs.shape[-1])).astype(DTYPE)
    return params, xs, G


def generated_run(module, params, xs, G, **options):
    def run():
        hs, _, cache = module.forward(params, xs, **options)
        return module.backward(params, cache, G)
    return run


def torch_run(torch, module, params, xs, G):
    """nn.LSTM/GRU/RNN with the same parameters; returns a function and its gradients."""
    H = params[module.PARAMS and next(iter(module.PARAMS))].shape[0]
    options = dict(input_size=xs.shape[2], hidden_size=H)
    if "P" in module.SIZES:
        options["proj_size"] = params["W_hr"].shape[0]
    net = getattr(torch.nn, module.TORCH_MODULE)(**options)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in module.to_torch(params).items()})
    x0, g = torch.from_numpy(xs), torch.from_numpy(G)

    def run():
        net.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        out, _ = net(x)
        out.backward(g)
        return net, x
    return run


def gemm_run(n=1024):
    a = np.random.default_rng(1).normal(size=(n, n)).astype(np.float32)
    b = a.T.copy()
    return lambda: a @ b


def products_run(module, params, xs):
    """Only the matrix products of a cell's forward+backward, with the generated code's shapes
    (read off its stacked weights): per product of x, one GEMM before the loop and two after
    (weight gradient, dxs); per product of a per-step value (h_prev, ...), one GEMM per step
    each way and its weight gradient after the loop."""
    T, B, _ = xs.shape
    sizes = module._sizes(params)
    unpacked = dict(params, **module._unpack(params, sizes)) if hasattr(module, "_unpack") else params
    w = module._stack(unpacked, sizes, xs.dtype)
    weights = {k[5:]: v for k, v in w.items() if k.startswith("Wcat_")}
    # the forward reads each weight transposed from a contiguous copy: OpenBLAS's kernels for a
    # transposed right operand are slower (up to 2.6x at a few batch rows), the fastest layout counts
    forward = {k: np.ascontiguousarray(v.T) for k, v in weights.items()}
    rng = np.random.default_rng(2)
    data = {k: (rng.normal(size=(T * B, v.shape[1])).astype(xs.dtype),
                rng.normal(size=(T * B, v.shape[0])).astype(xs.dtype),
                np.empty((B, v.shape[0]), xs.dtype)) for k, v in weights.items()}

    def run():
        for k, W in weights.items():
            inputs, dA, out = data[k]
            if k == "x":
                inputs @ forward[k]
                dA @ W
            else:
                for t in range(T):
                    np.matmul(inputs[t * B:(t + 1) * B], forward[k], out=out)
                    dA[t * B:(t + 1) * B] @ W
            dA.T @ inputs
    return run


class _Counted(np.ndarray):
    """An array that counts every ufunc it takes part in (operators, out= calls, sums, @)."""

    counter = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _Counted.counter[0] += 1
        plain = tuple(a.view(np.ndarray) if isinstance(a, _Counted) else a for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(a.view(np.ndarray) if isinstance(a, _Counted) else a
                                  for a in kwargs["out"])
        result = getattr(ufunc, method)(*plain, **kwargs)
        return _counted(result)


def _counted(value):
    if isinstance(value, np.ndarray) and not isinstance(value, _Counted):
        return value.view(_Counted)
    if isinstance(value, tuple):
        return tuple(_counted(v) for v in value)
    return value


class _CountingNumpy:
    """Stands in for the `numpy` module of a generated module: calls of NumPy functions that
    are not ufuncs are counted here, and every array it hands out counts its ufuncs."""

    def __init__(self, counter):
        self.counter = counter

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, np.ufunc) or not callable(attr) or isinstance(attr, type):
            return attr

        def call(*args, **kwargs):
            self.counter[0] += 1
            return _counted(attr(*args, **kwargs))
        return call


def calls_per_step(module, params, B=4, steps=(4, 8)):
    """NumPy calls per time step of forward and of backward: the difference between two
    sequence lengths (so work outside the loops cancels), divided by the extra steps."""
    counter = [0]
    _Counted.counter = counter
    saved = module.numpy
    module.numpy = _CountingNumpy(counter)
    try:
        counts = []
        for T in steps:
            D = next(v.shape[1] for k, v in params.items() if k.startswith("W"))
            xs = np.random.default_rng(0).normal(size=(T, B, D)).astype(DTYPE)
            p = {k: _counted(v) for k, v in params.items()}
            counter[0] = 0
            hs, _, cache = module.forward(p, _counted(xs))
            forward = counter[0]
            counter[0] = 0
            module.backward(p, cache, _counted(np.ones(hs.shape, DTYPE)))
            counts.append((forward, counter[0]))
    finally:
        module.numpy = saved
    extra = steps[1] - steps[0]
    return tuple((b - a) / extra for a, b in zip(*counts))


CLOCK = time.perf_counter   # --clock cpu: time.process_time (with --threads 1 on a busy machine)
# After a call, OpenBLAS's worker threads spin for about 2^28 cycles (and OpenMP's for a while)
# before they sleep; a run started meanwhile shares the cores with them (measured here: torch
# 2-10x slower right after a NumPy run).  So each turn of an implementation starts with a
# pause, then an untimed warm-up run, then timed runs back to back, as in a training loop.
SETTLE = 0.3


def interleaved(runs, repeats, rounds=3):
    """Median seconds of each run: `rounds` turns per implementation in rotation, each turn
    a pause, a warm-up and about repeats / rounds timed runs."""
    rounds = max(1, min(rounds, repeats))
    per_turn = -(-repeats // rounds)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(SETTLE)
            run()
            for _ in range(per_turn):
                start = CLOCK()
                run()
                times[name].append(CLOCK() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_flops(module, params, T, B):
    return 6 * T * B * sum(v.shape[0] * v.shape[1] for k, v in params.items()
                           if np.ndim(v) == 2 and k in module.PARAMS)


def nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


def memory(module, params, xs, G, **options):
    """(peak traced bytes of forward + backward, bytes held by the cache apart from xs)."""
    tracemalloc.start()
    hs, _, cache = module.forward(params, xs, **options)
    held = nbytes({k: v for k, v in cache.items() if k not in ("xs", "workspace")})
    module.backward(params, cache, G)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, held


def cache_lower_bound(name, size):
    """Bytes of the per-step values the derived backward pass reads, all steps, float32."""
    from catalogue.cells import get_cell
    from derive.derivation import derive
    derivation = derive(get_cell(name))
    cell = derivation.cell
    T, B, D, H = size
    widths = {"D": D, "H": H, "P": H // 2}
    sizes = cell.sizes()
    total = 0
    for v in derivation.cached_values():
        if v in cell.input_names:
            continue
        total += widths[sizes[v[:-5] if v.endswith("_prev") else v]]
    return 4 * T * B * total


def cell_text(value, spec) -> str:
    """A table cell, or n/a right-aligned to the same width."""
    width = int(spec.split(".")[0])
    return format(value, spec) if value else "n/a".rjust(width)


def mb(n) -> str:
    return f"{n / 2**20:.1f}"


def check(reference, result, what):
    """Largest relative difference of two gradient sets (dicts of arrays)."""
    worst = 0.0
    for key, value in reference.items():
        scale = max(np.abs(value).max(), 1e-30)
        error = float(np.abs(result[key] - value).max() / scale)
        worst = error if np.isnan(error) else max(worst, error)   # max(0.0, nan) is 0.0
        if np.isnan(worst):
            break
    if not worst <= 1e-3:   # NaN fails too
        raise SystemExit(f"{what}: gradients disagree (max relative difference {worst:.1e})")
    return worst


def torch_grads(module, net, x):
    """Torch's gradients in our names.  A parameter torch keeps twice (its two biases) gets
    the same gradient in both places, so only its first copy is kept."""
    grads = {k: v.grad.numpy().copy() for k, v in net.named_parameters()}
    seen = set()
    for key, names in module.TORCH_KEYS.items():
        for name, block in zip(names, np.split(grads[key], len(names))):
            if name in seen:
                block[...] = 0
        seen.update(names)
    ours = module.from_torch(grads)
    return ours, x.grad.numpy()


def bench_lstm(torch, sizes, repeats):
    import reference_lstm
    lstm = load("lstm")
    print("LSTM forward+backward, float32, median ms over interleaved runs")
    header = (f"{'size':7} {'T,B,D,H':16} {'generated':>9} {'torch':>8} {'reference':>9} "
              f"{'gen/torch':>9} {'gen/ref':>8} {'GEMM GF/s':>9} {'gen eff':>7} {'torch eff':>9} "
              f"{'GEMMs ms':>8} "
              f"{'peak MB':>7} {'cache MB':>8} {'bound MB':>8}")
    print(header)
    for name in sizes:
        size = SIZES[name]
        T, B, D, H = size
        params, xs, G = problem(lstm, size)
        runs = {"gen": generated_run(lstm, params, xs, G),
                "ref": lambda: reference_lstm.backward(params, reference_lstm.forward(params, xs)[2], G),
                "gemm": gemm_run(), "products": products_run(lstm, params, xs)}
        if torch is not None:
            runs["torch"] = torch_run(torch, lstm, params, xs, G)
            grads, dxs, _ = runs["gen"]()
            theirs, dx_t = torch_grads(lstm, *runs["torch"]())
            check(theirs | {"xs": dx_t}, grads | {"xs": dxs}, f"lstm {name} vs torch")
        t = interleaved(runs, repeats)
        gflops = 2 * 1024 ** 3 / t["gemm"] / 1e9
        flops = matmul_flops(lstm, params, T, B)
        peak, held = memory(lstm, params, xs, G)
        bound = cache_lower_bound("lstm", size)
        gen, ref, tt = t["gen"], t["ref"], t.get("torch")
        cells = [f"{gen * 1e3:9.2f}", cell_text(tt and tt * 1e3, "8.2f"), f"{ref * 1e3:9.2f}",
                 cell_text(tt and gen / tt, "9.2f"), f"{gen / ref:8.2f}", f"{gflops:9.0f}",
                 f"{flops / gen / 1e9 / gflops:7.0%}", cell_text(tt and flops / tt / 1e9 / gflops, "9.0%"),
                 f"{t['products'] * 1e3:8.2f}", f"{mb(peak):>7} {mb(held):>8} {mb(bound):>8}"]
        print(f"{name:7} {str(size):16} " + " ".join(cells))
    print()


def bench_cells(torch, sizes, repeats):
    """Per recurrent cell and size: forward+backward over our own matrix products alone (same
    shapes, same BLAS, same run); where PyTorch has the cell, PyTorch's pass over the same
    products and ours over PyTorch's."""
    print("Overhead over our own matrix products (forward+backward, "
          f"{np.dtype(DTYPE).name}, median ms; gru_reset_after is nn.GRU)")
    print(f"{'cell':16} {'size':7} {'ours':>8} {'products':>8} {'ours/prod':>9} "
          f"{'torch':>8} {'torch/prod':>10} {'ours/torch':>10}")
    for cell in RECURRENT_CELLS:
        module = load(cell)
        for name in sizes:
            params, xs, G = problem(module, SIZES[name])
            runs = {"gen": generated_run(module, params, xs, G),
                    "products": products_run(module, params, xs)}
            if torch is not None and hasattr(module, "TORCH_MODULE"):
                runs["torch"] = torch_run(torch, module, params, xs, G)
                grads, dxs, _ = runs["gen"]()
                theirs, dx_t = torch_grads(module, *runs["torch"]())
                check(theirs | {"xs": dx_t}, grads | {"xs": dxs}, f"{cell} {name} vs torch")
            t = interleaved(runs, repeats)
            tt, prod = t.get("torch"), t["products"]
            print(f"{cell:16} {name:7} {t['gen'] * 1e3:8.2f} {prod * 1e3:8.2f} {t['gen'] / prod:8.2f}x "
                  f"{cell_text(tt and tt * 1e3, '8.2f')} {cell_text(tt and tt / prod, '9.2f')}"
                  f"{'x' if tt else ' '} {cell_text(tt and t['gen'] / tt, '9.2f')}{'x' if tt else ' '}")
    print("  targets: ours/prod <= 1.25x at medium, large, tall and <= 3x at small; the LSTM <= 1.0x")
    print("  nn.LSTM where torch/prod >= 1.2x; GRU, RNN, LSTMP <= 1.0x their PyTorch modules")
    print()


LN_CELLS = ("layernorm_lstm", "layernorm_gru")


def bench_layernorm(torch, sizes, repeats):
    """The layer-normalised cells, which PyTorch has no module for: our NumPy module and our
    torch Function against the cell written plainly in PyTorch (F.layer_norm, autograd; the
    steps of bench_frameworks.py, on their own random data of the same sizes), in one
    interleaved run.  Memory: NumPy's traced peak and cache; for torch, the bytes autograd
    saves for backward, ours against the plain cell's."""
    print(f"Layer-normalised cells against plain PyTorch autograd (forward+backward, "
          f"{np.dtype(DTYPE).name}, median ms)")
    print(f"{'cell':16} {'size':7} {'numpy':>8} {'torch':>8} {'plain':>8} {'numpy/plain':>11} "
          f"{'torch/plain':>11} {'np peak MB':>10} {'saved ours/plain MB':>20}")
    fw = None
    if torch is not None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import bench_frameworks as fw
    for cell in LN_CELLS:
        module = load(cell)
        for name in sizes:
            params, xs, G = problem(module, SIZES[name])
            runs, saved = {"numpy": generated_run(module, params, xs, G)}, None
            if fw is not None:
                theirs, bytes_saved, _ = fw.torch_runs(cell, SIZES[name], False)
                runs.update(torch=theirs["ours"], plain=theirs["plain"])
                # made by the run (inputs' and parameters' storages left out), ours against plain
                saved = (bytes_saved["ours"][0], bytes_saved["plain"][0])
            t = interleaved(runs, repeats)
            peak, _ = memory(module, params, xs, G)
            tt, tp = t.get("torch"), t.get("plain")
            print(f"{cell:16} {name:7} {t['numpy'] * 1e3:8.2f} {cell_text(tt and tt * 1e3, '8.2f')} "
                  f"{cell_text(tp and tp * 1e3, '8.2f')} {cell_text(tp and t['numpy'] / tp, '10.2f')}x "
                  f"{cell_text(tp and tt / tp, '10.2f')}x {mb(peak):>10} "
                  f"{(f'{mb(saved[0])} / {mb(saved[1])}' if saved else 'n/a'):>20}")
    print()


def bench_calls():
    print("NumPy calls per time step (ufuncs incl. operators, @ and sums, plus other numpy calls)")
    print(f"{'cell':16} {'forward':>7} {'backward':>8}")
    for cell in RECURRENT_CELLS:
        module = load(cell)
        params = module.init_params(*({"D": 3, "H": 5, "P": 2}[s] for s in module.SIZES),
                                    seed=0, dtype=DTYPE)
        forward, backward = calls_per_step(module, params)
        print(f"{cell:16} {forward:7.0f} {backward:8.0f}")
    print()


PLAIN_CELLS = ("indrnn", "slstm")   # no torch.nn module: compared with the cell written plainly


def plain_torch_run(torch, module, name, params, xs, G):
    """The cell written plainly in PyTorch (bench_frameworks.STEPS), autograd for the backward,
    from the zero state like `generated_run`; returns a function of `backward` and its leaves."""
    from bench_frameworks import torch_plain
    plain = torch_plain(name)
    p0 = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
    x0, g = torch.from_numpy(xs), torch.from_numpy(G)
    state0 = tuple(torch.zeros(xs.shape[1], G.shape[2], dtype=x0.dtype) for _ in module.STATE)

    def run(backward=True):
        p = {k: v.detach().requires_grad_(True) for k, v in p0.items()}
        x = x0.detach().requires_grad_(True)
        out = plain(p, x, state0)
        if backward:
            out.backward(g)
        return p, x
    return run


def bench_plain(torch, sizes, repeats):
    """The new cells against the same equations written plainly in PyTorch with autograd."""
    from bench_frameworks import saved_bytes
    print(f"Cells without a torch.nn module against the cell written plainly in PyTorch (autograd), "
          f"forward+backward, {np.dtype(DTYPE).name}, median ms")
    print(f"{'cell':8} {'size':7} {'numpy':>8} {'plain':>8} {'numpy/plain':>11} {'peak MB':>8} "
          f"{'cache MB':>8} {'plain saved MB':>14}")
    for cell in PLAIN_CELLS:
        module = load(cell)
        for name in sizes:
            params, xs, G = problem(module, SIZES[name])
            # all gradients checked as one vector: from the zero state the sLSTM's dL/db_i is
            # exactly 0 (scaling every input gate scales c and n alike), so it is rounding in both
            grads, dxs, _ = generated_run(module, params, xs, G)()
            p, x = plain_torch_run(torch, module, cell, params, xs, G)()
            theirs = np.concatenate([p[k].grad.numpy().ravel() for k in grads] + [x.grad.numpy().ravel()])
            ours = np.concatenate([v.ravel() for v in grads.values()] + [dxs.ravel()])
            check({"all": theirs}, {"all": ours}, f"{cell} {name} vs plain torch")
            plain = plain_torch_run(torch, module, cell, params, xs, G)
            t = interleaved({"gen": generated_run(module, params, xs, G), "plain": plain}, repeats)
            peak, held = memory(module, params, xs, G)
            saved = saved_bytes(plain, ())[1]   # every storage autograd keeps, inputs included
            print(f"{cell:8} {name:7} {t['gen'] * 1e3:8.2f} {t['plain'] * 1e3:8.2f} "
                  f"{t['gen'] / t['plain']:10.2f}x {mb(peak):>8} {mb(held):>8} {mb(saved):>14}")
    print()


def bench_checkpoint(repeats, size_name="tall"):
    lstm = load("lstm")
    size = SIZES[size_name]
    T = size[0]
    params, xs, G = problem(lstm, size)
    ks = [None, 32, 16, 4]
    runs = {k: generated_run(lstm, params, xs, G, checkpoint=k) for k in ks}
    plain = runs[None]()
    for k in ks[1:]:
        grads, dxs, _ = runs[k]()
        check(plain[0] | {"xs": plain[1]}, grads | {"xs": dxs}, f"checkpoint={k}")
    t = interleaved(runs, repeats)
    print(f"Gradient checkpointing, LSTM at {size_name} {size} (T={T})")
    print(f"{'checkpoint':>10} {'ms':>8} {'time x':>7} {'peak MB':>8} {'cache MB':>9} {'cache x':>8}")
    base_peak, base_held = memory(lstm, params, xs, G)
    for k in ks:
        peak, held = memory(lstm, params, xs, G, checkpoint=k)
        print(f"{str(k):>10} {t[k] * 1e3:8.2f} {t[k] / t[None]:7.2f} {mb(peak):>8} {mb(held):>9} "
              f"{base_held / held:8.1f}")
    print()


def bench_baseline(folder, cells, sizes, repeats):
    """Each cell's module against an older copy of it in `folder`, both timed in one run;
    with a `Workspace` too where the module offers one."""
    print(f"Generated modules against {folder} (forward+backward, {np.dtype(DTYPE).name}, median ms)")
    print(f"{'cell':16} {'size':7} {'old':>9} {'new':>9} {'new/old':>8} {'new+ws':>9} {'ws/old':>7}")
    for cell in cells:
        old, new = load(cell, folder), load(cell)
        for name in sizes:
            params, xs, G = problem(new, SIZES[name])
            runs = {"old": generated_run(old, params, xs, G), "new": generated_run(new, params, xs, G)}
            if hasattr(new, "Workspace"):
                runs["ws"] = generated_run(new, params, xs, G, workspace=new.Workspace())
            a, b = runs["old"](), runs["new"]()
            check(a[0] | {"xs": a[1]}, b[0] | {"xs": b[1]}, f"{cell} {name} old vs new")
            t = interleaved(runs, repeats)
            ws = t.get("ws")
            print(f"{cell:16} {name:7} {t['old'] * 1e3:9.2f} {t['new'] * 1e3:9.2f} "
                  f"{t['new'] / t['old']:8.3f} {cell_text(ws and ws * 1e3, '9.2f')} "
                  f"{cell_text(ws and ws / t['old'], '7.3f')}")
    print()


def machine():
    import platform
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    import os
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "") \
        if Path("/proc/cpuinfo").exists() else ""
    avx = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"] \
        if hasattr(np, "show_config") else {}
    blas = f"{config.get('name', '?')} {config.get('version', '')}".strip()
    return (f"{os.cpu_count()} cores, {cpu} ({avx}), Python {platform.python_version()}, "
            f"numpy {np.__version__} with {blas}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES),
                        help=f"comma-separated subset of {', '.join(SIZES)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per implementation")
    parser.add_argument("--quick", action="store_true", help="3 timed runs per implementation instead of 9")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for NumPy's BLAS and for PyTorch (default 2, both cores here)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time, which other "
                             "programs do not inflate; use cpu only with --threads 1")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--baseline", metavar="DIR",
                        help="a folder of older generated modules: time each beside today's and "
                             "print the ratio (only this comparison runs)")
    parser.add_argument("--cells", default="lstm", help="cells compared with --baseline (comma-separated)")
    args = parser.parse_args(argv)
    global CLOCK, DTYPE
    DTYPE = np.dtype(args.dtype).type
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    repeats = args.repeats or (3 if args.quick else 9)
    if args.baseline:
        print(machine() + f", {args.clock} clock, repeats per implementation: {repeats}\n")
        bench_baseline(args.baseline, [c.strip() for c in args.cells.split(",") if c.strip()],
                       sizes, repeats)
        return
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch is not installed: its columns are skipped (pip install torch)")
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    kernels = os.environ.get("OPENBLAS_CORETYPE", "auto-detected")
    print(machine() + f", NumPy BLAS threads {blas}, OpenBLAS kernels {kernels}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ""))
    print(f"repeats per implementation: {repeats}, {args.clock} clock\n")
    bench_calls()
    bench_cells(torch, sizes, repeats)
    if torch is not None:
        bench_plain(torch, sizes, repeats)
    bench_lstm(torch, sizes, repeats)
    bench_layernorm(torch, sizes, repeats)
    if "tall" in sizes:
        bench_checkpoint(repeats)


if __name__ == "__main__":
    main()
