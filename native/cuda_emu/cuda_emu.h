/*
 * cuda_emu.h — just enough of CUDA for g++ to compile our kernels/<op>/<op>.cu and run them on the CPU.
 *
 * Each CUDA thread is a fiber with its own small stack; a block's fibers run on one OS thread and switch
 * with a hand-written x86-64 context switch (cuda_emu.cc) at every synchronisation point: __syncthreads is a
 * counting barrier, warp shuffles / ballots / __syncwarp go through a per-warp exchange, atomics are
 * std::atomic_ref. Deadlocks (every live fiber blocked), divergent barriers (threads at different barriers,
 * or a thread that exits while others wait) and bad shuffle masks are returned by cuda_emu::launch as an
 * error with a message (cuda_emu::last_error()); the runtime never prints or aborts.
 *
 * `__shared__` becomes `static thread_local`: one copy per OS thread, and one block runs at a time on a
 * thread, so every fiber of a block sees the same array, as on a GPU. Dynamic shared memory
 * (LT_DYNAMIC_SHARED in kernels/common/lt_cuda.cuh) is a heap block per launched block, so AddressSanitizer
 * bounds-checks it. What is and is not emulated faithfully: docs/cuda.md.
 */
#ifndef CUDA_EMU_H
#define CUDA_EMU_H
#ifdef __CUDACC__
#error "cuda_emu.h is the host-compiler emulation; nvcc uses the real CUDA"
#endif

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 { unsigned x, y, z; };

namespace cuda_emu {

/* What a running fiber sees as its built-in variables. */
struct ThreadInfo {
    uint3 tid, bid;
    dim3 bdim, gdim;
};
/* The fiber running on this OS thread (set by the scheduler before every switch into a fiber). */
extern thread_local const ThreadInfo *cur;
/* cur, read inside cuda_emu.cc: the built-in variables go through this call rather than reading the extern
 * thread_local from the kernel's translation unit, where g++ reaches it through a TLS wrapper function and UBSan's
 * null check (-fsanitize=null) reported a null load at the top of fiber kernels (gemm, attention, conv2d) although the
 * value was set. Read where it is defined, the report is gone; the exact mechanism was not pinned down. */
const ThreadInfo *self() noexcept;

enum { OK = 0, ERR_LAUNCH = 1, ERR_DEADLOCK = 2, ERR_DIVERGENT = 3, ERR_TRAP = 4, ERR_RESOURCES = 5 };

/* Runs entry(closure) as every thread of every block. Returns OK or an ERR_*; last_error() says why. */
int launch_raw(dim3 grid, dim3 block, size_t dyn_smem, void (*entry)(void *), void *closure);
/* Message of the last failed launch on this OS thread ("" after a successful one). */
const char *last_error();
/* Worker OS threads that run blocks in parallel (default 1, or CUDA_EMU_WORKERS). */
void set_workers(int n);

/* Device-side primitives (called from inside a fiber). file/line name the call site in error messages. */
void syncthreads(const char *file, int line);
enum { SHFL_IDX = 0, SHFL_UP = 1, SHFL_DOWN = 2, SHFL_XOR = 3, BALLOT = 4, SYNCWARP = 5 };
uint64_t warp_op(int kind, unsigned mask, uint64_t value, int arg, int width, const char *file, int line);
[[noreturn]] void trap(const char *what, const char *file, int line);
void *dynamic_shared();

/* launch(kernel, grid, block, dyn_smem, args...): the <<<grid, block, smem>>> of the emulation. */
template <class... P, class... A>
int launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t dyn_smem, A... args) {
    static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
    struct Closure {
        void (*k)(P...);
        std::tuple<P...> a;
    } c{kernel, std::tuple<P...>(static_cast<P>(args)...)};
    return launch_raw(grid, block, dyn_smem, [](void *p) {
        Closure *cl = static_cast<Closure *>(p);
        std::apply(cl->k, cl->a);  /* each fiber gets its own copy of the arguments, as on a GPU */
    }, &c);
}

template <class T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type wider than 8 bytes");
    uint64_t u = 0;
    std::memcpy(&u, &v, sizeof(T));
    return u;
}
template <class T> inline T from_bits(uint64_t u) {
    T v;
    std::memcpy(&v, &u, sizeof(T));
    return v;
}
} // namespace cuda_emu

/* ---- the CUDA spellings ------------------------------------------------------------------------------ */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __restrict__ __restrict
#define __shared__ static thread_local
#define __constant__ static const

#define threadIdx (::cuda_emu::self()->tid)
#define blockIdx (::cuda_emu::self()->bid)
#define blockDim (::cuda_emu::self()->bdim)
#define gridDim (::cuda_emu::self()->gdim)
#define warpSize 32

#define __syncthreads() ::cuda_emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::cuda_emu::syncwarp_at(__FILE__, __LINE__, ##__VA_ARGS__)
#define __trap() ::cuda_emu::trap("__trap()", __FILE__, __LINE__)
#define __shfl_sync(mask, v, src, ...) ::cuda_emu::shfl(::cuda_emu::SHFL_IDX, mask, v, src, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) ::cuda_emu::shfl(::cuda_emu::SHFL_UP, mask, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) ::cuda_emu::shfl(::cuda_emu::SHFL_DOWN, mask, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, m, ...) ::cuda_emu::shfl(::cuda_emu::SHFL_XOR, mask, v, m, __FILE__, __LINE__, ##__VA_ARGS__)
#define __ballot_sync(mask, pred) ((unsigned)::cuda_emu::warp_op(::cuda_emu::BALLOT, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, pred) (__ballot_sync(mask, pred) != 0u)
#define __all_sync(mask, pred) (__ballot_sync(mask, pred) == (mask))

namespace cuda_emu {
inline void syncwarp_at(const char *file, int line, unsigned mask = 0xffffffffu) {
    warp_op(SYNCWARP, mask, 0, 0, 32, file, line);
}
template <class T>
inline T shfl(int kind, unsigned mask, T v, int arg, const char *file, int line, int width = 32) {
    return from_bits<T>(warp_op(kind, mask, to_bits(v), arg, width, file, line));
}
} // namespace cuda_emu

/* ---- atomics: real ones (blocks may run on several OS threads), returning the old value ---------------- */
template <class T> inline T atomicAdd(T *p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T> inline T atomicSub(T *p, T v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T> inline T atomicExch(T *p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T> inline T atomicAnd(T *p, T v) { return std::atomic_ref<T>(*p).fetch_and(v); }
template <class T> inline T atomicOr(T *p, T v) { return std::atomic_ref<T>(*p).fetch_or(v); }
template <class T> inline T atomicCAS(T *p, T cmp, T v) {
    std::atomic_ref<T>(*p).compare_exchange_strong(cmp, v);
    return cmp;
}
template <class T> inline T atomicMax(T *p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {}
    return old;
}
template <class T> inline T atomicMin(T *p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (v < old && !a.compare_exchange_weak(old, v)) {}
    return old;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

/* ---- device math: the host libm in float (docs/cuda.md lists where the GPU's differs) ------------------ */
template <class T> inline T __ldg(const T *p) { return *p; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
/* The round-to-nearest intrinsics: never contracted by nvcc, one IEEE rounding each (as plain host arithmetic). */
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
template <class T> inline T min(T a, T b) { return a < b ? a : b; }
template <class T> inline T max(T a, T b) { return a < b ? b : a; }

/* bfloat16 (cuda_bf16.h's __nv_bfloat16), the minimum the kernels use: the storage type, the round-to-nearest-even
 * conversion from float (NaN stays a quiet NaN, inf stays inf, overflow rounds to inf as on the GPU) and the exact
 * widening to float. Bit-identical to the device intrinsics of the same names. */
struct __nv_bfloat16 { unsigned short __x; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.__x = (unsigned short)((u >> 16) | 0x40u);   /* NaN: quiet, sign kept */
    else r.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
inline float __bfloat162float(__nv_bfloat16 h) {
    unsigned u = (unsigned)h.__x << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

#endif /* CUDA_EMU_H */
