"""state_dict / load_state_dict: round trips in one process and across processes, across
placements, with torch.optim and with the real bitsandbytes both ways; optimizer.state
as a live view; mismatched state_dicts refused with nothing changed."""
import os
import subprocess
import sys

import pytest
import torch

from octopage import optim
from state_layout import decoded

bnb = pytest.importorskip("bitsandbytes", reason="scripts/setup installs bitsandbytes for the interop tests")

PLACEMENTS = ["device", "paged", "offload"]
SIZES = [(70, 1000), (5000,), (300,), (4099,)]  # 8-bit and 32-bit state, odd tails


def make_params(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SIZES]


def set_grads(params, step):
    """Deterministic gradients by step; parameter 2 has none on step 5."""
    g = torch.Generator().manual_seed(100 + step)
    for k, p in enumerate(params):
        grad = torch.randn(p.shape, generator=g) * 0.01
        p.grad = None if (step == 5 and k == 2) else grad


def groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3, "weight_decay": 0.05}]


def train(opt, params, steps):
    for s in steps:
        set_grads(params, s)
        opt.step()


def clone(params):
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def state_tensors(opt, params):
    """Every state tensor of every parameter, and the step counts."""
    out = []
    for p in params:
        entry = opt.state[p]
        out.append(entry.get("step", 0))
        out.extend(v for k, v in sorted(entry.items()) if isinstance(v, torch.Tensor))
    return out


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y)
        else:
            assert x == y


def make(cls, params, placement, tmp_path, **kw):
    return cls(groups(params), lr=1e-2, placement=placement, offload_dir=tmp_path, **kw)


CASES = [(optim.AdamW, {}), (optim.AdamW8bit, {}), (optim.Adam, {"amsgrad": True})]


@pytest.mark.parametrize("cls,kw", CASES, ids=["AdamW", "AdamW8bit", "Adam-amsgrad"])
@pytest.mark.parametrize("saved_under", PLACEMENTS)
def test_round_trip_continues_bitwise_under_every_placement(tmp_path, cls, kw, saved_under):
    params = make_params()
    uninterrupted = clone(params)
    ref = make(cls, uninterrupted, saved_under, tmp_path, **kw)
    train(ref, uninterrupted, range(7))

    opt = make(cls, params, saved_under, tmp_path, **kw)
    train(opt, params, range(4))
    saved = opt.state_dict()
    for placement in PLACEMENTS:
        resumed = clone(params)
        loader = make(cls, resumed, placement, tmp_path, **kw)
        loader.load_state_dict(saved)
        assert_bitwise(state_tensors(loader, resumed), state_tensors(opt, params))
        assert all(g["placement"] == placement for g in loader.param_groups)  # the loader's, not the saver's
        assert loader.core_state(0, 0)["placement"] == placement
        train(loader, resumed, range(4, 7))
        assert_bitwise(resumed, uninterrupted)
        assert_bitwise(state_tensors(loader, resumed), state_tensors(ref, uninterrupted))


def test_state_dict_layout_is_bitsandbytes():
    params = make_params()
    opt = optim.AdamW8bit(groups(params))
    train(opt, params, range(2))
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 3e-3 and sd["param_groups"][1]["weight_decay"] == 0.05
    big, small = sd["state"][0], sd["state"][2]
    assert big["step"] == 2 and isinstance(big["step"], int)
    quant = big["__bnb_optimizer_quant_state__"]
    assert set(quant) == {"state1", "state2", "absmax1", "absmax2", "qmap1", "qmap2"}
    assert quant["state1"].dtype == torch.uint8 and quant["state1"].shape == params[0].shape
    assert quant["absmax1"].dtype == torch.float32 and quant["absmax1"].shape == (70000 // 256 + 1,)
    bnb_opt = bnb.optim.AdamW8bit([torch.nn.Parameter(torch.randn(5000))])
    assert torch.equal(quant["qmap1"], bnb_opt.name2qmap["dynamic"])  # the codes are bitsandbytes'
    assert torch.equal(quant["qmap2"], bnb_opt.name2qmap["udynamic"])
    assert set(small["__bnb_optimizer_quant_state__"]) == {"state1", "state2"}  # below min_8bit_size: fp32
    assert small["__bnb_optimizer_quant_state__"]["state1"].dtype == torch.float32


FRESH_PROCESS = r"""
import sys, torch
sys.path[:0] = [sys.argv[3]]
from test_state_dict import make, train, CASES
cls, kw = CASES[int(sys.argv[2])]
ckpt = torch.load(sys.argv[1], weights_only=False)
params = [torch.nn.Parameter(p) for p in ckpt["params"]]
opt = make(cls, params, "offload", sys.argv[4], **kw)
opt.load_state_dict(ckpt["optimizer"])
train(opt, params, range(4, 7))
torch.save({"params": [p.detach() for p in params], "optimizer": opt.state_dict()}, sys.argv[1])
"""


@pytest.mark.parametrize("case", range(len(CASES)), ids=["AdamW", "AdamW8bit", "Adam-amsgrad"])
def test_round_trip_through_torch_save_in_a_fresh_process(tmp_path, case):
    cls, kw = CASES[case]
    params = make_params()
    uninterrupted = clone(params)
    ref = make(cls, uninterrupted, "device", tmp_path, **kw)
    train(ref, uninterrupted, range(7))
    opt = make(cls, params, "paged", tmp_path, **kw)
    train(opt, params, range(4))
    path = tmp_path / "ckpt.pt"
    torch.save({"params": [p.detach() for p in params], "optimizer": opt.state_dict()}, path)
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(path), str(case), os.path.dirname(__file__),
                    str(tmp_path)], check=True, env=os.environ.copy(), timeout=120)
    out = torch.load(path, weights_only=False)
    assert_bitwise(out["params"], [p.detach() for p in uninterrupted])
    loader = make(cls, clone(out["params"]), "device", tmp_path, **kw)
    loader.load_state_dict(out["optimizer"])
    assert_bitwise(state_tensors(loader, loader.param_groups[0]["params"] + loader.param_groups[1]["params"]),
                   state_tensors(ref, uninterrupted))


@pytest.mark.parametrize("direction", ["bitsandbytes->octopage", "octopage->bitsandbytes"])
def test_bitsandbytes_interop_both_ways(direction):
    """A state_dict of bitsandbytes' AdamW8bit loads into octopage's and the reverse; the
    state arrives bitwise and training continues as the saver would have continued it."""
    saver_cls, loader_cls = ((bnb.optim.AdamW8bit, optim.AdamW8bit) if direction.startswith("bits")
                             else (optim.AdamW8bit, bnb.optim.AdamW8bit))
    params = make_params()
    saver = saver_cls(params, lr=1e-2)
    train(saver, params, range(3))
    resumed = clone(params)
    loader = loader_cls(resumed, lr=1e-2)
    loader.load_state_dict(saver.state_dict())
    for p, q in zip(params, resumed):
        a, b = saver.state[p], loader.state[q]
        assert a["step"] == b["step"] == 3
        for key in ("state1", "state2", "absmax1", "absmax2", "qmap1", "qmap2"):
            if key in a or key in b:
                assert torch.equal(a[key], b[key]), key
    # One more step from the same state: the two libraries agree to a few fp32 roundings in
    # the parameters; a code differs only where the fp32 value sits on a code boundary,
    # and then by one code.
    train(saver, params, [3])
    train(loader, resumed, [3])
    for p, q in zip(params, resumed):
        torch.testing.assert_close(q, p, rtol=0, atol=4 * torch.finfo(torch.float32).eps * p.abs().max().item())
        a, b = saver.state[p], loader.state[q]
        if a["state1"].dtype == torch.uint8:
            for key in ("state1", "state2"):
                distance = (a[key].int() - b[key].int()).abs()
                assert distance.max() <= 1 and (distance == 0).float().mean() > 0.99, key
            torch.testing.assert_close(b["absmax1"], a["absmax1"], rtol=1e-6, atol=0)
        else:
            torch.testing.assert_close(b["state1"], a["state1"], rtol=0, atol=1e-6 * a["state1"].abs().max().item())
    # Several more steps: training goes on (the 8-bit difference between the two stays
    # far below the parameters' movement).
    start = clone(params)
    train(saver, params, range(4, 9))
    train(loader, resumed, range(4, 9))
    for p, q, s in zip(params, resumed, start):
        moved = (p - s).abs().max().item()
        assert moved > 1e-2
        assert (p - q).abs().max().item() < 0.2 * moved


# Every bitsandbytes class against its octopage twin: (class, octopage's keywords,
# bitsandbytes' keywords, whether the state is the same format on both sides, whether
# the two step alike; None: not comparable). Both decay before the step (as bitsandbytes' CPU kernels); LAMB
# and LARS run uncapped where the sides can agree on it (bitsandbytes' 8-bit ones do not
# cap, and its LAMB8bit insists on max_unorm=1.0 for its small 32-bit tensors, whose cap
# its CPU kernel measures on another norm). bitsandbytes' RMSprop8bit and Adagrad8bit
# keep their non-negative state in its signed code, octopage's in the unsigned one:
# their codes load by decoding, not bitwise, and the steps after part by quantization.
INTEROP = [
    ("Adam8bit", {}, {}, True, True),
    ("Lion8bit", {}, {}, True, True),
    ("Lion32bit", {}, {}, True, True),
    ("SGD8bit", {"momentum": 0.9}, {"momentum": 0.9}, True, True),
    ("SGD32bit", {"momentum": 0.9}, {"momentum": 0.9}, True, True),
    ("AdEMAMix8bit", {}, {}, True, True),
    ("AdEMAMix", {"optim_bits": 32}, {"optim_bits": 32}, True, True),
    ("LAMB8bit", {}, {}, True, None),
    ("LAMB32bit", {"max_unorm": 0.0}, {"max_unorm": 0.0}, True, True),
    ("LARS8bit", {"momentum": 0.9, "max_unorm": 0.0}, {"momentum": 0.9, "max_unorm": 0.0}, True, True),
    ("LARS32bit", {"momentum": 0.9, "max_unorm": 0.0}, {"momentum": 0.9, "max_unorm": 0.0}, True, True),
    ("RMSprop32bit", {}, {}, True, True),
    ("Adagrad32bit", {}, {}, True, True),
    ("RMSprop8bit", {}, {}, False, False),
    ("Adagrad8bit", {}, {}, False, False),
]


@pytest.mark.parametrize("name,ours_kw,theirs_kw,same_format,alike", INTEROP, ids=[c[0] for c in INTEROP])
@pytest.mark.parametrize("direction", ["bitsandbytes->octopage", "octopage->bitsandbytes"])
def test_every_bitsandbytes_class_interoperates(direction, name, ours_kw, theirs_kw, same_format, alike):
    """A state_dict of each bitsandbytes optimizer class loads into its octopage twin and
    the reverse; the state arrives bitwise where both keep the same format (decoded
    values within a code step otherwise), and the loader steps on from it as the saver
    does."""
    from_bnb = direction.startswith("bits")
    ours, theirs = (getattr(optim, name), ours_kw), (getattr(bnb.optim, name), theirs_kw)
    (saver_cls, saver_kw), (loader_cls, loader_kw) = (theirs, ours) if from_bnb else (ours, theirs)
    params = make_params()
    saver = saver_cls(params, lr=1e-3, **saver_kw)
    train(saver, params, range(3))
    resumed = clone(params)
    loader = loader_cls(resumed, lr=1e-3, **loader_kw)
    loader.load_state_dict(saver.state_dict())
    for p, q in zip(params, resumed):
        a, b = saver.state[p], loader.state[q]
        assert a["step"] == b["step"] == 3
        keys = sorted(k for k in a if k.startswith("state"))
        assert keys == sorted(k for k in b if k.startswith("state"))
        for key in keys:
            assert a[key].shape == b[key].shape, key
            if same_format or not from_bnb or a[key].dtype != torch.uint8:
                assert torch.equal(a[key], b[key]), key
                for extra in ("absmax", "qmap"):
                    if extra + key[5:] in a:
                        assert torch.equal(a[extra + key[5:]], b[extra + key[5:]]), extra + key[5:]
            else:  # re-encoded in octopage's unsigned code: within its step of the saved values
                saved, loaded = decoded(a, key), decoded(b, key)
                scale = a["absmax" + key[5:]].max()
                assert (loaded - saved).abs().max() <= 0.01 * scale, key
    if alike is None:  # LAMB8bit: each caps a step the other does not
        return
    start = clone(params)
    train(saver, params, [3])
    train(loader, resumed, [3])
    for p, q, s in zip(params, resumed, start):
        apart, moved = (p - q).abs(), (p - s).abs()
        assert moved.max() > 0
        if alike:
            assert apart.max() <= 8 * torch.finfo(torch.float32).eps * p.abs().max(), name
        else:  # the same step up to the state's quantization or the cap's norm
            assert apart.mean() <= 0.05 * moved.mean(), name


def test_torch_optim_state_dict_loads_and_continues_as_torch():
    params = make_params()
    ref = clone(params)
    torch_opt = torch.optim.AdamW(groups(ref), lr=1e-2)
    train(torch_opt, ref, range(3))
    resumed = clone(ref)
    opt = optim.AdamW(groups(resumed), lr=1e-2, placement="paged")
    opt.load_state_dict(torch_opt.state_dict())
    assert opt.state[resumed[0]]["step"] == 3
    train(torch_opt, ref, range(3, 7))
    train(opt, resumed, range(3, 7))
    for p, q in zip(ref, resumed):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-6 * p.abs().max().item())
        v = torch_opt.state[p]["exp_avg_sq"]
        torch.testing.assert_close(opt.state[q]["state2"], v, rtol=0, atol=1e-6 * v.abs().max().item())
    # ...and into an 8-bit optimizer: quantized, close to the 32-bit values.
    eight = optim.AdamW8bit(groups(clone(ref)), lr=1e-2)
    eight.load_state_dict(torch_opt.state_dict())
    q = eight.param_groups[0]["params"][0]
    codes = eight.state[q]
    assert codes["state1"].dtype == torch.uint8
    exact = torch_opt.state[ref[0]]["exp_avg"].flatten()
    assert torch.equal(codes["absmax1"], torch.stack([block.abs().max() for block in exact.split(256)]))
    absmax = codes["absmax1"].repeat_interleave(256)[:exact.numel()]
    decoded = codes["qmap1"][codes["state1"].flatten().long()] * absmax
    assert ((decoded - exact).abs() <= 0.05 * absmax).all()


def test_state_view_reads_assigns_and_deletes():
    params = make_params()
    opt = optim.PagedAdamW8bit(groups(params))
    assert len(opt.state) == 0 and params[0] not in opt.state and opt.state[params[0]] == {}
    train(opt, params, range(2))
    assert len(opt.state) == 4 and list(opt.state) == params
    entry = opt.state[params[0]]
    train(opt, params, range(2, 3))
    opt.state[params[0]] = entry  # as ZeroRedundancyOptimizer.load_state_dict does
    assert_bitwise(state_tensors(opt, params[:1]), [entry["step"], *(v for _, v in sorted(entry.items())
                                                                     if isinstance(v, torch.Tensor))])
    del opt.state[params[1]]
    assert params[1] not in opt.state and len(opt.state) == 3
    with pytest.raises(KeyError):
        opt.state[torch.nn.Parameter(torch.zeros(3))]


def mismatched_cases():
    params = make_params()
    opt = optim.AdamW8bit(groups(params))
    train(opt, params, range(2))
    good = opt.state_dict()

    def edited(edit):
        sd = {"state": {k: {kk: (dict(vv) if isinstance(vv, dict) else vv) for kk, vv in v.items()}
                        for k, v in good["state"].items()},
              "param_groups": [dict(g) for g in good["param_groups"]]}
        edit(sd)
        return sd

    quant = "__bnb_optimizer_quant_state__"
    return [
        ("groups", edited(lambda sd: sd["param_groups"].pop()), "has 1 parameter groups, this optimizer 2"),
        ("group size", edited(lambda sd: sd["param_groups"][0].update(params=[0])),
         "param group 0 has 1 parameters, this optimizer's 2"),
        ("unknown index", edited(lambda sd: sd["state"].update({9: sd["state"][0]})),
         "state for parameter 9, which none of its param groups lists"),
        ("state size", edited(lambda sd: sd["state"].update({0: sd["state"][1]})),
         "param group 0, parameter 0: expected state1 (8-bit codes) of 70000 values"),
        ("no step", edited(lambda sd: sd["state"][0].pop("step")), "param group 0, parameter 0: expected a 'step'"),
        ("fractional step", edited(lambda sd: sd["state"][0].update(step=2.5)), "expected an integer step, got 2.5"),
        ("no absmax", edited(lambda sd: sd["state"][1][quant].pop("absmax2")),
         "param group 0, parameter 1: 8-bit state (uint8 state1) needs absmax2"),
        ("short qmap", edited(lambda sd: sd["state"][1][quant].update(qmap1=torch.linspace(-1, 1, 255))),
         "expected qmap1 of 256 code values, got 255"),
        ("no moments", edited(lambda sd: sd["state"][3].update({quant: {}})),
         "expected state1 and state2 (bitsandbytes) or exp_avg and exp_avg_sq"),
        ("non-blockwise", edited(lambda sd: sd["state"][1][quant].update(max1=torch.zeros(1))),
         "non-block-wise 8-bit state"),
        ("bad lr", edited(lambda sd: sd["param_groups"][1].update(lr=-1.0)),
         "param group 1: expected lr to be finite and >= 0, got -1"),
        ("not a state_dict", {"state": {}}, "expected a state_dict with 'state' and 'param_groups'"),
    ]


@pytest.mark.parametrize("name,sd,message", mismatched_cases(), ids=[c[0] for c in mismatched_cases()])
def test_mismatched_state_dict_raises_and_changes_nothing(name, sd, message):
    params = make_params(seed=7)
    opt = optim.AdamW8bit(groups(params), placement="offload")
    train(opt, params, range(3))
    before_state, before_groups = state_tensors(opt, params), [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        opt.load_state_dict(sd)
    assert_bitwise(state_tensors(opt, params), before_state)
    assert opt.param_groups == before_groups
