/* Single-pass update kernels for the rules torch ships no fused CPU kernel for.
 *
 * Each kernel reads every tensor once and writes it once, so a step costs the memory-bandwidth
 * floor instead of the five to eight passes an eager torch implementation makes. The arithmetic
 * follows the reference functions in descent/optim/ operation by operation (compiled with
 * -ffp-contract=off, no fast-math), so float64 results agree with them to rounding.
 *
 * Called through ctypes (descent/optim/_native.py) on contiguous tensors. No torch headers, so it
 * compiles in about a second. Parallel with OpenMP: the library links libgomp.so.1, and loaded
 * after torch (whose wheel ships a libgomp.so.1) the dynamic loader reuses torch's copy, so these
 * kernels run on torch's own thread pool instead of fighting its spinning workers for the cores.
 *
 * Each rule's formula is written once, as the step of one element (DEFINE_STEPS); the optimizer
 * kernels run it over tensors, and the linear-regression epoch loop at the end of this file runs it
 * after each example's gradient, so both apply the same arithmetic.
 */
#include <Python.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>

/* Inlined into each caller, so that a rule's epoch entry (one clone per vector unit) runs its
 * step inline instead of through a function pointer. */
#define INLINE inline __attribute__((always_inline))

/* Below this many elements a parallel region costs more than it saves. */
#define MIN_PARALLEL 65536

/* One build for every x86-64 machine: the loader picks the widest vector unit the CPU has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KERNEL
#endif

/* The effective gradient a rule sees: ±g plus the L2 term λθ (descent.optim.base.effective_grad). */
#define EFFECTIVE_GRAD(T) ((T)sign * g + (T)wd * *p)

/* Each rule's formula, once: the step of ONE element (θ at p, its raw gradient g, its state).
 * The optimizer kernels below run it over a slice of a tensor; the linear-regression epoch loop
 * (further below) runs it over the weights after each example's or mini-batch's gradient. */
#define DEFINE_STEPS(T, SUFFIX, SQRT, FABS, FMA)                                                  \
    /* θ ← θ − η g, rounded once as torch's add_(g, alpha=−η) rounds it (a fused multiply-add) */  \
    static inline void sgd_step_##SUFFIX(T *p, T g, double lr, double wd, double sign) {         \
        *p = FMA(EFFECTIVE_GRAD(T), -(T)lr, *p);                                                  \
    }                                                                                             \
                                                                                                  \
    static inline void rmsprop_step_##SUFFIX(T *p, T g, T *e, T *ebar, T *b, double lr,          \
                                             double rho, double eps, double wd, double sign,     \
                                             int inside, int centered, double momentum) {         \
        const T r = (T)rho, one_r = (T)(1.0 - rho);                                               \
        const T gi = EFFECTIVE_GRAD(T);                                                           \
        const T ei = r * *e + one_r * gi * gi;                                                    \
        *e = ei;                                                                                  \
        T var = ei;                                                                               \
        if (centered) {                                                                           \
            const T ai = r * *ebar + one_r * gi;                                                  \
            *ebar = ai;                                                                           \
            var = ei - ai * ai;                                                                   \
        }                                                                                         \
        const T den = inside ? SQRT(var + (T)eps) : SQRT(var) + (T)eps;                           \
        if (momentum > 0) {                                                                       \
            const T bi = (T)momentum * *b + gi / den;                                             \
            *b = bi;                                                                              \
            *p = *p - (T)lr * bi;                                                                 \
        } else {                                                                                  \
            *p = *p - (T)lr * gi / den;                                                           \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static inline void adadelta_step_##SUFFIX(T *p, T g, T *eg, T *ed, double lr, double rho,    \
                                              double eps, double wd, double sign) {               \
        const T r = (T)rho, one_r = (T)(1.0 - rho);                                               \
        const T gi = EFFECTIVE_GRAD(T);                                                           \
        const T egi = r * *eg + one_r * gi * gi;                                                  \
        *eg = egi;                                                                                \
        const T delta = -SQRT(*ed + (T)eps) / SQRT(egi + (T)eps) * gi;                            \
        *ed = r * *ed + one_r * delta * delta;                                                    \
        *p = *p + (T)lr * delta;                                                                  \
    }                                                                                             \
                                                                                                  \
    static inline void adamax_step_##SUFFIX(T *p, T g, T *m, T *u, double step_size,             \
                                            double beta1, double beta2, double eps, double wd,   \
                                            double sign, int eps_in_max) {                        \
        const T b1 = (T)beta1, one_b1 = (T)(1.0 - beta1), b2 = (T)beta2;                          \
        const T gi = EFFECTIVE_GRAD(T);                                                           \
        const T mi = b1 * *m + one_b1 * gi;                                                       \
        *m = mi;                                                                                  \
        const T decayed = b2 * *u;                                                                \
        const T magnitude = eps_in_max ? FABS(gi) + (T)eps : FABS(gi);                            \
        const T ui = decayed > magnitude ? decayed : magnitude;                                   \
        *u = ui;                                                                                  \
        *p = *p - (T)step_size * mi / (eps_in_max ? ui : ui + (T)eps);                            \
    }                                                                                             \
                                                                                                  \
    static inline void nadam_step_##SUFFIX(T *p, T g, T *m, T *v, double c_g, double c_m,        \
                                           double beta1, double beta2, double bias2, double eps, \
                                           double wd, double sign) {                              \
        const T b1 = (T)beta1, one_b1 = (T)(1.0 - beta1);                                         \
        const T b2 = (T)beta2, one_b2 = (T)(1.0 - beta2);                                         \
        const T gi = EFFECTIVE_GRAD(T);                                                           \
        const T mi = b1 * *m + one_b1 * gi;                                                       \
        const T vi = b2 * *v + one_b2 * gi * gi;                                                  \
        *m = mi;                                                                                  \
        *v = vi;                                                                                  \
        const T den = SQRT(vi / (T)bias2) + (T)eps;                                               \
        *p = *p - ((T)c_g * gi + (T)c_m * mi) / den;                                              \
    }                                                                                             \
                                                                                                  \
    static inline void nesterov_step_##SUFFIX(T *p, T g, T *v, double lr, double momentum,       \
                                              double wd, double sign) {                           \
        const T mu = (T)momentum, eta = (T)lr;                                                    \
        const T gi = EFFECTIVE_GRAD(T);                                                           \
        const T vi = mu * *v + eta * gi;                                                          \
        *v = vi;                                                                                  \
        *p = *p - (mu * vi + eta * gi);                                                           \
    }

/* The slice kernels: one rule's step over n contiguous elements (vectorized by the compiler once
 * the step is inlined). */
#define DEFINE_KERNELS(T, SUFFIX)                                                                 \
    static KERNEL void sgd_##SUFFIX##_slice(T *p, const T *g, int64_t n, double lr, double wd,    \
                                            double sign) {                                        \
        for (int64_t i = 0; i < n; i++) sgd_step_##SUFFIX(p + i, g[i], lr, wd, sign);             \
    }                                                                                             \
                                                                                                  \
    static KERNEL void rmsprop_##SUFFIX##_slice(T *p, const T *g, T *e, T *ebar, T *b, int64_t n, \
                                                double lr, double rho, double eps, double wd,     \
                                                double sign, int inside, int centered,            \
                                                double momentum) {                                \
        if (!centered && momentum <= 0) { /* the common case, as a branch-free loop */            \
            for (int64_t i = 0; i < n; i++)                                                       \
                rmsprop_step_##SUFFIX(p + i, g[i], e + i, ebar, b, lr, rho, eps, wd, sign,        \
                                      inside, 0, 0.0);                                            \
            return;                                                                               \
        }                                                                                         \
        for (int64_t i = 0; i < n; i++)                                                           \
            rmsprop_step_##SUFFIX(p + i, g[i], e + i, centered ? ebar + i : ebar,                 \
                                  momentum > 0 ? b + i : b, lr, rho, eps, wd, sign, inside,       \
                                  centered, momentum);                                            \
    }                                                                                             \
                                                                                                  \
    static KERNEL void adadelta_##SUFFIX##_slice(T *p, const T *g, T *eg, T *ed, int64_t n,       \
                                                 double lr, double rho, double eps, double wd,    \
                                                 double sign) {                                   \
        for (int64_t i = 0; i < n; i++)                                                           \
            adadelta_step_##SUFFIX(p + i, g[i], eg + i, ed + i, lr, rho, eps, wd, sign);          \
    }                                                                                             \
                                                                                                  \
    static KERNEL void adamax_##SUFFIX##_slice(T *p, const T *g, T *m, T *u, int64_t n,           \
                                               double step_size, double beta1, double beta2,      \
                                               double eps, double wd, double sign,                \
                                               int eps_in_max) {                                  \
        for (int64_t i = 0; i < n; i++)                                                           \
            adamax_step_##SUFFIX(p + i, g[i], m + i, u + i, step_size, beta1, beta2, eps, wd,     \
                                 sign, eps_in_max);                                               \
    }                                                                                             \
                                                                                                  \
    static KERNEL void nadam_##SUFFIX##_slice(T *p, const T *g, T *m, T *v, int64_t n,            \
                                              double c_g, double c_m, double beta1, double beta2, \
                                              double bias2, double eps, double wd, double sign) { \
        for (int64_t i = 0; i < n; i++)                                                           \
            nadam_step_##SUFFIX(p + i, g[i], m + i, v + i, c_g, c_m, beta1, beta2, bias2, eps,    \
                                wd, sign);                                                        \
    }                                                                                             \
                                                                                                  \
    static KERNEL void nesterov_##SUFFIX##_slice(T *p, const T *g, T *v, int64_t n, double lr,    \
                                                 double momentum, double wd, double sign) {       \
        for (int64_t i = 0; i < n; i++)                                                           \
            nesterov_step_##SUFFIX(p + i, g[i], v + i, lr, momentum, wd, sign);                   \
    }

/* The entry points: split [0, n) over the OpenMP threads (torch's own pool, see below) and run the
 * slice kernel on each part. */
#define SLICE(n) \
    const int64_t lo_ = (n) * omp_get_thread_num() / omp_get_num_threads(); \
    const int64_t len_ = (n) * (omp_get_thread_num() + 1) / omp_get_num_threads() - lo_;

#define DEFINE_ENTRIES(T, SUFFIX)                                                                 \
    void sgd_##SUFFIX(T *p, const T *g, int64_t n, double lr, double wd, double sign) {            \
        _Pragma("omp parallel if (n >= MIN_PARALLEL)") {                                          \
            SLICE(n)                                                                              \
            sgd_##SUFFIX##_slice(p + lo_, g + lo_, len_, lr, wd, sign);                           \
        }                                                                                         \
    }                                                                                             \
    void rmsprop_##SUFFIX(T *p, const T *g, T *e, T *ebar, T *b, int64_t n, double lr,             \
                          double rho, double eps, double wd, double sign, int inside,             \
                          int centered, double momentum) {                                        \
        _Pragma("omp parallel if (n >= MIN_PARALLEL)") {                                          \
            SLICE(n)                                                                              \
            rmsprop_##SUFFIX##_slice(p + lo_, g + lo_, e + lo_, centered ? ebar + lo_ : ebar,     \
                                     momentum > 0 ? b + lo_ : b, len_, lr, rho, eps, wd, sign,    \
                                     inside, centered, momentum);                                 \
        }                                                                                         \
    }                                                                                             \
    void adadelta_##SUFFIX(T *p, const T *g, T *eg, T *ed, int64_t n, double lr, double rho,       \
                           double eps, double wd, double sign) {                                  \
        _Pragma("omp parallel if (n >= MIN_PARALLEL)") {                                          \
            SLICE(n)                                                                              \
            adadelta_##SUFFIX##_slice(p + lo_, g + lo_, eg + lo_, ed + lo_, len_, lr, rho, eps,   \
                                      wd, sign);                                                  \
        }                                                                                         \
    }                                                                                             \
    void adamax_##SUFFIX(T *p, const T *g, T *m, T *u, int64_t n, double step_size,                \
                         double beta1, double beta2, double eps, double wd, double sign,          \
                         int eps_in_max) {                                                        \
        _Pragma("omp parallel if (n >= MIN_PARALLEL)") {                                          \
            SLICE(n)                                                                              \
            adamax_##SUFFIX##_slice(p + lo_, g + lo_, m + lo_, u + lo_, len_, step_size, beta1,   \
                                    beta2, eps, wd, sign, eps_in_max);                            \
        }                                                                                         \
    }                                                                                             \
    void nadam_##SUFFIX(T *p, const T *g, T *m, T *v, int64_t n, double c_g, double c_m,           \
                        double beta1, double beta2, double bias2, double eps, double wd,          \
                        double sign) {                                                            \
        _Pragma("omp parallel if (n >= MIN_PARALLEL)") {                                          \
            SLICE(n)                                                                              \
            nadam_##SUFFIX##_slice(p + lo_, g + lo_, m + lo_, v + lo_, len_, c_g, c_m, beta1,     \
                                   beta2, bias2, eps, wd, sign);                                  \
        }                                                                                         \
    }                                                                                             \
    void nesterov_##SUFFIX(T *p, const T *g, T *v, int64_t n, double lr, double momentum,          \
                           double wd, double sign) {                                              \
        _Pragma("omp parallel if (n >= MIN_PARALLEL)") {                                          \
            SLICE(n)                                                                              \
            nesterov_##SUFFIX##_slice(p + lo_, g + lo_, v + lo_, len_, lr, momentum, wd, sign);   \
        }                                                                                         \
    }

DEFINE_STEPS(float, f32, sqrtf, fabsf, fmaf)
DEFINE_STEPS(double, f64, sqrt, fabs, fma)
DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
DEFINE_ENTRIES(float, f32)
DEFINE_ENTRIES(double, f64)

/* The epochs of descent.linear.LinearRegressionGD's stochastic modes ("single", "minibatch"):
 * one call walks batches [first, last) of an epoch's shuffled order and, for each, computes the
 * analytic gradient of J_b(w) = Σ_{i∈b} (yⁱ − φⁱ·w)² (times ``scale``: 1, or 1/|b| for "mean")
 * from the basis rows, ∇J_b = −2 Σ_{i∈b} φⁱ (yⁱ − φⁱ·w), then applies the rule's step above to
 * each weight, and (``avg`` not NULL) folds the new w into the Polyak–Ruppert average
 * w̄ ← w̄ + (w − w̄)/t. The sums run in a fixed order (φⁱ·w in lanes, see lane_dot; the batch
 * over i left to right), the order of the reference path (ordered_gradient in
 * descent/linear/solve.py), so float64 results are equal to it bit for bit.
 *
 * Per-update doubles: row u of ``scalars`` (``stride`` doubles apart; stride 0: the same row for
 * every update) holds the rule's double arguments in the order of KERNELS in _native.py; the
 * rule's ints are constant over the epoch. */
typedef void (*update_fn)(double *w, const double *g, double *const *state, int64_t k,
                          const double *c, const int *flags);

static INLINE void sgd_update(double *w, const double *g, double *const *s, int64_t k, const double *c,
                       const int *f) {
    for (int64_t j = 0; j < k; j++) sgd_step_f64(w + j, g[j], c[0], c[1], c[2]);
}

static INLINE void rmsprop_update(double *w, const double *g, double *const *s, int64_t k,
                           const double *c, const int *f) {
    const int centered = f[1];
    const double momentum = c[5];
    for (int64_t j = 0; j < k; j++)
        rmsprop_step_f64(w + j, g[j], s[0] + j, centered ? s[1] + j : s[1],
                         momentum > 0 ? s[2] + j : s[2], c[0], c[1], c[2], c[3], c[4], f[0],
                         centered, momentum);
}

static INLINE void adadelta_update(double *w, const double *g, double *const *s, int64_t k,
                            const double *c, const int *f) {
    for (int64_t j = 0; j < k; j++)
        adadelta_step_f64(w + j, g[j], s[0] + j, s[1] + j, c[0], c[1], c[2], c[3], c[4]);
}

static INLINE void adamax_update(double *w, const double *g, double *const *s, int64_t k,
                          const double *c, const int *f) {
    for (int64_t j = 0; j < k; j++)
        adamax_step_f64(w + j, g[j], s[0] + j, s[1] + j, c[0], c[1], c[2], c[3], c[4], c[5],
                        f[0]);
}

static INLINE void nadam_update(double *w, const double *g, double *const *s, int64_t k,
                         const double *c, const int *f) {
    for (int64_t j = 0; j < k; j++)
        nadam_step_f64(w + j, g[j], s[0] + j, s[1] + j, c[0], c[1], c[2], c[3], c[4], c[5],
                       c[6], c[7]);
}

static INLINE void nesterov_update(double *w, const double *g, double *const *s, int64_t k,
                            const double *c, const int *f) {
    for (int64_t j = 0; j < k; j++) nesterov_step_f64(w + j, g[j], s[0] + j, c[0], c[1], c[2], c[3]);
}

/* φ·w in DOT_LANES interleaved partial sums (lane l sums the terms j ≡ l mod DOT_LANES, left to
 * right), then added pairwise: independent chains the compiler vectorizes, instead of one chain
 * of k dependent additions. ordered_gradient in descent/linear/solve.py sums in this order. */
#define DOT_LANES 8
static inline double lane_dot(const double *row, const double *w, int64_t k) {
    double acc[DOT_LANES] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int64_t j = 0;
    for (; j + DOT_LANES <= k; j += DOT_LANES)
        for (int l = 0; l < DOT_LANES; l++) acc[l] += row[j + l] * w[j + l];
    for (int l = 0; j + l < k; l++) acc[l] += row[j + l] * w[j + l];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Full-batch gradient descent on the k × k statistics of least squares (descent.linear's
 * LinearRegressionGD, plain rule, constant step η): per epoch one product p = Gw gives
 *     J(w) = s·max(c − 2 b·w + w·p, 0)   and   ∇J = 2s (p − b)      (G = ΦᵀΦ, b = Φᵀy, c = yᵀy)
 * then w ← w − η∇J, rounded once as torch's sub_(∇J, alpha=η). The stopping rules are those of
 * the Python loop it stands for (LinearRegressionGD._descend_on_statistics, which runs every
 * other rule): stop when ‖∇J‖ ≤ tol·‖∇J₀‖ (or ∇J₀ = 0), or, when tol_loss > 0, when
 * |J_{t−1} − J_t| ≤ tol_loss·J_t. Evaluates at most `updates` + 1 points (losses[0..]), updates at
 * most `updates` times; a call after the first re-evaluates its starting point (first = 0).
 * Returns the updates made; *status: 0 none of the rules held, 1 one held, 2 J or ∇J not finite
 * (at losses[returned]). */
KERNEL int64_t gd_statistics(const double *G, const double *b, double total, double *w, double *grad,
                                     int64_t k, double scale, double lr, int64_t updates,
                                     double tol, double tol_loss, double *losses,
                                     double *first_norm, int64_t first, int64_t *status) {
    for (int64_t e = 0;; e++) {
        /* Gw as Σ_j w_j G_j over the rows of the symmetric G (column j is row j): k independent
         * sums a vector wide, where a dot product per row is one chain of dependent additions
         * (measured: 0.48 µs against 0.65 µs an epoch for k = 81). */
        for (int64_t i = 0; i < k; i++) grad[i] = 0.0;
        int64_t j = 0;
        for (; j + 4 <= k; j += 4) { /* four rows a pass: a quarter of the loads and stores of Gw */
            const double w0 = w[j], w1 = w[j + 1], w2 = w[j + 2], w3 = w[j + 3];
            const double *r0 = G + j * k, *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
            for (int64_t i = 0; i < k; i++)
                grad[i] += (r0[i] * w0 + r1[i] * w1) + (r2[i] * w2 + r3[i] * w3);
        }
        for (; j < k; j++) {
            const double wj = w[j], *row = G + j * k;
            for (int64_t i = 0; i < k; i++) grad[i] += row[i] * wj;
        }
        double bw = 0.0, wp = 0.0, squares = 0.0;
        for (int64_t i = 0; i < k; i++) {
            const double p = grad[i];
            const double g = (p - b[i]) * (2.0 * scale);
            grad[i] = g;
            bw += b[i] * w[i];
            wp += w[i] * p;
            squares += g * g;
        }
        double value = total - 2.0 * bw + wp;
        value = (value > 0.0 ? value : 0.0) * scale;
        losses[e] = value;
        const double norm = sqrt(squares);
        if (!isfinite(norm) || !isfinite(value)) {
            *status = 2;
            return e;
        }
        int done;
        if (first && e == 0) {
            *first_norm = norm;
            done = norm == 0.0;
        } else {
            done = norm <= tol * *first_norm;
            if (tol_loss > 0 && !done && e > 0)
                done = fabs(losses[e - 1] - value) <= tol_loss * value;
        }
        if (done || e == updates) {
            *status = done;
            return e;
        }
        for (int64_t i = 0; i < k; i++) w[i] = fma(grad[i], -lr, w[i]);
    }
}

/* The statistics of a one-input polynomial basis x, x², …, x^d (descent.linear.basis.Polynomial)
 * in one pass over x and y: power_sums[m] = Σ xᵐ (m ≤ 2d) and weighted[m] = Σ xᵐ y (m ≤ d), from
 * which ΦᵀΦ (a Hankel matrix) and Φᵀy follow. Each power is built by repeated multiplication in
 * registers, 8 elements at a time; each 8-element group's terms are added in blocks of POWER_BLOCK
 * elements before joining the totals, so the sums' error grows with the number of blocks, not
 * of elements. The order is fixed: the same bits on every machine. */
#define POWER_LANES 8
#define POWER_BLOCK 4096
#define MAX_POWER 64
KERNEL void power_sums_f64(const double *x, const double *y, int64_t n, int64_t degree,
                           double *power_sums, double *weighted) {
    const int64_t top = 2 * degree;
    for (int64_t m = 0; m <= top; m++) power_sums[m] = 0.0;
    for (int64_t m = 0; m <= degree; m++) weighted[m] = 0.0;
    for (int64_t start = 0; start < n; start += POWER_BLOCK) {
        const int64_t stop = start + POWER_BLOCK < n ? start + POWER_BLOCK : n;
        double block_sums[2 * MAX_POWER + 1][POWER_LANES], block_weighted[MAX_POWER + 1][POWER_LANES];
        for (int64_t m = 0; m <= top; m++)
            for (int l = 0; l < POWER_LANES; l++) block_sums[m][l] = 0.0;
        for (int64_t m = 0; m <= degree; m++)
            for (int l = 0; l < POWER_LANES; l++) block_weighted[m][l] = 0.0;
        int64_t i = start;
        for (; i + POWER_LANES <= stop; i += POWER_LANES) {
            double power[POWER_LANES], xi[POWER_LANES], yi[POWER_LANES];
            for (int l = 0; l < POWER_LANES; l++) {
                power[l] = 1.0;
                xi[l] = x[i + l];
                yi[l] = y[i + l];
            }
            for (int64_t m = 0; m <= top; m++) {
                for (int l = 0; l < POWER_LANES; l++) block_sums[m][l] += power[l];
                if (m <= degree)
                    for (int l = 0; l < POWER_LANES; l++) block_weighted[m][l] += power[l] * yi[l];
                for (int l = 0; l < POWER_LANES; l++) power[l] *= xi[l];
            }
        }
        for (int l = 0; i < stop; i++, l++) { /* the last < 8 elements, in lanes 0, 1, … */
            double power = 1.0;
            for (int64_t m = 0; m <= top; m++) {
                block_sums[m][l] += power;
                if (m <= degree) block_weighted[m][l] += power * y[i];
                power *= x[i];
            }
        }
        for (int64_t m = 0; m <= top; m++) {
            const double *s = block_sums[m];
            power_sums[m] += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
        for (int64_t m = 0; m <= degree; m++) {
            const double *s = block_weighted[m];
            weighted[m] += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
    }
}

/* Rows come in a shuffled order, so the hardware cannot guess the next one: fetch it ahead. */
#define PREFETCH_AHEAD 4
static inline void prefetch_row(const double *row, int64_t k) {
    for (int64_t j = 0; j < k; j += 8) __builtin_prefetch(row + j, 0, 0);
}

static INLINE void linear_epoch(const double *Phi, const double *y, const int64_t *order,
                                double *w, double *grad, double *avg, int64_t n, int64_t k,
                                int64_t batch, int64_t first, int64_t last, double scale,
                                int64_t averaged, const double *scalars, int64_t stride,
                                double *const *state, const int *flags, update_fn update) {
    for (int64_t b = first; b < last; b++) {
        const int64_t start = b * batch, stop = start + batch < n ? start + batch : n;
        for (int64_t i = start; i < stop; i++) {
            if (i + PREFETCH_AHEAD < n) prefetch_row(Phi + order[i + PREFETCH_AHEAD] * k, k);
            const double *row = Phi + order[i] * k;
            const double fitted = lane_dot(row, w, k);
            const double residual = y[order[i]] - fitted;
            if (i == start) {
                for (int64_t j = 0; j < k; j++) grad[j] = row[j] * residual;
            } else {
                for (int64_t j = 0; j < k; j++) grad[j] += row[j] * residual;
            }
        }
        for (int64_t j = 0; j < k; j++) grad[j] = -2.0 * grad[j] * scale;
        update(w, grad, state, k, scalars + (b - first) * stride, flags);
        if (avg) {
            const double count = (double)(++averaged);
            for (int64_t j = 0; j < k; j++) avg[j] = avg[j] + (w[j] - avg[j]) / count;
        }
    }
}

/* One entry per rule: the epoch's arguments, then the rule's state tensors and ints (KERNELS). */
#define EPOCH_ARGS                                                                                \
    const double *Phi, const double *y, const int64_t *order, double *w, double *grad,            \
        double *avg, int64_t n, int64_t k, int64_t batch, int64_t first, int64_t last,            \
        double scale, int64_t averaged, const double *scalars, int64_t stride
#define EPOCH(STATE, FLAGS, UPDATE)                                                               \
    linear_epoch(Phi, y, order, w, grad, avg, n, k, batch, first, last, scale, averaged,          \
                 scalars, stride, STATE, FLAGS, UPDATE)

KERNEL void sgd_epoch(EPOCH_ARGS) {
    double *state[1] = {NULL};
    const int flags[1] = {0};
    EPOCH(state, flags, sgd_update);
}
KERNEL void rmsprop_epoch(EPOCH_ARGS, double *e, double *ebar, double *b, int inside, int centered) {
    double *state[3] = {e, ebar, b};
    const int flags[2] = {inside, centered};
    EPOCH(state, flags, rmsprop_update);
}
KERNEL void adadelta_epoch(EPOCH_ARGS, double *eg, double *ed) {
    double *state[2] = {eg, ed};
    const int flags[1] = {0};
    EPOCH(state, flags, adadelta_update);
}
KERNEL void adamax_epoch(EPOCH_ARGS, double *m, double *u, int eps_in_max) {
    double *state[2] = {m, u};
    const int flags[1] = {eps_in_max};
    EPOCH(state, flags, adamax_update);
}
KERNEL void nadam_epoch(EPOCH_ARGS, double *m, double *v) {
    double *state[2] = {m, v};
    const int flags[1] = {0};
    EPOCH(state, flags, nadam_update);
}
KERNEL void nesterov_epoch(EPOCH_ARGS, double *v) {
    double *state[1] = {v};
    const int flags[1] = {0};
    EPOCH(state, flags, nesterov_update);
}

/* An importable (empty) module, so setuptools builds and installs it like any extension. */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "Single-pass update kernels, called through ctypes.",
                                            -1, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
