"""Golden data for weight averaging (torch.optim.swa_utils, PyTorch 2.15.0, CPU, float64).

Writes, into the directory given as the only argument (default: this script's directory):

- ema-<k>.json: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay));
- swa-<k>.json: AveragedModel(model) (equal average, SWA);
- update_bn-0.json: update_bn(loader, model) on a Linear-BatchNorm1d-ReLU-Linear-BatchNorm1d
  model whose running statistics were first moved by training-mode passes.

Run: python averaging.py [OUT_DIR]   (in a virtual environment with torch 2.15)
"""

import json
import os
import sys

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

torch.set_default_dtype(torch.float64)


def flat(t):
    return t.detach().reshape(-1).tolist()


class Two(torch.nn.Module):
    """Two parameters, `a` (2, 3) and `b` (3,), named as a Gradus model would name them."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(2, 3))
        self.b = torch.nn.Parameter(torch.zeros(3))


def trace(kind, decay, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    model = Two()
    with torch.no_grad():
        model.a.copy_(torch.randn(2, 3, generator=gen))
        model.b.copy_(torch.randn(3, generator=gen))
    if kind == "ema":
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
        config = {"type": "ema", "decay": decay}
        reference = f"AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn({decay}))"
    else:
        averaged = AveragedModel(model)
        config = {"type": "swa", "start_epoch": 1, "swa_lr": 0.05}
        reference = "AveragedModel(model)"
    params, expected, n_averaged = [], [], []
    for _ in range(steps):
        # A training step's outcome: the parameters drift by a random amount.
        with torch.no_grad():
            model.a.add_(0.5 * torch.randn(2, 3, generator=gen))
            model.b.add_(0.5 * torch.randn(3, generator=gen))
        params.append([flat(model.a), flat(model.b)])
        averaged.update_parameters(model)
        expected.append([flat(averaged.module.a), flat(averaged.module.b)])
        n_averaged.append(int(averaged.n_averaged))
    return {
        "reference": {"package": "torch", "version": torch.__version__,
                      "call": reference + ".update_parameters(model)"},
        "averaging": config,
        "names": ["a", "b"],
        "shapes": [[2, 3], [3]],
        "params": params,
        "expected": expected,
        "n_averaged": n_averaged,
    }


def bn_stats(model):
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            out.append({"running_mean": flat(m.running_mean), "running_var": flat(m.running_var),
                        "num_batches_tracked": int(m.num_batches_tracked)})
    return out


def update_bn_case():
    gen = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
        torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    warmup = [torch.randn(6, 3, generator=gen) * 2 + 1 for _ in range(2)]
    model.train()
    for x in warmup:
        model(x)
    before = bn_stats(model)
    # Unequal batches: update_bn averages batch statistics with equal weight per batch.
    batches = [torch.randn(n, 3, generator=gen) * 3 - 0.5 for n in (5, 5, 3)]
    model.eval()
    update_bn(batches, model)
    after = bn_stats(model)
    # The momentum is back: one more training pass moves the statistics by 0.1.
    extra = torch.randn(4, 3, generator=gen)
    model.train()
    model(extra)
    after_extra = bn_stats(model)
    names = {0: "layers.0", 1: "layers.1", 3: "layers.3", 4: "layers.4"}
    params = {f"{names[int(k.split('.')[0])]}.{k.split('.')[1]}": flat(v)
              for k, v in model.named_parameters()}
    return {
        "reference": {"package": "torch", "version": torch.__version__,
                      "call": "update_bn(batches, model)"},
        "layers": [{"type": "linear", "out": 4}, {"type": "batch_norm"}, {"type": "relu"},
                   {"type": "linear", "out": 2}, {"type": "batch_norm"}],
        "input": [3],
        "params": params,
        "batch_norm_layers": ["layers.1", "layers.4"],
        "warmup": [flat(x) for x in warmup],
        "warmup_batch": 6,
        "before": before,
        "batches": [{"n": x.shape[0], "data": flat(x)} for x in batches],
        "after": after,
        "extra": flat(extra),
        "after_extra": after_extra,
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    cases = {
        "ema-0": trace("ema", 0.9, 10, 1),
        "ema-1": trace("ema", 0.3, 6, 2),  # 1 - decay >= 0.5: torch.lerp's other branch
        "swa-0": trace("swa", None, 10, 3),
        "update_bn-0": update_bn_case(),
    }
    for name, case in cases.items():
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(case, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
