"""The `octopage` command line end to end, as a user runs it, on the tiny model (seconds):
every subcommand runs and its output parses; the loss goes down, with every rule;
tiered runs are bitwise the device run; a run resumed from a checkpoint is bitwise the
uninterrupted one, also when it resumes under another placement; the memory table is
what the state format says (computed here from the shapes), for every choice; bad
arguments fail with a message and a non-zero exit.

The program is $OCTOPAGE_CLI (CTest sets it). Runs use one thread: CTest runs tests in
parallel, and two OpenMP runs sharing two cores slow each other down badly.
"""
import csv
import json
import math
import os
import struct
import subprocess

import pytest

CLI = os.environ.get("OCTOPAGE_CLI")
pytestmark = pytest.mark.skipif(not CLI, reason="OCTOPAGE_CLI is not set (CTest sets it)")
ENV = dict(os.environ, OMP_NUM_THREADS="1")
TINY = ["--model", "tiny", "--batch", "4", "--sequence", "32", "--threads", "1"]


def run(*args, check=True, timeout=120):
    p = subprocess.run([CLI, *args], capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"octopage {' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def train(*args):
    return json.loads(run("train", *TINY, "--quiet", *args).stdout)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


# --------------------------------------------------------------------------- train

def test_train_learns_and_reports_what_it_costs():
    r = train("--steps", "40", "--optimizer", "adamw8bit")
    losses = r["losses"]
    assert len(losses) == 40 and r["first_step"] == 0 and r["last_step"] == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0  # from ~5.5 (uniform over bytes)
    assert abs(losses[0] - math.log(256)) < 0.3
    assert math.isfinite(r["eval_loss"]) and r["eval_loss"] < losses[0] - 1.0
    assert r["state_bytes"]["host"] > 0 and r["state_bytes"]["file"] == 0
    assert r["state_bytes"]["tensors_8bit"] > 0
    assert r["param_bytes"] == 4 * r["parameters"] and r["peak_rss_bytes"] > r["param_bytes"]
    assert r["optimizer_step_ms"] > 0 and r["tokens_per_s"] > 0


def test_tied_embeddings_share_the_head_weight():
    untied, tied = train("--steps", "3"), train("--steps", "3", "--tie-embeddings")
    assert untied["parameters"] - tied["parameters"] == 256 * 64  # tiny: vocabulary x width
    assert tied["options"]["tie_embeddings"] and tied["param_bytes"] == 4 * tied["parameters"]
    planned = json.loads(run("memory", "--model", "tiny", "--tie-embeddings", "--json").stdout)
    assert planned["parameters"] == tied["parameters"]


def test_octopage_adamw_follows_torch_adamw():
    ours, torchs = train("--steps", "10", "--optimizer", "adamw"), train("--steps", "10", "--optimizer", "torch-adamw")
    assert ours["state_bytes"]["host"] == torchs["state_bytes"]["host"] == 8 * ours["parameters"]
    # The same update within fp32 rounding (octopage divides and takes roots exactly as
    # torch's formula, not its kernel's order): losses agree closely for 10 steps.
    for a, b in zip(ours["losses"], torchs["losses"]):
        assert abs(a - b) <= 1e-4 * abs(b), (ours["losses"], torchs["losses"])


RULES = ["adam", "adamw", "sgd", "lion", "rmsprop", "adagrad", "ademamix", "lamb", "lars"]


def rule_keys():
    """The rules' keys, from `octopage train --help` (which lists the registry's)."""
    usage = run("train", "--help").stdout
    listed = usage.split("rules, with the learning rate")[1].splitlines()[1:]
    return [line.split()[0] for line in listed if line.strip()]


def test_train_help_lists_every_rule():
    assert set(RULES) <= set(rule_keys())


@pytest.mark.parametrize("key", RULES)
def test_every_rule_learns_with_32_and_8_bit_state(key):
    # Each rule at its own learning rate (its recipe): the loss goes down from log(256).
    runs = [train("--steps", "30", "--optimizer", k) for k in (key, key + "8bit")]
    for r in runs:
        losses = r["losses"]
        assert r["options"]["rule"] == key and math.isfinite(r["eval_loss"])
        assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, (r["optimizer"], losses)
    full, q8 = runs
    assert q8["state_bytes"]["tensors_8bit"] > 0 and full["state_bytes"]["tensors_8bit"] == 0
    assert q8["state_bytes"]["host"] < 0.3 * full["state_bytes"]["host"]


@pytest.mark.parametrize("key", ["lion8bit", "ademamix8bit", "lars8bit"])
def test_tiered_runs_of_other_rules_are_bitwise_their_device_twin(key):
    device = train("--steps", "6", "--optimizer", key)
    for tier in ("paged-", "offload-"):
        r = train("--steps", "6", "--optimizer", tier + key)
        assert r["losses"] == device["losses"] and r["param_hash"] == device["param_hash"]
        assert r["state_bytes"]["host"] == 0 and r["state_bytes"]["file"] == device["state_bytes"]["host"]


@pytest.mark.parametrize("saved_with, resume_with", [("adamw8bit", "adamw8bit"), ("adamw8bit", "offload-adamw8bit"),
                                                     ("ademamix8bit", "paged-ademamix8bit"), ("sgd", "offload-sgd")])
def test_a_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path, saved_with, resume_with):
    whole = train("--steps", "16", "--optimizer", saved_with)
    first = train("--steps", "16", "--stop-at", "7", "--optimizer", saved_with, "--save", str(tmp_path / "ck"))
    assert first["last_step"] == 7 and len(first["losses"]) == 7
    assert sorted(os.listdir(tmp_path / "ck")) == ["checkpoint.json", "model.pt", "optimizer.pt"]
    rest = train("--steps", "16", "--optimizer", resume_with, "--resume", str(tmp_path / "ck"))
    assert rest["first_step"] == 7
    assert rest["losses"] == whole["losses"]
    assert rest["param_hash"] == whole["param_hash"]


def test_resuming_under_other_options_is_refused(tmp_path):
    train("--steps", "6", "--stop-at", "3", "--save", str(tmp_path / "ck"))
    p = run("train", *TINY, "--steps", "6", "--batch", "8", "--resume", str(tmp_path / "ck"), check=False)
    assert p.returncode == 1 and "was trained with batch = 4, this run has 8" in p.stderr
    p = run("train", *TINY, "--steps", "6", "--stop-at", "3", "--resume", str(tmp_path / "ck"), check=False)
    assert p.returncode == 1 and "nothing to train" in p.stderr
    p = run("train", *TINY, "--steps", "6", "--optimizer", "lion8bit", "--resume", str(tmp_path / "ck"), check=False)
    assert p.returncode == 1 and 'was trained with rule = "adamw", this run has "lion"' in p.stderr


# --------------------------------------------------------------------------- demo

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    p = run("demo", *TINY, "--steps", "24", "--out", str(out), "--quiet", timeout=300)
    return out, p.stdout


def test_demo_writes_its_table_json_csv_and_charts(demo):
    out, stdout = demo
    report = json.loads((out / "demo.json").read_text())
    names = [r["optimizer_name"] for r in report["runs"]]
    assert names == ["AdamW", "AdamW8bit", "PagedAdamW8bit", "offloaded AdamW8bit"]
    with open(out / "demo.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [""] + names and all(len(row) == 5 for row in rows)
    table = {row[0]: row[1:] for row in rows[1:]}
    assert table["bitwise the run with state in RAM"] == ["-", "-", "yes (AdamW8bit)", "yes (AdamW8bit)"]
    for name in names:
        assert name in stdout
    assert png_size(out / "loss.png") == png_size(out / "memory.png") == (960, 600)
    assert sorted(os.listdir(out / "runs")) == sorted(f"{r['optimizer']}.json" for r in report["runs"])


def test_demo_runs_learn_the_same_and_cost_what_the_format_says(demo):
    out, _ = demo
    report = json.loads((out / "demo.json").read_text())
    adamw, q8, paged, offload = report["runs"]
    for r in report["runs"]:
        assert r["losses"][-1] < r["losses"][0] - 1.0
        assert r["peak_rss_bytes"] > 0
    # Tiered runs are bitwise the device run: same losses, same final parameters.
    for tiered in (paged, offload):
        assert tiered["losses"] == q8["losses"] and tiered["param_hash"] == q8["param_hash"]
    assert abs(q8["eval_loss"] / adamw["eval_loss"] - 1) < 0.01
    assert q8["state_bytes"]["host"] < 0.26 * adamw["state_bytes"]["host"]
    assert paged["state_bytes"]["host"] == 0 and paged["state_bytes"]["file"] == q8["state_bytes"]["host"]
    # The demo's ring: at most 1 MiB in 256 KiB chunks, at least 3 of them.
    assert offload["state_bytes"]["host"] == 0 and 3 * (256 << 10) <= offload["state_bytes"]["staging"] <= 1 << 20
    targets = {t["name"]: t for t in report["targets"]}
    assert len(targets) == 5 and all(t["met"] for t in targets.values()), targets


# --------------------------------------------------------------------------- memory and bench

def q8_state_bytes(n):
    return 2 * (n + 4 * -(-n // 256))


@pytest.mark.parametrize("model, layers, hidden, inter, kv, vocab", [("llama-220m", 12, 1024, 2816, 1024, 32000),
                                                                       ("llama-1b", 22, 2048, 5632, 256, 32000)])
def test_memory_is_what_the_state_format_says(model, layers, hidden, inter, kv, vocab):
    report = json.loads(run("memory", "--model", model, "--json").stdout)
    sizes = [vocab * hidden] + [hidden, hidden * hidden, kv * hidden, kv * hidden, hidden * hidden, hidden,
                                inter * hidden, inter * hidden, hidden * inter] * layers + [hidden, vocab * hidden]
    n = sum(sizes)
    assert report["parameters"] == n
    rows = {r["optimizer"]: r for r in report["optimizers"]}
    assert rows["adamw"]["state_ram_bytes"] == 8 * n and rows["adamw"]["param_bytes"] == 4 * n
    q8 = sum(q8_state_bytes(s) if s >= 4096 else 8 * s for s in sizes)
    assert rows["adamw8bit"]["state_ram_bytes"] == q8 and q8 < 0.26 * 8 * n
    assert rows["paged-adamw8bit"]["state_ram_bytes"] == 0 and rows["paged-adamw8bit"]["state_file_bytes"] == q8
    assert rows["offload-adamw"]["staging_bytes"] == 32 << 20 and rows["offload-adamw"]["state_file_bytes"] == 8 * n
    assert rows["offload-adamw8bit"]["peak_ram_bytes"] == 8 * n + (32 << 20)
    table = run("memory", "--model", model).stdout
    assert "AdamW8bit" in table and "74.6%" in table


def test_memory_plans_every_choice():
    keys = [k + suffix for k in rule_keys() for suffix in ("", "8bit")]
    keys = [prefix + k for prefix in ("", "paged-", "offload-") for k in keys] + ["torch-adamw"]
    report = json.loads(run("memory", "--model", "small", "--optimizers", ",".join(keys), "--json").stdout)
    rows = {r["optimizer"]: r for r in report["optimizers"]}
    assert sorted(rows) == sorted(keys)
    for key in rule_keys():
        full, q8 = rows[key], rows[key + "8bit"]
        assert 0 < q8["state_ram_bytes"] < 0.3 * full["state_ram_bytes"], key
        assert q8["tensors_8bit"] > 0 and full["tensors_8bit"] == 0
        assert rows["paged-" + key + "8bit"]["state_file_bytes"] == q8["state_ram_bytes"]
        assert rows["offload-" + key]["state_ram_bytes"] == 0
    # One state per parameter (SGD's momentum, Lion's), two (Adam's), three (AdEMAMix's).
    n = report["parameters"]
    assert rows["sgd"]["state_ram_bytes"] == rows["lion"]["state_ram_bytes"] == 4 * n
    assert rows["adamw"]["state_ram_bytes"] == 8 * n and rows["ademamix"]["state_ram_bytes"] == 12 * n


def test_demo_runs_any_rule(tmp_path):
    p = run("demo", *TINY, "--steps", "8", "--optimizers", "lion8bit,ademamix8bit,offload-lion8bit", "--out",
            str(tmp_path), "--quiet", timeout=300)
    report = json.loads((tmp_path / "demo.json").read_text())
    assert [r["optimizer_name"] for r in report["runs"]] == ["Lion8bit", "AdEMAMix8bit", "offloaded Lion8bit"]
    assert "Lion8bit" in p.stdout and "AdEMAMix8bit" in p.stdout
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["offloaded Lion8bit bitwise equal to Lion8bit"]["met"]


def test_bench_runs_the_step_benchmark():
    p = run("bench", "--sizes", "64K", "--overhead", "0", "--min-time", "0.01", "--format", "jsonl", "--threads", "1")
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    steps = [line for line in lines if line["kind"] == "step"]
    assert lines[0]["kind"] == "triad" and len(steps) == 4
    assert all(s["params_per_s"] > 0 for s in steps)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args, code, message", [
    (["frobnicate"], 2, "unknown command 'frobnicate'"),
    (["train", "--optimizer", "sgd4bit"], 2,
     "expected --optimizer adam, adam8bit, .*, adamw8bit, .*, lion8bit, .*, offload-lars8bit, torch-adamw, "
     "got 'sgd4bit'"),
    (["train", "--model", "llama-70b"], 2, "expected --model tiny, small, llama-220m or llama-1b, got 'llama-70b'"),
    (["train", "--steps", "0"], 2, "expected --steps to be a whole number >= 1, got '0'"),
    (["train", "--stop-at", "9", "--steps", "5"], 2, "expected --stop-at <= --steps"),
    (["train", "--lr", "-1"], 2, "expected --lr to be a number > 0"),
    (["train", "--frob"], 2, "unknown option '--frob'"),
    (["train", "--steps"], 2, "expected a value after --steps"),
    (["train", "--device", "tpu"], 2, "expected --device cpu or cuda, got 'tpu'"),
    (["train", "--device", "cuda"], 1, "this build of octopage has no CUDA backend"),
    (["train", "--resume", "/no/such/checkpoint"], 2, "expected --resume to be a checkpoint directory"),
    (["train", "--offload-dir", "/no/such/dir"], 2, "expected offload_dir to be an existing directory"),
    (["train", "--ring-kib", "8", "--chunk-kib", "4"], 2, "expected ring_bytes >= 3 \\* chunk_bytes"),
    (["demo", "--optimizers", "adamw,lion4bit"], 2, "expected --optimizers from adam, adam8bit, .*got 'lion4bit'"),
    (["memory", "--optimizers", "rmsprop,sgd2bit"], 2, "expected --optimizers from adam, .*got 'sgd2bit'"),
    (["demo", "--out", "/proc/octopage-demo"], 1, "cannot write to the output directory '/proc/octopage-demo'"),
    (["demo", "--device", "cuda"], 1, "no CUDA backend"),
    (["memory", "--model", "gpt-5"], 2, "expected --model tiny, small, llama-220m or llama-1b"),
    (["memory", "--dtype", "int8"], 2, "expected --dtype fp32, bf16 or fp16"),
    (["bench", "--sizes", "x"], 2, "octopage bench"),
])
def test_bad_arguments_fail_with_a_message(args, code, message):
    import re
    p = run(*args, check=False)
    assert p.returncode == code, p.stderr
    assert re.search(message, p.stderr), p.stderr


@pytest.mark.parametrize("command", ["demo", "train", "memory", "bench"])
def test_every_command_has_help(command):
    p = run(command, "--help")
    assert p.returncode == 0 and p.stdout.startswith("usage: octopage")
