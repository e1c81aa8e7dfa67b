"""Three SGD steps of a generated JAX LSTM + a linear head with the batch sharded over two
host CPU devices (shard_map, the loss averaged over them with pmean, float64), against one device
training on the whole batch.

Run by tests/test_distributed.py in a subprocess with a time limit and
XLA_FLAGS=--xla_force_host_platform_device_count=2 (set before jax is imported); exits 0
when every parameter agrees to 1e-6 and prints the largest difference either way.
"""
import importlib.util
import os
import sys
from functools import partial
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import Mesh, PartitionSpec as P  # noqa: E402

jax.config.update("jax_enable_x64", True)
GENERATED = Path(__file__).resolve().parents[2] / "generated" / "jax" / "lstm.py"
T, B, D, H, STEPS, LR = 5, 8, 3, 4, 3, 0.1


def cell_module():
    spec = importlib.util.spec_from_file_location("generated_jax_lstm", GENERATED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LSTM = cell_module()


def init():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    return dict(rnn=LSTM.init_params(k1, D, H, dtype=jnp.float64),
                head_w=jax.random.normal(k2, (H, 1), jnp.float64) * 0.5,
                head_b=jnp.zeros((1,), jnp.float64)), \
        jax.random.normal(k3, (T, B, D), jnp.float64), jax.random.normal(k4, (B, 1), jnp.float64)


def loss(params, xs, ys):
    outputs, _ = LSTM.forward(params["rnn"], xs)
    return jnp.mean((outputs[-1] @ params["head_w"] + params["head_b"] - ys) ** 2)


def sgd(params, grads):
    return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)


@jax.jit
def whole_step(params, xs, ys):
    return sgd(params, jax.grad(loss)(params, xs, ys))


def sharded_step(mesh):
    @jax.jit
    @partial(jax.shard_map, mesh=mesh, in_specs=(P(), P(None, "batch"), P("batch")), out_specs=P())
    def step(params, xs, ys):
        # the mean over devices of each half's mean (equal halves) is the whole batch's mean;
        # the replicated parameters' gradients are summed over the devices by the differentiation
        grads = jax.grad(lambda p: jax.lax.pmean(loss(p, xs, ys), "batch"))(params)
        return sgd(params, grads)
    return step


def main():
    devices = jax.devices("cpu")
    assert len(devices) == 2, f"expected two host CPU devices, found {len(devices)} (XLA_FLAGS?)"
    params0, xs, ys = init()
    whole, apart = params0, params0
    step = sharded_step(Mesh(devices, ("batch",)))
    for _ in range(STEPS):
        whole = whole_step(whole, xs, ys)
        apart = step(apart, xs, ys)
    leaves = zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(apart))
    worst = max(float(jnp.max(jnp.abs(a - b))) for a, b in leaves)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(params0)))
    print(f"largest difference {worst:.3g} (training moved parameters by up to {moved:.3g})")
    return 0 if worst < 1e-6 and moved > 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
