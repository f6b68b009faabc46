"""descent on Flower: a real SuperLink and two SuperNodes, each a separate process on 127.0.0.1
(insecure local mode), run 3 rounds of the ServerApp and ClientApp; the global model equals
descent's in-process simulation with the same split and seeds, including a client that raises in
round 2 (the round goes on with the other). Every process started here is stopped."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from descent.federated import ClientConfig, FederatedConfig
from descent.federated.experiment import Experiment

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(processes: list[subprocess.Popen]) -> None:
    """Terminate each process and everything it spawned (Flower detaches its SuperExec, ServerApp
    and ClientApp processes into sessions of their own, so the tree is walked, not the group)."""
    family: list[psutil.Process] = []
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            family += [*parent.children(recursive=True), parent]
        except psutil.NoSuchProcess:
            pass
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=10)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)


def test_flower_deployment_equals_the_simulation(tmp_path: Path) -> None:
    from descent.federated.flower import write_app

    experiment = Experiment(
        data="digits",
        model="softmax",
        clients=2,
        partition="dirichlet:1.0",
        federated=FederatedConfig(
            fraction=1.0,
            rounds=3,
            server="fedavgm",
            server_lr=1.0,
            client=ClientConfig(optimizer="sgd", lr=0.1, epochs=2, batch_size=32),
            vectorize=False,
        ),
    )
    out = tmp_path / "global.pt"
    app = tmp_path / "app"
    write_app(app, experiment, out=str(out), fail="2:1")
    home = tmp_path / "flwr-home"
    home.mkdir()
    link = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("w") as log:
            processes.append(
                subprocess.Popen(
                    [str(BIN / args[0]), *args[1:]],
                    env=env,
                    cwd=tmp_path,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    try:
        start(
            "superlink",
            "flower-superlink",
            "--insecure",
            "--port",
            str(link),
            "--disable-runtime-dependency-installation",
        )
        for partition_id in range(2):
            start(
                f"supernode{partition_id}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{link}",
                "--port",
                str(free_port()),
                "--node-config",
                f"partition-id={partition_id}",
            )
        expected = _simulate(experiment)  # meanwhile, descent's own simulation
        submitted = subprocess.run(
            [str(BIN / "flwr"), "run", str(app), "local"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        deadline = time.monotonic() + 240  # a guard against a hang
        while not out.exists() and time.monotonic() < deadline:
            for process in processes:
                assert process.poll() is None, (logs / "superlink.log").read_text()
            time.sleep(0.5)
        assert out.exists(), "\n".join(p.read_text()[-2000:] for p in logs.iterdir())
    finally:
        stop(processes)
    assert all(process.poll() is not None for process in processes)
    saved = torch.load(out, weights_only=False)
    assert [(r, c, f) for r, c, f, _ in saved["history"]] == [
        (m.round, m.clients, m.failed) for m in expected.history
    ]
    assert expected.history[1].failed == [1]  # the failure happened, and in both runs
    for flower_weight, descent_weight in zip(saved["weights"], expected.weights, strict=True):
        assert torch.allclose(flower_weight, descent_weight, rtol=0, atol=1e-6)


def _simulate(experiment: Experiment):
    def fail(round_number: int, client: int) -> None:
        if (round_number, client) == (2, 1):
            raise RuntimeError("client 1 was told to fail in round 2")

    return experiment.federation(before_client=fail).run()
