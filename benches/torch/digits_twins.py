"""PyTorch twins of the digits MLP and CNN pipelines (examples/pipelines/digits-{mlp,cnn}.json).

Run by `cargo xtask bench --against-torch PYTHON` (PYTHON: an interpreter with torch installed);
the project's tests never need it. Prints one JSON object per pipeline on stdout:
{"pipeline", "samples_per_second", "epochs", "test_accuracy", "threads", "torch"}.

Same data (the digits CSV embedded in gradus-data), split sizes (70/15/15, stratified),
standardization fitted on the training split, model, loss (cross-entropy, label smoothing
0.05), optimizer with bias groups free of weight decay, schedule, clipping (max_norm 5), batch
size 64 and (CNN) random crop of 8 with padding 1. The split and the initial weights are drawn
from torch's own generator, so accuracies agree in distribution, not bit for bit. samples/s is
over the training steps of every epoch (evaluation excluded), as gradus' train bench measures.
The crop is vectorized (per-sample offsets by gather), not a Python loop per sample.
"""

import argparse
import gzip
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DIGITS = os.path.join(ROOT, "crates", "gradus-data", "data", "digits.csv.gz")


def load_digits():
    with gzip.open(DIGITS, "rt") as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    if not rows[0][0].replace(".", "").isdigit():
        rows = rows[1:]
    data = torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float32)
    return data[:, :-1], data[:, -1].long()


def stratified_split(y, val, test, gen):
    train_idx, val_idx, test_idx = [], [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val, n_test = round(len(idx) * val), round(len(idx) * test)
        val_idx.append(idx[:n_val])
        test_idx.append(idx[n_val:n_val + n_test])
        train_idx.append(idx[n_val + n_test:])
    return torch.cat(train_idx), torch.cat(val_idx), torch.cat(test_idx)


def mlp():
    model = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(128, 10))
    nn.init.kaiming_normal_(model[0].weight, nonlinearity="relu")
    nn.init.xavier_uniform_(model[4].weight)
    return model


def cnn():
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))
    for i in (0, 3, 9):
        nn.init.kaiming_normal_(model[i].weight, nonlinearity="relu")
    nn.init.xavier_uniform_(model[11].weight)
    return model


def random_crop(x, pad, gen):
    """Per-sample random crop of the original size after zero padding (torchvision's RandomCrop)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, c, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, c, h, w)
    return cropped.gather(3, cols)


def groups(model, weight_decay):
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    free = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": free, "weight_decay": 0.0}]


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return acc


def train(name, epochs, gen):
    features, labels = load_digits()
    tr, va, te = stratified_split(labels, 0.15, 0.15, gen)
    mean, std = features[tr].mean(0), features[tr].std(0, unbiased=False)
    std[std == 0] = 1.0
    x = (features - mean) / std
    y = labels
    if name == "digits-cnn":
        x = x.reshape(-1, 1, 8, 8)
        model = cnn()
        opt = torch.optim.AdamW(groups(model, 0.01), lr=0.003)
        steps_per_epoch = -(-len(tr) // 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.005,
                                                    total_steps=max(800, epochs * steps_per_epoch))
        per_step = True
    else:
        model = mlp()
        opt = torch.optim.Adam(groups(model, 0.0), lr=0.003)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
        per_step = False
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    xtr, ytr = x[tr], y[tr]
    seconds, samples = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(tr), generator=gen)
        started = time.perf_counter()
        for start in range(0, len(tr), 64):
            idx = order[start:start + 64]
            xb, yb = xtr[idx], ytr[idx]
            if name == "digits-cnn":
                xb = random_crop(xb, 1, gen)
            loss = loss_fn(model(xb), yb)
            if name == "digits-mlp":
                loss = loss + 1e-4 * sum((p * p).sum() for n, p in model.named_parameters()
                                         if not n.endswith("bias"))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if per_step:
                sched.step()
            samples += len(idx)
        if not per_step:
            sched.step()
        seconds += time.perf_counter() - started
    return {"pipeline": name, "samples_per_second": samples / seconds, "epochs": epochs,
            "test_accuracy": accuracy(model, x[te], y[te]), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("pipelines", nargs="*", default=["digits-mlp", "digits-cnn"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.pipelines:
        gen = torch.Generator().manual_seed(args.seed)
        torch.manual_seed(args.seed)
        print(json.dumps(train(name, args.epochs, gen)), flush=True)


if __name__ == "__main__":
    main()
