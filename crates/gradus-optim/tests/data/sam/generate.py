"""Generates the SAM traces in this folder with pytorch-optimizer 4.1.0's SAM (PyTorch 2.15, CPU).

Run: python3 generate.py  (writes sam-*.json beside this script)

Problem: least squares, float64. Parameters W (2x3) and b (2), loss = mean((X W^T + b - Y)^2)
over 5 rows. Base optimizer: torch.optim.SGD(lr=0.1, momentum=0.9). Each step is
pytorch-optimizer's documented loop: closure() (gradients at w), then optimizer.step(closure)
(first_step, closure at w + e_w, second_step). Recorded after each step: the loss at w
(first closure) and both parameters (row-major).
"""
import json
import os

import torch
from pytorch_optimizer import SAM

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64

X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [-2.0, 1.0, 0.75], [0.1, 0.2, 0.3],
                  [1.0, -1.5, -0.25]], dtype=DT)
Y = torch.tensor([[1.0, -0.5], [0.25, 2.0], [-1.0, 0.5], [0.3, 0.1], [2.0, -2.0]], dtype=DT)
W0 = [[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]]
B0 = [0.05, -0.05]


def run(name, rho, adaptive, steps=6):
    W = torch.nn.Parameter(torch.tensor(W0, dtype=DT))
    b = torch.nn.Parameter(torch.tensor(B0, dtype=DT))
    opt = SAM([W, b], torch.optim.SGD, rho=rho, adaptive=adaptive, lr=0.1, momentum=0.9)
    out = []

    def closure():
        opt.zero_grad()
        loss = ((X @ W.T + b - Y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        loss = closure()
        opt.step(closure)
        out.append({"loss": loss.item(), "W": W.detach().flatten().tolist(), "b": b.detach().tolist()})
    case = {
        "reference": f"pytorch_optimizer.SAM(rho={rho}, adaptive={adaptive}), base torch.optim.SGD(lr=0.1, momentum=0.9), torch {torch.__version__}",
        "sam": {"rho": rho, "adaptive": adaptive},
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        "X": X.tolist(), "Y": Y.tolist(), "W0": W0, "b0": B0,
        "steps": out,
    }
    with open(os.path.join(HERE, f"sam-{name}.json"), "w") as f:
        json.dump(case, f, indent=1)


run("plain", 0.05, False)
run("adaptive", 0.5, True)
