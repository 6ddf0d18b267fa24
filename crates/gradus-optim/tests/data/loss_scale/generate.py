"""Generates the GradScaler traces in this folder with torch.amp.GradScaler (PyTorch 2.15, CPU).

Run: python3 generate.py  (writes gradscaler-*.json beside this script)

Each case: a float32 parameter `w` (shape [3]) trained by torch.optim.SGD(lr=0.1); at step k the
parameter's gradient is set to `scaled_grads[k]` (the gradient of the scaled loss, as backward
would leave it), then `scaler.step(opt)` and `scaler.update()`. Recorded after each step:
whether the optimizer stepped, the scale and growth tracker after update(), the parameter, and
`scale(loss)` of the loss 1.5 (float32, 0-dim) before the step.
"""
import json
import math
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
INF, NAN = math.inf, math.nan


def enc(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def run(name, kwargs, raw):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float32))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **kwargs)
    steps = []
    for g in raw:
        scaled_loss = scaler.scale(torch.tensor(1.5, dtype=torch.float32))
        # The gradient backward of the scaled loss would give: the raw gradient times the scale.
        scale = scaler.get_scale()
        grad = torch.tensor(g, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)
        w.grad = grad.clone()
        scaler.step(opt)
        found_inf = sum(v.item() for v in scaler._found_inf_per_device(opt).values())
        scaler.update()
        steps.append({
            "scaled_loss": scaled_loss.item(),
            "scaled_grad": [enc(v) for v in grad.tolist()],
            "found_inf": found_inf != 0,
            "scale": scaler.get_scale(),
            "growth_tracker": int(scaler._growth_tracker.item()),
            "param": w.detach().tolist(),
        })
        opt.zero_grad()
    case = {
        "torch": f"torch.amp.GradScaler('cpu', **{kwargs!r}) {torch.__version__}",
        "config": kwargs,
        "lr": 0.1,
        "param0": [0.5, -1.0, 2.0],
        "raw_grads": [[enc(v) for v in g] for g in raw],
        "steps": steps,
        "state_dict": {k: (v if not isinstance(v, float) else v) for k, v in scaler.state_dict().items()},
    }
    with open(os.path.join(HERE, f"gradscaler-{name}.json"), "w") as f:
        json.dump(case, f, indent=1)


good = [0.25, -0.5, 1.0]
# Small interval: growth after every 3 good steps; non-finite values back off and reset.
seq = [good, good, [INF, 0.1, 0.2], good, good, good, good, [0.1, NAN, 0.3], [-INF, 1.0, 1.0],
       good, good, good, [1e-3, 2e-3, -3e-3], good]
run("small-interval", {"init_scale": 3.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                       "growth_interval": 3}, seq)
run("defaults", {}, [good, [NAN, 0.0, 0.0], good, [1e30, 1.0, 1.0], good])
run("custom-factors", {"init_scale": 1024.0, "growth_factor": 4.0, "backoff_factor": 0.25,
                       "growth_interval": 2}, [good, good, good, [INF, 1.0, 1.0], good, good, good])
