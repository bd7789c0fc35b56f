"""octopage.optim against the real bitsandbytes, in the same process, class for class:
every optimizer class that bitsandbytes.optim exports exists here with its parameters
and defaults, and each rule's 8-bit class follows bitsandbytes' CPU backend in code
space. (32-bit parity with bitsandbytes is test_optim.py's, checkpoints both ways
test_state_dict.py's.)"""
import inspect

import numpy as np
import pytest
import torch

from octopage import optim
from state_layout import decoded

bnb = pytest.importorskip("bitsandbytes", reason="scripts/setup installs bitsandbytes for the peer tests")

SIZES = [(70, 100), (300,), (4099,)]  # 8-bit, fp32 (below min_8bit_size), 8-bit with a partial block
STEPS = 6

# Each 8-bit class with the keywords both sides take, where bitsandbytes' CPU backend
# computes what octopage computes (RULES.md section 3: decay before the step, L2 in the
# numerator; LARS uncapped, as bitsandbytes' 8-bit LARS is).
PEERS = [
    ("AdamW8bit", dict(lr=1e-2, weight_decay=0.1)),
    ("Adam8bit", dict(lr=1e-2)),
    ("SGD8bit", dict(lr=1e-2, momentum=0.9, weight_decay=0.1)),
    ("Lion8bit", dict(lr=1e-3, betas=(0.9, 0.95), weight_decay=0.5)),
    ("PagedLion8bit", dict(lr=1e-3)),
    ("AdEMAMix8bit", dict(lr=1e-2)),
    ("LARS8bit", dict(lr=1e-2, momentum=0.9, max_unorm=0.0)),
    ("RMSprop8bit", dict(lr=1e-3, weight_decay=0.1)),
    ("Adagrad8bit", dict(lr=1e-2)),
]


def train(cls, kwargs, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SIZES]
    opt = cls(params, **kwargs)
    for step in range(steps):
        g = torch.Generator().manual_seed(100 + step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("name, kwargs", PEERS, ids=[p[0] for p in PEERS])
def test_8bit_follows_bitsandbytes_cpu(name, kwargs):
    """After one step from the same start: parameters to rounding, absmax to rounding, and
    codes at most one apart, in a few percent of the elements: each side rounds its own
    fp32 values to the nearest code, and bitsandbytes' CPU encoder looks them up in a
    65,536-bin table over [-1, 1] (RULES.md 1.7), so values within a bin of a midpoint (and
    codes closer than a bin, near zero) may go either way. RMSprop's and Adagrad's
    non-negative states use different codes on the two sides (octopage's unsigned, finer):
    compared decoded, within a code step. After STEPS steps, where the differences have fed
    back, parameters stay close on average (a small fraction of lr); with the two codes,
    octopage's stays at least as close to the 32-bit run as bitsandbytes'."""
    same_code = name not in ("RMSprop8bit", "Adagrad8bit")
    for steps in (1, STEPS):
        ours, ours_opt = train(getattr(optim, name), kwargs, steps)
        theirs, theirs_opt = train(getattr(bnb.optim, name), kwargs, steps)
        exact, _ = train(getattr(optim, name.replace("8bit", "32bit")), kwargs, steps)
        for index, (p, q, r) in enumerate(zip(ours, theirs, exact)):
            where = (name, steps, index)
            difference = (p.detach() - q.detach()).abs()
            if steps > 1 and same_code:
                assert difference.mean().item() <= 0.02 * kwargs["lr"], where
            if steps > 1:
                assert (p - r).abs().mean() <= (q - r).abs().mean() * (1.05 if same_code else 1.0) + 1e-9, where
                continue
            assert difference.max().item() <= 1e-5 * q.detach().abs().max().item(), where
            mine, peer = ours_opt.state[p], theirs_opt.state[q]
            assert mine["step"] == peer["step"] == 1
            keys = sorted(k for k in peer if k.startswith("state"))
            assert keys == sorted(k for k in mine if k.startswith("state")), where
            for key in keys:
                if mine[key].dtype != torch.uint8:
                    torch.testing.assert_close(mine[key], peer[key], rtol=1e-5, atol=1e-30)
                    continue
                absmax_key, qmap_key = "absmax" + key[5:], "qmap" + key[5:]
                torch.testing.assert_close(mine[absmax_key], peer[absmax_key], rtol=1e-5, atol=1e-30)
                if not torch.equal(mine[qmap_key], peer[qmap_key]):
                    apart = (decoded(mine, key) - decoded(peer, key)).abs()
                    scale = peer[absmax_key].max()
                    assert apart.max() <= 0.01 * scale, where + (key,)
                    continue
                code = peer[qmap_key].numpy()
                a, b = mine[key].numpy().reshape(-1), peer[key].numpy().reshape(-1)
                apart = np.abs(a.astype(np.int64) - b.astype(np.int64))
                unresolved = np.abs(code[a] - code[b]) <= 2.0 / 65536
                assert np.all((apart <= 1) | unresolved), where + (key,)
                assert ((apart > 0) & ~unresolved).mean() < 0.05, where + (key,)


def bnb_optimizer_classes():
    return sorted(name for name in dir(bnb.optim)
                  if inspect.isclass(getattr(bnb.optim, name))
                  and issubclass(getattr(bnb.optim, name), torch.optim.Optimizer))


def test_every_bitsandbytes_class_exists_with_its_parameters_and_defaults():
    names = bnb_optimizer_classes()
    assert len(names) >= 40  # bitsandbytes 0.50 exports 41
    assert [n for n in names if not hasattr(optim, n)] == []
    for name in names:
        theirs = inspect.signature(getattr(bnb.optim, name).__init__).parameters
        ours = inspect.signature(getattr(optim, name).__init__).parameters
        # bitsandbytes' parameters, in its order, with its defaults; octopage may add its own.
        order = [k for k in ours if k in theirs]
        assert order == list(theirs), name
        for key, parameter in theirs.items():
            if parameter.default is not inspect.Parameter.empty:
                assert ours[key].default == parameter.default, (name, key)
