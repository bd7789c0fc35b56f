"""Trains a small LLaMA-style language model with torch's AdamW and with octopage's
optimizers, from the same initial weights on the same batches, and prints side by side
what each one costs (state memory, step time) and what it learns (loss).

It shows that octopage's AdamW follows torch's AdamW, that 8-bit state learns nearly as
well with a quarter of the memory, and that paged and offloaded 8-bit state give
*bitwise* the parameters of AdamW8bit with the state out of RAM. Nothing is downloaded:
the text is generated from the seed (arithmetic facts and simple sentences), or read
from --text FILE. Tokens are bytes.

Run, from the repository root after a build:

    PYTHONPATH=build/python .venv/bin/python examples/compare_optimizers.py
    PYTHONPATH=build/python .venv/bin/python examples/compare_optimizers.py --steps 500 --json runs.json

It is not a benchmark of the optimizers alone (bench/peers.py is): the step time here
includes the model's small tensors, and the model is small enough to train on a laptop.
"""
import argparse
import hashlib
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from octopage import optim

VOCAB = 256  # byte-level tokens
MIN_8BIT_SIZE = 4096  # octopage's default: smaller tensors keep fp32 state
# The offload ring (default 32 MiB) is sized for models of hundreds of millions of
# parameters; this model's whole state is a few MiB, so it gets a 1 MiB ring.
OFFLOAD_RING_BYTES = 1 << 20
OFFLOAD_CHUNK_BYTES = 256 << 10
EVAL_BATCHES = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="training steps per optimizer")
    parser.add_argument("--dim", type=int, default=192, help="model width")
    parser.add_argument("--layers", type=int, default=4, help="transformer blocks")
    parser.add_argument("--heads", type=int, default=6, help="attention heads")
    parser.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, the text and the batches")
    parser.add_argument("--text", type=Path, help="train on this file's bytes instead of the generated text")
    parser.add_argument("--json", type=Path, help="also write the figures, with every step's loss, here")
    parser.add_argument("--offload-dir", type=Path,
                        help="directory for paged and offloaded state files (default: a temporary one)")
    args = parser.parse_args(argv)
    for name in ("steps", "dim", "layers", "heads", "seq", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    if args.dim % args.heads != 0 or (args.dim // args.heads) % 2 != 0:
        parser.error(f"--dim must be a multiple of --heads with an even quotient (rotary embedding), "
                     f"got --dim {args.dim} --heads {args.heads}")
    if args.text is not None and not args.text.is_file():
        parser.error(f"--text {args.text}: no such file")
    if args.offload_dir is not None and not args.offload_dir.is_dir():
        parser.error(f"--offload-dir {args.offload_dir}: no such directory")
    return args


# ---------------------------------------------------------------------------------------
# Data: bytes of text, batches drawn from the step number.


def generated_text(seed, lines=6000):
    """Arithmetic facts and simple sentences, the same for the same seed."""
    rng = random.Random(seed)
    nouns = ["cat", "dog", "bird", "child", "farmer", "robot", "teacher", "river", "ship", "tree"]
    verbs = ["sees", "likes", "follows", "paints", "finds", "carries", "hears", "draws"]
    adjectives = ["red", "small", "happy", "old", "quiet", "green", "fast", "tall"]
    out = []
    for _ in range(lines):
        if rng.random() < 0.5:
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            op = rng.choice("+-*")
            result = {"+": a + b, "-": a - b, "*": a * b}[op]
            out.append(f"{a} {op} {b} = {result}.")
        else:
            out.append(f"the {rng.choice(adjectives)} {rng.choice(nouns)} {rng.choice(verbs)} "
                       f"the {rng.choice(adjectives)} {rng.choice(nouns)}.")
    return "\n".join(out).encode()


def load_tokens(args):
    """(train, held-out) byte tensors: the first 90% of the text and the last 10%."""
    data = args.text.read_bytes() if args.text is not None else generated_text(args.seed)
    tokens = torch.tensor(list(data), dtype=torch.long)
    split = len(tokens) * 9 // 10
    train, held_out = tokens[:split], tokens[split:]
    if len(held_out) < args.seq + 2:
        raise SystemExit(f"error: the text has {len(tokens)} bytes; --seq {args.seq} needs at least "
                         f"{10 * (args.seq + 2)} (its last 10% is held out for evaluation)")
    return train, held_out


def batch_at(tokens, seed, index, batch, seq):
    """Inputs and next-byte targets at offsets drawn from (seed, index) alone, so every
    optimizer sees the same batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    starts = torch.randint(0, len(tokens) - seq - 1, (batch,), generator=generator)
    x = torch.stack([tokens[s:s + seq] for s in starts])
    y = torch.stack([tokens[s + 1:s + seq + 1] for s in starts])
    return x, y


# ---------------------------------------------------------------------------------------
# Model: a LLaMA-style decoder (RMSNorm, rotary attention, SwiGLU MLP), untied head.


def rotary_tables(seq, head_dim, base=10000.0):
    """cos and sin of each position's rotation angles, (seq, head_dim / 2)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotates pairs (x[i], x[i + head_dim/2]) of x (batch, heads, seq, head_dim)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        batch, seq, dim = x.shape
        q, k, v = (w(x).view(batch, seq, self.heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(batch, seq, dim))


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        hidden = 64 * math.ceil(dim * 8 / 3 / 64)  # LLaMA's 8/3 ratio, rounded up to 64
        self.attention_norm = nn.RMSNorm(dim)
        self.attention = Attention(dim, heads)
        self.mlp_norm = nn.RMSNorm(dim)
        self.mlp = SwiGLU(dim, hidden)

    def forward(self, x, cos, sin):
        x = x + self.attention(self.attention_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, dim, layers, heads, seq):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.RMSNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        cos, sin = rotary_tables(seq, dim // heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(self.norm(x))


def loss_of(model, x, y):
    return F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))


# ---------------------------------------------------------------------------------------
# Optimizers: the same hyperparameters for all, state placed differently.


def optimizer_runs(args):
    """(name, constructor) of each optimizer compared; torch's AdamW is the reference."""
    hyper = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    tiers = {} if args.offload_dir is None else {"offload_dir": args.offload_dir}
    return [
        ("torch AdamW", lambda params: torch.optim.AdamW(params, fused=True, **hyper)),
        ("AdamW", lambda params: optim.AdamW(params, **hyper)),
        ("AdamW8bit", lambda params: optim.AdamW8bit(params, **hyper)),
        ("PagedAdamW8bit", lambda params: optim.PagedAdamW8bit(params, **hyper, **tiers)),
        ("AdamW8bit offload", lambda params: optim.AdamW8bit(
            params, **hyper, placement="offload", ring_bytes=OFFLOAD_RING_BYTES,
            chunk_bytes=OFFLOAD_CHUNK_BYTES, **tiers)),
    ]


def warmup_cosine(steps):
    """LambdaLR's factor: linear warmup over the first 10% of steps, cosine to 10% after."""
    warmup = max(1, steps // 10)

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def state_memory(opt):
    """Optimizer state bytes: (in RAM, in files, staging ring)."""
    if isinstance(opt, optim.Optimizer):
        report = opt.memory_report()
        state = report["state_bytes"]  # 'device' is RAM too on the CPU
        return state["host"] + state["device"], state["file"], report["staging_bytes"]
    ram = sum(t.nbytes for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor))
    return ram, 0, 0


def parameters_sha256(model):
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().numpy().tobytes())
    return digest.hexdigest()


def train(args, name, make_optimizer, initial_state, train_tokens, held_out):
    """One run from initial_state; returns its figures."""
    model = Llama(args.dim, args.layers, args.heads, args.seq)
    model.load_state_dict(initial_state)
    opt = make_optimizer(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(args.steps))
    losses, step_seconds, train_seconds = [], [], []
    for step in range(args.steps):
        start = time.perf_counter()
        x, y = batch_at(train_tokens, args.seed, step, args.batch, args.seq)
        loss = loss_of(model, x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        step_start = time.perf_counter()
        opt.step()
        step_seconds.append(time.perf_counter() - step_start)
        scheduler.step()
        train_seconds.append(time.perf_counter() - start)
        losses.append(loss.item())

    with torch.no_grad():
        eval_losses = [loss_of(model, *batch_at(held_out, args.seed + 1, i, args.batch, args.seq)).item()
                       for i in range(EVAL_BATCHES)]
    last = losses[-max(1, args.steps // 10):]
    ram, file, staging = state_memory(opt)
    return {
        "name": name,
        "train_loss": sum(last) / len(last),
        "eval_loss": sum(eval_losses) / len(eval_losses),
        "state_ram_bytes": ram,
        "state_file_bytes": file,
        "staging_bytes": staging,
        "step_ms": 1e3 * statistics.median(step_seconds),
        "tokens_per_s": args.batch * args.seq / statistics.median(train_seconds),
        "params_sha256": parameters_sha256(model),
        "losses": losses,
    }


# ---------------------------------------------------------------------------------------
# Report.


def add_comparisons(runs):
    """Figures relative to torch's AdamW (runs[0]) and bitwise equality with AdamW8bit."""
    reference = runs[0]
    adamw8bit = next(r for r in runs if r["name"] == "AdamW8bit")
    for run in runs:
        run["eval_loss_vs_torch_pct"] = 100 * (run["eval_loss"] / reference["eval_loss"] - 1)
        ram = run["state_ram_bytes"] + run["staging_bytes"]
        run["state_ram_saved_vs_torch_pct"] = 100 * (1 - ram / reference["state_ram_bytes"])
        run["bitwise_equal_to_adamw8bit"] = run["params_sha256"] == adamw8bit["params_sha256"]


def print_table(runs):
    mib = 1 / 2**20
    rows = [
        ("train loss (last 10% of steps)", lambda r: f"{r['train_loss']:.4f}"),
        ("eval loss (held-out text)", lambda r: f"{r['eval_loss']:.4f}"),
        ("eval loss vs torch AdamW", lambda r: f"{round(r['eval_loss_vs_torch_pct'], 2) + 0.0:+.2f}%"),
        ("state in RAM (MiB)", lambda r: f"{r['state_ram_bytes'] * mib:.2f}"),
        ("state in file (MiB)", lambda r: f"{r['state_file_bytes'] * mib:.2f}"),
        ("staging ring (MiB)", lambda r: f"{r['staging_bytes'] * mib:.2f}"),
        ("state RAM saved vs torch AdamW", lambda r: f"{r['state_ram_saved_vs_torch_pct']:.1f}%"),
        ("optimizer step (ms, median)", lambda r: f"{r['step_ms']:.2f}"),
        ("tokens/s (whole training step)", lambda r: f"{r['tokens_per_s']:.0f}"),
        ("bitwise equal to AdamW8bit", lambda r: "yes" if r["bitwise_equal_to_adamw8bit"] else "no"),
    ]
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(r["name"]), 10) for r in runs]
    print(f"| {'':<{label_width}} | " + " | ".join(f"{r['name']:>{w}}" for r, w in zip(runs, widths)) + " |")
    print(f"|-{'-' * label_width}-|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for label, cell in rows:
        print(f"| {label:<{label_width}} | " + " | ".join(f"{cell(r):>{w}}" for r, w in zip(runs, widths)) + " |")


def main(argv=None):
    args = parse_args(argv)
    train_tokens, held_out = load_tokens(args)
    torch.manual_seed(args.seed)
    initial_state = Llama(args.dim, args.layers, args.heads, args.seq).state_dict()
    parameter_count = sum(t.numel() for t in initial_state.values())
    parameters_8bit = sum(t.numel() for t in initial_state.values() if t.numel() >= MIN_8BIT_SIZE)
    print(f"LLaMA-style model: {parameter_count / 1e6:.2f}M parameters ({parameters_8bit / parameter_count:.1%} in "
          f"tensors of >= {MIN_8BIT_SIZE} elements, which get 8-bit state); {args.steps} steps of "
          f"{args.batch} x {args.seq} tokens; {torch.get_num_threads()} threads", file=sys.stderr)

    runs = []
    for i, (name, make_optimizer) in enumerate(optimizer_runs(args)):
        start = time.perf_counter()
        run = train(args, name, make_optimizer, initial_state, train_tokens, held_out)
        runs.append(run)
        print(f"[{i + 1}/5] {name}: loss {run['losses'][0]:.3f} -> {run['train_loss']:.3f}, eval "
              f"{run['eval_loss']:.3f}, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    add_comparisons(runs)
    print_table(runs)
    if args.json is not None:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        config["parameters"] = parameter_count
        args.json.write_text(json.dumps({"config": config, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
