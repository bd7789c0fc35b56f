"""octopage's CUDA step next to torch.optim's fused CUDA AdamW (and bitsandbytes' when it
is installed with CUDA), in one process, on fp32 parameters: one tensor of 67M elements
and 512 tensors of 64K. Prints ms per step (median of CUDA-event timings) and each
optimizer's time relative to torch's fused step. Needs a GPU and an octopage built with
-DOCTOPAGE_CUDA=ON (PYTHONPATH=build-cuda/python)."""
import argparse
import statistics
import sys

import torch

from octopage import _core, optim


def step_ms(make, shapes, steps):
    params = [torch.nn.Parameter(torch.randn(s, device="cuda") * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = make(params)
    for _ in range(3):  # state is created, kernels are loaded
        opt.step()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        opt.step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def candidates():
    found = {
        "octopage AdamW": lambda p: optim.AdamW(p),
        "octopage AdamW8bit": lambda p: optim.AdamW8bit(p),
        "octopage PagedAdamW8bit": lambda p: optim.PagedAdamW8bit(p),
        "torch AdamW fused": lambda p: torch.optim.AdamW(p, fused=True),
        "torch AdamW foreach": lambda p: torch.optim.AdamW(p, foreach=True),
    }
    try:
        import bitsandbytes as bnb
        found["bitsandbytes AdamW8bit"] = lambda p: bnb.optim.AdamW8bit(p)
        found["bitsandbytes PagedAdamW8bit"] = lambda p: bnb.optim.PagedAdamW8bit(p)
    except ImportError:
        pass
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if not (_core.CUDA_BUILT and torch.cuda.is_available()):
        print("cuda_peers.py: no GPU to measure: " + (_core.cuda_unavailable_reason() or "torch sees no CUDA device"))
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    cases = {"1 x 67M": [(1 << 26,)], "512 x 64K": [(1 << 16,)] * 512}
    for case, shapes in cases.items():
        results = {name: step_ms(make, shapes, args.steps) for name, make in candidates().items()}
        fused = results["torch AdamW fused"]
        print(f"\n{case}:")
        for name, ms in results.items():
            print(f"  {name:30s} {ms:8.3f} ms   {ms / fused:5.2f}x torch fused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
