/* Single-pass update kernels for the rules torch ships no fused CPU kernel for, and two-pass ones
 * (sums, then the update) for the rules whose step needs sums over tensors (LAMB, LARS, Prodigy).
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
#include <stdlib.h>
#include <string.h>

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
    }                                                                                             \
                                                                                                  \
    /* Lion: c = β₁m + (1−β₁)g ; θ ← θ − η(sign(c) + λθ) ; m ← β₂m + (1−β₂)g (sign(0) = 0, a NaN \
     * stays NaN, as torch.sign) */                                                               \
    static inline void lion_step_##SUFFIX(T *p, T g, T *m, double lr, double beta1, double beta2, \
                                          double wd, double sign) {                               \
        const T gi = (T)sign * g;                                                                 \
        const T c = (T)beta1 * *m + (T)(1.0 - beta1) * gi;                                        \
        const T direction = c > 0 ? (T)1 : (c < 0 ? (T)-1 : c);                                   \
        *p = *p - (T)lr * (direction + (T)wd * *p);                                               \
        *m = (T)beta2 * *m + (T)(1.0 - beta2) * gi;                                               \
    }                                                                                             \
                                                                                                  \
    /* Schedule-Free on the training point y (at p), with c_y = η(β₁(1−cₜ) − 1) from the host:    \
     * AdamW (adaptive): v ← β₂v + (1−β₂)g² ; ĝ = g/(√(v/(1−β₂ᵗ)) + ε) + λy ; SGD: ĝ = g + λy    \
     * y ← (1−cₜ)y + cₜz + c_y ĝ ; z ← z − ηĝ */                                                  \
    static inline void schedule_free_step_##SUFFIX(T *p, T g, T *z, T *v, double lr, double ckp1, \
                                                   double c_y, double beta2, double bias2,        \
                                                   double eps, double wd, double sign,            \
                                                   int adaptive) {                                \
        T gi = (T)sign * g;                                                                       \
        if (adaptive) {                                                                           \
            const T vi = (T)beta2 * *v + (T)(1.0 - beta2) * gi * gi;                              \
            *v = vi;                                                                              \
            gi = gi / (SQRT(vi / (T)bias2) + (T)eps);                                             \
        }                                                                                         \
        gi = gi + (T)wd * *p;                                                                     \
        const T zi = *z;                                                                          \
        const T y = (T)(1.0 - ckp1) * *p + (T)ckp1 * zi;                                          \
        *p = y + (T)c_y * gi;                                                                     \
        *z = zi - (T)lr * gi;                                                                     \
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
    }                                                                                             \
                                                                                                  \
    static KERNEL void lion_##SUFFIX##_slice(T *p, const T *g, T *m, int64_t n, double lr,        \
                                             double beta1, double beta2, double wd,               \
                                             double sign) {                                       \
        for (int64_t i = 0; i < n; i++)                                                           \
            lion_step_##SUFFIX(p + i, g[i], m + i, lr, beta1, beta2, wd, sign);                   \
    }                                                                                             \
                                                                                                  \
    static KERNEL void schedule_free_##SUFFIX##_slice(T *p, const T *g, T *z, T *v, int64_t n,    \
                                                      double lr, double ckp1, double c_y,         \
                                                      double beta2, double bias2, double eps,     \
                                                      double wd, double sign, int adaptive) {     \
        if (adaptive) {                                                                           \
            for (int64_t i = 0; i < n; i++)                                                       \
                schedule_free_step_##SUFFIX(p + i, g[i], z + i, v + i, lr, ckp1, c_y, beta2,      \
                                            bias2, eps, wd, sign, 1);                             \
        } else {                                                                                  \
            for (int64_t i = 0; i < n; i++)                                                       \
                schedule_free_step_##SUFFIX(p + i, g[i], z + i, v, lr, ckp1, c_y, beta2, bias2,   \
                                            eps, wd, sign, 0);                                    \
        }                                                                                         \
    }

/* The entry points: split [0, n) over the OpenMP threads (torch's own pool, see below) and run the
 * slice kernel on each part. */
#define SLICE(n) \
    const int64_t lo_ = (n) * omp_get_thread_num() / omp_get_num_threads(); \
    const int64_t len_ = (n) * (omp_get_thread_num() + 1) / omp_get_num_threads() - lo_;

/* Runs CALL (a slice kernel's call on [lo_, lo_ + len_)) over [0, n): on the calling thread below
 * MIN_PARALLEL elements (an OpenMP region costs about 3 µs even when it runs one thread: 0.5 ms a
 * step over a ResNet's 161 small tensors), else split over the OpenMP threads. */
#define OVER_SLICES(n, CALL)                                                                      \
    if ((n) < MIN_PARALLEL) {                                                                     \
        const int64_t lo_ = 0, len_ = (n);                                                        \
        CALL;                                                                                     \
    } else {                                                                                      \
        _Pragma("omp parallel") {                                                                 \
            SLICE(n)                                                                              \
            CALL;                                                                                 \
        }                                                                                         \
    }

#define DEFINE_ENTRIES(T, SUFFIX)                                                                 \
    void sgd_##SUFFIX(T *p, const T *g, int64_t n, double lr, double wd, double sign) {            \
        OVER_SLICES(n, sgd_##SUFFIX##_slice(p + lo_, g + lo_, len_, lr, wd, sign));               \
    }                                                                                             \
    void rmsprop_##SUFFIX(T *p, const T *g, T *e, T *ebar, T *b, int64_t n, double lr,             \
                          double rho, double eps, double wd, double sign, int inside,             \
                          int centered, double momentum) {                                        \
        OVER_SLICES(n, rmsprop_##SUFFIX##_slice(p + lo_, g + lo_, e + lo_, centered ? ebar + lo_  \
                    : ebar, momentum > 0 ? b + lo_ : b, len_, lr, rho, eps, wd, sign, inside,     \
                    centered, momentum));                                                         \
    }                                                                                             \
    void adadelta_##SUFFIX(T *p, const T *g, T *eg, T *ed, int64_t n, double lr, double rho,       \
                           double eps, double wd, double sign) {                                  \
        OVER_SLICES(n, adadelta_##SUFFIX##_slice(p + lo_, g + lo_, eg + lo_, ed + lo_, len_, lr,  \
                    rho, eps, wd, sign));                                                         \
    }                                                                                             \
    void adamax_##SUFFIX(T *p, const T *g, T *m, T *u, int64_t n, double step_size,                \
                         double beta1, double beta2, double eps, double wd, double sign,          \
                         int eps_in_max) {                                                        \
        OVER_SLICES(n, adamax_##SUFFIX##_slice(p + lo_, g + lo_, m + lo_, u + lo_, len_,          \
                    step_size, beta1, beta2, eps, wd, sign, eps_in_max));                         \
    }                                                                                             \
    void nadam_##SUFFIX(T *p, const T *g, T *m, T *v, int64_t n, double c_g, double c_m,           \
                        double beta1, double beta2, double bias2, double eps, double wd,          \
                        double sign) {                                                            \
        OVER_SLICES(n, nadam_##SUFFIX##_slice(p + lo_, g + lo_, m + lo_, v + lo_, len_, c_g,      \
                    c_m, beta1, beta2, bias2, eps, wd, sign));                                    \
    }                                                                                             \
    void nesterov_##SUFFIX(T *p, const T *g, T *v, int64_t n, double lr, double momentum,          \
                           double wd, double sign) {                                              \
        OVER_SLICES(n, nesterov_##SUFFIX##_slice(p + lo_, g + lo_, v + lo_, len_, lr, momentum,   \
                    wd, sign));                                                                   \
    }                                                                                             \
    void lion_##SUFFIX(T *p, const T *g, T *m, int64_t n, double lr, double beta1, double beta2,   \
                       double wd, double sign) {                                                  \
        OVER_SLICES(n, lion_##SUFFIX##_slice(p + lo_, g + lo_, m + lo_, len_, lr, beta1, beta2,   \
                    wd, sign));                                                                   \
    }                                                                                             \
    void schedule_free_##SUFFIX(T *p, const T *g, T *z, T *v, int64_t n, double lr, double ckp1,   \
                                double c_y, double beta2, double bias2, double eps, double wd,    \
                                double sign, int adaptive) {                                      \
        OVER_SLICES(n, schedule_free_##SUFFIX##_slice(p + lo_, g + lo_, z + lo_, adaptive ? v +   \
                    lo_ : v, len_, lr, ckp1, c_y, beta2, bias2, eps, wd, sign, adaptive));        \
    }

DEFINE_STEPS(float, f32, sqrtf, fabsf, fmaf)
DEFINE_STEPS(double, f64, sqrt, fabs, fma)
DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
DEFINE_ENTRIES(float, f32)
DEFINE_ENTRIES(double, f64)

/* The two-pass kernels of the rules whose step needs sums over a tensor (LAMB's and LARS's trust
 * ratios) or over all tensors (Prodigy's d): pass 1 updates what it can and returns the sums,
 * the host turns them into the step's scalars (the formula's bookkeeping stays in Python), pass 2
 * applies. Called on one tensor right after the other, a tensor that fits in the last-level cache
 * is read from memory once. LAMB's and LARS's ratios are one line each (lamb_ratio, lars_ratio),
 * so their kernels compute them and run both passes themselves, tensor after tensor (LAMB's
 * pipelined on one thread: lamb_pipeline).
 *
 * The sums have one fixed order: each block of REDUCE_BLOCK elements sums in LANES interleaved
 * double accumulators (a GCC vector: independent chains, added pairwise at the end), and the
 * blocks' sums are added in block order, so the result depends neither on the thread count nor
 * on the vector unit. float32 values are squared and summed in double. */
#define REDUCE_BLOCK 4096
#define LANES 8
/* The piece of a block LAMB's pass 1 updates and then sums (a multiple of LANES). */
#define MOMENTS_PIECE 256

/* LANES doubles as one GCC vector: one register with AVX-512, two with AVX2, four with SSE2; the
 * same lanes (so the same sums) on each. */
typedef double lanes_t __attribute__((vector_size(LANES * sizeof(double))));
/* (GCC notes that such vectors are passed differently with and without AVX-512: only static inline
 * functions of this file take them, so no ABI boundary is crossed.) */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float lanes_f32_t __attribute__((vector_size(LANES * sizeof(float))));

static inline lanes_t load_lanes_f64(const double *x) {
    lanes_t v;
    memcpy(&v, x, sizeof v);
    return v;
}
static inline lanes_t load_lanes_f32(const float *x) {
    lanes_f32_t v;
    memcpy(&v, x, sizeof v);
    return __builtin_convertvector(v, lanes_t);
}


static inline double lanes_total(const lanes_t *lanes) {
    const lanes_t acc = *lanes;
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* sum_a += a², sum_b += b² over n elements, element e in lane e mod LANES (the caller's lanes, so
 * that one sum can run over consecutive pieces whose starts are multiples of LANES). */
#define DEFINE_SUMS(T, SUFFIX)                                                                    \
    static inline void add_squares_##SUFFIX(const T *a, const T *b, int64_t n, lanes_t *sum_a,    \
                                            lanes_t *sum_b) {                                     \
        lanes_t x2 = *sum_a, y2 = *sum_b;                                                         \
        int64_t i = 0;                                                                            \
        for (; i + LANES <= n; i += LANES) {                                                      \
            const lanes_t x = load_lanes_##SUFFIX(a + i), y = load_lanes_##SUFFIX(b + i);         \
            x2 += x * x;                                                                          \
            y2 += y * y;                                                                          \
        }                                                                                         \
        for (int l = 0; i < n; i++, l++) {                                                        \
            x2[l] += (double)a[i] * (double)a[i];                                                 \
            y2[l] += (double)b[i] * (double)b[i];                                                 \
        }                                                                                         \
        *sum_a = x2;                                                                              \
        *sum_b = y2;                                                                              \
    }                                                                                             \
                                                                                                  \
    /* sum_a += a, sum_b += b over n elements, in the lanes of add_squares */                   \
    static inline void add_values_##SUFFIX(const T *a, const T *b, int64_t n, lanes_t *sum_a,     \
                                           lanes_t *sum_b) {                                      \
        lanes_t x1 = *sum_a, y1 = *sum_b;                                                         \
        int64_t i = 0;                                                                            \
        for (; i + LANES <= n; i += LANES) {                                                      \
            x1 += load_lanes_##SUFFIX(a + i);                                                     \
            y1 += load_lanes_##SUFFIX(b + i);                                                     \
        }                                                                                         \
        for (int l = 0; i < n; i++, l++) {                                                        \
            x1[l] += (double)a[i];                                                                \
            y1[l] += (double)b[i];                                                                \
        }                                                                                         \
        *sum_a = x1;                                                                              \
        *sum_b = y1;                                                                              \
    }                                                                                             \
                                                                                                  \
    /* out[0] = Σ a (Σ a² when square), out[1] = Σ b (Σ b²) over n elements: element e in lane  \
     * e mod LANES, the lanes added pairwise. */                                                  \
    static inline void sums_##SUFFIX(const T *a, const T *b, int64_t n, int square,               \
                                     double *out) {                                               \
        lanes_t sum_a = {0}, sum_b = {0};                                                         \
        if (square)                                                                               \
            add_squares_##SUFFIX(a, b, n, &sum_a, &sum_b);                                        \
        else                                                                                      \
            add_values_##SUFFIX(a, b, n, &sum_a, &sum_b);                                         \
        out[0] = lanes_total(&sum_a);                                                             \
        out[1] = lanes_total(&sum_b);                                                             \
    }
DEFINE_SUMS(float, f32)
DEFINE_SUMS(double, f64)

/* sums[0], sums[1] ← the in-order totals of BLOCK(lo_, hi_, out) over the blocks of [0, n); the
 * blocks run in parallel (n ≥ MIN_PARALLEL), their results kept and added in block order. */
#define BLOCKED_SUMS(n, sums, BLOCK)                                                              \
    do {                                                                                          \
        const int64_t blocks_ = ((n) + REDUCE_BLOCK - 1) / REDUCE_BLOCK;                          \
        double local_[2 * 64];                                                                    \
        double *part_ = blocks_ <= 64 ? local_ : malloc(sizeof(double) * 2 * (size_t)blocks_);   \
        double total0_ = 0.0, total1_ = 0.0;                                                      \
        if (part_ == NULL || (n) < MIN_PARALLEL) { /* one thread (small, or no memory for the     \
                                                      block sums), the same order */              \
            for (int64_t b_ = 0; b_ < blocks_; b_++) {                                            \
                const int64_t lo_ = b_ * REDUCE_BLOCK;                                            \
                const int64_t hi_ = lo_ + REDUCE_BLOCK < (n) ? lo_ + REDUCE_BLOCK : (n);          \
                double out_[2];                                                                   \
                double *out = out_;                                                               \
                BLOCK;                                                                            \
                total0_ += out_[0];                                                               \
                total1_ += out_[1];                                                               \
            }                                                                                     \
        } else {                                                                                  \
            _Pragma("omp parallel for schedule(static)")                                          \
            for (int64_t b_ = 0; b_ < blocks_; b_++) {                                            \
                const int64_t lo_ = b_ * REDUCE_BLOCK;                                            \
                const int64_t hi_ = lo_ + REDUCE_BLOCK < (n) ? lo_ + REDUCE_BLOCK : (n);          \
                double *out = part_ + 2 * b_;                                                     \
                BLOCK;                                                                            \
            }                                                                                     \
            for (int64_t b_ = 0; b_ < blocks_; b_++) {                                            \
                total0_ += part_[2 * b_];                                                         \
                total1_ += part_[2 * b_ + 1];                                                     \
            }                                                                                     \
            if (part_ != local_) free(part_);                                                     \
        }                                                                                         \
        (sums)[0] = total0_;                                                                      \
        (sums)[1] = total1_;                                                                      \
    } while (0)

#define DEFINE_TWO_PASS_STEPS(T, SUFFIX, SQRT, FABS)                                              \
    /* LAMB's direction u = m̂/(√v̂ + ε) + λθ, with m̂ = m/bias1, v̂ = v/bias2. Uncorrected      \
     * (bias1 = bias2 = 1: bias_correction "lr" or "none") it skips the two divisions, which      \
     * change nothing (x/1 = x exactly) but cost a fifth of pass 1's arithmetic. */                \
    static inline T lamb_direction_##SUFFIX(T p, T mi, T vi, double bias1, double bias2,          \
                                            double eps, double wd, int corrected) {               \
        if (!corrected) return mi / (SQRT(vi) + (T)eps) + (T)wd * p;                              \
        return (mi / (T)bias1) / (SQRT(vi / (T)bias2) + (T)eps) + (T)wd * p;                      \
    }                                                                                             \
                                                                                                  \
    /* m ← β₁m + (1−β₁)g ; v ← β₂v + (1−β₂)g² on one element; returns u */                      \
    static inline T lamb_moments_step_##SUFFIX(T p, T g, T *m, T *v, T b1, T one_b1, T b2,        \
                                               T one_b2, double bias1, double bias2, double eps,  \
                                               double wd, double sign, int corrected) {           \
        const T gi = (T)sign * g;                                                                 \
        const T mi = b1 * *m + one_b1 * gi;                                                       \
        const T vi = b2 * *v + one_b2 * gi * gi;                                                  \
        *m = mi;                                                                                  \
        *v = vi;                                                                                  \
        return lamb_direction_##SUFFIX(p, mi, vi, bias1, bias2, eps, wd, corrected);              \
    }                                                                                             \
                                                                                                  \
    /* pass 1 of LAMB on [lo, hi): m ← β₁m + (1−β₁)g ; v ← β₂v + (1−β₂)g² ; Σθ², Σu². u goes to   \
     * ``kept`` (the caller's buffer, so pass 2 need not recompute it: keep) or to a block-sized    \
     * buffer (a tensor too large to keep u for: pass 2 recomputes it); either way the update      \
     * loop and the sums both vectorize. */                                                       \
    static KERNEL void lamb_moments_##SUFFIX##_block(                                             \
        const T *restrict p, const T *restrict g, T *restrict m, T *restrict v,                   \
        T *restrict kept, int64_t lo, int64_t hi, double beta1, double beta2, double bias1,       \
        double bias2, double eps, double wd, double sign, int keep, double *out) {                \
        const T b1 = (T)beta1, one_b1 = (T)(1.0 - beta1);                                         \
        const T b2 = (T)beta2, one_b2 = (T)(1.0 - beta2);                                         \
        T local[MOMENTS_PIECE];                                                                   \
        const int64_t n = hi - lo;                                                                \
        lanes_t sum_p = {0}, sum_u = {0};                                                         \
        p += lo, g += lo, m += lo, v += lo;                                                       \
        if (keep) { /* the block at once (piece by piece was 6% slower here, the pipeline's      \
                       pass 2 running between the blocks) */                                     \
            T *restrict u = kept + lo;                                                            \
            if (bias1 == 1.0 && bias2 == 1.0) { /* a loop per case, each branch-free */         \
                for (int64_t i = 0; i < n; i++)                                                   \
                    u[i] = lamb_moments_step_##SUFFIX(p[i], g[i], m + i, v + i, b1, one_b1, b2,  \
                                                      one_b2, 1.0, 1.0, eps, wd, sign, 0);        \
            } else {                                                                              \
                for (int64_t i = 0; i < n; i++)                                                   \
                    u[i] = lamb_moments_step_##SUFFIX(p[i], g[i], m + i, v + i, b1, one_b1, b2,  \
                                                      one_b2, bias1, bias2, eps, wd, sign, 1);    \
            }                                                                                     \
            sums_##SUFFIX(p, u, n, 1, out);                                                       \
            return;                                                                               \
        }                                                                                         \
        /* u not kept: piece by piece, each summed while its θ and u are in the first-level      \
         * cache (13% off a step over tensors of 1.7 M: no block of u to write and read back) */  \
        for (int64_t start = 0; start < n; start += MOMENTS_PIECE) {                              \
            const int64_t end = start + MOMENTS_PIECE < n ? start + MOMENTS_PIECE : n;            \
            T *restrict u = local;                                                                \
            const T *restrict pp = p + start, *restrict gp = g + start;                           \
            T *restrict mp = m + start, *restrict vp = v + start;                                 \
            const int64_t len = end - start;                                                      \
            if (bias1 == 1.0 && bias2 == 1.0) {                                                   \
                for (int64_t i = 0; i < len; i++)                                                 \
                    u[i] = lamb_moments_step_##SUFFIX(pp[i], gp[i], mp + i, vp + i, b1, one_b1,   \
                                                      b2, one_b2, 1.0, 1.0, eps, wd, sign, 0);    \
            } else {                                                                              \
                for (int64_t i = 0; i < len; i++)                                                 \
                    u[i] = lamb_moments_step_##SUFFIX(pp[i], gp[i], mp + i, vp + i, b1, one_b1,   \
                                                      b2, one_b2, bias1, bias2, eps, wd, sign,    \
                                                      1);                                         \
            }                                                                                     \
            add_squares_##SUFFIX(pp, u, len, &sum_p, &sum_u);                                     \
        }                                                                                         \
        out[0] = lanes_total(&sum_p);                                                             \
        out[1] = lanes_total(&sum_u);                                                             \
    }                                                                                             \
                                                                                                  \
    /* pass 2 of LAMB on [0, n): θ ← θ − s·u, s = η·r (the host's), u kept by pass 1 or        \
     * recomputed from θ, m, v (the same value) */                                                \
    static KERNEL void lamb_apply_##SUFFIX##_slice(T *p, const T *m, const T *v, const T *u,      \
                                                   int64_t n, double bias1, double bias2,         \
                                                   double eps, double wd, double step,            \
                                                   int keep) {                                    \
        if (keep) {                                                                               \
            for (int64_t i = 0; i < n; i++) p[i] = p[i] - (T)step * u[i];                         \
            return;                                                                               \
        }                                                                                         \
        if (bias1 == 1.0 && bias2 == 1.0) {                                                       \
            for (int64_t i = 0; i < n; i++)                                                       \
                p[i] = p[i] - (T)step * lamb_direction_##SUFFIX(p[i], m[i], v[i], 1.0, 1.0, eps,  \
                                                                wd, 0);                           \
            return;                                                                               \
        }                                                                                         \
        for (int64_t i = 0; i < n; i++)                                                           \
            p[i] = p[i] - (T)step * lamb_direction_##SUFFIX(p[i], m[i], v[i], bias1, bias2, eps,  \
                                                            wd, 1);                               \
    }                                                                                             \
                                                                                                  \
    /* pass 1 of LARS on [lo, hi): Σθ², Σg² */                                                    \
    static KERNEL void lars_norms_##SUFFIX##_block(const T *p, const T *g, int64_t lo,            \
                                                   int64_t hi, double *out) {                     \
        sums_##SUFFIX(p + lo, g + lo, hi - lo, 1, out);                                           \
    }                                                                                             \
                                                                                                  \
    /* pass 2 of LARS: u = r(±g + λθ) ; b ← μb + ηu, θ ← θ − b (lr_in_buffer) or b ← μb + u,   \
     * θ ← θ − ηb. An excluded tensor passes r = 1, λ = 0: u = 1·(g + 0·θ) = g. */                \
    static KERNEL void lars_apply_##SUFFIX##_slice(T *p, const T *g, T *b, int64_t n,             \
                                                   double ratio, double wd, double momentum,      \
                                                   double lr, double sign, int lr_in_buffer) {    \
        const T r = (T)ratio, lambda = (T)wd, mu = (T)momentum, eta = (T)lr;                      \
        if (lr_in_buffer) {                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T u = r * ((T)sign * g[i] + lambda * p[i]);                                 \
                const T bi = mu * b[i] + eta * u;                                                 \
                b[i] = bi;                                                                        \
                p[i] = p[i] - bi;                                                                 \
            }                                                                                     \
        } else {                                                                                  \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T u = r * ((T)sign * g[i] + lambda * p[i]);                                 \
                const T bi = mu * b[i] + u;                                                       \
                b[i] = bi;                                                                        \
                p[i] = p[i] - eta * bi;                                                           \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* pass 1 of Prodigy on [lo, hi), g = ±g + λθ (λ = 0 when decoupled): Σ g(θ₀ − θ) ; then    \
     * (update) s ← β₃s + c_s g ; Σ|s|. The moments wait for pass 2, which reads g and θ anyway:  \
     * pass 1 then reads θ, g, θ₀, s and writes s (20 bytes a float32 parameter), pass 2 reads    \
     * θ, g, m, v and writes them but g (28): 48 bytes, where updating m and v here costs 52. */   \
    static KERNEL void prodigy_sums_##SUFFIX##_block(                                             \
        const T *restrict p, const T *restrict g, const T *restrict p0, T *restrict s,            \
        int64_t lo, int64_t hi, double beta3, double c_s, double wd, double sign, int update,     \
        double *out) {                                                                            \
        /* in double: the loop widens them in whole registers, the sums need not; piece by piece, \
         * each summed while it is in the first-level cache */                                    \
        double dots[MOMENTS_PIECE], magnitudes[MOMENTS_PIECE];                                    \
        lanes_t sum_dots = {0}, sum_magnitudes = {0};                                             \
        const int64_t n = hi - lo;                                                                \
        p += lo, g += lo, p0 += lo, s += lo;                                                      \
        const T b3 = (T)beta3, cs = (T)c_s;                                                       \
        for (int64_t start = 0; start < n; start += MOMENTS_PIECE) {                              \
            const int64_t len = start + MOMENTS_PIECE < n ? MOMENTS_PIECE : n - start;            \
            const T *restrict pp = p + start, *restrict gp = g + start;                           \
            const T *restrict p0p = p0 + start;                                                   \
            T *restrict sp = s + start;                                                           \
            if (update) {                                                                         \
                for (int64_t i = 0; i < len; i++) {                                              \
                    const T gi = (T)sign * gp[i] + (T)wd * pp[i];                                 \
                    dots[i] = gi * (p0p[i] - pp[i]);                                              \
                    const T si = b3 * sp[i] + cs * gi;                                            \
                    sp[i] = si;                                                                   \
                    magnitudes[i] = FABS(si);                                                     \
                }                                                                                 \
            } else {                                                                              \
                for (int64_t i = 0; i < len; i++) {                                               \
                    dots[i] = 0;                                                                  \
                    magnitudes[i] = FABS(sp[i]);                                                  \
                }                                                                                 \
            }                                                                                     \
            add_values_f64(dots, magnitudes, len, &sum_dots, &sum_magnitudes);                    \
        }                                                                                         \
        out[0] = lanes_total(&sum_dots);                                                          \
        out[1] = lanes_total(&sum_magnitudes);                                                    \
    }                                                                                             \
                                                                                                  \
    /* pass 2 of Prodigy, g = ±g + λθ as in pass 1: (update) m ← β₁m + c_m g, v ← β₂v + (c_v g)g ; \
     * (apply) θ ← θ − (λ·dη)θ (decoupled decay, when λ·dη ≠ 0), θ ← θ − dη·m/(√v + d·ε) */      \
    static KERNEL void prodigy_apply_##SUFFIX##_slice(                                            \
        T *restrict p, const T *restrict g, T *restrict m, T *restrict v, int64_t n, double c_m,  \
        double c_v, double beta1, double beta2, double wd, double sign, double decay,             \
        double step, double d_eps, int update, int apply) {                                       \
        const T b1 = (T)beta1, b2 = (T)beta2, cm = (T)c_m, cv = (T)c_v;                           \
        if (update && apply) {                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T gi = (T)sign * g[i] + (T)wd * p[i];                                       \
                const T mi = b1 * m[i] + cm * gi;                                                 \
                const T vi = b2 * v[i] + cv * gi * gi;                                            \
                m[i] = mi;                                                                        \
                v[i] = vi;                                                                        \
                const T q = decay != 0 ? p[i] - (T)decay * p[i] : p[i];                           \
                p[i] = q - (T)step * mi / (SQRT(vi) + (T)d_eps);                                  \
            }                                                                                     \
        } else if (update) { /* Σ|s| = 0: the moments move, θ does not */                         \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T gi = (T)sign * g[i] + (T)wd * p[i];                                       \
                m[i] = b1 * m[i] + cm * gi;                                                       \
                v[i] = b2 * v[i] + cv * gi * gi;                                                  \
            }                                                                                     \
        } else if (apply) { /* η = 0: no moments */                                               \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T q = decay != 0 ? p[i] - (T)decay * p[i] : p[i];                           \
                p[i] = q - (T)step * m[i] / (SQRT(v[i]) + (T)d_eps);                              \
            }                                                                                     \
        }                                                                                         \
    }

/* LAMB's trust ratio from pass 1's sums (Σθ², Σu²): r = φ(‖θ‖)/‖u‖ (‖u‖ + ε when eps_in_trust),
 * φ(z) = min(z, max_weight_norm) (+∞: none); 1 when either norm is 0 or the tensor is excluded
 * (!trust). As lamb_reference in descent/optim/lamb.py. */
static inline double lamb_ratio(const double *sums, double eps, double max_weight_norm, int trust,
                                int eps_in_trust) {
    const double weight = sqrt(sums[0]), update = sqrt(sums[1]);
    if (!trust || !(weight > 0 && update > 0)) return 1.0;
    const double clipped = weight < max_weight_norm ? weight : max_weight_norm;
    return clipped / (eps_in_trust ? update + eps : update);
}

/* LARS's trust ratio from pass 1's sums (Σθ², Σg²): r = κ‖θ‖/(‖g‖ + λ‖θ‖), 1 when ‖θ‖ or the
 * denominator is 0; the ratio of lars_reference (descent/optim/lars.py), operation by
 * operation. */
static inline double lars_ratio(const double *sums, double trust_coefficient, double wd) {
    const double weight = sqrt(sums[0]), denominator = sqrt(sums[1]) + wd * weight;
    if (!(weight > 0 && denominator > 0)) return 1.0;
    return trust_coefficient * weight / denominator;
}

/* LAMB over ``count`` tensors on one thread, software-pipelined: pass 2 of tensor j − 1 (which
 * reads θ and u from the cache pass 1 just left them in) runs in slices between the blocks of
 * tensor j's pass 1 (which streams from memory), so the cache-bound work fills the time the core
 * waits for memory instead of following it. A tensor above PIPELINE_LIMIT runs its pass 2 right
 * after its pass 1 (its data would leave the cache before the next tensor's pass 1 ended).
 * Consecutive kept tensors need distinct u buffers (the caller alternates two). The sums add
 * block by block in the order of BLOCKED_SUMS, so the result is the one lamb_step gives. */
/* The arguments of every ``<kernel>_<suffix>_many`` entry (see the batched entries below). */
#define MANY_ARGS int64_t count, void *const *t, const int64_t *n, const double *d, const int *k
/* The largest tensor whose pass 2 waits for the next tensor's pass 1 (as TWO_PASS_BATCH in
 * descent/optim/fastpath.py: a larger one is not kept in the cache that long). */
#define PIPELINE_LIMIT (1 << 19)
#define DEFINE_LAMB_PIPELINE(T, SUFFIX)                                                           \
    static void lamb_pipeline_##SUFFIX(MANY_ARGS) {                                               \
        T *const *tensors = (T *const *)t;                                                        \
        int64_t previous = -1, applied = 0;                                                       \
        double previous_step = 0.0;                                                               \
        for (int64_t j = 0; j <= count; j++) {                                                    \
            const int64_t size = j < count ? n[j] : 0;                                            \
            const int64_t blocks = (size + REDUCE_BLOCK - 1) / REDUCE_BLOCK;                      \
            const int64_t at = j < count ? j : 0, before = previous >= 0 ? previous : 0;          \
            T *const *a = tensors + 5 * at; /* p, g, m, v, u */                                   \
            const double *c = d + 9 * at;                                                         \
            const int *f = k + 3 * at;                                                            \
            T *const *b = tensors + 5 * before;                                                   \
            const double *bc = d + 9 * before;                                                    \
            const int *bf = k + 3 * before;                                                       \
            double sums[2] = {0.0, 0.0};                                                          \
            /* over at most as many blocks as a kept tensor has: behind a large tensor, the      \
             * previous one's pass 2 must end while its data is still cached */                  \
            const int64_t spread = blocks < PIPELINE_LIMIT / REDUCE_BLOCK                         \
                                       ? blocks : PIPELINE_LIMIT / REDUCE_BLOCK;                  \
            for (int64_t block = 0; block < blocks; block++) {                                    \
                const int64_t lo = block * REDUCE_BLOCK;                                          \
                const int64_t hi = lo + REDUCE_BLOCK < size ? lo + REDUCE_BLOCK : size;           \
                double out[2];                                                                    \
                lamb_moments_##SUFFIX##_block(a[0], a[1], a[2], a[3], a[4], lo, hi, c[0], c[1],   \
                                              c[2], c[3], c[4], c[5], c[6], f[0], out);           \
                sums[0] += out[0];                                                                \
                sums[1] += out[1];                                                                \
                if (previous >= 0 && block < spread) { /* the previous tensor's pass 2 */        \
                    const int64_t until = n[previous] * (block + 1) / spread;                     \
                    lamb_apply_##SUFFIX##_slice(b[0] + applied, b[2] + applied, b[3] + applied,   \
                                                b[4] + applied, until - applied, bc[2], bc[3],    \
                                                bc[4], bc[5], previous_step, bf[0]);              \
                    applied = until;                                                              \
                }                                                                                 \
            }                                                                                     \
            if (previous >= 0 && applied < n[previous]) /* (no blocks: the last, or empty) */     \
                lamb_apply_##SUFFIX##_slice(b[0] + applied, b[2] + applied, b[3] + applied,       \
                                            b[4] + applied, n[previous] - applied, bc[2], bc[3],  \
                                            bc[4], bc[5], previous_step, bf[0]);                  \
            if (j == count) break;                                                                \
            const double step = c[7] * lamb_ratio(sums, c[4], c[8], f[1], f[2]);                  \
            if (size <= PIPELINE_LIMIT) { /* pass 2 runs during the next tensor's pass 1 */       \
                previous = j, applied = 0, previous_step = step;                                  \
                continue;                                                                         \
            }                                                                                     \
            /* too large to wait in the cache: pass 2 now */                                      \
            previous = -1;                                                                        \
            lamb_apply_##SUFFIX##_slice(a[0], a[2], a[3], a[4], size, c[2], c[3], c[4], c[5],     \
                                        step, f[0]);                                              \
        }                                                                                         \
    }
#define DEFINE_TWO_PASS_ENTRIES(T, SUFFIX)                                                        \
    /* LAMB's whole step on one tensor: pass 1 (moments, Σθ², Σu²), the trust ratio, pass 2 */  \
    void lamb_step_##SUFFIX(T *p, const T *g, T *m, T *v, T *u, int64_t n, double beta1,          \
                            double beta2, double bias1, double bias2, double eps, double wd,      \
                            double sign, double lr, double max_weight_norm, int keep, int trust,  \
                            int eps_in_trust) {                                                   \
        double sums[2];                                                                           \
        BLOCKED_SUMS(n, sums,                                                                     \
                     lamb_moments_##SUFFIX##_block(p, g, m, v, u, lo_, hi_, beta1, beta2, bias1,  \
                                                   bias2, eps, wd, sign, keep, out));             \
        const double step = lr * lamb_ratio(sums, eps, max_weight_norm, trust, eps_in_trust);     \
        OVER_SLICES(n, lamb_apply_##SUFFIX##_slice(p + lo_, m + lo_, v + lo_, u + lo_, len_,      \
                    bias1, bias2, eps, wd, step, keep));                                          \
    }                                                                                             \
    /* LARS's whole step on one tensor: (trust) Σθ², Σg² and the ratio r, then the update with \
     * r(±g + λθ); an excluded tensor (!trust) steps with r = 1, λ = 0 (u = g). Pass 2 follows \
     * pass 1 at once: a tensor that fits in the cache is read from memory once. */              \
    void lars_step_##SUFFIX(T *p, const T *g, T *b, int64_t n, double trust_coefficient,          \
                            double wd, double momentum, double lr, double sign, int lr_in_buffer, \
                            int trust) {                                                          \
        double ratio = 1.0, decay = 0.0;                                                          \
        if (trust) {                                                                              \
            double sums[2];                                                                       \
            BLOCKED_SUMS(n, sums, lars_norms_##SUFFIX##_block(p, g, lo_, hi_, out));              \
            ratio = lars_ratio(sums, trust_coefficient, wd);                                      \
            decay = wd;                                                                           \
        }                                                                                         \
        OVER_SLICES(n, lars_apply_##SUFFIX##_slice(p + lo_, g + lo_, b + lo_, len_, ratio, decay, \
                    momentum, lr, sign, lr_in_buffer));                                           \
    }                                                                                             \
    void prodigy_sums_##SUFFIX(const T *p, const T *g, const T *p0, T *s, double *sums, int64_t n,  \
                               double beta3, double c_s, double wd, double sign, int update) {    \
        BLOCKED_SUMS(n, sums,                                                                     \
                     prodigy_sums_##SUFFIX##_block(p, g, p0, s, lo_, hi_, beta3, c_s, wd, sign,   \
                                                   update, out));                                 \
    }                                                                                             \
    void prodigy_apply_##SUFFIX(T *p, const T *g, T *m, T *v, int64_t n, double c_m, double c_v,   \
                                double beta1, double beta2, double wd, double sign, double decay, \
                                double step, double d_eps, int update, int apply) {               \
        OVER_SLICES(n, prodigy_apply_##SUFFIX##_slice(p + lo_, g + lo_, m + lo_, v + lo_, len_,   \
                    c_m, c_v, beta1, beta2, wd, sign, decay, step, d_eps, update, apply));        \
    }

DEFINE_TWO_PASS_STEPS(float, f32, sqrtf, fabsf)
DEFINE_TWO_PASS_STEPS(double, f64, sqrt, fabs)
DEFINE_LAMB_PIPELINE(float, f32)
DEFINE_LAMB_PIPELINE(double, f64)
DEFINE_TWO_PASS_ENTRIES(float, f32)
DEFINE_TWO_PASS_ENTRIES(double, f64)

/* The batched entries: ``<kernel>_<suffix>_many`` runs the kernel on ``count`` tensors in one
 * call (one ctypes call per step instead of one per tensor, which for hundreds of small tensors
 * costs more than their arithmetic). Tensor j's pointers are t[j·T …], its element count n[j],
 * its doubles d[j·D …] and ints k[j·I …], each in the order of the kernel's prototype (T, D, I:
 * its numbers of tensors, doubles and ints; descent/optim/_native.py packs them). */
#define DEFINE_MANY(SUFFIX)                                                                       \
    void sgd_##SUFFIX##_many(MANY_ARGS) {                                                         \
        for (int64_t j = 0; j < count; j++, t += 2, d += 3)                                       \
            sgd_##SUFFIX(t[0], t[1], n[j], d[0], d[1], d[2]);                                     \
    }                                                                                             \
    void rmsprop_##SUFFIX##_many(MANY_ARGS) {                                                     \
        for (int64_t j = 0; j < count; j++, t += 5, d += 6, k += 2)                               \
            rmsprop_##SUFFIX(t[0], t[1], t[2], t[3], t[4], n[j], d[0], d[1], d[2], d[3], d[4],    \
                k[0], k[1], d[5]);                                                                \
    }                                                                                             \
    void adadelta_##SUFFIX##_many(MANY_ARGS) {                                                    \
        for (int64_t j = 0; j < count; j++, t += 4, d += 5)                                       \
            adadelta_##SUFFIX(t[0], t[1], t[2], t[3], n[j], d[0], d[1], d[2], d[3], d[4]);        \
    }                                                                                             \
    void adamax_##SUFFIX##_many(MANY_ARGS) {                                                      \
        for (int64_t j = 0; j < count; j++, t += 4, d += 6, k += 1)                               \
            adamax_##SUFFIX(t[0], t[1], t[2], t[3], n[j], d[0], d[1], d[2], d[3], d[4], d[5],     \
                k[0]);                                                                            \
    }                                                                                             \
    void nadam_##SUFFIX##_many(MANY_ARGS) {                                                       \
        for (int64_t j = 0; j < count; j++, t += 4, d += 8)                                       \
            nadam_##SUFFIX(t[0], t[1], t[2], t[3], n[j], d[0], d[1], d[2], d[3], d[4], d[5],      \
                d[6], d[7]);                                                                      \
    }                                                                                             \
    void nesterov_##SUFFIX##_many(MANY_ARGS) {                                                    \
        for (int64_t j = 0; j < count; j++, t += 3, d += 4)                                       \
            nesterov_##SUFFIX(t[0], t[1], t[2], n[j], d[0], d[1], d[2], d[3]);                    \
    }                                                                                             \
    void lion_##SUFFIX##_many(MANY_ARGS) {                                                        \
        for (int64_t j = 0; j < count; j++, t += 3, d += 5)                                       \
            lion_##SUFFIX(t[0], t[1], t[2], n[j], d[0], d[1], d[2], d[3], d[4]);                  \
    }                                                                                             \
    void schedule_free_##SUFFIX##_many(MANY_ARGS) {                                               \
        for (int64_t j = 0; j < count; j++, t += 4, d += 8, k += 1)                               \
            schedule_free_##SUFFIX(t[0], t[1], t[2], t[3], n[j], d[0], d[1], d[2], d[3], d[4],    \
                d[5], d[6], d[7], k[0]);                                                          \
    }                                                                                             \
    void lamb_step_##SUFFIX##_many(MANY_ARGS) {                                                   \
        if (omp_get_max_threads() == 1) {                                                         \
            lamb_pipeline_##SUFFIX(count, t, n, d, k);                                            \
            return;                                                                               \
        }                                                                                         \
        /* several threads: a tensor of MIN_PARALLEL elements or more splits its passes over      \
         * them; each run of smaller ones (one thread each) is pipelined */                       \
        for (int64_t j = 0; j < count;) {                                                         \
            if (n[j] >= MIN_PARALLEL) {                                                           \
                void *const *a = t + 5 * j;                                                       \
                const double *c = d + 9 * j;                                                      \
                const int *f = k + 3 * j;                                                         \
                lamb_step_##SUFFIX(a[0], a[1], a[2], a[3], a[4], n[j], c[0], c[1], c[2], c[3],    \
                    c[4], c[5], c[6], c[7], c[8], f[0], f[1], f[2]);                              \
                j++;                                                                              \
                continue;                                                                         \
            }                                                                                     \
            int64_t end = j;                                                                      \
            while (end < count && n[end] < MIN_PARALLEL) end++;                                   \
            lamb_pipeline_##SUFFIX(end - j, t + 5 * j, n + j, d + 9 * j, k + 3 * j);              \
            j = end;                                                                              \
        }                                                                                         \
    }                                                                                             \
    void lars_step_##SUFFIX##_many(MANY_ARGS) {                                                   \
        for (int64_t j = 0; j < count; j++, t += 3, d += 5, k += 2)                               \
            lars_step_##SUFFIX(t[0], t[1], t[2], n[j], d[0], d[1], d[2], d[3], d[4], k[0], k[1]); \
    }                                                                                             \
    void prodigy_sums_##SUFFIX##_many(MANY_ARGS) {                                                \
        for (int64_t j = 0; j < count; j++, t += 5, d += 4, k += 1)                               \
            prodigy_sums_##SUFFIX(t[0], t[1], t[2], t[3], t[4], n[j], d[0], d[1], d[2], d[3],     \
                k[0]);                                                                            \
    }                                                                                             \
    void prodigy_apply_##SUFFIX##_many(MANY_ARGS) {                                               \
        for (int64_t j = 0; j < count; j++, t += 4, d += 9, k += 2)                               \
            prodigy_apply_##SUFFIX(t[0], t[1], t[2], t[3], n[j], d[0], d[1], d[2], d[3], d[4],    \
                d[5], d[6], d[7], d[8], k[0], k[1]);                                              \
    }

DEFINE_MANY(f32)
DEFINE_MANY(f64)

/* The step counts of a step's tensors (float32 scalars, as torch's fused optimizers keep them):
 * t ← t + 1 for each in one call; torch's foreach add falls back to a loop that costs about 3 µs per
 * scalar tensor on a CPU, a third of a step over a ResNet's 161 small tensors. */
void add_one_f32_many(int64_t count, float *const *t) {
    for (int64_t j = 0; j < count; j++) *t[j] += 1.0f;
}

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

static INLINE void lion_update(double *w, const double *g, double *const *s, int64_t k,
                               const double *c, const int *f) {
    for (int64_t j = 0; j < k; j++) lion_step_f64(w + j, g[j], s[0] + j, c[0], c[1], c[2], c[3], c[4]);
}

static INLINE void schedule_free_update(double *w, const double *g, double *const *s, int64_t k,
                                        const double *c, const int *f) {
    const int adaptive = f[0];
    for (int64_t j = 0; j < k; j++)
        schedule_free_step_f64(w + j, g[j], s[0] + j, adaptive ? s[1] + j : s[1], c[0], c[1], c[2],
                               c[3], c[4], c[5], c[6], c[7], adaptive);
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
        if (scale == 1.0) { /* x · 1 = x exactly: one multiplication less on each update's path */
            for (int64_t j = 0; j < k; j++) grad[j] = -2.0 * grad[j];
        } else {
            for (int64_t j = 0; j < k; j++) grad[j] = -2.0 * grad[j] * scale;
        }
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
KERNEL void lion_epoch(EPOCH_ARGS, double *m) {
    double *state[1] = {m};
    const int flags[1] = {0};
    EPOCH(state, flags, lion_update);
}
KERNEL void schedule_free_epoch(EPOCH_ARGS, double *z, double *v, int adaptive) {
    double *state[2] = {z, v};
    const int flags[1] = {adaptive};
    EPOCH(state, flags, schedule_free_update);
}

/* An importable (empty) module, so setuptools builds and installs it like any extension. */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "Single-pass update kernels, called through ctypes.",
                                            -1, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }

/* gd_statistics in the eigenbasis of G = QΛQᵀ (descent.linear.full_batch). Gradient descent on
 * a quadratic is rotation-equivariant: with z = Qᵀw and β = Qᵀb the plain rule
 *     w ← w − η·2s(Gw − b)   becomes   zᵢ ← zᵢ − η·2s(λᵢzᵢ − βᵢ),  i = 1 … k,
 * k decoupled scalar recurrences (the same iterates, w = Qz, up to rounding), and since ‖Qx‖ = ‖x‖
 *     J = s·max(c − 2 β·z + z·Λz, 0)   and   ‖∇J‖ = ‖2s(Λz − β)‖
 * are O(k) sums too: an epoch costs O(k) instead of gd_statistics' O(k²) product. The arguments,
 * the stopping rules, the loss buffer and the status are gd_statistics', with the diagonal Λ
 * (`eigenvalues`) for G, β for b and z for w; `grad` receives ∇J in the eigenbasis at the end.
 * Per epoch the next point is written beside the current one (z and `grad` take turns holding
 * it) and kept only if no rule stops the fit; the sums run in the LANES accumulators of lanes_t
 * (lane i mod LANES, joined by lanes_total): they vectorize, and the same input gives the same
 * bits on every vector unit. */
KERNEL int64_t gd_eigen_statistics(const double *eigenvalues, const double *beta, double total,
                                   double *z, double *grad, int64_t k, double scale, double lr,
                                   int64_t updates, double tol, double tol_loss, double *losses,
                                   double *first_norm, int64_t first, int64_t *status) {
    const double twice = 2.0 * scale;
    double *current = z, *next = grad;
    for (int64_t e = 0;; e++) {
        /* the step, rounded once as gd_statistics' (an elementwise loop: it vectorizes) */
        for (int64_t i = 0; i < k; i++)
            next[i] = fma((eigenvalues[i] * current[i] - beta[i]) * twice, -lr, current[i]);
        lanes_t bz = {0}, zp = {0}, squares = {0};
        int64_t i = 0;
        for (; i + LANES <= k; i += LANES) {
            const lanes_t zi = load_lanes_f64(current + i), bi = load_lanes_f64(beta + i);
            const lanes_t p = load_lanes_f64(eigenvalues + i) * zi;
            const lanes_t g = (p - bi) * twice;
            bz += bi * zi;
            zp += zi * p;
            squares += g * g;
        }
        for (int l = 0; i < k; i++, l++) {
            const double zi = current[i], p = eigenvalues[i] * zi;
            const double g = (p - beta[i]) * twice;
            bz[l] += beta[i] * zi;
            zp[l] += zi * p;
            squares[l] += g * g;
        }
        double value = total - 2.0 * lanes_total(&bz) + lanes_total(&zp);
        value = (value > 0.0 ? value : 0.0) * scale;
        losses[e] = value;
        const double norm = sqrt(lanes_total(&squares));
        const int diverged = !isfinite(norm) || !isfinite(value);
        int done = 0;
        if (!diverged && first && e == 0) {
            *first_norm = norm;
            done = norm == 0.0;
        } else if (!diverged) {
            done = norm <= tol * *first_norm;
            if (tol_loss > 0 && !done && e > 0)
                done = fabs(losses[e - 1] - value) <= tol_loss * value;
        }
        if (diverged || done || e == updates) {
            if (current != z) memcpy(z, current, (size_t)k * sizeof(double));
            for (int64_t j = 0; j < k; j++) grad[j] = (eigenvalues[j] * z[j] - beta[j]) * twice;
            *status = diverged ? 2 : done;
            return e;
        }
        double *const previous = current;
        current = next;
        next = previous;
    }
}
