"""descent's curvature against PyHessian on the same model and batch, in one run: the top
eigenvalue, the top-5, the trace and the density, with both answers compared to a reference
(descent's Lanczos run to convergence in float64); the top-1 and top-5 again with descent
stopped at PyHessian's accuracy (a residual tolerance that bounds descent's error by
PyHessian's measured one); then the Trainer's cost with ``--curvature-every 50`` against plain
training on the same workload (the digits CNN, Adam, batches of 50), per 50 updates as a long
run has it, at the monitor's defaults and at the settings before them, in the training thread
(on torch's threads, and on one as the release before ran it) and in a background thread, as
wall-clock and CPU time (the best run, and the median and quartiles of the rounds' paired
runs), at one torch thread and at torch's default side by side (each in a process of its own;
``--short-trainer``: plain, the defaults and the previous defaults only); and what the sample
size costs in accuracy (the figures of 16, 24, 32 and 256 examples over several samples, at
three points of a run, against the whole training set's).

    python benchmarks/curvature.py [--examples 256] [--rounds 3] [--epochs 4]
        [--trainer-rounds 10] [--short-trainer] [--accuracy-seeds 20]
        [--skip-pyhessian] [--skip-trainer] [--skip-accuracy]

PyHessian (``pip install pyhessian``, benchmark only) still calls ``torch.eig`` in its density;
torch removed it (a stub that raises remains). This script alone replaces it with a stand-in
built on ``torch.linalg.eigh`` (the tridiagonal matrix is symmetric, so the answer is the same).
Its eigenvalues and trace run unpatched. Both tools run on the CPU with the same torch threads.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

from descent.data.images import digits
from descent.diagnose import curvature
from descent.models import SmallCNN


def patch_torch_eig() -> None:
    """torch.eig(T, eigenvectors=True) as PyHessian's density expects it: eigenvalues as an
    (n, 2) tensor of real and imaginary parts, and the eigenvectors."""

    def eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], dim=1), vectors

    torch.eig = eig  # type: ignore[attr-defined]


def best_of(rounds: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times, answer = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        answer = work()
        times.append(time.perf_counter() - start)
    return min(times), answer


def relative(found: list[float], exact: list[float]) -> float:
    return max(abs(a - b) / abs(b) for a, b in zip(found, exact, strict=True))


def exact_trace_of(model: torch.nn.Module, batch: tuple, chunk: int = 128) -> float:
    """Σ_i e_iᵀ H e_i in float64, ``chunk`` unit vectors per batched backward (the dense
    Hessian itself would not fit in memory for larger models)."""
    objective = curvature.Objective(model, F.cross_entropy, batch, dtype="float64")
    total = 0.0
    for start in range(0, objective.dimension, chunk):
        rows = torch.arange(start, min(start + chunk, objective.dimension))
        units = torch.zeros(len(rows), objective.dimension, dtype=torch.float64)
        units[torch.arange(len(rows)), rows] = 1.0
        total += float(objective.hvp_many(units)[torch.arange(len(rows)), rows].sum())
    return total


def compare_with_pyhessian(examples: int, rounds: int) -> None:
    from pyhessian import hessian as PyHessian

    patch_torch_eig()
    data = digits()
    torch.manual_seed(0)
    model = SmallCNN((1, 8, 8), 10, channels=(16, 32))
    batch = (data.train.images[:examples], data.train.labels[:examples])
    parameters = sum(p.numel() for p in model.parameters())
    reference = curvature.eigenvalues(
        model, F.cross_entropy, batch, k=5, tol=1e-9, max_iterations=400, dtype="float64"
    )
    exact_trace = exact_trace_of(model, batch)
    print(
        f"SmallCNN on {examples} digits: {parameters:,} parameters; reference (float64 "
        f"Lanczos, residual ≤ 1e-9·ρ): top-5 {[f'{v:.5g}' for v in reference.top]}, "
        f"λ_min {reference.lambda_min:.4g}; exact trace {exact_trace:.6g}"
    )

    def pyhessian_object() -> Any:
        model.zero_grad(set_to_none=True)
        return PyHessian(model, F.cross_entropy, data=batch, cuda=False)

    rows = []

    # The module (the package's name "hessian" is the class, which shadows it).
    pyhessian_module = sys.modules["pyhessian.hessian"]
    products = {"count": 0}
    plain_product = pyhessian_module.hessian_vector_product

    def counted_product(*args: Any, **kwargs: Any) -> Any:
        products["count"] += 1
        return plain_product(*args, **kwargs)

    # Counting PyHessian's Hessian-vector products: the load-independent measure of work.
    pyhessian_module.hessian_vector_product = counted_product

    def pyhessian_top(n: int) -> list[float]:
        torch.manual_seed(0)
        products["count"] = 0
        values, _ = pyhessian_object().eigenvalues(top_n=n, maxIter=100, tol=1e-3)
        return sorted(values, reverse=True)

    def descent_top(n: int) -> list[float]:
        return list(
            curvature.eigenvalues(
                model, F.cross_entropy, batch, k=n, tol=1e-2, max_iterations=100
            ).top
        )

    def descent_matched(n: int, tol: float) -> curvature.Spectrum:
        return curvature.eigenvalues(
            model, F.cross_entropy, batch, k=n, tol=tol, max_iterations=200, smallest=False
        )

    def fixed_steps(n: int, steps: int) -> curvature.Spectrum:
        return curvature.eigenvalues(
            model, F.cross_entropy, batch, k=n, tol=1e-12, max_iterations=steps, smallest=False
        )

    rho = max(abs(reference.lambda_max), abs(reference.lambda_min))
    matched_rows, notes = [], []
    for n in (1, 5):
        seconds_peer, peer = best_of(rounds, lambda n=n: pyhessian_top(n))
        seconds_ours, ours = best_of(rounds, lambda n=n: descent_top(n))
        peer_error = relative(peer, list(reference.top[:n]))
        rows.append(
            (
                f"top-{n} eigenvalue(s)",
                seconds_ours,
                seconds_peer,
                relative(ours, list(reference.top[:n])),
                peer_error,
            )
        )
        # At equal accuracy: Lanczos stopped by its residual bound |θ − λ| ≤ ‖r‖ ≤ tol·ρ, with
        # tol chosen so that the bound is PyHessian's measured relative error on the k-th value
        # (the smallest of the top k): descent's answer is then at least as accurate, by proof.
        tol = peer_error * abs(reference.top[n - 1]) / rho
        seconds_matched, spectrum = best_of(rounds, lambda n=n, tol=tol: descent_matched(n, tol))
        matched_rows.append(
            (
                f"top-{n} at PyHessian's accuracy",
                seconds_matched,
                seconds_peer,
                relative(list(spectrum.top), list(reference.top[:n])),
                peer_error,
            )
        )
        peer_products = products["count"]
        notes.append(
            f"top-{n} at PyHessian's accuracy: residual tolerance {tol:.2g}·ρ; Hessian-vector "
            f"products: descent {spectrum.iterations}, PyHessian {peer_products} "
            f"({peer_products / spectrum.iterations:.1f}×)"
        )
        # Time to the same accuracy: the fewest Lanczos steps whose answer is as accurate as
        # PyHessian's (found against the reference, as a solver comparison does; no certificate).
        steps = next(
            m
            for m in range(n + 1, 201)
            if relative(list(fixed_steps(n, m).top), list(reference.top[:n])) <= peer_error
        )
        seconds_fixed, spectrum = best_of(rounds, lambda n=n, m=steps: fixed_steps(n, m))
        matched_rows.append(
            (
                f"top-{n}, fewest steps as accurate",
                seconds_fixed,
                seconds_peer,
                relative(list(spectrum.top), list(reference.top[:n])),
                peer_error,
            )
        )
        notes.append(
            f"top-{n}, fewest Lanczos steps as accurate as PyHessian: {steps} products "
            f"(PyHessian {peer_products}, {peer_products / steps:.1f}×)"
        )
    rows += matched_rows

    def pyhessian_trace() -> float:
        torch.manual_seed(0)
        return statistics.mean(pyhessian_object().trace(maxIter=100, tol=1e-3))

    def descent_trace() -> curvature.TraceEstimate:
        return curvature.trace(model, F.cross_entropy, batch, rtol=1e-2, max_probes=100)

    seconds_peer, peer_trace = best_of(rounds, pyhessian_trace)
    seconds_ours, our_trace = best_of(rounds, descent_trace)
    rows.append(
        (
            "trace (Hutchinson)",
            seconds_ours,
            seconds_peer,
            abs(our_trace.value - exact_trace) / exact_trace,
            abs(peer_trace - exact_trace) / exact_trace,
        )
    )

    def pyhessian_density() -> tuple[list, list]:
        torch.manual_seed(0)
        return pyhessian_object().density(iter=100, n_v=1)

    def descent_density() -> curvature.SpectralDensity:
        return curvature.density(model, F.cross_entropy, batch, probes=1, iterations=100)

    seconds_peer, (peer_nodes, _) = best_of(rounds, pyhessian_density)
    seconds_ours, ours_density = best_of(rounds, descent_density)
    rows.append(
        (
            "density (SLQ, 100 steps, 1 probe): λ_max node",
            seconds_ours,
            seconds_peer,
            abs(ours_density.support[1] - reference.lambda_max) / reference.lambda_max,
            abs(max(peer_nodes[0]) - reference.lambda_max) / reference.lambda_max,
        )
    )

    print(
        f"{'quantity':48} {'descent s':>10} {'PyHessian s':>12} {'speed-up':>9} "
        f"{'descent err':>12} {'PyHessian err':>14}"
    )
    for name, ours_s, peer_s, ours_err, peer_err in rows:
        print(
            f"{name:48} {ours_s:10.3f} {peer_s:12.3f} {peer_s / ours_s:8.1f}× "
            f"{ours_err:12.1e} {peer_err:14.1e}"
        )
    print(
        f"descent trace {our_trace} vs PyHessian {peer_trace:.6g} (no error bar) vs exact "
        f"{exact_trace:.6g}"
    )
    for note in notes:
        print(note)


#: The monitor's settings compared: its defaults, and those of the releases before (64
#: examples, 4 products, the trace, the noise and λ_min at every analysis; then 32 examples, 3
#: products, the trace at every other analysis, the noise and λ_min at each).
BEFORE = {"examples": 64, "products": 4, "trace_every": 1, "noise_every": 1, "lambda_min_every": 1}
PREVIOUS = {"examples": 32, "noise_every": 1, "lambda_min_every": 1}
#: torch's thread counts the trainer's cost is measured at, each in a process of its own: one
#: (OMP_NUM_THREADS=1) and torch's default (OMP_NUM_THREADS unset: the physical cores).
THREADS = ("1", "default")


def monitor_variants(short: bool = False) -> dict[str, dict[str, Any] | None]:
    """The settings timed: plain training, the defaults, the settings before; ``short``: those
    three only (the rest are the places the analysis can run)."""
    if short:
        return {
            "plain": None,
            "default": {},
            "previous (noise, λ_min each), training thread": {**PREVIOUS, "background": False},
        }
    return {
        "plain": None,
        "default": {},
        "previous (noise, λ_min each), training thread": {**PREVIOUS, "background": False},
        "training thread, torch's threads": {"background": False},
        "training thread, one torch thread (as before)": {
            "background": False,
            "one_thread": True,
        },
        "background thread (one torch thread)": {"background": True},
        "before (64 ex., 4 products, trace each), training thread": {
            **BEFORE,
            "background": False,
        },
    }


def trainer_overhead(epochs: int, rounds: int, short: bool = False) -> dict[str, Any]:
    """The digits CNN trained as ``descent train --model cnn`` does (Adam, batches of 50, a
    TensorBoard run folder), without the monitor and with it (``--curvature-every 50``) at
    each setting of :func:`monitor_variants`; rounds alternated. Wall-clock and CPU time (this
    process's, all threads): on a busy machine the wall-clock ratio swings with the load,
    while the CPU time still counts the work done (and, at two threads, the idle OpenMP
    worker's spin-wait)."""
    from descent.diagnose import curvature_monitor
    from descent.diagnose.curvature_monitor import CurvatureMonitor, spare_core
    from descent.train import Trainer

    class OneThread(CurvatureMonitor):
        """The analysis in the training thread on one torch thread, as the release before ran
        it: measured here, not an option of the monitor."""

        def _analyse(self, model: Any, loss: Any, step: int, **options: Any) -> dict[str, float]:
            with curvature_monitor.one_thread():
                return super()._analyse(model, loss, step, **options)

    data = digits()
    counts: dict[str, int] = {}

    def seconds(name: str, options: dict[str, Any] | None) -> tuple[float, float, int]:
        torch.manual_seed(0)
        model = SmallCNN((1, 8, 8), 10)
        monitor = None
        if options is not None:
            options = dict(options)
            kind = OneThread if options.pop("one_thread", False) else CurvatureMonitor
            monitor = kind(50, data.train, batch_size=50, **options)
        with tempfile.TemporaryDirectory() as logdir:
            trainer = Trainer(
                model,
                lr=2e-3,
                epochs=epochs,
                batch_size=50,
                logdir=logdir,
                callbacks=[monitor] if monitor is not None else [],
            )
            start, start_cpu = time.perf_counter(), time.process_time()
            result = trainer.fit(data.train, data.validation)
            if monitor is not None:
                monitor.finish(trainer, result.stopped)  # waits for the last analysis
                counts[name] = len(monitor.history)
            return (
                time.perf_counter() - start,
                time.process_time() - start_cpu,
                result.steps,
            )

    variants = monitor_variants(short)
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    steps = 0
    seconds("plain", None)  # warm-up
    for _ in range(rounds):  # alternate, so that a busy machine hurts all alike
        for name, options in variants.items():
            wall, cpu, steps = seconds(name, options)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base, base_cpu = min(walls["plain"]), min(cpus["plain"])
    # A short run holds more analyses than one per 50 updates (one at the first update too):
    # the cost of --curvature-every 50 over a long run is one analysis's extra time over 50
    # updates' time.
    rows = {}
    for name in list(variants)[1:]:
        wall, cpu, analyses = min(walls[name]), min(cpus[name]), counts[name]
        # Each round's runs side by side (alternated, so under the same load): the spread of
        # the cost over rounds, its median the figure least moved by a busy machine.
        paired = sorted(
            (mine - plain) / analyses / (plain / steps * 50)
            for mine, plain in zip(walls[name], walls["plain"], strict=True)
        )
        rows[name] = {
            "run wall": wall / base - 1,
            "per 50 wall": (wall - base) / analyses / (base / steps * 50),
            "per 50 CPU": (cpu - base_cpu) / analyses / (base_cpu / steps * 50),
            "per 50 wall median": statistics.median(paired),
            "per 50 wall quartiles": (
                paired[len(paired) // 4],
                paired[(3 * len(paired)) // 4],
            ),
            "analyses": analyses,
        }
    return {
        "threads": torch.get_num_threads(),
        "steps": steps,
        "plain wall": base,
        "plain CPU": base_cpu,
        "default": "a background thread" if spare_core() else "the training thread",
        "rows": rows,
    }


def long_run(epochs: int, rounds: int) -> dict[str, Any]:
    """The cost of ``--curvature-every 50`` in a long run, from the time between consecutive
    updates: a callback placed before the monitor's stamps every update, in plain runs and with
    the monitor at its defaults (alternated, ``rounds`` each, the best of each interval). The
    interval after an analysed update holds that analysis; every other interval, whatever the
    monitor costs a plain update (its callback, caches the analysis evicted). A long run has one
    analysis per 50 updates, light and full alternating and the cold first one amortized away;
    a short run's totals count the cold one and, for 208 updates, three full analyses of five."""
    from descent.diagnose.curvature_monitor import CurvatureMonitor
    from descent.train import Trainer

    data = digits()

    def intervals(monitored: bool) -> dict[int, float]:
        stamps: list[tuple[int, float]] = []

        def clock(trainer: Any, event: str, info: dict[str, Any]) -> None:
            if event == "step":
                stamps.append((int(info["step"]), time.perf_counter()))

        torch.manual_seed(0)
        model = SmallCNN((1, 8, 8), 10)
        callbacks: list[Any] = [clock]
        if monitored:
            callbacks.append(CurvatureMonitor(50, data.train, batch_size=50))
        with tempfile.TemporaryDirectory() as logdir:
            Trainer(
                model, lr=2e-3, epochs=epochs, batch_size=50, logdir=logdir, callbacks=callbacks
            ).fit(data.train, data.validation)
        pairs = itertools.pairwise(stamps)
        return {after: end - start for (_, start), (after, end) in pairs}

    best: dict[bool, dict[int, float]] = {False: {}, True: {}}
    intervals(True)  # warm-up
    for _ in range(rounds):
        for monitored in (False, True):
            for step, seconds in intervals(monitored).items():
                best[monitored][step] = min(best[monitored].get(step, math.inf), seconds)
    extra = {step: best[True][step] - best[False][step] for step in best[False]}
    analysed = [step for step in extra if (step - 1) % 50 == 0 and step > 1]  # not the cold one
    plain_steps = [step for step in extra if (step - 1) % 50 != 0]
    phases = [
        statistics.mean(extra[step] for step in analysed if ((step - 1) // 50) % 2 == phase)
        for phase in (0, 1)
    ]
    per_step = statistics.mean(extra[step] for step in plain_steps)
    update = statistics.mean(best[False][step] for step in plain_steps)
    per_analysis = statistics.mean(phases)
    return {
        "update": update,
        "full": phases[0],
        "light": phases[1],
        "per step": per_step,
        "per 50": (per_analysis + 49 * per_step) / (50 * update),
    }


def analysis_steps(rounds: int) -> dict[str, Any]:
    """One analysis's work in training steps: a training step (forward, backward and Adam on a
    batch of 50 of the digits CNN) and one analysis in the training thread (warm, its whole
    product budget spent) timed in alternation, wall-clock and CPU time, the best of
    ``rounds`` each; over 50 updates the cost is the steps / 50."""
    from descent.diagnose.curvature_monitor import CurvatureMonitor

    torch.manual_seed(0)
    data = digits()
    model = SmallCNN((1, 8, 8), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    inputs, labels = data.train.images[:50], data.train.labels[:50]

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    monitors = {
        name: CurvatureMonitor(50, data.train, batch_size=50, background=False, **options)
        for name, options in (("default", {}), ("previous", PREVIOUS), ("before", BEFORE))
    }
    clocks = {"wall": time.perf_counter, "CPU": time.process_time}
    best = {(name, clock): math.inf for name in ("step", *monitors) for clock in clocks}
    # The analyses alternate (the trace and the noise every other one): the best of each
    # phase, averaged, is the typical analysis.
    phases = {
        (name, clock, phase): math.inf for name in monitors for clock in clocks for phase in (0, 1)
    }
    for round_ in range(rounds + 2):  # the first two warm the monitors up
        starts = {clock: read() for clock, read in clocks.items()}
        for _ in range(10):
            step()
        for clock, read in clocks.items():
            best["step", clock] = min(best["step", clock], (read() - starts[clock]) / 10)
        for name, monitor in monitors.items():
            starts = {clock: read() for clock, read in clocks.items()}
            monitor._analyse(model, F.cross_entropy, 50 * round_)
            if round_ >= 2:
                for clock, read in clocks.items():
                    key = (name, clock, round_ % 2)
                    phases[key] = min(phases[key], read() - starts[clock])
    for name in monitors:
        for clock in clocks:
            best[name, clock] = (phases[name, clock, 0] + phases[name, clock, 1]) / 2
    return {
        "threads": torch.get_num_threads(),
        **{f"{name} {clock}": value for (name, clock), value in best.items()},
    }


def trainer_child(epochs: int, rounds: int, short: bool) -> None:
    """This process's figures (at its torch thread count) as one JSON line, for the parent."""
    figures = {
        "overhead": trainer_overhead(epochs, rounds, short),
        "analysis": analysis_steps(rounds * 2),
        "long run": long_run(LONG_RUN_EPOCHS, max(rounds // 3, 3)),
    }
    print("FIGURES " + json.dumps(figures))


def trainer_costs(epochs: int, rounds: int, short: bool = False) -> None:
    """The trainer's cost at one torch thread and at torch's default, each measured in a
    process of its own (torch's thread count is the process's), printed side by side."""
    results = {}
    for threads in THREADS:
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
        }
        if threads != "default":
            environment.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        command = [sys.executable, __file__, "--trainer-child", "--epochs", str(epochs)]
        command += ["--trainer-rounds", str(rounds)] + (["--short-trainer"] if short else [])
        output = subprocess.run(
            command, env=environment, check=True, capture_output=True, text=True
        ).stdout
        line = next(line for line in output.splitlines() if line.startswith("FIGURES "))
        results[threads] = json.loads(line.removeprefix("FIGURES "))
    first = results[THREADS[0]]["overhead"]
    heads = []
    for threads in THREADS:
        overhead = results[threads]["overhead"]
        heads.append(
            f"{overhead['threads']} torch thread(s): plain {overhead['plain wall']:.3f} s wall, "
            f"{overhead['plain CPU']:.3f} s CPU, the default analyses in {overhead['default']}"
        )
    print(
        f"Trainer, digits CNN (SmallCNN, 21,386 parameters), Adam, batches of 50, {epochs} "
        f"epochs ({first['steps']} updates), best of {rounds}; " + "; ".join(heads)
    )
    columns = [f"{results[t]['overhead']['threads']} thr." for t in THREADS]
    print(
        f"  {'--curvature-every 50, per 50 updates':50} "
        + " ".join(
            f"{column + ' wall':>11} {'median [quartiles]':>22} {column + ' CPU':>11}"
            for column in columns
        )
    )
    for name in first["rows"]:
        cells = []
        for threads in THREADS:
            row = results[threads]["overhead"]["rows"][name]
            low, high = row["per 50 wall quartiles"]
            spread = f"{row['per 50 wall median']:+.1%} [{low:+.1%}, {high:+.1%}]"
            cells.append(f"{row['per 50 wall']:+11.1%} {spread:>22} {row['per 50 CPU']:+11.1%}")
        print(f"  {name:50} " + " ".join(cells))
    print(
        "  (wall and CPU: the best run of each against the best plain one; median and "
        "quartiles: of the rounds' paired runs)"
    )
    print(
        "One analysis in the training thread against a training step (the mean of the best "
        f"of each of the two alternating phases over {rounds * 2} analyses):"
    )
    for threads in THREADS:
        analysis = results[threads]["analysis"]
        step_wall, step_cpu = analysis["step wall"], analysis["step CPU"]
        cells = [f"a step {step_wall * 1e3:.2f} ms wall, {step_cpu * 1e3:.2f} ms CPU"]
        for name in ("default", "previous", "before"):
            wall, cpu = analysis[f"{name} wall"], analysis[f"{name} CPU"]
            cells.append(
                f"{name} {wall * 1e3:.2f} ms wall = {wall / step_wall:.2f} steps "
                f"({wall / step_wall / 50:+.1%} per 50), {cpu * 1e3:.2f} ms CPU"
            )
        print(f"  {analysis['threads']} torch thread(s): " + "; ".join(cells))
    print(
        f"A long run at the defaults (the time between updates, {LONG_RUN_EPOCHS} epochs; the "
        "cold first analysis left out, light and full analyses weighted alike):"
    )
    for threads in THREADS:
        run = results[threads]["long run"]
        print(
            f"  {results[threads]['analysis']['threads']} torch thread(s): an update "
            f"{run['update'] * 1e3:.2f} ms; a full analysis adds {run['full'] * 1e3:.2f} ms, a "
            f"light one {run['light'] * 1e3:.2f} ms, every other update "
            f"{run['per step'] * 1e6:+.0f} µs: {run['per 50']:+.1%} per 50 updates"
        )


#: The long-run measure's length (13 analyses, 624 updates).
LONG_RUN_EPOCHS = 24
#: The sample sizes the accuracy study compares (the default among them) and its reference size.
SAMPLE_SIZES = (16, 24, 32, 256)
#: The figures the study reports, each with its logged error bar.
FIGURES = {
    "lambda_max": "lambda_max_residual",
    "lambda_min": "lambda_min_residual",
    "trace": "trace_stderr",
    "gradient_snr": "gradient_snr_stderr",
}


def monitor_accuracy(seeds: int, epochs: tuple[int, ...] = (1, 3, 6)) -> dict[str, Any]:
    """What a smaller sample costs in accuracy: the monitor's figures on the digits CNN at
    several points of one training run (after each of ``epochs``), from ``seeds`` different
    fixed samples of each size in :data:`SAMPLE_SIZES` (each sample analysed three times, warm,
    the last analysis taking the trace and the noise), against the whole training set's figures
    (Lanczos to a residual of 1e-4·ρ, Hutchinson to 2%, the exact per-example SNR).

    Per size and figure: the spread over samples (standard deviation) and the bias (mean less
    the whole set's), both relative to the whole set's |λ_max| for λ_max and λ_min (λ_min, near
    0, has no scale of its own), to its own value for the trace and the SNR; and the mean
    logged error bar ("bar"), which does not include the sampling spread."""
    from descent.diagnose.curvature_monitor import CurvatureMonitor
    from descent.train import Trainer

    torch.manual_seed(0)
    data = digits()
    model = SmallCNN((1, 8, 8), 10)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def keep(trainer: Any, event: str, info: dict[str, Any]) -> None:
        if event == "epoch" and int(info["epoch"]) in epochs:
            snapshots[int(info["epoch"])] = copy.deepcopy(trainer.model.state_dict())

    Trainer(model, lr=2e-3, epochs=max(epochs), batch_size=50, callbacks=[keep]).fit(
        data.train, data.validation
    )
    everything = (data.train.images, data.train.labels)
    print(
        f"Sample size against accuracy: the digits CNN after {', '.join(map(str, epochs))} "
        f"epochs, {seeds} samples of each size, against the {len(everything[0])} training "
        "examples; spread and bias relative (λ_max, λ_min to |λ_max|), bar: mean logged error"
    )
    table: dict[str, Any] = {}
    for epoch in epochs:
        model.load_state_dict(snapshots[epoch])
        spectrum = curvature.eigenvalues(
            model, F.cross_entropy, everything, k=1, tol=1e-4, max_iterations=200
        )
        trace = curvature.trace(model, F.cross_entropy, everything, rtol=2e-2, max_probes=200)
        noise = curvature.gradient_noise(model, F.cross_entropy, everything, batch_size=50)
        reference = {
            "lambda_max": spectrum.lambda_max,
            "lambda_min": spectrum.lambda_min,
            "trace": trace.value,
            "gradient_snr": noise.snr,
        }
        scales = {
            name: abs(reference["lambda_max"] if name.startswith("lambda") else value)
            for name, value in reference.items()
        }
        print(
            f"  epoch {epoch}: whole set "
            + ", ".join(f"{name} {value:.4g}" for name, value in reference.items())
        )
        for size in SAMPLE_SIZES:
            records = []
            for seed in range(seeds):
                monitor = CurvatureMonitor(
                    50, data.train, batch_size=50, seed=seed, background=False, examples=size
                )
                for step in (0, 50, 100):  # the last two warm; 0 and 100 take the trace
                    record = monitor._analyse(model, F.cross_entropy, step)
                records.append(record)
            cells = []
            for name, bar in FIGURES.items():
                values = [record[f"curvature/{name}"] for record in records]
                errors = [record[f"curvature/{bar}"] for record in records]
                spread = statistics.stdev(values) / scales[name]
                bias = (statistics.mean(values) - reference[name]) / scales[name]
                table.setdefault(size, {}).setdefault(name, []).append((spread, bias))
                cells.append(
                    f"{name} {statistics.mean(values):.4g} spread {spread:.0%} bias {bias:+.0%} "
                    f"(bar {statistics.mean(errors):.2g})"
                )
            print(f"    {size:4} examples: " + "; ".join(cells))
    print("  Mean over the points, relative spread (bias); the spread's ratio to 32 examples':")
    for size in SAMPLE_SIZES:
        cells = []
        for name in FIGURES:
            pairs = table[size][name]
            spread = statistics.mean(spread for spread, _ in pairs)
            bias = statistics.mean(bias for _, bias in pairs)
            at_32 = statistics.mean(spread for spread, _ in table[32][name])
            cells.append(f"{name} {spread:.0%} ({bias:+.0%}) ×{spread / at_32:.2f}")
        print(f"    {size:4} examples: " + "; ".join(cells))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-pyhessian", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--accuracy-seeds", type=int, default=20)
    parser.add_argument(
        "--trainer-rounds", type=int, default=10, help="runs of each variant (each ~0.3 s)"
    )
    parser.add_argument(
        "--short-trainer",
        action="store_true",
        help="time plain training, the defaults and the settings before only",
    )
    parser.add_argument("--trainer-child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.trainer_child:
        trainer_child(arguments.epochs, arguments.trainer_rounds, arguments.short_trainer)
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # rows as they come
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
        f"load average {load:.1f} at the start (a busy machine makes the ratios noisy)"
    )
    if not arguments.skip_pyhessian:
        compare_with_pyhessian(arguments.examples, arguments.rounds)
    if not arguments.skip_trainer:
        trainer_costs(arguments.epochs, arguments.trainer_rounds, arguments.short_trainer)
    if not arguments.skip_accuracy:
        monitor_accuracy(arguments.accuracy_seeds)


if __name__ == "__main__":
    main()
