"""Two workers share one study through a PostgreSQL server this test starts (Debian's
postgresql, which .ci/run installs; on a developer machine without it the test is skipped, in CI
it fails instead)."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from descent.cli.train import free_port
from descent.tune import SearchSpace, StudySettings, tune
from tests.cli_support import run_cli


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    binaries = postgres_bin()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: .ci/run must install Debian's postgresql")
        pytest.skip("PostgreSQL is not installed here (.ci/run installs it for CI)")
    # Not under tmp_path: pytest's folder is private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="descent-pg-"))
    data = home / "pgdata"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *prefix,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(home / "server.log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(postgres_url: str, tmp_path: Path) -> None:
    space = SearchSpace.from_dict(
        {
            "base": {"model": "softmax", "epochs": 2},
            "params": {"lr": {"float": [0.005, 0.05], "log": True}},
        }
    )
    settings = StudySettings(
        tmp_path / "study", space, method="random", trials=4, pruner="none", storage=postgres_url
    )
    tune(settings, workers=2)
    study = optuna.load_study(study_name="descent", storage=postgres_url)
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 4
    assert optuna.trial.TrialState.FAIL not in states
    assert len(list((tmp_path / "study").glob("trial-*"))) == len(states)


@pytest.mark.slow
def test_a_password_in_the_storage_url_is_never_shown_or_written(
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server trusts local connections, so it accepts (and ignores) any password: the URL
    # carries one exactly as a real deployment's would.
    secret = "s3cret-pw"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")
    space = tmp_path / "space.yaml"
    space.write_text("base: {model: softmax, epochs: 1}\nparams:\n  lr: {choices: [0.01, 0.02]}\n")
    folder = tmp_path / "study"
    caplog.set_level(logging.DEBUG)
    outputs = []
    for extra in ([], ["--resume"]):
        arguments = ["tune", str(space), "--method", "grid", "--storage", url]
        code, out, err = run_cli(
            [*arguments, "--study", str(folder), "--pruner", "none", *extra], capsys
        )
        assert code == 0, err
        outputs.append(out + err)
    assert "postgres:***@127.0.0.1" in outputs[0]
    for output in outputs:
        assert secret not in output
    assert secret not in caplog.text
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert any(path.name.startswith("events.out.tfevents") for path in files)  # HParams written
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    study = optuna.load_study(study_name="descent", storage=postgres_url)
    assert secret not in repr(study.user_attrs)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2
