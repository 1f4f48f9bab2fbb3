"""Resumed runs are decided by the run id in each folder's run record, not by the folder name (issue 17, item 3)."""

from __future__ import annotations

import pytest

from analysis.sources import open_run
from tests.wandb_writer import write_sessions

pytestmark = pytest.mark.slow  # resumed wandb runs written in subprocesses

_SCRIPT = r"""
import sys, wandb
d, run_id, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
run = wandb.init(project="tests", id=run_id, name=run_id, dir=d)
for s in range(5):
    wandb.log({"val/recall": value, "global_step": s})
run.finish()
"""


def test_a_run_whose_id_ends_another_ids_is_not_merged_into_it(tmp_path):
    """Custom ids `model-v2` (older) and `v2`: the `model-v2` folder name ends with `-v2`, so opening `v2`
    merged the other experiment in as an "earlier resumed session"."""
    write_sessions(tmp_path, _SCRIPT, [["model-v2", "0.1"], ["v2", "0.9"]])
    (v2,) = (tmp_path / "wandb").glob("offline-run-*_??????-v2")
    assert any(p.name.endswith("-model-v2") for p in (tmp_path / "wandb").iterdir())
    for run in (open_run(v2, cache=False), open_run(v2)):
        assert run.ref.run_id == "v2"
        assert run.history["val/recall"].tolist() == [0.9] * 5
        assert run.history["_step"].tolist() == list(range(5))
        assert not any("resumed run" in e for e in run.status.errors)
