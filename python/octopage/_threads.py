"""The CPU threads octopage's step uses: one pool per process, shared by every optimizer.

Unless set here (or by the environment variable OCTOPAGE_NUM_THREADS), octopage follows
torch.get_num_threads() at every step, so it never runs more threads than torch does.
"""
from octopage import _core


def num_threads() -> int:
    """Threads a step uses, the calling thread included."""
    return _core.num_threads()


def set_num_threads(n: int) -> None:
    """Use n threads from the next step on, instead of following torch."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"expected num_threads to be an int >= 1, got {n!r}")
    _core.set_num_threads(n)


def follow(torch_threads: int) -> None:
    """Called before every step: take torch's thread count unless one was set."""
    _core.follow_num_threads(torch_threads)
