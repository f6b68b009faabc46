"""Time to the least-squares optimum: descent's LinearRegressionGD beside scikit-learn, one run.

Three problems: n = 1,000,000 × 100 synthetic features (plain linear), a degree-5 polynomial
basis of one feature (n = 1,000,000), and 80 correlated columns on which plain gradient descent
needs thousands of full-batch epochs. For each estimator: wall time of fit (the basis included),
the peak memory it added (resident set, sampled), and the relative gap (J − J*)/J* it reaches,
J* from an SVD solve that is not timed. A "floor" row times one XᵀX and Xᵀy pass over the same
data with numpy (syrk) and with torch (gemm): no fit can read the data in less. descent's
targets: ≤ 1.5× the floor, faster than Ridge(alpha=1e-10), at a gap ≤ 1e-12.

``--sgd`` runs the stochastic table instead: scikit-learn's SGDRegressor (defaults) beside
descent's mode="single" and mode="minibatch" (B = 50, defaults otherwise: the decaying step) on
standardized diabetes (442 × 10), diabetes enlarged 20× (8,840 × 10) and a synthetic
1,000,000 × 100, each run for SGDRegressor's own epoch count: time per epoch (fit time / epochs,
set-up included) and the gap (J − J*)/J* reached, averaged over seeds 0–2; then a mini-batch
epoch beside a full-batch epoch over the same rows (one gradient Φᵀ(Φw − y)). Targets: descent's
SGD epoch ≤ SGDRegressor's, a smaller gap at its epoch count, mini-batch ≤ 2× full batch.

    python benchmarks/linear_fit.py [--n 1000000] [--p 100] [--sgd | --correlated]
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LinearRegression, Ridge, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from descent import optim
from descent.linear import LinearRegressionGD, Polynomial, full_batch, gradient, least_squares
from descent.linear.basis import Identity
from descent.linear.epochs import BatchUpdates


def synthetic_linear(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 2.0, size=p) + rng.normal(size=p)
    y = X @ rng.normal(size=p) + 3.0 + rng.normal(size=n)
    return X, y


def synthetic_curve(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    y = np.sin(3 * x[:, 0]) + 0.5 * x[:, 0] + 0.1 * rng.normal(size=n)
    return x, y


def synthetic_correlated(n: int, k: int = 80, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Columns sharing a common factor (pairwise correlation about 0.9): κ of the standardized
    ΦᵀΦ in the hundreds, so full-batch descent needs thousands of epochs."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(n, 1))
    X = 3.0 * common + rng.normal(size=(n, k))
    y = X @ rng.normal(size=k) + rng.normal(size=n)
    return X, y


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measured(function: Callable[[], object]) -> tuple[float, int]:
    """Seconds and the peak resident memory added while ``function`` ran (sampled every 2 ms)."""
    start_rss = resident_bytes()
    peak = [start_rss]
    running = [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], resident_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    running[0] = False
    sampler.join()
    return seconds, max(peak[0], resident_bytes()) - start_rss


def floor(X: np.ndarray, y: np.ndarray, repeats: int = 2) -> dict[str, float]:
    """One XᵀX and Xᵀy pass: numpy (BLAS syrk) and torch (gemm), best of ``repeats`` (no
    sampler)."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    out = {}
    for label, function in [
        ("floor: numpy XᵀX + Xᵀy", lambda: (X.T @ X, X.T @ y)),
        ("floor: torch XᵀX + Xᵀy", lambda: (Xt.T @ Xt, Xt.T @ yt)),
    ]:
        out[label] = timed(function, repeats)[0]
    return out


def gap(
    predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, optimum: float
) -> float:
    residual = y - predict(X)
    return (float(residual @ residual) - optimum) / optimum


def run(name: str, X: np.ndarray, y: np.ndarray, degree: int | None, repeats: int = 2) -> None:
    if degree is None:
        Phi = torch.cat([torch.ones(len(X), 1, dtype=torch.float64), torch.as_tensor(X)], dim=1)
    else:
        Phi = Polynomial(degree).fit_transform(X)
    optimum = least_squares(Phi, torch.as_tensor(y)).loss
    floor_design = Phi[:, 1:].numpy().copy()
    del Phi

    def basis(estimator: object) -> object:
        if degree is None:
            return estimator
        return make_pipeline(PolynomialFeatures(degree, include_bias=False), estimator)

    contenders: dict[str, Callable[[], object]] = {
        "descent LinearRegressionGD": lambda: LinearRegressionGD(
            basis="identity" if degree is None else f"poly:{degree}",
            standardize=True if degree is None else "orthonormal",
            tol=1e-13,
            max_epochs=100_000,
        ),
        "sklearn LinearRegression": lambda: basis(LinearRegression()),
        "sklearn Ridge(alpha=1e-10)": lambda: basis(Ridge(alpha=1e-10)),
        "sklearn SGDRegressor (defaults)": lambda: basis(SGDRegressor(random_state=0)),
    }
    print(f"\n{name}: n = {len(y):,}, k = {floor_design.shape[1]}, J* = {optimum:.6g}")
    print(f"{'estimator':34} {'fit s':>8} {'peak MB':>8} {'(J − J*)/J*':>12} {'vs descent':>11}")
    floors = floor(floor_design, y, repeats)
    del floor_design
    times: dict[str, float] = {}
    epochs_note = ""
    for label, build in contenders.items():
        estimator = build()
        # Time and memory from separate runs: the memory sampler's thread takes the GIL and a
        # core from the BLAS threads it would be timing. The time is the best of two fits, as
        # the floor's.
        peak = measured(lambda e=estimator: e.fit(X, y))[1]  # type: ignore[attr-defined]
        seconds = timed(lambda e=estimator: e.fit(X, y), repeats)[0]  # type: ignore[attr-defined]
        times[label] = seconds
        reached = gap(estimator.predict, X, y, optimum)  # type: ignore[attr-defined]
        ratio = seconds / times["descent LinearRegressionGD"]
        print(f"{label:34} {seconds:8.3f} {peak / 2**20:8.0f} {reached:12.2e} {ratio:10.2f}×")
        if isinstance(estimator, LinearRegressionGD):
            epochs_note = f"descent ran {estimator.n_iter_} full-batch epochs"
    ours = times["descent LinearRegressionGD"]
    for label, seconds in floors.items():
        print(f"{label:34} {seconds:8.3f} {'':>8} {'':>12} {seconds / ours:10.2f}×")
    best_floor = min(floors.values())
    print(
        f"{epochs_note}; descent / floor = {ours / best_floor:.2f} (target ≤ 1.5); faster than "
        f"Ridge: {ours < times['sklearn Ridge(alpha=1e-10)']}"
    )


def epochs_per_second(X: np.ndarray, y: np.ndarray) -> None:
    """The full-batch loops alone, on the k × k statistics of a fit (the pass not timed): 20,000
    epochs by gd_statistics alone (O(k²) an epoch) and as a fit runs them (its first chunk,
    then G's eigendecomposition and gd_eigen_statistics, O(k) an epoch), best of five; and the
    Gram pass the fit makes (basis.Identity.moments)."""
    model = LinearRegressionGD(max_epochs=1).fit(X, y)
    gram, lr, k = model.gram_, model.learning_rate_, X.shape[1] + 1
    epochs = 20_000

    def loop(first_chunk: int) -> Callable[[], object]:
        def run() -> object:
            w = torch.zeros(k, dtype=torch.float64, requires_grad=True)
            saved = full_batch.EIGENBASIS_AFTER
            full_batch.EIGENBASIS_AFTER = first_chunk
            try:
                return full_batch.descend_on_statistics(gram, w, lr, epochs, 0.0, 0.0, "sum")
            finally:
                full_batch.EIGENBASIS_AFTER = saved

        return run

    sequential = timed(loop(10**9), 5)[0]
    eigen = timed(loop(full_batch.EIGENBASIS_AFTER), 5)[0]
    first = full_batch.EIGENBASIS_AFTER
    print(
        f"full-batch loop on k = {k}, {epochs:,} epochs: gd_statistics alone {sequential * 1e3:.2f}"
        f" ms ({epochs / sequential:,.0f} epochs/s); as the fit runs them ({first:,} of "
        f"gd_statistics, eigh, then gd_eigen_statistics) {eigen * 1e3:.2f} ms "
        f"({epochs / eigen:,.0f} epochs/s, {sequential / eigen:.1f}× faster)"
    )
    identity = Identity().fit(X)
    pass_seconds = timed(lambda: identity.moments(X, y), 3)[0]
    one_epoch = timed(lambda: LinearRegressionGD(max_epochs=1).fit(X, y), 3)[0]
    print(
        f"the fit's Gram pass (numpy: syrk XᵀX, one gemm Xᵀ[y, 1]) {pass_seconds * 1e3:.1f} ms; "
        f"a one-epoch fit (the pass and the set-up) {one_epoch * 1e3:.1f} ms"
    )


def standardized(X: np.ndarray) -> np.ndarray:
    """Columns centered and scaled to unit variance, in place (SGDRegressor's documented
    precondition; descent standardizes by itself, so both see the same columns)."""
    X -= X.mean(axis=0)
    X /= X.std(axis=0)
    return X


def stochastic_optimum(X: np.ndarray, y: np.ndarray) -> float:
    """J* = min ‖y − [1, X] w‖² from the normal equations (well conditioned here: standardized)."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    mean, centered_y = Xt.mean(dim=0), yt - yt.mean()
    gram = Xt.T @ Xt - len(y) * torch.outer(mean, mean)
    weights = torch.linalg.solve(gram, Xt.T @ centered_y)
    residual = centered_y - (Xt @ weights - mean @ weights)
    return float(residual @ residual)


def sgd_table(name: str, X: np.ndarray, y: np.ndarray, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """SGDRegressor against descent's stochastic modes at SGDRegressor's epoch count: both fits
    on the same data, timed the same way (wall clock around fit, best and median of repeats)."""
    optimum = stochastic_optimum(X, y)
    rows: dict[str, list[tuple[float, float, float, int]]] = {}
    # Plain wall-clock timing of a few fits on the small sets: this table reports no memory,
    # and the memory sampler's thread would take the GIL from the Python side of a fit.
    repeats = 7 if len(y) < 100_000 else 1
    for seed in seeds:
        sgd = SGDRegressor(random_state=seed)
        best, median = timed(lambda e=sgd: e.fit(X, y), repeats)
        epochs = int(sgd.n_iter_)
        rows.setdefault("sklearn SGDRegressor", []).append(
            (best / epochs, median / epochs, gap(sgd.predict, X, y, optimum), epochs)
        )
        for mode in ("single", "minibatch"):
            model = LinearRegressionGD(mode=mode, max_epochs=epochs, tol=0.0, random_state=seed)
            best, median = timed(lambda e=model: e.fit(X, y), repeats)
            rows.setdefault(f"descent mode={mode!r}", []).append(
                (best / epochs, median / epochs, gap(model.predict, X, y, optimum), model.n_iter_)
            )
    print(f"\n{name}: n = {len(y):,}, k = {X.shape[1]}, seeds {seeds}, {repeats} fits each")
    print(
        f"{'estimator':28} {'epochs':>8} {'ms/epoch best':>14} {'median':>8} {'vs sklearn':>11} "
        f"{'(J − J*)/J*':>12}"
    )
    reference = float(np.mean([t for t, _, _, _ in rows["sklearn SGDRegressor"]]))
    for label, results in rows.items():
        per_epoch = float(np.mean([t for t, _, _, _ in results]))
        per_epoch_median = float(np.mean([m for _, m, _, _ in results]))
        reached = float(np.mean([g for _, _, g, _ in results]))
        epochs_run = "/".join(str(e) for _, _, _, e in results)
        print(
            f"{label:28} {epochs_run:>8} {per_epoch * 1e3:14.3f} {per_epoch_median * 1e3:8.3f} "
            f"{per_epoch / reference:10.2f}× {reached:12.2e}"
        )
    if len(y) < 100_000:  # the fixed cost of a fit: one epoch, both
        sgd_once = timed(lambda: SGDRegressor(max_iter=1, tol=None).fit(X, y), repeats)[0]
        ours_once = timed(
            lambda: LinearRegressionGD(mode="single", max_epochs=1, tol=0.0).fit(X, y), repeats
        )[0]
        print(f"one-epoch fit: sklearn {sgd_once * 1e3:.3f} ms, descent {ours_once * 1e3:.3f} ms")
    # The epochs alone (no set-up), as a fit runs them: the C loop over a shuffled order bound
    # once (BatchUpdates), B = 1 and B = 50, beside one full-batch gradient Φᵀ(Φw − y) over the
    # same rows (torch's BLAS).
    Phi = torch.cat([torch.ones(len(y), 1, dtype=torch.float64), torch.from_numpy(X)], dim=1)
    target = torch.from_numpy(y)
    w = torch.zeros(Phi.shape[1], dtype=torch.float64, requires_grad=True)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    loops = {}
    for batch in (1, 50):
        updates = BatchUpdates(Phi, target, w, optim.SGD([w], lr=1e-9), "sgd", "sum", batch)
        every = range(-(-len(y) // batch))
        loops[batch] = timed(lambda u=updates, r=every: u.run_batches(order, r), 9)[0]
    full = timed(lambda: gradient(Phi, target, w.detach()), 9)[0]
    by_hand = timed(lambda: torch_epoch(Phi, target, order, 50), 5)[0]
    print(
        f"epoch loop alone (best of 9): B = 1 {loops[1] * 1e3:.3f} ms, B = 50 "
        f"{loops[50] * 1e3:.3f} ms (a hand-written torch loop, B = 50: {by_hand * 1e3:.3f} ms, "
        f"{by_hand / loops[50]:.1f}× descent's); one full-batch gradient over the rows "
        f"{full * 1e3:.3f} ms; B = 50 / full = {loops[50] / full:.2f}× (target ≤ 2)"
    )


def timed(function: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """Seconds of the fastest and the median of ``repeats`` calls (no memory sampler)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def torch_epoch(Phi: torch.Tensor, y: torch.Tensor, order: torch.Tensor, batch: int) -> None:
    """The same updates written by hand in torch: the rows gathered once in the epoch's order,
    then per batch g = −2 Φ_bᵀ(y_b − Φ_b w) and w ← w − η g."""
    w = torch.zeros(Phi.shape[1], dtype=torch.float64)
    rows, targets = Phi[order], y[order]
    for start in range(0, len(y), batch):
        block, target = rows[start : start + batch], targets[start : start + batch]
        w.sub_(block.T @ (target - block @ w), alpha=-2e-9)


def sgd_main(n: int, p: int) -> None:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = standardized(X.copy())
    # one-time costs (loading the C kernels, first calls) before anything is timed
    LinearRegressionGD(mode="single", max_epochs=2).fit(X, y)
    sgd_table("standardized diabetes", X, y)
    sgd_table("diabetes enlarged 20×", np.tile(X, (20, 1)), np.tile(y, 20))
    X, y = synthetic_linear(n, p)
    sgd_table(f"synthetic {n:,} × {p}", standardized(X), y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--sgd", action="store_true", help="the stochastic table (issue 23)")
    parser.add_argument(
        "--correlated", action="store_true", help="only the correlated-columns section"
    )
    args = parser.parse_args()
    blas = np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {}).get("name", "?")
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads, BLAS "
        f"{'mkl' if torch.backends.mkl.is_available() else 'other'}); numpy {np.__version__} "
        f"(BLAS {blas})"
    )
    optim.SGD([torch.zeros(1, requires_grad=True)])  # torch's one-time import, not timed below
    if args.sgd:
        sgd_main(args.n, args.p)
        return
    if args.correlated:
        correlated(args.n)
        return
    X, y = synthetic_linear(args.n, args.p)
    run(f"linear, {args.p} features", X, y, None)
    del X, y
    x, y = synthetic_curve(args.n)
    run("degree-5 polynomial of one feature", x, y, 5)
    del x, y
    correlated(args.n)


def correlated(n: int) -> None:
    """The correlated-columns section: n / 10 rows (100,000 by default)."""
    X, y = synthetic_correlated(max(n // 10, 1000))
    # a small shape: best of five, a steadier ratio on a shared machine
    run("80 correlated columns (thousands of epochs)", X, y, None, repeats=5)
    epochs_per_second(X, y)


if __name__ == "__main__":
    main()
