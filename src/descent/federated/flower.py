"""descent's federated averaging as a Flower App (flwr ≥ 1.20, Message API): a ``ServerApp`` that
samples clients, averages and steps the server rule, and a ``ClientApp`` that trains its own
partition, both with descent's code, so a run on real SuperNodes gives the weights of descent's
in-process simulation with the same split and seeds.

This is the only module of descent that imports flwr (the ``federated`` extra).

Protocol, per run:

1. the ServerApp waits for ``clients`` SuperNodes and sends each a ``query`` message; a node
   answers with its ``partition-id`` (its node config), so the server knows which client of the
   split each node holds;
2. round t: the server samples the partition ids exactly as the simulation does
   (:func:`~descent.federated.simulation.sample_clients`), sends the global weights in a
   ``train`` message to each sampled node, and averages the replies weighted by their n_k;
   a reply that carries an error (the client raised) is left out of the round: the simulation's
   failure policy;
3. after each round the global model is evaluated on the central test set and checkpointed in
   ``logdir`` when the run config names one; at the end, the weights go to ``out`` (torch.save)
   when it is set.

Each node loads the data itself (``data``, with the same seed) and keeps only its partition.

Example (see docs/federated.md for several machines and TLS)::

    flower-superlink --insecure
    flower-supernode --insecure --superlink 127.0.0.1:8000 --port 9094 \\
        --node-config "partition-id=0"
    flower-supernode --insecure --superlink 127.0.0.1:8000 --port 9095 \\
        --node-config "partition-id=1"
    descent federate --flower-app app/ --clients 2 --fraction 1 ...   # writes the app folder
    flwr run app/ local
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from descent.federated.client import ClientUpdate, client_seed, train_looped
from descent.federated.experiment import Experiment
from descent.federated.simulation import Federation

#: how long the ServerApp waits for the SuperNodes to connect, and for a round's replies
CONNECT_TIMEOUT_S = 60.0
ROUND_TIMEOUT_S = 300.0

APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "descent-fedavg"
version = "1.0.0"
description = "descent's federated averaging on Flower"
license = "MIT"
dependencies = []

[tool.flwr.app]
publisher = "descent"

[tool.flwr.app.components]
serverapp = "descent.federated.flower:server_app"
clientapp = "descent.federated.flower:client_app"

[tool.flwr.app.config]
{config}
"""


def _toml_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def write_app(folder: str | Path, experiment: Experiment, **extra: str | int | float) -> Path:
    """Write a Flower App folder (its pyproject.toml) whose run config is ``experiment``;
    ``extra`` adds keys (``out``: where the ServerApp saves the final weights; ``logdir``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {**experiment.run_config(), "out": "", "logdir": "", "fail": "", **extra}
    lines = "\n".join(f"{key} = {_toml_value(value)}" for key, value in settings.items())
    path = folder / "pyproject.toml"
    path.write_text(APP_PYPROJECT.format(config=lines))
    return path


def _to_record(names: Sequence[str], weights: Sequence[torch.Tensor]) -> ArrayRecord:
    return ArrayRecord({name: w.detach().cpu() for name, w in zip(names, weights, strict=True)})


def _from_record(
    record: ArrayRecord, names: Sequence[str], like: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    state = record.to_torch_state_dict()
    return [state[name].to(dtype=w.dtype) for name, w in zip(names, like, strict=True)]


# -- the client -------------------------------------------------------------------------------

client_app = ClientApp()
_client_cache: dict[tuple[Any, ...], Any] = {}


def _client_state(context: Context) -> tuple[Experiment, int, Any, Any, torch.nn.Module, list]:
    """This node's experiment, partition id, data and model (built once per run)."""
    experiment = Experiment.from_run_config(dict(context.run_config))
    partition_id = int(context.node_config["partition-id"])
    key = (tuple(sorted(experiment.run_config().items())), partition_id)
    if key not in _client_cache:
        data, split, model = experiment.load()
        index = torch.from_numpy(split.indices[partition_id])
        dtype = next(model.parameters()).dtype
        images, labels = data.train.images[index].to(dtype), data.train.labels[index]
        names = [name for name, _ in model.named_parameters()]
        _client_cache.clear()
        _client_cache[key] = (experiment, partition_id, images, labels, model, names)
    return _client_cache[key]


@client_app.query()
def query(message: Message, context: Context) -> Message:
    """Tell the server which client of the split this node holds."""
    partition_id = int(context.node_config["partition-id"])
    content = RecordDict({"node": MetricRecord({"partition-id": partition_id})})
    return Message(content, reply_to=message)


@client_app.train()
def train(message: Message, context: Context) -> Message:
    """E local epochs from the global weights with descent's client training."""
    experiment, partition_id, images, labels, model, names = _client_state(context)
    config = message.content.config_records["config"]
    round_number = int(config["round"])
    if str(config.get("fail", "")) == f"{round_number}:{partition_id}":  # failure-policy test
        raise RuntimeError(f"client {partition_id} was told to fail in round {round_number}")
    like = [p.detach() for p in model.parameters()]
    weights = _from_record(message.content.array_records["weights"], names, like)
    seed = client_seed(experiment.federated.seed, round_number, partition_id)
    (update,) = train_looped(
        model, names, weights, [(partition_id, images, labels, seed)], experiment.federated.client
    )
    content = RecordDict(
        {
            "weights": _to_record(names, update.weights),
            "metrics": MetricRecord(
                {"num-examples": update.size, "loss": update.loss, "partition-id": partition_id}
            ),
        }
    )
    return Message(content, reply_to=message)


# -- the server -------------------------------------------------------------------------------


class FlowerFederation(Federation):
    """A :class:`Federation` whose clients are Flower SuperNodes reached through ``grid``."""

    def __init__(
        self, grid: Grid, experiment: Experiment, fail: str = "", logdir: str | Path | None = None
    ) -> None:
        data, split, model = experiment.load()
        super().__init__(model, data.train, data.test, split, experiment.federated, logdir)
        self.grid = grid
        self.fail = fail  # "ROUND:PARTITION": that client raises in that round (tests)
        self.node_ids = self._wait_for(experiment.clients)
        # partition id → node id; when every client trains every round (C = 1) the first
        # round's replies tell it, which spares each node one ClientApp process start
        self.nodes: dict[int, int] | None = None
        if experiment.federated.sampled(experiment.clients) < experiment.clients:
            self.nodes = self._discover(experiment.clients)

    def _wait_for(self, clients: int) -> list[int]:
        """The node ids, once ``clients`` SuperNodes have connected."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        node_ids = list(self.grid.get_node_ids())
        while len(node_ids) < clients:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(node_ids)} of {clients} SuperNodes connected in {CONNECT_TIMEOUT_S} s"
                )
            time.sleep(0.5)
            node_ids = list(self.grid.get_node_ids())
        return node_ids

    def _discover(self, clients: int) -> dict[int, int]:
        """partition id → node id, asked of every node with a ``query`` message."""
        messages = [
            Message(RecordDict(), dst_node_id=node, message_type="query") for node in self.node_ids
        ]
        nodes: dict[int, int] = {}
        for reply in self.grid.send_and_receive(messages, timeout=CONNECT_TIMEOUT_S):
            if reply.has_error():
                continue
            partition_id = int(reply.content.metric_records["node"]["partition-id"])
            nodes[partition_id] = reply.metadata.src_node_id
        missing = sorted(set(range(clients)) - set(nodes))
        if missing:
            raise RuntimeError(f"no SuperNode holds partition(s) {missing}")
        return nodes

    def train_clients(
        self, round_number: int, chosen: Sequence[int]
    ) -> tuple[list[ClientUpdate], list[int]]:
        weights = _to_record(self.names, self.weights)
        config = ConfigRecord({"round": round_number, "fail": self.fail})
        targets = self.node_ids if self.nodes is None else [self.nodes[c] for c in chosen]
        messages = [
            Message(
                RecordDict({"weights": weights, "config": config}),
                dst_node_id=node,
                message_type="train",
            )
            for node in targets
        ]
        updates: list[ClientUpdate] = []
        for reply in self.grid.send_and_receive(messages, timeout=ROUND_TIMEOUT_S):
            if reply.has_error():  # the failure policy: the round goes on without this client
                continue
            metrics = reply.content.metric_records["metrics"]
            if self.nodes is None:
                self.nodes = {}
            self.nodes.setdefault(int(metrics["partition-id"]), reply.metadata.src_node_id)
            updates.append(
                ClientUpdate(
                    int(metrics["partition-id"]),
                    _from_record(reply.content.array_records["weights"], self.names, self.weights),
                    int(metrics["num-examples"]),
                    float(metrics["loss"]),
                )
            )
        updates.sort(key=lambda update: update.client)
        reported = {update.client for update in updates}
        return updates, [client for client in chosen if client not in reported]


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """Rounds of descent's federated averaging over the connected SuperNodes."""
    config = dict(context.run_config)
    experiment = Experiment.from_run_config(config)
    federation = FlowerFederation(
        grid,
        experiment,
        fail=str(config.get("fail", "")),
        logdir=str(config.get("logdir", "")) or None,
    )
    result = federation.run()
    out = str(config.get("out", ""))
    if out:
        torch.save(
            {
                "weights": result.weights,
                "history": [
                    (m.round, m.clients, m.failed, m.test_accuracy) for m in result.history
                ],
            },
            out,
        )


__all__ = ["FlowerFederation", "client_app", "server_app", "write_app"]
