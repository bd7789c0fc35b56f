"""octopage's AdamW next to the optimizers a user would otherwise pick, in one process on
the same tensors: step throughput in parameters/s and as a fraction of the memory
bandwidth measured here, plus the cost of octopage's Python layer.

    PYTHONPATH=build/python .venv/bin/python bench/peers.py [--sizes 10M,100M] [--small 1000] [--rounds 5]

Peers that are not installed (bitsandbytes, torchao, deepspeed) are listed as such.
DeepSpeed without a second torch: pip install --no-deps deepspeed, then its small
dependencies (hjson ninja py-cpuinfo pydantic msgpack psutil einops tqdm); the first
DeepSpeedCPUAdam builds its C++ op with ninja (about a minute; cached in
~/.cache/torch_extensions), and a failed build is listed with the reason.
A program that prints figures, never a test.
"""
import argparse
import json
import time

import torch

import octopage
from octopage import optim


def parse_size(text):
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1].upper(), 1)
    return int(float(text[:-1] if scale != 1 else text) * scale)


def median_time(fn, min_time):
    fn()  # creates state
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def write_jsonl(path, rows):
    """Every figure as a JSON line, for scripts/main --bench's collection."""
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def triad_bandwidth(n=50_000_000, min_time=1.0):
    """GB/s of b += s * c in place (the access pattern of a step): 3 x 4 bytes per element."""
    b, c = torch.ones(n), torch.ones(n)
    t = median_time(lambda: b.add_(c, alpha=0.5), min_time)
    return 12 * n / t / 1e9


def peers():
    """(name, bytes moved per parameter, factory) for every optimizer that is installed."""
    out = [
        ("octopage AdamW", 28, lambda ps: optim.AdamW(ps)),
        ("octopage AdamW8bit", 16.1, lambda ps: optim.AdamW8bit(ps)),
        ("torch AdamW fused", 28, lambda ps: torch.optim.AdamW(ps, fused=True)),
        ("torch AdamW foreach", 28, lambda ps: torch.optim.AdamW(ps, foreach=True)),
    ]
    missing = []
    try:
        import bitsandbytes as bnb
        out += [("bitsandbytes AdamW8bit", 16.1, lambda ps: bnb.optim.AdamW8bit(ps)),
                ("bitsandbytes AdamW", 28, lambda ps: bnb.optim.AdamW(ps))]
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        missing.append(f"bitsandbytes ({type(e).__name__})")
    try:
        from torchao.optim import AdamW8bit as AoAdamW8bit
        out.append(("torchao AdamW8bit", 16.1, lambda ps: AoAdamW8bit(ps)))
    except Exception as e:  # noqa: BLE001
        missing.append(f"torchao ({type(e).__name__})")
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam
        DeepSpeedCPUAdam([torch.nn.Parameter(torch.zeros(1))])  # builds (or loads) its C++ op now
        out.append(("deepspeed DeepSpeedCPUAdam", 28, lambda ps: DeepSpeedCPUAdam(ps, adamw_mode=True)))
    except Exception as e:  # noqa: BLE001 - not installed, or its op does not build here
        missing.append(f"deepspeed ({type(e).__name__}: {str(e)[:80]})")
    return out, missing


def measure(shapes, factory, min_time):
    params = [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = factory(params)
    return median_time(opt.step, min_time)


def measure_rounds(shapes, candidates, rounds, min_time):
    """Each candidate's median step time over `rounds` rounds; a round times every
    candidate once, on tensors of its own allocated afresh. This host's bandwidth drifts
    and differs between allocations (up to 1.7x here), so one timing per peer, one after
    another, would rank the host's moods; interleaved rounds set every peer against the
    same ones. A candidate that fails is reported once and dropped."""
    times = {name: [] for name, _, _ in candidates}
    failed = {}
    for _ in range(rounds):
        for name, _, factory in candidates:
            if name in failed:
                continue
            try:
                times[name].append(measure(shapes, factory, min_time / rounds))
            except Exception as e:  # noqa: BLE001 - a peer that fails here is reported, not fatal
                failed[name] = f"{type(e).__name__}: {str(e)[:60]}"
    medians = {name: sorted(t)[len(t) // 2] for name, t in times.items() if t and name not in failed}
    return medians, failed


def python_overhead(n, tensors, min_time):
    """octopage's full Python step against the compiled step with the same arguments
    prepared once: what the torch.optim layer adds."""
    size = n // tensors
    params = [torch.nn.Parameter(torch.randn(size)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = optim.AdamW(params)
    prepared = opt._core_groups()
    opt.step()  # creates state
    full, core = [], []
    pair = [(opt.step, full), (lambda: opt._core.step(prepared), core)]
    start = time.perf_counter()
    while time.perf_counter() - start < 2 * min_time or len(full) < 5:
        pair.reverse()  # alternating, each first half the time: the same bandwidth, no order bias
        for fn, times in pair:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return sorted(full)[len(full) // 2], sorted(core)[len(core) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10M,100M")
    parser.add_argument("--small", type=int, default=1000, help="also N tensors of 4096 elements (0: skip)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per optimizer and case, in all rounds")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case (median taken)")
    parser.add_argument("--jsonl", help="also write every figure as JSON lines here")
    args = parser.parse_args()

    torch.manual_seed(0)
    bandwidth = triad_bandwidth(min_time=args.min_time)
    print(f"octopage {octopage.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"in-place triad {bandwidth:.1f} GB/s")
    candidates, missing = peers()
    if missing:
        print("not installed here: " + ", ".join(missing))
    cases = [(size_text, [parse_size(size_text)]) for size_text in args.sizes.split(",")]
    if args.small:
        cases.append((f"{args.small} x 4096", [4096] * args.small))
    rows = []
    print(f"\n| {'optimizer':<28} | {'parameters':<11} | {'Mparam/s':>9} | {'GB/s':>6} | {'% of triad':>10} |")
    print(f"|{'-' * 30}|{'-' * 13}|{'-' * 11}|{'-' * 8}|{'-' * 12}|")
    for label, shapes in cases:
        total = sum(shapes)
        medians, failed = measure_rounds(shapes, candidates, args.rounds, args.min_time)
        for name, bytes_per_param, _ in candidates:
            if name in failed:
                print(f"| {name:<28} | {label:<11} | failed: {failed[name]}")
                continue
            t = medians[name]
            rate = total / t
            gbs = rate * bytes_per_param / 1e9
            rows.append(dict(optimizer=name, parameters=label, numel=total, step_s=t, params_per_s=rate,
                             gb_per_s=gbs, fraction_of_triad=gbs / bandwidth))
            print(f"| {name:<28} | {label:<11} | {rate / 1e6:9.0f} | {gbs:6.1f} | {100 * gbs / bandwidth:9.0f}% |")

    full, core = python_overhead(10_000_000, 1, args.min_time)
    many_full, many_core = python_overhead(1000 * 4096, 1000, args.min_time)
    print(f"\nPython layer: 10M in one tensor: step {full * 1e3:.2f} ms vs compiled step {core * 1e3:.2f} ms "
          f"(+{100 * (full / core - 1):.1f}%, target < 5%)")
    print(f"Python layer: 1000 tensors: {(many_full - many_core) / 1000 * 1e6:.1f} us per tensor "
          f"(target < 20 us)")
    rows.append(dict(python_overhead_fraction_10M=full / core - 1,
                     python_overhead_us_per_tensor=(many_full - many_core) / 1000 * 1e6))
    if args.jsonl:
        write_jsonl(args.jsonl, rows)


if __name__ == "__main__":
    main()
