/* Single-pass update kernels for the rules torch ships no fused CPU kernel for.
 *
 * Each kernel reads every tensor once and writes it once, so a step costs the memory-bandwidth
 * floor instead of the five to eight passes an eager torch implementation makes. The arithmetic
 * follows the reference functions in descent/optim/*.py operation by operation (compiled with
 * -ffp-contract=off, no fast-math), so float64 results agree with them to rounding.
 *
 * Called through ctypes (descent/optim/_native.py) on contiguous tensors. No torch headers, so it
 * compiles in about a second. Parallel with OpenMP: the library links libgomp.so.1, and loaded
 * after torch (whose wheel ships a libgomp.so.1) the dynamic loader reuses torch's copy, so these
 * kernels run on torch's own thread pool instead of fighting its spinning workers for the cores.
 */
#include <Python.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>

/* Below this many elements a parallel region costs more than it saves. */
#define MIN_PARALLEL 65536

/* One build for every x86-64 machine: the loader picks the widest vector unit the CPU has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KERNEL
#endif

#define EFFECTIVE_GRAD(T) ((T)sign * g[i] + (T)wd * p[i])

#define DEFINE_KERNELS(T, SUFFIX, SQRT, FABS)                                                     \
    static KERNEL void rmsprop_##SUFFIX##_slice(T *p, const T *g, T *e, T *ebar, T *b, int64_t n, double lr,             \
                          double rho, double eps, double wd, double sign, int inside,             \
                          int centered, double momentum) {                                        \
        const T r = (T)rho, one_r = (T)(1.0 - rho);                                               \
        if (!centered && momentum <= 0) { /* the common case, as a branch-free loop */            \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T gi = EFFECTIVE_GRAD(T);                                                   \
                const T ei = r * e[i] + one_r * gi * gi;                                          \
                e[i] = ei;                                                                        \
                const T den = inside ? SQRT(ei + (T)eps) : SQRT(ei) + (T)eps;                     \
                p[i] = p[i] - (T)lr * gi / den;                                                   \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                         \
            const T gi = EFFECTIVE_GRAD(T);                                                       \
            const T ei = r * e[i] + one_r * gi * gi;                                              \
            e[i] = ei;                                                                            \
            T var = ei;                                                                           \
            if (centered) {                                                                       \
                const T ai = r * ebar[i] + one_r * gi;                                            \
                ebar[i] = ai;                                                                     \
                var = ei - ai * ai;                                                               \
            }                                                                                     \
            const T den = inside ? SQRT(var + (T)eps) : SQRT(var) + (T)eps;                       \
            if (momentum > 0) {                                                                   \
                const T bi = (T)momentum * b[i] + gi / den;                                       \
                b[i] = bi;                                                                        \
                p[i] = p[i] - (T)lr * bi;                                                         \
            } else {                                                                              \
                p[i] = p[i] - (T)lr * gi / den;                                                   \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static KERNEL void adadelta_##SUFFIX##_slice(T *p, const T *g, T *eg, T *ed, int64_t n, double lr, double rho,       \
                           double eps, double wd, double sign) {                                  \
        const T r = (T)rho, one_r = (T)(1.0 - rho);                                               \
        for (int64_t i = 0; i < n; i++) {                                                         \
            const T gi = EFFECTIVE_GRAD(T);                                                       \
            const T egi = r * eg[i] + one_r * gi * gi;                                            \
            eg[i] = egi;                                                                          \
            const T delta = -SQRT(ed[i] + (T)eps) / SQRT(egi + (T)eps) * gi;                      \
            ed[i] = r * ed[i] + one_r * delta * delta;                                            \
            p[i] = p[i] + (T)lr * delta;                                                          \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static KERNEL void adamax_##SUFFIX##_slice(T *p, const T *g, T *m, T *u, int64_t n, double step_size,                \
                         double beta1, double beta2, double eps, double wd, double sign,          \
                         int eps_in_max) {                                                        \
        const T b1 = (T)beta1, one_b1 = (T)(1.0 - beta1), b2 = (T)beta2;                          \
        for (int64_t i = 0; i < n; i++) {                                                         \
            const T gi = EFFECTIVE_GRAD(T);                                                       \
            const T mi = b1 * m[i] + one_b1 * gi;                                                 \
            m[i] = mi;                                                                            \
            const T decayed = b2 * u[i];                                                          \
            const T magnitude = eps_in_max ? FABS(gi) + (T)eps : FABS(gi);                        \
            const T ui = decayed > magnitude ? decayed : magnitude;                               \
            u[i] = ui;                                                                            \
            p[i] = p[i] - (T)step_size * mi / (eps_in_max ? ui : ui + (T)eps);                    \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static KERNEL void nadam_##SUFFIX##_slice(T *p, const T *g, T *m, T *v, int64_t n, double c_g, double c_m,           \
                        double beta1, double beta2, double bias2, double eps, double wd,          \
                        double sign) {                                                            \
        const T b1 = (T)beta1, one_b1 = (T)(1.0 - beta1);                                         \
        const T b2 = (T)beta2, one_b2 = (T)(1.0 - beta2);                                         \
        for (int64_t i = 0; i < n; i++) {                                                         \
            const T gi = EFFECTIVE_GRAD(T);                                                       \
            const T mi = b1 * m[i] + one_b1 * gi;                                                 \
            const T vi = b2 * v[i] + one_b2 * gi * gi;                                            \
            m[i] = mi;                                                                            \
            v[i] = vi;                                                                            \
            const T den = SQRT(vi / (T)bias2) + (T)eps;                                           \
            p[i] = p[i] - ((T)c_g * gi + (T)c_m * mi) / den;                                      \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static KERNEL void nesterov_##SUFFIX##_slice(T *p, const T *g, T *v, int64_t n, double lr, double momentum,          \
                           double wd, double sign) {                                              \
        const T mu = (T)momentum, eta = (T)lr;                                                    \
        for (int64_t i = 0; i < n; i++) {                                                         \
            const T gi = EFFECTIVE_GRAD(T);                                                       \
            const T vi = mu * v[i] + eta * gi;                                                    \
            v[i] = vi;                                                                            \
            p[i] = p[i] - (mu * vi + eta * gi);                                                   \
        }                                                                                         \
    }

/* The entry points: split [0, n) over the OpenMP threads (torch's own pool, see below) and run the
 * slice kernel on each part. */
#define SLICE(n) \
    const int64_t lo_ = (n) * omp_get_thread_num() / omp_get_num_threads(); \
    const int64_t len_ = (n) * (omp_get_thread_num() + 1) / omp_get_num_threads() - lo_;

#define DEFINE_ENTRIES(T, SUFFIX)                                                                 \
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

DEFINE_KERNELS(float, f32, sqrtf, fabsf)
DEFINE_KERNELS(double, f64, sqrt, fabs)
DEFINE_ENTRIES(float, f32)
DEFINE_ENTRIES(double, f64)

/* An importable (empty) module, so setuptools builds and installs it like any extension. */
static struct PyModuleDef kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                            "Single-pass update kernels, called through ctypes.",
                                            -1, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
