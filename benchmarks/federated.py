"""Federated averaging: client-training speed and communication rounds, one run.

1. Rounds per second of client training for McMahan et al.'s workload on the bundled digits:
   K = 100 clients of 12 examples (IID), C = 0.1, E = 5, B = 10, the CNN; descent's vectorized
   clients (torch.func.vmap over stacked weights) against its looped clients (the same numbers,
   one client after the other), and Flower's simulation engine where it runs (it needs Ray).
   Target: vectorized ≥ 5× looped.
2. Communication rounds to a target test accuracy, FedSGD against FedAvg (E = 5, B = 10), IID
   and pathological non-IID (two label shards per client), beside McMahan et al.'s figures
   (MNIST CNN to 99%, IID: FedSGD 626 rounds, FedAvg 20, 31×). On digits always, on MNIST when
   ``--mnist DIR`` holds its IDX files.

    python benchmarks/federated.py [--rounds 10] [--target 0.95] [--max-rounds 300]
                                   [--mnist DIR] [--threads 1] [--skip-rounds-to-target]
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch

from descent.data.images import digits
from descent.federated import ClientConfig, FederatedConfig, Federation, iid, sample_clients
from descent.federated.experiment import Experiment, build_model, compare

PAPER = {"fedsgd": 626, "fedavg": 20}  # McMahan et al. 2017, Table 2: CNN, MNIST, 99%, IID


def client_rounds_per_second(vectorize: bool, rounds: int) -> float:
    """Rounds/s of client training and aggregation (evaluation not timed)."""
    data = digits()
    count = 1200  # 100 clients × 12 examples: equal shapes, as the paper's 600 each
    split = iid(data.train.labels[:count].numpy(), 100, seed=0)
    model = build_model("cnn", data.image_shape, 10, seed=0)
    config = FederatedConfig(
        fraction=0.1,
        rounds=rounds + 1,
        client=ClientConfig(lr=0.05, epochs=5, batch_size=10),
        vectorize=vectorize,
    )
    federation = Federation(model, data.train, data.test, split, config)
    elapsed = 0.0
    for round_number in range(1, rounds + 2):
        started = time.perf_counter()
        chosen = sample_clients(
            split.clients, config.sampled(split.clients), config.seed, round_number
        )
        updates, _ = federation.train_clients(round_number, chosen)
        federation.aggregate(updates)
        if round_number > 1:  # the first round warms up the kernels
            elapsed += time.perf_counter() - started
    return rounds / elapsed


def flower_simulation_note() -> str:
    if importlib.util.find_spec("ray") is None:
        return (
            "Flower's simulation engine: not measured, Ray is not installed (flwr[simulation] "
            "pulls it); descent's Flower apps run on the deployment engine instead "
            "(tests/federated/test_flower.py)"
        )
    return "Flower's simulation engine: Ray is installed but this script does not drive it yet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per path")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-rounds", type=int, default=300)
    parser.add_argument("--fedavg-lr", type=float, default=0.2)
    parser.add_argument("--fedavg-lr-k10", type=float, default=0.05)
    parser.add_argument("--fedsgd-lr", type=float, default=0.5)
    parser.add_argument("--mnist", default=None, help="a folder with MNIST's IDX files")
    parser.add_argument("--skip-rounds-to-target", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("1. client training, digits CNN, K = 100, C = 0.1, E = 5, B = 10")
    vectorized = client_rounds_per_second(True, args.rounds)
    looped = client_rounds_per_second(False, args.rounds)
    print(f"   descent vectorized (vmap): {vectorized:8.2f} rounds/s")
    print(f"   descent looped:            {looped:8.2f} rounds/s")
    print(f"   vectorized / looped:       {vectorized / looped:8.2f}×  (target ≥ 5×)")
    print(f"   {flower_simulation_note()}")

    if args.skip_rounds_to_target:
        return
    datasets = ["digits"] + ([f"mnist:{args.mnist}"] if args.mnist else [])
    # K = 100, C = 0.1 is the paper's federation (on digits: 12 examples per client, so FedAvg
    # does only 10 local updates a round); K = 10, C = 0.5 gives each client ~126 digits.
    federations = [(100, 0.1, args.fedavg_lr), (10, 0.5, args.fedavg_lr_k10)]
    for data in datasets:
        for clients, fraction, fedavg_lr in federations:
            print(
                f"2. rounds to {args.target:.0%} test accuracy, {data}, CNN, K = {clients}, "
                f"C = {fraction:g} (FedAvg: E = 5, B = 10, lr {fedavg_lr:g}; FedSGD: lr "
                f"{args.fedsgd_lr:g})"
            )
            experiment = Experiment(
                data=data,
                model="cnn",
                clients=clients,
                federated=FederatedConfig(
                    fraction=fraction, client=ClientConfig(lr=fedavg_lr, epochs=5, batch_size=10)
                ),
            )
            rows = compare(experiment, args.target, args.fedsgd_lr, max_rounds=args.max_rounds)
            for row in rows:
                sgd = row.fedsgd_rounds or f">{args.max_rounds}"
                avg = row.fedavg_rounds or f">{args.max_rounds}"
                factor = "–" if row.reduction is None else f"{row.reduction:.1f}×"
                print(
                    f"   {row.partition:7s} FedSGD {sgd!s:>5} rounds, FedAvg {avg!s:>5} rounds: "
                    f"{factor} fewer ({row.fedsgd_seconds + row.fedavg_seconds:.0f} s)"
                )
    print(
        f"   McMahan et al. (MNIST CNN to 99%, IID): FedSGD {PAPER['fedsgd']}, FedAvg "
        f"{PAPER['fedavg']}: {PAPER['fedsgd'] / PAPER['fedavg']:.0f}× fewer"
    )


if __name__ == "__main__":
    main()
