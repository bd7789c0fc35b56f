"""Which 4-bit state format learns like 32-bit AdamW: the design study of issue 19's
4-bit state, run on the model and text of examples/compare_optimizers.py.

Each candidate keeps AdamW's two moments as 4-bit codes (two per byte) with fp32 scales
and runs the step in fp32 in between, the way a fused 4-bit step does: decode, update
the moments and the parameter, encode. The step is plain torch here (slow and
unfused): only what the formats learn is compared, not speed. Candidates:

- first moment: the signed 4-bit dynamic code (bitsandbytes' dynamic map with 3 decades
  of 1, 2 and 4 values per sign, plus 0 and 1) in blocks of 128;
- second moment: the unsigned 4-bit dynamic code (which has a zero) or the linear code
  without zero ((k + 1) / 16, what "Memory Efficient Optimizers with 4-bit States"
  recommends and torchao's AdamW4bit uses), normalized per block of 128 or by rank-1
  normalization (each value over min(its row's max, its column's max), for 2-D tensors;
  1-D ones fall back to blocks).

Next to them: torch's AdamW (the reference), octopage's AdamW8bit, and torchao's
AdamW4bit when torchao is installed. Tensors under 4096 elements keep fp32 state in
every candidate, as octopage's min_8bit_size does. Run from the repository root:

    PYTHONPATH=build/python .venv/bin/python bench/q4_formats.py --steps 300
"""
import argparse
import contextlib
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch

from octopage import optim

ROOT = Path(__file__).resolve().parent.parent
MIN_QUANTIZED_SIZE = 4096
BLOCK = 128


def load_example():
    spec = importlib.util.spec_from_file_location("compare_optimizers", ROOT / "examples" / "compare_optimizers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dynamic_code(signed, bits=4, decades=3):
    """bitsandbytes' dynamic map with `decades` decades: decade i of [0.1, 1) * 10^(i + 1 -
    decades) holds the midpoints of linspace(0.1, 1, k + 1), k = 2^i values per sign when
    signed and 2^(i + 1) unsigned; 0 and 1 complete it."""
    values = [0.0, 1.0]
    for i in range(decades):
        k = 2 ** i if signed else 2 ** (i + 1)
        points = torch.linspace(0.1, 1, k + 1, dtype=torch.float32)
        means = ((points[:-1] + points[1:]) / 2 * 10.0 ** (i + 1 - decades)).tolist()
        values += means + ([-m for m in means] if signed else [])
    assert len(values) == 2 ** bits, len(values)
    return torch.tensor(sorted(values), dtype=torch.float32)


def linear_code_without_zero(bits=4):
    return torch.arange(1, 2 ** bits + 1, dtype=torch.float32) / 2 ** bits


class Format:
    """A 4-bit code and a normalization ('block' or 'rank1'); state is packed codes plus
    fp32 scales (one per block, or a row and a column vector)."""

    def __init__(self, name, code, normalization):
        self.name, self.code, self.normalization = name, code, normalization
        self.midpoints = (code[1:] + code[:-1]) / 2

    def scales(self, x):
        if self.normalization == "rank1" and x.dim() == 2:
            magnitude = x.abs()
            return (magnitude.amax(dim=1), magnitude.amax(dim=0))
        flat = torch.nn.functional.pad(x.reshape(-1), (0, -x.numel() % BLOCK))
        return (flat.view(-1, BLOCK).abs().amax(dim=1),)

    def scale_of(self, shape, scales):
        if len(scales) == 2:
            return torch.minimum(scales[0][:, None], scales[1][None, :])
        numel = math.prod(shape)
        return scales[0].repeat_interleave(BLOCK)[:numel].view(shape)

    def encode(self, x):
        scales = self.scales(x)
        scale = self.scale_of(x.shape, scales)
        normalized = x / torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = torch.bucketize(normalized.reshape(-1).contiguous(), self.midpoints).to(torch.uint8)
        codes = torch.nn.functional.pad(codes, (0, codes.numel() % 2))
        return codes[0::2] | (codes[1::2] << 4), scales  # two codes per byte

    def decode(self, packed, scales, shape):
        codes = torch.stack([packed & 15, packed >> 4], dim=1).reshape(-1)[:math.prod(shape)]
        return self.code[codes.long()].view(shape) * self.scale_of(shape, scales)


class QuantizedAdamW(torch.optim.Optimizer):
    """torch.optim.AdamW's math with both moments stored in the given formats."""

    def __init__(self, params, first, second, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.formats = (first, second)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                quantized = p.numel() >= MIN_QUANTIZED_SIZE
                if not state:
                    state["step"] = 0
                    for key, fmt in zip(("m", "v"), self.formats):
                        zeros = torch.zeros_like(p)
                        if quantized:
                            state[key], scales = fmt.encode(zeros)
                            for i, s in enumerate(scales):
                                state[f"{key}_scale{i}"] = s
                        else:
                            state[key] = zeros
                moments = []
                for key, fmt in zip(("m", "v"), self.formats):
                    if quantized:
                        scales = tuple(state[f"{key}_scale{i}"] for i in range(2) if f"{key}_scale{i}" in state)
                        moments.append(fmt.decode(state[key], scales, p.shape))
                    else:
                        moments.append(state[key])
                m, v = moments
                state["step"] += 1
                t = state["step"]
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))
                if quantized:
                    for key, fmt, x in zip(("m", "v"), self.formats, (m, v)):
                        state[key], scales = fmt.encode(x)
                        for i, s in enumerate(scales):
                            state[f"{key}_scale{i}"] = s


def candidates():
    signed = Format("dynamic", dynamic_code(True), "block")
    return [
        ("4-bit m dynamic, v dynamic (zero), blocks", signed, Format("dynamic", dynamic_code(False), "block")),
        ("4-bit m dynamic, v dynamic (zero), rank-1", signed, Format("dynamic", dynamic_code(False), "rank1")),
        ("4-bit m dynamic, v linear no zero, blocks", signed, Format("linear", linear_code_without_zero(), "block")),
        ("4-bit m dynamic, v linear no zero, rank-1", signed, Format("linear", linear_code_without_zero(), "rank1")),
    ]


def count_state_bytes(example):
    """The example's state count, with torchao's 4-bit state counted as its codes and
    scales (its tensors report the fp32 size they stand for)."""
    own_count = example.state_memory

    def tensor_bytes(t):
        return t.codes.nbytes + t.scale.nbytes if hasattr(t, "codes") and hasattr(t, "scale") else t.nbytes

    def state_memory(opt):
        if isinstance(opt, optim.Optimizer):
            return own_count(opt)
        ram = sum(tensor_bytes(t) for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor))
        return ram, 0, 0

    example.state_memory = state_memory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--no-torchao", action="store_true", help="skip torchao's AdamW4bit (its first step compiles)")
    own = parser.parse_args(argv)
    example = load_example()
    count_state_bytes(example)
    args = example.parse_args(["--steps", str(own.steps)])
    train_tokens, held_out = example.load_tokens(args)
    torch.manual_seed(args.seed)
    initial_state = example.Llama(args.dim, args.layers, args.heads, args.seq).state_dict()
    hyper = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)

    runs = [("torch AdamW (32-bit)", lambda params: torch.optim.AdamW(params, **hyper)),
            ("octopage AdamW8bit", lambda params: optim.AdamW8bit(params, **hyper))]
    if not own.no_torchao:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # torchao reports its optional CUDA libraries on stdout
                from torchao.optim import AdamW4bit
            runs.append(("torchao AdamW4bit", lambda params: AdamW4bit(params, **hyper, block_size=BLOCK)))
        except ImportError:
            print("torchao is not installed: its AdamW4bit is skipped", file=sys.stderr)
    for name, first, second in candidates():
        runs.append((name, lambda params, f=first, s=second: QuantizedAdamW(params, f, s, **hyper)))

    print(f"{args.steps} steps of {args.batch} x {args.seq} tokens, the model of examples/compare_optimizers.py",
          file=sys.stderr)
    results = []
    for name, make in runs:
        start = time.perf_counter()
        run = example.train(args, name, make, initial_state, train_tokens, held_out)
        results.append(run)
        print(f"  {name}: eval {run['eval_loss']:.4f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    reference = results[0]
    print(f"| optimizer | train loss | eval loss | eval vs 32-bit | state bytes |")
    print(f"|---|---:|---:|---:|---:|")
    for run in results:
        print(f"| {run['name']} | {run['train_loss']:.4f} | {run['eval_loss']:.4f} | "
              f"{run['eval_loss'] / reference['eval_loss'] - 1:+.2%} | {run['state_ram_bytes']:,} |")


if __name__ == "__main__":
    main()
