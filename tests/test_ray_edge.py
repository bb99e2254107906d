"""raysweep.run.cluster's decisions that need no GPU and no remote cluster: the memory cap a GPU
share becomes, the message of a trial that overran it, and connecting with an address (no
authentication switched off, and a clear error within seconds where no cluster answers).

What this machine cannot check: that torch.cuda.set_per_process_memory_fraction really stops a
trial at its cap on a GPU (it has none); the arithmetic and the wording are checked here.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raysweep.errors import InputError
from raysweep.run import cluster

ROOT = Path(__file__).parent.parent
# torch's wording in 2.x: "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total ..."
TORCH_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
             "79.19 GiB of which 1.50 GiB is free. Of the allocated memory 8.1 GiB is allocated "
             "by PyTorch")


@pytest.mark.parametrize("share, cap", [
    (0.125, 0.105), (0.25, 0.23), (0.5, 0.48), (0.03, 0.015),   # tiny shares keep half
    (1.0, None), (0.0, None), (2.0, None),                        # whole GPUs, none: no cap
])
def test_a_gpu_share_becomes_a_cap_below_it(share, cap):
    got = cluster.memory_fraction(share)
    assert got == (None if cap is None else pytest.approx(cap))


def test_a_gpu_oom_is_caught_once_torch_is_loaded_and_nothing_before(monkeypatch):
    import torch
    assert cluster.oom_errors() == (torch.cuda.OutOfMemoryError,)
    try:
        raise torch.cuda.OutOfMemoryError(TORCH_OOM)
    except cluster.oom_errors() as err:
        caught = err
    assert "Tried to allocate 2.00 GiB" in str(caught)
    monkeypatch.delitem(sys.modules, "torch")
    assert cluster.oom_errors() == ()


def test_eight_eighths_stay_inside_one_gpu_with_room_for_their_contexts():
    caps = [cluster.memory_fraction(1 / 8)] * 8
    assert sum(caps) == pytest.approx(1 - 8 * cluster.MEMORY_MARGIN)
    assert 8 * cluster.MEMORY_MARGIN * 80 >= 8 * 0.5   # 80 GiB GPU: >= 0.5 GiB per context


def test_an_out_of_memory_message_names_trial_share_cap_and_the_allocation():
    message = cluster.oom_message("abc123", 0.25, RuntimeError(TORCH_OOM), total_bytes=80 * 2**30)
    assert message.startswith("trial abc123 ran out of GPU memory: its share is 0.25 of a GPU")
    assert "capped at 0.23 of the GPU = 18.40 GiB of 80.0 GiB" in message
    assert "it tried to allocate 2.00 GiB" in message and "larger gpu share" in message
    whole = cluster.oom_message("abc123", 1.0, RuntimeError("no size here"))
    assert "(no cap," in whole and "tried to allocate more" in whole


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "[::1]:1"])
def test_an_address_where_nothing_listens_is_refused_at_once(address):
    start = time.monotonic()
    with pytest.raises(InputError, match=f"--address / RAY_ADDRESS {re.escape(address)}: no Ray "
                                         f"cluster answers at .*:1"):
        cluster.check_reachable(address, timeout_s=2)
    assert time.monotonic() - start < 3


def test_connecting_to_an_address_leaves_authentication_on(tmp_path):
    """In a process of its own (this one may hold a local Ray already): connect() to an address
    fails with the clear error and has not set RAY_AUTH_MODE; connect(None) would set it."""
    probe = ("import json, os\n"
             "from raysweep.run import cluster\n"
             "try:\n"
             "    cluster.connect('127.0.0.1:1')\n"
             "except Exception as err:\n"
             "    kind, text = type(err).__name__, str(err)\n"
             "print(json.dumps({'kind': kind, 'text': text,\n"
             "                  'auth': os.environ.get('RAY_AUTH_MODE')}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    run = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True,
                         text=True, timeout=120, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["kind"] == "InputError" and "no Ray cluster answers" in seen["text"]
    assert seen["auth"] is None
