"""Golden learning rates of torch.optim.swa_utils.SWALR (PyTorch 2.15.0, float64) -> swalr.json.

Each case: an SGD optimizer with base learning rates `base_lrs` (one per group); optionally
`before` epochs of ExponentialLR(gamma=0.9) first (the schedule SWA takes over from); then SWALR
built with `kwargs` and stepped `steps` times. `lr[k][g]` is group g's learning rate after k SWALR
steps (k = 0: right after construction).

Run: python swalr.py [OUT_FILE]   (in a virtual environment with torch 2.15)
"""

import json
import os
import sys
import warnings

import torch
from torch.optim.swa_utils import SWALR

warnings.filterwarnings("ignore")


def case(base_lrs, kwargs, steps=30, before=0):
    params = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in base_lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)])
    if before:
        pre = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
        for _ in range(before):
            opt.step()
            pre.step()
    sched = SWALR(opt, **kwargs)
    lrs = [[g["lr"] for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    return {"base_lrs": base_lrs, "before": before, "kwargs": kwargs, "lr": lrs}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "swalr.json")
    cases = [
        case([0.1], {"swa_lr": 0.05}),
        case([0.1], {"swa_lr": 0.01, "anneal_epochs": 5, "anneal_strategy": "linear"}),
        case([0.1], {"swa_lr": 0.02, "anneal_epochs": 0}),
        case([0.1], {"swa_lr": 0.3, "anneal_epochs": 1, "anneal_strategy": "cos"}),
        case([0.1, 0.02], {"swa_lr": [0.05, 0.001], "anneal_epochs": 7}),
        case([0.1], {"swa_lr": 0.005, "anneal_epochs": 4, "anneal_strategy": "linear"}, before=6),
    ]
    doc = {"reference": {"package": "torch", "version": torch.__version__,
                         "class": "torch.optim.swa_utils.SWALR"},
           "cases": cases}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
