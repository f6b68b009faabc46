"""Data-parallel training on torch.distributed (gloo, two CPU processes started by torch's own
launcher): the same weights as one process with the same global batch, rank 0 alone writes, a
killed rank ends the job with a clear message and an intact checkpoint, and the job resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from descent.train.distributed import DistributedError, launch
from tests.train._helpers import blobs, data_parallel_run, data_parallel_trainer


@pytest.mark.slow
def test_two_processes_equal_one_then_a_killed_rank_is_reported_and_the_job_resumes(
    tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    inputs, targets = blobs(110)
    single = data_parallel_trainer({"logdir": tmp_path / "single"})
    single.fit((inputs, targets), (inputs, targets))

    whole = launch(2, data_parallel_run, {"logdir": str(tmp_path / "whole")})
    for name, value in single.model.state_dict().items():
        assert torch.allclose(value, whole[name], rtol=0, atol=1e-6), name
        assert value.dtype == torch.float64
    assert len(list((tmp_path / "whole").glob("events.out.tfevents.*"))) == 1  # rank 0 alone
    assert len(list((tmp_path / "whole" / "checkpoints").iterdir())) == 2  # last.pt, best.pt

    killed = tmp_path / "killed"
    with pytest.raises(
        DistributedError,
        match=r"process 1 of the data-parallel job was killed by "
        r"SIGKILL",
    ):
        launch(2, data_parallel_run, {"logdir": str(killed), "kill_at": (1, 9)})
    saved = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"]["step"] == 8  # checkpoints every 4 steps: the last one before step 9
    assert len(saved["ranks"]) == 2  # both processes' generators and sums

    resumed = launch(2, data_parallel_run, {"logdir": str(killed), "resume": True})
    for name, value in whole.items():
        assert torch.equal(value, resumed[name]), name
