"""bitsandbytes' own optimizer tests on octopage: bitsandbytes' tests/test_optim.py,
unmodified, run on the CPU twice in pytest subprocesses, once as it is and once with
bnb_swap_plugin.py putting octopage.optim's class of the same name in place of every
optimizer class (and GlobalOptimManager) of bitsandbytes.optim. Every test that passes
with bitsandbytes must pass with octopage, and octopage's classes must take the steps.

bitsandbytes' wheel ships no tests and this repository copies none: set
OCTOPAGE_BNB_TESTS to the tests/ folder of a bitsandbytes source checkout (any version:
the two runs use the installed bitsandbytes, on the same machine). Its test_optim.py
imports lion_pytorch (`pip install lion-pytorch`). Without either, or without
bitsandbytes, this skips, saying which.

What runs: test_optim.py less its `benchmark` tests (bitsandbytes' pytest.ini deselects
them too), and, through bnb_select_plugin.py, its tensors up to 1024x32: the 1024x1024
and 1024x4097 ones take bitsandbytes' CPU backend over an hour on 2 cores. With them
left out, each run takes about 3 minutes; OCTOPAGE_BNB_MAX_DIM2=0 runs every size.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import octopage

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 3600

bnb = pytest.importorskip("bitsandbytes", reason="scripts/setup installs bitsandbytes for the peer tests")


def _bnb_tests_dir():
    folder = os.environ.get("OCTOPAGE_BNB_TESTS")
    if not folder:
        pytest.skip("OCTOPAGE_BNB_TESTS is not set: point it at a bitsandbytes source checkout's tests/ "
                    "folder (bitsandbytes' wheel ships no tests)")
    folder = Path(folder).resolve()
    if not (folder / "test_optim.py").is_file():
        pytest.skip(f"OCTOPAGE_BNB_TESTS={folder} has no test_optim.py: expected a bitsandbytes "
                    "checkout's tests/ folder")
    if importlib.util.find_spec("lion_pytorch") is None:
        pytest.skip("bitsandbytes' test_optim.py imports lion_pytorch: pip install lion-pytorch")
    return folder


def _run(folder, out, swap):
    """Starts pytest on folder/test_optim.py, in out; returns (process, junit path, log path)."""
    name = "octopage" if swap else "bitsandbytes"
    paths = [str(HERE), str(folder.parent), str(Path(octopage.__file__).resolve().parent.parent)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               OCTOPAGE_BNB_SWAP_REPORT=str(out / "swap.json"),
               PYTHONPATH=os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    junit, log = out / f"{name}.xml", out / f"{name}.log"
    plugins = ["-p", "bnb_select_plugin"] + (["-p", "bnb_swap_plugin"] if swap else [])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins,
               "-c", os.devnull, "--rootdir", str(folder.parent), "-m", "not benchmark",
               "-W", "ignore::pytest.PytestUnknownMarkWarning", f"--junitxml={junit}",
               str(folder / "test_optim.py")]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=out, env=env, stdout=output, stderr=subprocess.STDOUT)
    return process, junit, log


def _test_key(testcase):
    """A test's id, the same in both runs: parameters that are classes (test_optim.py's
    LAMB rows) are named by the class's name, not its module."""
    name = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", testcase.get("name"))
    return f"{testcase.get('classname')}::{name}"


def _outcomes(junit):
    """{test id: (outcome, first line of its message)} from a junit report."""
    outcomes = {}
    for testcase in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("skipped", "failure", "error"):
            found = testcase.find(tag)
            if found is not None:
                outcome, message = tag, (found.get("message") or "").strip().split("\n")[0]
        outcomes[_test_key(testcase)] = (outcome, message)
    return outcomes


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both runs, side by side (each is mostly one thread): for each, its outcomes, the
    tail of its output, its seconds and the swap plugin's report."""
    folder = _bnb_tests_dir()
    jobs = {swap: _run(folder, tmp_path_factory.mktemp("octopage" if swap else "bitsandbytes"), swap)
            for swap in (False, True)}
    started, seconds = time.monotonic(), {}
    try:
        while len(seconds) < len(jobs) and time.monotonic() - started < TIMEOUT_S:
            for swap, (process, _, _) in jobs.items():
                if swap not in seconds and process.poll() is not None:
                    seconds[swap] = time.monotonic() - started
            time.sleep(0.5)
    finally:
        for process, _, _ in jobs.values():
            process.kill()
            process.wait()
    results = {}
    for swap, (process, junit, log) in jobs.items():
        name, tail = ("octopage" if swap else "bitsandbytes"), log.read_text()[-3000:]
        assert swap in seconds, f"the {name} run took more than {TIMEOUT_S} s:\n{tail}"
        assert process.returncode in (0, 1) and junit.is_file(), \
            f"pytest on the {name} run exited {process.returncode}:\n{tail}"
        report = junit.parent / "swap.json"
        results[swap] = dict(outcomes=_outcomes(junit), tail=tail, seconds=seconds[swap],
                             swap=json.loads(report.read_text()) if report.is_file() else None)
        counts = {}
        for outcome, _ in results[swap]["outcomes"].values():
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f"test_optim.py with {name}: {counts} in {seconds[swap]:.0f} s")
    return results[False], results[True]


def test_octopage_passes_what_bitsandbytes_passes(runs):
    theirs, ours = runs
    passed = [key for key, (outcome, _) in theirs["outcomes"].items() if outcome == "passed"]
    assert passed, f"no test of test_optim.py passed with bitsandbytes itself:\n{theirs['tail']}"
    regressions = []
    for key in passed:
        outcome, message = ours["outcomes"].get(key, ("not run", ""))
        if outcome != "passed":
            regressions.append(f"{key}: {outcome}: {message}")
    assert not regressions, (f"{len(regressions)} of the {len(passed)} tests that pass with bitsandbytes "
                             "do not with octopage:\n" + "\n".join(regressions))


def test_octopage_classes_took_the_steps(runs):
    _, ours = runs
    report = ours["swap"]
    assert report and report["swapped"], f"bnb_swap_plugin swapped nothing:\n{ours['tail']}"
    steps = report["steps"]
    left_to_bitsandbytes = {name: n for name, n in steps.items()
                            if name.startswith("bitsandbytes.") and name.rsplit(".", 1)[1] in report["swapped"]}
    assert not left_to_bitsandbytes, f"bitsandbytes' own classes stepped: {left_to_bitsandbytes}"
    assert sum(n for name, n in steps.items() if name.startswith("octopage.")) > 0, steps
