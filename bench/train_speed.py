"""Training steps/s of PyTorch (Python) for the benchmark in bench/train_speed.sh.

Same model, batch and optimizer as `target/release/examples/train_speed`:
nn.Sequential(Flatten, Linear(784,256), ReLU, Linear(256,128), ReLU, Linear(128,10)),
Adam(lr=1e-3), cross-entropy, batch 256 of random 1x28x28 inputs (a pool of 16 batches), CPU.
"""
import argparse
import time

import torch
from torch import nn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs = [torch.randn(args.batch, 1, 28, 28) for _ in range(16)]
    ys = [torch.randint(0, 10, (args.batch,)) for _ in range(16)]

    def step(i: int) -> float:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(xs[i % 16]), ys[i % 16])
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    secs = time.perf_counter() - start
    print(f"pytorch-python torch {torch.__version__} threads {args.threads}: {args.steps / secs:.1f} steps/s")


if __name__ == "__main__":
    main()
