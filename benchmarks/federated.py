"""Federated averaging: client-training speed and communication rounds, one run.

1. Rounds per second of client training for McMahan et al.'s workload on the bundled digits:
   K = 100 clients of 12 examples (IID), C = 0.1, E = 5, B = 10, the CNN; descent's vectorized
   clients (the stacked forward of descent.federated.stacked, and the generic
   torch.func.vmap path it replaces for the CNN) against its looped clients (the same numbers,
   one client after the other). Target: vectorized ≥ 5× looped. Beside them the floor: every
   local step as ONE forward and backward of a single model on all sampled clients' examples,
   with the model as written (NCHW) and in channels-last layout (the layout the stacked path
   pools in). Run at each of ``--threads`` (default 1 and 2).
1b. Whole rounds per second (client training, aggregation and the central evaluation) of the same
   experiment run by descent's simulation and by Flower's simulation engine (``run_simulation``
   with Ray, descent's own ServerApp and ClientApp; ``pip install "flwr[simulation]"``), with the
   two final models compared. Target: descent ahead.
2. Communication rounds to a target test accuracy, FedSGD against FedAvg (E = 5, B = 10), IID
   and pathological non-IID (two label shards per client), beside McMahan et al.'s figures
   (MNIST CNN to 99%, IID: FedSGD 626 rounds, FedAvg 20, 31×). On digits always, on MNIST when
   ``--mnist DIR`` holds its IDX files.

    python benchmarks/federated.py [--rounds 10] [--target 0.95] [--max-rounds 300]
                                   [--mnist DIR] [--threads 1,2] [--skip-rounds-to-target]
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from conditions import conditions
from conditions import parser as benchmark_parser
from descent.data.images import digits
from descent.federated import ClientConfig, FederatedConfig, Federation, iid, sample_clients
from descent.federated.experiment import Experiment, build_model, compare

PAPER = {"fedsgd": 626, "fedavg": 20}  # McMahan et al. 2017, Table 2: CNN, MNIST, 99%, IID


def client_rounds_per_second(vectorize: bool, rounds: int, generic: bool = False) -> float:
    """Rounds/s of client training and aggregation (evaluation not timed); ``generic``: the
    vectorized clients through vmap even where descent writes the stacked forward out."""
    from descent.federated import client

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
    written_out = client.stacked_forward
    if generic:
        client.stacked_forward = lambda model, names: None  # type: ignore[assignment]
    try:
        for round_number in range(1, rounds + 2):
            started = time.perf_counter()
            chosen = sample_clients(
                split.clients, config.sampled(split.clients), config.seed, round_number
            )
            updates, _ = federation.train_clients(round_number, chosen)
            federation.aggregate(updates)
            if round_number > 1:  # the first round warms up the kernels
                elapsed += time.perf_counter() - started
    finally:
        client.stacked_forward = written_out
    return rounds / elapsed


def floor_rounds_per_second(rounds: int, channels_last: bool = False) -> float:
    """Rounds/s of the arithmetic alone: each local step of a round done as ONE forward and
    backward of a single model on all sampled clients' examples together (10 clients × B = 10),
    with one SGD update. No per-client work can be vectorized below this: it is the ceiling on
    what vectorizing the clients can gain over the loop. ``channels_last``: the model's weights
    and the images in NHWC layout, where torch's max-pooling kernel runs far faster on CPU."""
    data = digits()
    model = build_model("cnn", data.image_shape, 10, seed=0)
    images, labels = data.train.images[:1200], data.train.labels[:1200]
    images = images.reshape(len(images), *data.image_shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    steps = 5 * 2  # E = 5 epochs of 12 examples in batches of 10: 2 updates each
    weights = list(model.parameters())
    elapsed = 0.0
    for round_number in range(rounds + 1):
        started = time.perf_counter()
        for step in range(steps):
            rows = torch.arange(100) + 100 * ((round_number + step) % 12)
            loss = torch.nn.functional.cross_entropy(model(images[rows]), labels[rows])
            grads = torch.autograd.grad(loss, weights)
            with torch.no_grad():
                torch._foreach_add_(weights, grads, alpha=-0.05)
        if round_number > 0:
            elapsed += time.perf_counter() - started
    return rounds / elapsed


def client_training(rounds: int, threads: int, repeats: int) -> None:
    """Section 1 at ``threads`` intra-op threads, the best of ``repeats`` interleaved runs."""
    torch.set_num_threads(threads)
    print(
        f"1. client training, digits CNN, K = 100, C = 0.1, E = 5, B = 10, "
        f"{torch.get_num_threads()} thread(s), best of {repeats}"
    )
    measures = {
        "stacked": lambda: client_rounds_per_second(True, rounds),
        "generic": lambda: client_rounds_per_second(True, rounds, generic=True),
        "looped": lambda: client_rounds_per_second(False, rounds),
        "floor": lambda: floor_rounds_per_second(rounds),
        "floor_nhwc": lambda: floor_rounds_per_second(rounds, channels_last=True),
    }
    best = dict.fromkeys(measures, 0.0)
    for _ in range(repeats):  # interleaved, best of each: a busy machine slows some runs
        for name, measure in measures.items():
            best[name] = max(best[name], measure())
    vectorized, generic, looped = best["stacked"], best["generic"], best["looped"]
    floor, floor_nhwc = best["floor"], best["floor_nhwc"]
    rows = [
        ("descent vectorized (stacked forward)", vectorized),
        ("descent vectorized (generic vmap)", generic),
        ("descent looped", looped),
        ("floor: one model, all examples (NCHW)", floor),
        ("floor: one model, all examples (NHWC)", floor_nhwc),
    ]
    for label, rate in rows:
        print(f"   {label:40s} {rate:8.2f} rounds/s  {rate / looped:5.2f}× looped")
    print(
        f"   stacked / looped {vectorized / looped:.2f}× (target ≥ 5×); stacked / NHWC floor "
        f"{vectorized / floor_nhwc:.2f}"
    )


def whole_round_experiment(rounds: int, vectorize: bool = True) -> Experiment:
    """K = 100 clients of the bundled digits, C = 0.1, E = 5, B = 10, the CNN."""
    return Experiment(
        clients=100,
        federated=FederatedConfig(
            fraction=0.1,
            rounds=rounds,
            client=ClientConfig(lr=0.05, epochs=5, batch_size=10),
            vectorize=vectorize,
        ),
    )


def descent_run(rounds: int, vectorize: bool) -> tuple[float, list[torch.Tensor]]:
    """Seconds for a whole run of ``rounds`` rounds in descent's simulation, and its weights."""
    federation = whole_round_experiment(rounds, vectorize).federation()
    started = time.perf_counter()
    result = federation.run()
    return time.perf_counter() - started, [w.detach() for w in result.weights]


def flower_run(rounds: int, out: Path) -> float:
    """Seconds for the same run on Flower's simulation engine (Ray actors as SuperNodes).

    descent's apps read the experiment from the run config, which ``run_simulation`` leaves
    empty: thin wrappers hand it in (the ClientApp's context may not be modified in place)."""
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from descent.federated import flower

    experiment = whole_round_experiment(rounds)
    config = {**experiment.run_config(), "out": str(out), "logdir": "", "fail": ""}

    def with_config(context: Any) -> Any:
        local = copy.copy(context)
        local.run_config = {**context.run_config, **config}
        return local

    server = ServerApp()
    client = ClientApp()
    server.main()(lambda grid, context: flower.main(grid, with_config(context)))
    client.query()(lambda message, context: flower.query(message, with_config(context)))
    client.train()(lambda message, context: flower.train(message, with_config(context)))
    started = time.perf_counter()
    run_simulation(
        server,
        client,
        num_supernodes=experiment.clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    return time.perf_counter() - started


def whole_rounds(rounds: int) -> None:
    """Rounds/s from the difference of a 2-round and a (2 + rounds)-round run, so that start-up
    (Ray, the data, the model) is not counted."""
    short, long = 2, 2 + rounds
    rates = {}
    for label, vectorize in (("vectorized", True), ("looped", False)):
        t_short, _ = descent_run(short, vectorize)
        t_long, _ = descent_run(long, vectorize)
        rates[label] = rounds / (t_long - t_short)
        print(f"   descent simulation, {label:10s}  {rates[label]:8.2f} rounds/s")
    if importlib.util.find_spec("ray") is None:
        print(
            "   Flower's simulation engine: not measured, Ray is not installed "
            '(pip install "flwr[simulation]" with the constraints file)'
        )
        return
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "weights.pt"
        flower_short = flower_run(short, out)
        flower_long = flower_run(long, out)
        flower_weights = torch.load(out, weights_only=True)["weights"]
    _, weights = descent_run(long, False)
    difference = max(
        float((a - b).abs().max()) for a, b in zip(weights, flower_weights, strict=True)
    )
    if flower_long <= flower_short:  # Ray's start-up varies by more than the rounds take
        print(
            f"   Flower simulation (Ray): not measurable in this run ({short} rounds took "
            f"{flower_short:.1f} s, {long} rounds {flower_long:.1f} s); final weights differ "
            f"by {difference:.1e}"
        )
        return
    flower_rate = rounds / (flower_long - flower_short)
    print(f"   Flower simulation (Ray)         {flower_rate:8.2f} rounds/s")
    print(
        f"   descent / Flower: vectorized {rates['vectorized'] / flower_rate:.2f}×, looped "
        f"{rates['looped'] / flower_rate:.2f}× (the looped clients are what each Flower node "
        f"runs; final weights differ by {difference:.1e})"
    )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per path")
    parser.add_argument(
        "--threads", default="1,2", help="intra-op thread counts for section 1, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=3, help="section 1: best of this many")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-rounds", type=int, default=300)
    parser.add_argument("--fedavg-lr", type=float, default=0.2)
    parser.add_argument("--fedavg-lr-k10", type=float, default=0.05)
    parser.add_argument("--fedsgd-lr", type=float, default=0.5)
    parser.add_argument("--mnist", default=None, help="a folder with MNIST's IDX files")
    parser.add_argument("--skip-rounds-to-target", action="store_true")
    args = parser.parse_args()
    thread_counts = [int(count) for count in args.threads.split(",")]

    print(conditions())
    for threads in thread_counts:
        client_training(args.rounds, threads, args.repeats)
    torch.set_num_threads(thread_counts[0])
    print(
        f"1b. whole rounds (training, averaging, evaluation), the same federation, "
        f"{thread_counts[0]} thread(s)"
    )
    whole_rounds(args.rounds)

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
