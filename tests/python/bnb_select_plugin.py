"""pytest plugin (`-p bnb_select_plugin`) that keeps bitsandbytes' test_optim.py to what
two CPU cores run in minutes: it deselects the parametrizations whose tensors have
`dim2` above $OCTOPAGE_BNB_MAX_DIM2 (default 32, i.e. 1024x32 and 1024x1 tensors; the
file also has 1024x1024 and 1024x4097, each test of which takes bitsandbytes' CPU backend
10-60 s). OCTOPAGE_BNB_MAX_DIM2=0 keeps every size. Both runs of test_bnb_suite.py load
it, so they select the same tests; it changes nothing else. Not a test file.
"""
import os


def pytest_collection_modifyitems(config, items):
    limit = int(os.environ.get("OCTOPAGE_BNB_MAX_DIM2", "32"))
    if limit <= 0:
        return
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (dropped if params.get("dim2", 0) > limit else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
