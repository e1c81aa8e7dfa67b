"""Three SGD steps of a generated LSTM + a linear head under DistributedDataParallel (gloo,
two processes on this CPU, float64), against one process training on the whole batch.

Run by tests/test_distributed.py in a subprocess with a time limit:
`python torch_ddp.py STORE OUT` exits 0 when every parameter agrees to 1e-6 and prints the
largest difference either way.  The processes meet through STORE, a file that does not
exist yet (a FileStore): no port is chosen in advance, so no other program can take it first.
"""
import importlib.util
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

GENERATED = Path(__file__).resolve().parents[2] / "generated" / "torch" / "lstm.py"
T, B, D, H, STEPS, LR, WORLD = 5, 8, 3, 4, 3, 0.1, 2


def cell_module():
    spec = importlib.util.spec_from_file_location("generated_torch_lstm", GENERATED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Net(torch.nn.Module):
    """The generated LSTM's last output through a linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = cell_module().LSTM(D, H, dtype=torch.float64)
        self.head = torch.nn.Linear(H, 1, dtype=torch.float64)

    def forward(self, xs):
        outputs, _ = self.rnn(xs)
        return self.head(outputs[-1])


def batch():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(T, B, D, generator=g, dtype=torch.float64),
            torch.randn(B, 1, generator=g, dtype=torch.float64))


def train(net, model, xs, ys):
    """STEPS of SGD on the mean squared error; `model` is net or its DDP wrapper."""
    optimiser = torch.optim.SGD(net.parameters(), lr=LR)
    for _ in range(STEPS):
        optimiser.zero_grad()
        ((model(xs) - ys) ** 2).mean().backward()
        optimiser.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def worker(rank, store, out):
    dist.init_process_group("gloo", init_method=Path(store).as_uri(), rank=rank, world_size=WORLD)
    try:
        net = Net()
        xs, ys = batch()
        rows = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
        trained = train(net, torch.nn.parallel.DistributedDataParallel(net), xs[:, rows], ys[rows])
        if rank == 0:
            torch.save(trained, out)
        # both ranks reach the teardown together: a rank that tears gloo down while the other
        # still talks to it can abort ("terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main(store, out):
    torch.set_num_threads(1)
    mp.spawn(worker, args=(store, out), nprocs=WORLD, join=True)
    net = Net()
    whole = train(net, net, *batch())
    apart = torch.load(out)
    worst = max((whole[k] - apart[k]).abs().max().item() for k in whole)
    moved = max((whole[k] - Net().state_dict()[k]).abs().max().item() for k in whole)
    print(f"largest difference {worst:.3g} (training moved parameters by up to {moved:.3g})")
    return 0 if worst < 1e-6 and moved > 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
