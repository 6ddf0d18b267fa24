"""PyTorch twin of the optim bench's MLP step: 784-512-512-10, ReLU, cross-entropy, batch 128,
forward + backward + Adam (fused), f32, on the CPU; the same fixed inputs and labels as
`benches/src/mlp.rs`. Prints one JSON line per dtype: the median step time in ms.

Run beside `cargo bench -p gradus-benches --bench optim -- mlp` (or read its
`target/gradus-bench/summary.md` MLP table) to get the ratio in one session:

    python benches/torch/mlp_step.py --threads 2 --steps 200
"""

import argparse
import json
import statistics
import time

import torch


def model(dtype):
    torch.manual_seed(0)
    layers = torch.nn.Sequential(
        torch.nn.Linear(784, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    )
    return layers.to(dtype)


def batch(size, dtype):
    # The Rust bench's inputs: ((i * 7919) % 255) / 255 and labels (i * 7) % 10.
    x = torch.tensor([((i * 7919) % 255) / 255.0 for i in range(size * 784)], dtype=torch.float32)
    y = torch.tensor([(i * 7) % 10 for i in range(size)], dtype=torch.long)
    return x.reshape(size, 784).to(dtype), y


def median_step_ms(dtype, size, steps):
    net = model(dtype)
    # fused=True is PyTorch's fastest Adam (CPU fused kernels since 2.4), in f32 or bf16.
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    x, y = batch(size, dtype)
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, dtype in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
        ms = median_step_ms(dtype, args.batch, args.steps)
        print(json.dumps({"mlp_step": name, "batch": args.batch, "median_ms": ms,
                          "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
