"""octopage.optim against torch.optim and an fp32 reference written from the formula:
every placement, fp32 and bf16 parameters, several groups, a scheduler, skipped
gradients; torch.optim semantics; overrides; threads; bad arguments."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from octopage import _core, optim

PLACEMENTS = ["device", "paged", "offload"]
STEPS = 8


def make_params(dtype, seed=0):
    """Two groups' worth of parameters: sizes below and above min_8bit_size, odd sizes."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(64, 80), (300,), (17, 5), (4099,)]
    return [torch.randn(s, generator=g).to(dtype) for s in shapes]


def gradients(params, step):
    """Deterministic gradients; parameter 1 gets none on step 2 (it must be skipped)."""
    g = torch.Generator().manual_seed(1000 + step)
    grads = [torch.randn(p.shape, generator=g).to(p.dtype) for p in params]
    if step == 2:
        grads[1] = None
    return grads


def run(make_optimizer, params, steps=STEPS):
    """Trains copies of params with two groups (different lr and weight decay) and a
    StepLR scheduler; returns the parameters and the optimizer."""
    params = [torch.nn.Parameter(p.clone()) for p in params]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3, "weight_decay": 0.05}]
    opt = make_optimizer(groups)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    for step in range(steps):
        for p, g in zip(params, gradients(params, step)):
            p.grad = g
        opt.step()
        scheduler.step()
    return params, opt


def reference_adam(params, decoupled, amsgrad=False, steps=STEPS):
    """Adam/AdamW from the formula in fp64, state and parameters rounded to the
    parameter dtype after each step (fp32 state), same groups and schedule as run()."""
    groups = [(0, 1e-2 if decoupled else 0.0, 1e-3), (2, 0.05, 3e-3)]  # first index, wd, lr
    lrs, wds = [], []
    for i in range(len(params)):
        first, wd, lr = groups[0] if i < 2 else groups[1]
        lrs.append(lr)
        wds.append(wd)
    out = [p.clone() for p in params]
    m = [torch.zeros(p.shape, dtype=torch.float64) for p in params]
    v = [torch.zeros(p.shape, dtype=torch.float64) for p in params]
    vmax = [torch.zeros(p.shape, dtype=torch.float64) for p in params]
    t = [0] * len(params)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for step in range(steps):
        scale = 0.5 ** (step // 3)
        for i, g in enumerate(gradients(params, step)):
            if g is None:
                continue
            t[i] += 1
            lr, wd = lrs[i] * scale, wds[i]
            p = out[i].double()
            g = g.double()
            if not decoupled:
                g = g + wd * p
            m[i] = (b1 * m[i] + (1 - b1) * g).float().double()
            v[i] = (b2 * v[i] + (1 - b2) * g * g).float().double()
            denominator_v = v[i]
            if amsgrad:
                vmax[i] = torch.maximum(vmax[i], v[i])
                denominator_v = vmax[i]
            if decoupled:
                p = p * (1 - lr * wd)
            bc1, bc2 = 1 - b1 ** t[i], 1 - b2 ** t[i]
            p = p - lr / bc1 * m[i] / (denominator_v.sqrt() / bc2 ** 0.5 + eps)
            out[i] = p.to(params[i].dtype)
    return out, m, v, vmax


def relative_error(a, b):
    """max |a - b| over max |b|: rounding differences relative to the tensor's scale."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def bf16_steps_apart(a, b):
    """The most any element of bf16 tensor a is from b, in units of b's last bf16 bit."""
    a, b = a.double(), b.double()
    ulp = b.abs().clamp_min(1e-30) * 2.0 ** -8
    return ((a - b).abs() / ulp).max().item()


RULES = [rule["name"] for rule in _core.rules()]
# The class each registered rule's 32-bit optimizer is checked against, in fp32 with
# foreach=False: a new rule adds its row here, and the parity test below covers it under
# every placement and in every variant.
TORCH_REFERENCES = {
    "adam": (optim.Adam, torch.optim.Adam),
    "adamw": (optim.AdamW, torch.optim.AdamW),
    "sgd": (optim.SGD, torch.optim.SGD),
    "rmsprop": (optim.RMSprop, torch.optim.RMSprop),
    "adagrad": (optim.Adagrad, torch.optim.Adagrad),
}
# Rules torch.optim does not have are checked against bitsandbytes' 32-bit class on the
# CPU (its AdEMAMix with optim_bits=32: its AdEMAMix32bit keeps state1 of the wrong
# shape), by class name and with the keywords both take. LAMB and LARS run uncapped
# here: bitsandbytes' CPU kernels measure the cap on other norms than its CUDA kernels
# (RULES.md section 3); the cap has its own tests.
BNB_REFERENCES = {
    "lion": ("Lion32bit", "Lion32bit", {}),
    "ademamix": ("AdEMAMix32bit", "AdEMAMix", {"optim_bits": 32}),
    "lamb": ("LAMB32bit", "LAMB32bit", {"max_unorm": 0.0}),
    "lars": ("LARS32bit", "LARS32bit", {"max_unorm": 0.0, "lr": 1e-3, "momentum": 0.9}),
}


def variant_options(rule):
    """Keyword sets that reach every variant of a rule, from the registry alone: its
    defaults, and one or two flags set or hyperparameters that default to 0 set to 0.5
    (as the C++ tests' variant_examples)."""
    info = next(r for r in _core.rules() if r["name"] == rule)
    zeros = [h for h in info["hyperparameters"] if h["defaults"] == [0.0]]
    value = {h["name"]: True if h["kind"] == "flag" else 0.5 for h in zeros}
    yield {}
    for a in zeros:
        yield {a["name"]: value[a["name"]]}
    for i, a in enumerate(zeros):
        for b in zeros[i + 1:]:
            yield {a["name"]: value[a["name"]], b["name"]: value[b["name"]]}


def test_every_rule_has_a_reference():
    assert set(RULES) == set(TORCH_REFERENCES) | set(BNB_REFERENCES)
    assert not set(TORCH_REFERENCES) & set(BNB_REFERENCES)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("rule", sorted(TORCH_REFERENCES))
def test_fp32_matches_torch_optim(tmp_path, placement, rule):
    ours_class, torch_class = TORCH_REFERENCES[rule]
    bnb_name = {s["name"]: s["bnb_name"] for r in _core.rules() if r["name"] == rule
                for v in r["variants"] for s in v["states"]}
    params = make_params(torch.float32)
    tried = 0
    for kwargs in variant_options(rule):
        try:
            torch_class([torch.nn.Parameter(torch.zeros(1))], **kwargs)
        except ValueError:
            continue  # a combination torch refuses, e.g. nesterov without momentum
        tried += 1
        ours, opt = run(lambda g: ours_class(g, placement=placement, offload_dir=tmp_path, **kwargs), params)
        theirs, ref = run(lambda g: torch_class(g, foreach=False, **kwargs), params)
        for group_index, group in enumerate(ref.param_groups):
            for index, (p, q) in enumerate(zip(opt.param_groups[group_index]["params"], group["params"])):
                assert relative_error(p.detach(), q.detach()) < 1e-6, kwargs
                state = opt.core_state(group_index, index)
                expected = {k: v for k, v in ref.state[q].items() if v is not None}
                steps = STEPS - (1 if q is theirs[1] else 0)
                assert state["step"] == int(expected.pop("step", steps)) == steps
                arrays = set(state) - {"step", "format", "placement"}
                assert arrays == {bnb_name[k] for k in expected}, kwargs
                # A rule variant without state has nothing to place: it reports 'device'.
                assert state["placement"] == (placement if arrays else "device") and state["format"] == "32bit"
                for torch_key, value in expected.items():
                    # torch takes Adam's m by lerp, so m differs by rounding: compare at the tensor's scale.
                    assert relative_error(torch.from_numpy(state[bnb_name[torch_key]]), value.flatten()) < 1e-6
    assert tried >= 2


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("rule", sorted(BNB_REFERENCES))
def test_fp32_matches_bitsandbytes_cpu(tmp_path, placement, rule):
    """Rules without a torch.optim twin against bitsandbytes' 32-bit class on the CPU, same
    groups, gradients and scheduler as the torch parity test: parameters and each state
    (by bitsandbytes' keys, stacked states flat) to fp32 rounding after STEPS steps."""
    bnb = pytest.importorskip("bitsandbytes", reason="scripts/setup installs bitsandbytes for the peer tests")
    ours_name, theirs_name, kwargs = BNB_REFERENCES[rule]
    params = make_params(torch.float32)
    ours, opt = run(lambda g: getattr(optim, ours_name)(g, placement=placement, offload_dir=tmp_path, **kwargs), params)
    theirs, ref = run(lambda g: getattr(bnb.optim, theirs_name)(g, **kwargs), params)
    for group_index, group in enumerate(ref.param_groups):
        for index, (p, q) in enumerate(zip(opt.param_groups[group_index]["params"], group["params"])):
            assert relative_error(p.detach(), q.detach()) < 1e-6, (group_index, index)
            state = opt.core_state(group_index, index)
            expected = {k: v for k, v in ref.state[q].items() if isinstance(v, torch.Tensor) and k != "unorm_vec"}
            assert state["step"] == ref.state[q]["step"] == STEPS - (1 if q is theirs[1] else 0)
            assert set(state) - {"step", "format", "placement"} == set(expected)
            for key, value in expected.items():
                assert relative_error(torch.from_numpy(state[key]), value.flatten()) < 1e-6, key


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_percentile_clipping_matches_its_definition(tmp_path, placement):
    """bitsandbytes 0.49's percentile_clipping, written here over torch.optim.AdamW: each
    tensor's last 100 squared gradient norms, the gradient scaled to the 5th smallest when
    above it; 110 steps wrap the history, every fifth gradient is ten times larger."""
    torch.manual_seed(0)
    p0 = torch.randn(5000)
    ours = torch.nn.Parameter(p0.clone())
    theirs = torch.nn.Parameter(p0.clone())
    opt = optim.AdamW([ours], lr=1e-2, percentile_clipping=5, placement=placement, offload_dir=tmp_path)
    ref = torch.optim.AdamW([theirs], lr=1e-2, foreach=False)
    history, clipped = None, 0
    for t in range(1, 111):
        g = torch.randn(5000) * (0.1 if t % 5 == 0 else 0.01)
        n2 = torch.tensor((g.double() ** 2).sum().item(), dtype=torch.float32)
        history = n2.repeat(100) if history is None else history
        history[t % 100] = n2
        current, clip = history[t % 100].sqrt(), history.sort().values[5].sqrt()
        scale = (clip / current).item() if current > clip else 1.0
        clipped += scale < 1.0
        ours.grad = g.clone()
        theirs.grad = (g * torch.tensor(scale, dtype=torch.float32))
        opt.step()
        ref.step()
    assert clipped >= 15
    assert relative_error(ours.detach(), theirs.detach()) < 1e-5
    state = opt.state_dict()["state"][0]
    assert torch.equal(state["__bnb_optimizer_quant_state__"]["gnorm_vec"], history)
    resumed = optim.AdamW([torch.nn.Parameter(ours.detach().clone())], lr=1e-2, percentile_clipping=5)
    resumed.load_state_dict(opt.state_dict())
    assert np.array_equal(resumed.core_state(0, 0)["gnorm_vec"], history.numpy())


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_max_unorm_caps_each_step(tmp_path, placement):
    """bitsandbytes' max_unorm: no step moves a tensor by more than lr * max_unorm * ||p||
    (AdamW without weight decay), and one that never binds changes nothing."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5000))
    free = torch.nn.Parameter(p.detach().clone())
    capped = optim.AdamW([p], lr=1e-2, weight_decay=0.0, max_unorm=0.1, placement=placement, offload_dir=tmp_path)
    loose = optim.AdamW([free], lr=1e-2, weight_decay=0.0, max_unorm=1e9)
    reference = torch.nn.Parameter(p.detach().clone())
    plain = optim.AdamW([reference], lr=1e-2, weight_decay=0.0)
    for _ in range(5):
        g = torch.randn(5000) * 0.01
        before = p.detach().clone()
        p.grad, free.grad, reference.grad = g.clone(), g.clone(), g.clone()
        capped.step()
        loose.step()
        plain.step()
        assert (p.detach() - before).norm() <= 1e-2 * 0.1 * before.norm() * (1 + 1e-5)
    assert torch.equal(free, reference)
    assert not torch.equal(p, reference)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("decoupled", [False, True])
def test_bf16_matches_reference(tmp_path, placement, decoupled):
    params = make_params(torch.bfloat16)
    cls = optim.AdamW if decoupled else optim.Adam
    ours, opt = run(lambda g: cls(g, placement=placement, offload_dir=tmp_path), params)
    expected, m, v, _ = reference_adam(params, decoupled)
    for i, (p, e) in enumerate(zip(ours, expected)):
        assert p.dtype == torch.bfloat16
        # fp32 math rounded to bf16 each step: where the two fp32 results straddle a
        # rounding boundary they part by one bf16 step, which later steps carry along.
        assert bf16_steps_apart(p.detach(), e) <= 2.0
        state = opt.core_state(0 if i < 2 else 1, i if i < 2 else i - 2)
        np.testing.assert_allclose(state["state1"], m[i].flatten().numpy(), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(state["state2"], v[i].flatten().numpy(), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_8bit_is_bitwise_equal_across_placements_and_close_to_32bit(tmp_path, dtype):
    params = make_params(dtype)
    runs = {pl: run(lambda g: optim.AdamW8bit(g, placement=pl, offload_dir=tmp_path), params)
            for pl in PLACEMENTS}
    device_params, device_opt = runs["device"]
    for placement in ("paged", "offload"):
        other_params, other_opt = runs[placement]
        for i, (p, q) in enumerate(zip(device_params, other_params)):
            assert torch.equal(p, q)
            a = device_opt.core_state(0 if i < 2 else 1, i if i < 2 else i - 2)
            b = other_opt.core_state(0 if i < 2 else 1, i if i < 2 else i - 2)
            assert a["format"] == b["format"]
            for key in a:
                if key != "placement":
                    np.testing.assert_array_equal(a[key], b[key])
    # Parameters of >= min_8bit_size elements have 8-bit state, smaller ones 32-bit.
    formats = [device_opt.core_state(0, 0)["format"], device_opt.core_state(0, 1)["format"],
               device_opt.core_state(1, 0)["format"], device_opt.core_state(1, 1)["format"]]
    assert formats == ["8bit", "32bit", "32bit", "8bit"]
    # 8-bit training follows 32-bit: the total update differs by a few percent (more for
    # bf16 parameters, whose per-step updates are themselves rounded to a bf16 step).
    fp32_params, _ = run(lambda g: optim.AdamW(g), params)
    budget = 0.05 if dtype == torch.float32 else 0.15
    for p0, p8, p32 in zip(params, device_params, fp32_params):
        d8, d32 = (p8.detach().double() - p0.double()), (p32.detach().double() - p0.double())
        assert (d8 - d32).norm() / d32.norm() < budget


def test_8bit_codes_and_memory_report():
    p = torch.nn.Parameter(torch.randn(10000))
    opt = optim.AdamW8bit([p])
    p.grad = torch.randn(10000)
    opt.step()
    state = opt.core_state(0, 0)
    assert state["state1"].dtype == np.uint8 and state["state1"].shape == (10000,)
    assert state["absmax1"].shape == (40,)  # one per block of 256
    report = opt.memory_report()
    assert report["state_bytes"]["host"] == 2 * 10000 + 2 * 4 * 40
    assert report["tensors_8bit"] == 1 and report["elements_8bit"] == 10000


def test_torch_optim_semantics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    frozen = torch.nn.Parameter(torch.randn(5))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    opt.add_param_group({"params": [frozen], "lr": 0.5})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["weight_decay"] == 1e-2
    x, y = torch.randn(32, 8), torch.randn(32, 1)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    before = frozen.detach().clone()
    losses = [opt.step(closure).item() for _ in range(30)]
    assert losses[-1] < losses[0]
    assert torch.equal(frozen, before)  # no gradient: skipped
    assert all(p.grad is None for p in [frozen])
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    # lr edited by hand between steps is used: lr 0 leaves parameters bitwise unchanged.
    for group in opt.param_groups:
        group["lr"] = 0.0
        group["weight_decay"] = 0.0
    snapshot = [p.detach().clone() for p in model.parameters()]
    opt.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(snapshot, model.parameters()))


def test_views_and_devices_are_checked():
    base = torch.randn(8, 8)
    view = torch.nn.Parameter(base.t())  # non-contiguous
    with pytest.raises(ValueError, match="contiguous"):
        optim.AdamW([view])
    p = torch.nn.Parameter(torch.randn(4))
    opt = optim.AdamW([p])
    p.grad = torch.randn(4, 2).t()[0]  # strided gradient
    with pytest.raises(ValueError, match="gradient to be contiguous"):
        opt.step()
    with pytest.raises(ValueError, match="float32, bfloat16 or float16, got float64"):
        optim.AdamW([torch.nn.Parameter(torch.randn(4, dtype=torch.float64))])
    with pytest.raises(ValueError, match="float32, bfloat16 or float16, got int64"):
        optim.Adam([torch.nn.Parameter(torch.zeros(3)).long()])


def test_step_passes_dense_tensors_by_address_and_checks_the_rest(monkeypatch):
    """At step(), a dense contiguous CPU tensor of a supported dtype reaches the core as its
    address (no DLPack export); anything else still goes through DLPack, whose checks say
    what is wrong, whether the tensor changed between steps or came new."""
    p = torch.nn.Parameter(torch.randn(6, 4))
    opt = optim.AdamW([p])
    exports = []
    export = torch.Tensor.__dlpack__
    monkeypatch.setattr(torch.Tensor, "__dlpack__", lambda self, *a, **k: exports.append(1) or export(self, *a, **k))
    p.grad = torch.randn(6, 4)
    before = p.detach().clone()
    opt.step()
    assert not exports and not torch.equal(p, before)
    p.grad = torch.randn(6, 8)[:, ::2]  # a strided gradient (torch refuses other dtypes itself)
    with pytest.raises(ValueError, match="gradient to be contiguous"):
        opt.step()
    p.grad = torch.randn(6, 4)
    p.data = torch.randn(4, 6).t()  # the parameter's storage swapped for a strided view
    with pytest.raises(ValueError, match="contiguous"):
        opt.step()
    assert exports  # those went through DLPack


BAD_ARGUMENTS = [
    (optim.AdamW, dict(lr=-1.0), "expected lr to be finite and >= 0, got -1"),
    (optim.AdamW, dict(lr=float("nan")), "expected lr to be finite and >= 0, got nan"),
    (optim.AdamW, dict(betas=(1.0, 0.999)), r"expected 0 <= betas\[0\] < 1, got 1"),
    (optim.Adam, dict(betas=(0.9, -0.1)), r"expected 0 <= betas\[1\] < 1, got -0.1"),
    (optim.Adam, dict(betas=0.9), "expected betas to be a pair"),
    (optim.AdamW, dict(eps=-1e-8), "expected eps to be finite and >= 0, got -1e-08"),
    (optim.AdamW, dict(weight_decay=-0.1), "expected weight_decay to be finite and >= 0, got -0.1"),
    (optim.AdamW8bit, dict(amsgrad=True), "AdamW8bit does not support amsgrad=True"),
    (optim.AdamW, dict(amsgrad=True, optim_bits=8), "amsgrad=True is not supported with 8-bit state"),
    (optim.AdamW8bit, dict(optim_bits=8), "AdamW8bit always uses 8-bit state"),
    (optim.AdamW, dict(optim_bits=4), "expected optim_bits 32 or 8, got 4"),
    (optim.AdamW, dict(min_8bit_size=-1), "expected min_8bit_size >= 0, got -1"),
    (optim.AdamW, dict(placement="gpu"), "expected placement 'device', 'paged', 'offload' or 'cpu_step', got 'gpu'"),
    (optim.AdamW, dict(placement="cpu_step"), "cpu_step.*needs the CUDA backend"),
    (optim.AdamW, dict(is_paged=True, placement="offload"), "is_paged=True asks for placement 'paged'"),
    (optim.Adagrad8bit, dict(optim_bits=32), "Adagrad8bit always uses 8-bit state; optim_bits is accepted only at its default 8"),
    (optim.LARS, dict(lr=0.1), "LARS needs a momentum > 0"),
    (optim.LAMB, dict(bias_correction=False), "LAMB supports only bias_correction=True"),
    (optim.LAMB8bit, dict(adam_w_mode=False), "LAMB8bit supports only adam_w_mode=True"),
    (optim.LAMB8bit, dict(max_unorm=0.5), r"LAMB8bit only supports max_unorm=1.0 .* use LAMB\(optim_bits=8"),
    (optim.RMSprop8bit, dict(centered=True), "centered=True is not supported with 8-bit state"),
    (optim.SGD8bit, dict(lr=0.1), "momentum=0 is not supported with 8-bit state"),
    (optim.AdEMAMix, dict(betas=(0.9, 0.999)), "expected betas to be a sequence of 3 numbers"),
    (optim.AdEMAMix, dict(t_beta3=100, betas=(0.0, 0.999, 0.9999)), "t_beta3 warms beta3 up from beta1"),
    (optim.RMSprop, dict(alpha=-0.5), "expected alpha to be finite and >= 0, got -0.5"),
    (optim.Adagrad, dict(lr_decay=-1.0), "expected lr_decay to be finite and >= 0, got -1"),
    (optim.AdamW, dict(max_unorm=-1.0), r"expected max_unorm to be finite and >= 0 \(0: off\), got -1"),
    (optim.AdamW, dict(percentile_clipping=101), r"expected percentile_clipping in \[0, 100\] \(100: off\), got 101"),
    (optim.AdamW, dict(block_wise=False), "block_wise=False is not supported"),
    (optim.AdamW, dict(offload_dir="/nonexistent/octopage"), "/nonexistent/octopage"),
    (optim.AdamW, dict(chunk_bytes=1000), "chunk"),
    (optim.AdamW, dict(io_backend="aio"), "expected io_backend 'auto', 'io_uring' or 'threads', got 'aio'"),
]


@pytest.mark.parametrize("cls,kwargs,message", BAD_ARGUMENTS, ids=[m[:40] for _, _, m in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error(cls, kwargs, message):
    p = torch.nn.Parameter(torch.randn(5000))
    with pytest.raises(ValueError, match=message):
        opt = cls([p], **kwargs)
        p.grad = torch.randn(5000)
        opt.step()  # some options (cpu_step) are refused when state is created


def test_bad_group_added_later_is_not_added():
    opt = optim.AdamW([torch.nn.Parameter(torch.randn(3))])
    with pytest.raises(ValueError, match="expected lr to be finite and >= 0"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(3))], "lr": -1.0})
    assert len(opt.param_groups) == 1
    opt.param_groups[0]["params"][0].grad = torch.randn(3)
    opt.step()  # still usable


def test_signatures_and_defaults_match_bitsandbytes():
    expected = ["self", "params", "lr", "betas", "eps", "weight_decay", "amsgrad", "optim_bits", "args",
                "min_8bit_size", "percentile_clipping", "block_wise", "is_paged"]
    for name in ["Adam", "AdamW", "Adam8bit", "AdamW8bit", "Adam32bit", "AdamW32bit", "PagedAdam", "PagedAdamW",
                 "PagedAdam8bit", "PagedAdamW8bit", "PagedAdam32bit", "PagedAdamW32bit"]:
        cls = getattr(optim, name)
        signature = inspect.signature(cls.__init__)
        assert list(signature.parameters)[:len(expected)] == expected, name
        defaults = {k: v.default for k, v in signature.parameters.items()}
        assert defaults["lr"] == 1e-3 and defaults["betas"] == (0.9, 0.999) and defaults["eps"] == 1e-8
        assert defaults["weight_decay"] == (1e-2 if "AdamW" in name else 0), name
        assert defaults["min_8bit_size"] == 4096 and defaults["optim_bits"] == 32
        p = torch.nn.Parameter(torch.randn(5000))
        opt = cls([p])
        p.grad = torch.randn(5000)
        opt.step()
        state = opt.core_state(0, 0)
        assert state["format"] == ("8bit" if "8bit" in name else "32bit"), name
        assert state["placement"] == ("paged" if name.startswith("Paged") else "device"), name
    p = torch.nn.Parameter(torch.randn(5000))
    opt = optim.AdamW([p], optim_bits=8, is_paged=True)
    p.grad = torch.randn(5000)
    opt.step()
    assert opt.core_state(0, 0)["format"] == "8bit" and opt.core_state(0, 0)["placement"] == "paged"


def test_global_optim_manager_overrides(tmp_path):
    model = torch.nn.ModuleDict({"emb": torch.nn.Embedding(100, 64), "big": torch.nn.Linear(128, 128)})
    manager = optim.GlobalOptimManager.get_instance()
    manager.register_parameters(model.parameters())
    manager.override_config(model["emb"].weight, "optim_bits", 32)
    manager.register_module_override(model["big"], "weight", {"placement": "offload"})
    try:
        opt = optim.AdamW8bit(model.parameters(), offload_dir=tmp_path)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
        names = [name for name, _ in model.named_parameters()]
        states = {name: opt.core_state(0, i) for i, name in enumerate(names)}
        assert states["emb.weight"]["format"] == "32bit"
        assert states["big.weight"]["format"] == "8bit" and states["big.weight"]["placement"] == "offload"
        assert states["big.bias"]["placement"] == "device"
        assert opt.state_files()
        with pytest.raises(ValueError, match="skip_zeros=True is not supported"):
            manager.override_config(model["emb"].weight, "skip_zeros", True)
    finally:
        manager.initialize()


@pytest.mark.parametrize("cls,kwargs,override,alone", [
    (optim.AdamW8bit, {}, {"lr": 0.05, "betas": (0.8, 0.99), "weight_decay": 0.0}, {}),
    (optim.AdEMAMix, {}, {"alpha": 2.0, "t_alpha": 10, "eps": 1e-6}, {}),
    (optim.LAMB, {}, {"max_unorm": 0.05, "min_8bit_size": 100}, {"optim_bits": 8}),
    # bitsandbytes' SGD keeps momentum and dampening in betas: an override of betas is one of them.
    (optim.SGD8bit, {"lr": 0.1, "momentum": 0.9}, {"betas": (0.5, 0.0)}, {}),
], ids=["AdamW8bit", "AdEMAMix", "LAMB", "SGD8bit"])
def test_global_optim_manager_overrides_hyperparameters(cls, kwargs, override, alone):
    """bitsandbytes' override_config keys: the overridden parameter steps bitwise as it
    would alone with those options (an overridden lr holds while its group's changes, as
    a scheduler would change it); its neighbour follows the group."""
    g = torch.Generator().manual_seed(0)
    a0, b0 = torch.randn(70, 100, generator=g), torch.randn(5000, generator=g)
    a, b = torch.nn.Parameter(a0.clone()), torch.nn.Parameter(b0.clone())
    manager = optim.GlobalOptimManager.get_instance()
    manager.override_config(a, key_value_dict=override)
    try:
        opt = cls([a, b], **kwargs)
    finally:
        manager.initialize()
    own = dict(kwargs, **override)
    if "betas" in override and cls is optim.SGD8bit:
        own.update(momentum=override["betas"][0], dampening=override["betas"][1])
        del own["betas"]
    for key in ("max_unorm", "min_8bit_size"):
        if key in own and key not in alone:
            alone[key] = own.pop(key)
    a_alone, b_alone = torch.nn.Parameter(a0.clone()), torch.nn.Parameter(b0.clone())
    opt_a = cls([a_alone], **own, **{k: v for k, v in alone.items() if k != "optim_bits"})
    opt_b = cls([b_alone], **kwargs)
    for step in range(4):
        grads = torch.Generator().manual_seed(10 + step)
        ga, gb = torch.randn(a.shape, generator=grads), torch.randn(b.shape, generator=grads)
        a.grad, a_alone.grad, b.grad, b_alone.grad = ga.clone(), ga.clone(), gb.clone(), gb.clone()
        for o in (opt, opt_b) if "lr" in override else (opt, opt_a, opt_b):
            o.param_groups[0]["lr"] = o.defaults["lr"] * (step + 1)
        opt.step()
        opt_a.step()
        opt_b.step()
    assert torch.equal(a, a_alone) and torch.equal(b, b_alone)
    assert not torch.equal(a, a0)


def test_bitsandbytes_args_and_pytorch_lars_state():
    """bitsandbytes' ``args`` (its non-group settings) and PytorchLARS's state under torch's
    name, as bitsandbytes' classes have them."""
    p = torch.nn.Parameter(torch.randn(5000))
    opt = optim.LAMB([p], max_unorm=0.5, optim_bits=8, min_8bit_size=100)
    assert (opt.args.max_unorm, opt.args.optim_bits, opt.args.min_8bit_size, opt.args.skip_zeros) == (0.5, 8, 100, False)
    lars = optim.PytorchLARS([p], lr=0.01, momentum=0.9)
    p.grad = torch.randn(5000)
    lars.step()
    assert set(lars.state[p]) == {"step", "momentum_buffer"}
    assert torch.equal(lars.state[p]["momentum_buffer"], p.grad)  # the first step's buffer is the gradient
    resumed = optim.PytorchLARS([torch.nn.Parameter(p.detach().clone())], lr=0.01, momentum=0.9)
    resumed.load_state_dict(lars.state_dict())
    assert np.array_equal(resumed.core_state(0, 0)["state1"], lars.core_state(0, 0)["state1"])


def test_global_optim_manager_override_checked_when_added():
    p = torch.nn.Parameter(torch.randn(5000))
    manager = optim.GlobalOptimManager.get_instance()
    try:
        manager.override_config(p, "lr", -1.0)
        with pytest.raises(ValueError, match="param group 0, parameter 0: expected lr to be finite and >= 0, got -1"):
            optim.AdamW([p])
        manager.initialize()
        manager.override_config(p, "alpha", 2.0)
        with pytest.raises(ValueError, match="expected hyperparameters of AdamW"):
            optim.AdamW([p])
    finally:
        manager.initialize()


def test_threads_follow_torch_unless_set():
    script = (
        "import torch, octopage\n"
        "from octopage import optim\n"
        "p = torch.nn.Parameter(torch.randn(10)); opt = optim.AdamW([p]); p.grad = torch.randn(10)\n"
        "torch.set_num_threads(1); opt.step(); a = octopage.num_threads()\n"
        "torch.set_num_threads(2); opt.step(); b = octopage.num_threads()\n"
        "octopage.set_num_threads(1); torch.set_num_threads(2); opt.step(); c = octopage.num_threads()\n"
        "print(a, b, c)\n")
    env = {k: v for k, v in os.environ.items() if k != "OCTOPAGE_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "2", "1"]


def test_numpy_arrays_through_the_core():
    """The compiled core is framework-free: NumPy arrays work as well as torch tensors."""
    from octopage import _core

    p = np.ones(1000, dtype=np.float32)
    g = np.full(1000, 0.5, dtype=np.float32)
    defaults = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
                "optim_bits": 32, "min_8bit_size": 4096, "placement": "device"}
    opt = _core.Optimizer("adam", None, False, _core.DEFAULT_RING_BYTES, _core.DEFAULT_CHUNK_BYTES, True, "auto",
                          defaults)
    opt.add_group([p], [{}], defaults)
    opt.step([(defaults, [p], [g])])
    # First Adam step moves every parameter by lr (m_hat / sqrt(v_hat) = 1), up to eps.
    np.testing.assert_allclose(p, 0.9, rtol=1e-6)


def test_import_does_not_load_torch():
    out = subprocess.run([sys.executable, "-c", "import sys, octopage; print('torch' in sys.modules)"],
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"



def test_page_out_pushes_paged_state_out_and_the_run_goes_on_bitwise():
    torch.manual_seed(0)
    start = torch.randn(1 << 20)
    runs = {}
    for name, make in (("device", optim.AdamW8bit), ("paged", optim.PagedAdamW8bit)):
        p = torch.nn.Parameter(start.clone())
        opt = make([p], lr=1e-2)
        for step in range(4):
            p.grad = torch.full_like(p, 0.01 * (step + 1))
            opt.step()
            if name == "paged" and step == 1:
                before = opt.memory_report()["paged_resident_bytes"]
                assert before >= 2 << 20  # the codes of both moments
                opt.page_out()
                assert opt.memory_report()["paged_resident_bytes"] < before / 4
        runs[name] = p.detach().clone()
    assert torch.equal(runs["device"], runs["paged"])
