"""Every rule's step next to its own memory-bandwidth bound and its peers, in one process:
octopage's 32-bit and 8-bit classes, torch.optim's fastest class of the same rule (fused
where torch has it on the CPU, else foreach) and bitsandbytes' 8-bit class on the CPU.

    PYTHONPATH=build/python .venv/bin/python bench/rules_bench.py [--size 50M] [--rounds 5]

Figures are medians of interleaved rounds (bench/peers.py: this host's bandwidth drifts,
so every candidate of a rule is timed once per round on tensors allocated afresh). A
rule's bound is the in-place triad's bandwidth divided by the bytes its step must move
per fp32 parameter: parameter read and written, gradient read, each state read and
written (4 bytes a value at 32 bits, 1 at 8 bits); LAMB and LARS also read parameter,
gradient and state once more for their update-norm cap, which must be known before the
update. bitsandbytes' 8-bit step (unfused torch ops on the CPU) is timed on --bnb-size
elements, as it takes seconds at 50M. A program that prints figures, never a test.
"""
import argparse

import torch

import octopage
from octopage import optim
from peers import measure_rounds, parse_size, triad_bandwidth, write_jsonl

# Per rule: octopage's class stem, its states, the keywords every candidate takes, the
# torch.optim class (None: torch has none) and whether the rule caps its step (an extra pass).
RULES = [
    ("AdamW", 2, {}, torch.optim.AdamW, False),
    ("Adam", 2, {}, torch.optim.Adam, False),
    ("SGD", 1, {"lr": 1e-2, "momentum": 0.9}, torch.optim.SGD, False),
    ("RMSprop", 1, {}, torch.optim.RMSprop, False),
    ("Adagrad", 1, {}, torch.optim.Adagrad, False),
    ("Lion", 1, {}, None, False),
    ("AdEMAMix", 3, {}, None, False),
    ("LAMB", 2, {}, None, True),
    ("LARS", 1, {"lr": 1e-2, "momentum": 0.9}, None, True),
]


def step_bytes(states, state_bytes, capped):
    """Bytes a step moves per fp32 parameter: p read and written, g read, states both ways;
    a capped step reads p, g and the states once more first."""
    moved = 4 + 4 + 4 + 2 * states * state_bytes
    return moved + (8 + states * state_bytes if capped else 0)


def torch_fastest(cls, kwargs):
    """torch.optim's class with fused=True where it runs on the CPU, else foreach=True."""
    try:
        probe = torch.nn.Parameter(torch.zeros(4))
        probe.grad = torch.zeros(4)
        cls([probe], fused=True, **kwargs).step()
        return "fused", lambda ps: cls(ps, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return "foreach", lambda ps: cls(ps, foreach=True, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="50M")
    parser.add_argument("--bnb-size", default="5M", help="elements for bitsandbytes' 8-bit step (0: skip it)")
    parser.add_argument("--rules", default=",".join(r[0] for r in RULES))
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per candidate, all rounds together")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jsonl", help="also write every figure as JSON lines here")
    args = parser.parse_args()
    n, bnb_n = parse_size(args.size), parse_size(args.bnb_size)
    try:
        import bitsandbytes as bnb
    except Exception:  # noqa: BLE001 - not installed: no bitsandbytes column
        bnb, bnb_n = None, 0

    torch.manual_seed(0)
    bandwidth = triad_bandwidth(min_time=args.min_time)
    print(f"octopage {octopage.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"in-place triad {bandwidth:.1f} GB/s; {args.size} fp32 parameters"
          + (f"; bitsandbytes {bnb.__version__} at {args.bnb_size}" if bnb_n else ""))
    print(f"\n| {'rule':<8} | {'32-bit Mp/s':>11} | {'% bound':>7} | {'torch Mp/s':>16} | {'vs torch':>8} "
          f"| {'8-bit Mp/s':>10} | {'% bound':>7} | {'8/32':>5} | {'bnb 8-bit Mp/s':>14} | {'vs bnb':>7} |")
    print("|" + "|".join("-" * (w + 2) for w in (8, 11, 7, 16, 8, 10, 7, 5, 14, 7)) + "|")
    rows = []
    wanted = args.rules.split(",")
    for stem, states, kwargs, torch_cls, capped in [r for r in RULES if r[0] in wanted]:
        candidates = [("32bit", step_bytes(states, 4, capped), lambda ps, s=stem: getattr(optim, s + "32bit")(ps, **kwargs)),
                      ("8bit", step_bytes(states, 1, capped), lambda ps, s=stem: getattr(optim, s + "8bit")(ps, **kwargs))]
        kind = None
        if torch_cls is not None:
            kind, factory = torch_fastest(torch_cls, kwargs)
            candidates.append(("torch", step_bytes(states, 4, False), factory))
        medians, failed = measure_rounds([n], candidates, args.rounds, args.min_time)
        for name, reason in failed.items():
            print(f"| {stem:<8} | {name} failed: {reason}")
        rate = {name: n / t for name, t in medians.items()}
        if bnb_n:
            bnb_medians, bnb_failed = measure_rounds(
                [bnb_n], [("bnb", 0, lambda ps, s=stem: getattr(bnb.optim, s + "8bit")(ps, **kwargs))], 1,
                args.min_time)
            rate.update({name: bnb_n / t for name, t in bnb_medians.items()})
        bound = {name: bandwidth * 1e9 / b for name, b, _ in candidates}
        row = dict(rule=stem, numel=n, triad_gb_per_s=bandwidth, torch_kind=kind,
                   **{f"{k}_params_per_s": v for k, v in rate.items()},
                   **{f"{k}_fraction_of_bound": rate[k] / bound[k] for k in rate if k in bound})
        rows.append(row)

        def cell(key, width, scale=1e6, fmt=".0f"):
            return f"{rate[key] / scale:{width}{fmt}}" if key in rate else f"{'-':>{width}}"

        def ratio(a, b, width):
            return f"{rate[a] / rate[b]:{width - 1}.2f}x" if a in rate and b in rate else f"{'-':>{width}}"

        def share(key, width):
            return f"{100 * rate[key] / bound[key]:{width - 1}.0f}%" if key in rate else f"{'-':>{width}}"

        torch_cell = f"{cell('torch', 8)} ({kind})" if "torch" in rate else f"{'-':>16}"
        print(f"| {stem:<8} | {cell('32bit', 11)} | {share('32bit', 7)} | {torch_cell:>16} | {ratio('32bit', 'torch', 8)} "
              f"| {cell('8bit', 10)} | {share('8bit', 7)} | {ratio('8bit', '32bit', 5)} | {cell('bnb', 14, fmt='.1f')} "
              f"| {ratio('8bit', 'bnb', 7)} |", flush=True)
    if args.jsonl:
        write_jsonl(args.jsonl, rows)


if __name__ == "__main__":
    main()
