"""Generates the L-BFGS traces in this folder with torch.optim.LBFGS (PyTorch 2.15, CPU, float64).

Run: python3 generate.py  (writes lbfgs-*.json beside this script)

Problems (one parameter `x`, float64): `rosenbrock2` (start [-1.5, 2]), `rosenbrock10`
(sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2, start alternating -1.2, 1.0), `lstsq`
(0.5 ||A x - b||^2, A 6x4, b 6, start 0). Each case: the Gradus config (torch's keyword names),
three outer `step(closure)` calls; after each: the returned loss, x, func_evals and n_iter.
"""
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64
A = [[1.0, 2.0, 0.5, -1.0], [0.0, 1.0, -1.0, 2.0], [3.0, -0.5, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0],
     [-2.0, 0.5, 0.25, 1.5], [0.5, -1.0, 2.0, -0.5]]
B = [1.0, -2.0, 0.5, 3.0, -1.0, 2.0]


def rosen(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def lstsq(x):
    r = torch.tensor(A, dtype=DT) @ x - torch.tensor(B, dtype=DT)
    return 0.5 * (r * r).sum()


PROBLEMS = {
    "rosenbrock2": (rosen, [-1.5, 2.0]),
    "rosenbrock10": (rosen, [-1.2 if i % 2 == 0 else 1.0 for i in range(10)]),
    "lstsq": (lstsq, [0.0] * 4),
}


def run(problem, config, steps=3):
    f, x0 = PROBLEMS[problem]
    x = torch.nn.Parameter(torch.tensor(x0, dtype=DT))
    opt = torch.optim.LBFGS([x], **config)

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    out = []
    for _ in range(steps):
        loss = opt.step(closure)
        st = opt.state[x]
        out.append({"loss": float(loss), "x": x.detach().tolist(), "func_evals": st["func_evals"],
                    "n_iter": st["n_iter"]})
    name = f"lbfgs-{problem}-{'wolfe' if config.get('line_search_fn') else 'fixed'}"
    case = {"torch": f"torch.optim.LBFGS(**{config!r}) {torch.__version__}", "problem": problem,
            "optimizer": {"type": "lbfgs", **config}, "x0": x0, "steps": out}
    with open(os.path.join(HERE, name + ".json"), "w") as fh:
        json.dump(case, fh, indent=1)


for p in PROBLEMS:
    run(p, {"line_search_fn": "strong_wolfe", "max_iter": 8})
run("rosenbrock2", {"lr": 0.001, "max_iter": 6, "history_size": 4})
run("rosenbrock10", {"lr": 0.0005, "max_iter": 6})
run("lstsq", {"lr": 0.1, "max_iter": 10, "history_size": 3})
