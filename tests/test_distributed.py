"""Our derived backward where training is spread out: PyTorch DistributedDataParallel (gloo,
two processes on this CPU) and JAX with the batch sharded over two host CPU devices.

Each runs `tests/distributed/<script>.py` in a subprocess that starts and stops its own
workers, under a hard time limit: three SGD steps of a generated LSTM + a linear head in
float64, the parameters equal to 1e-6 to one process training on the whole batch.
Skipped without the framework, a failure when CI=true.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "distributed"
LIMIT = 240   # seconds; each takes ~10-30 s on two cores


def needs(package):
    if os.environ.get("CI") != "true":
        pytest.importorskip(package)


def run(script, *args, env=None):
    result = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True,
                            text=True, timeout=LIMIT, env=dict(os.environ, **(env or {})))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_torch_ddp_gloo_two_processes_equals_one(tmp_path):
    needs("torch")
    print(run("torch_ddp.py", tmp_path / "store", tmp_path / "rank0.pt"))


def test_jax_batch_sharded_over_two_cpu_devices_equals_one():
    needs("jax")
    print(run("jax_sharded.py", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}))
