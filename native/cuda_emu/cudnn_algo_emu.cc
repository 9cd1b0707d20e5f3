/*
 * cudnn_algo_emu.cc — the cuDNN stand-in's convolution algorithms and its algorithm search (cudnn_cnn.h), the entry
 * points dev.latent.cuda.CuDnn's algorithm pick binds:
 *   cudnnGetConvolution{Forward,BackwardData,BackwardFilter}AlgorithmMaxCount(handle, int *count)
 *   cudnnGetConvolutionForwardAlgorithm_v7(handle, xDesc, wDesc, convDesc, yDesc, requested, int *returned, perf *)
 *   cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, wDesc, dyDesc, convDesc, dxDesc, requested, int *returned, perf *)
 *   cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, xDesc, dyDesc, convDesc, dwDesc, requested, int *returned, perf *)
 *   cudnnFindConvolutionForwardAlgorithmEx(handle, xDesc, x, wDesc, w, convDesc, yDesc, y, requested, int *returned,
 *                                          perf *, workSpace, workSpaceSizeInBytes)
 *   cudnnFindConvolutionBackwardDataAlgorithmEx(handle, wDesc, w, dyDesc, dy, convDesc, dxDesc, dx, ...same tail)
 *   cudnnFindConvolutionBackwardFilterAlgorithmEx(handle, xDesc, x, dyDesc, dy, convDesc, dwDesc, dw, ...same tail)
 * with cuDNN's signatures and its perf structs (cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t, one layout: int algo,
 * cudnnStatus_t status, float time, size_t memory, cudnnDeterminism_t determinism, cudnnMathType_t mathType,
 * int reserved[3]: 48 bytes, memory at 16, determinism at 24, mathType at 28; static_asserts below), so the Java
 * side reads here what it reads from NVIDIA's library.
 *
 * The model (a stand-in for the ranking, not for the speed; the arithmetic of every algorithm is the same definition,
 * vendor_emu.cc's convolution sum): each algorithm has a relative cost (time = cost * 2 N K P Q C R S / 1e9 ms, as if
 * at 1 TFLOP/s), a determinism flag, the geometries it runs on and a workspace formula, shaped after cuDNN's:
 *   forward          0 IMPLICIT_GEMM 1.6, 1 IMPLICIT_PRECOMP_GEMM 1.0, 2 GEMM 0.9 (im2col workspace), 3 DIRECT (never:
 *                    cuDNN has no kernel), 4 FFT 0.4 and 5 FFT_TILING 0.6 (stride 1, dilation 1, float data, large
 *                    workspaces), 6 WINOGRAD 0.7 and 7 WINOGRAD_NONFUSED 0.5 (3 x 3, stride 1, dilation 1, float);
 *                    all deterministic, as cuDNN's forward algorithms are;
 *   backward-data    0 ALGO_0 0.5 NONDETERMINISTIC (atomics, as cuDNN's), 1 ALGO_1 1.0, 2 FFT 0.6, 3 FFT_TILING 0.8,
 *                    4 WINOGRAD 0.9, 5 WINOGRAD_NONFUSED 0.7;
 *   backward-filter  0 ALGO_0 0.6 NONDETERMINISTIC, 1 ALGO_1 1.0, 2 FFT 0.7, 3 ALGO_3 0.4 NONDETERMINISTIC, 4 WINOGRAD
 *                    (never: not implemented in cuDNN), 5 WINOGRAD_NONFUSED 0.8, 6 FFT_TILING 0.75.
 * So a nondeterministic algorithm ranks first in both backward passes and a caller that ignores the determinism
 * flag is seen (it runs ALGO_0 / ALGO_3: latent_emu_cudnn_algo_stats' last algorithm). Workspaces (e = 4 or 2 bytes
 * an element): every algorithm 4 KiB, plus for GEMM e C R S P Q (one image's im2col), FFT 8 (N C + K C + N K)
 * (H + 2 pad_h) (W + 2 pad_w) (complex float), FFT_TILING a quarter of that, WINOGRAD_NONFUSED 4 (N C H W + 16 K C +
 * N K P Q); cudnnGet*WorkspaceSize reports the same numbers, and a convolution call given less is BAD_PARAM.
 * mathType in the results: the descriptor's math type, except that under CUDNN_TENSOR_OP_MATH the FFT algorithms
 * (which have no tensor-core kernels) report CUDNN_DEFAULT_MATH, as cuDNN may report a math type other than the one
 * asked for (a caller that takes such an entry without setting its math type on the descriptor is not running what
 * was timed).
 *
 * The _v7 heuristics return every algorithm, the ones that run on the geometry first in the model's order (time -1:
 * not measured), then the others with CUDNN_STATUS_NOT_SUPPORTED. Find*Ex ranks the same way with the model's times,
 * reports an algorithm whose workspace exceeds workSpaceSizeInBytes with a non-success status (memory = what it would
 * need), checks that x, w, y and the workspace lie in device memory, is synchronous (it counts as a stream
 * synchronisation in latent_emu_counters, as the real call blocks the host) and refuses to run while a stream
 * captures, and overwrites its output buffer (with NaN here: a caller that hands it a live output is caught).
 * Test hooks: latent_emu_cudnn_algo_stats (calls per pass of Find*Ex and of _v7, the last algorithm each pass's
 * convolution ran) and latent_emu_cudnn_find_fail (the next n search calls fail with CUDNN_STATUS_INTERNAL_ERROR).
 * Never prints, never aborts.
 */
#include "cudnn_algo_emu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "driver_emu.h"

#define API extern "C" __attribute__((visibility("default")))

namespace lt_cudnn_algo {
namespace {

constexpr int SUCCESS = 0, BAD_PARAM = 2000, NOT_SUPPORTED = 3000, INTERNAL_ERROR = 4000, EXECUTION_FAILED = 5000;
constexpr int DEFAULT_MATH = 0, TENSOR_OP_MATH = 1;
constexpr int BF16 = 9;
constexpr size_t MIN_WS = 4096;

/* cudnnConvolutionFwdAlgoPerf_t (and the BwdData / BwdFilter ones, the same layout), as cudnn_cnn.h declares it. */
struct Perf {
    int algo;
    int status;
    float time;
    size_t memory;
    int determinism;
    int mathType;
    int reserved[3];
};
static_assert(sizeof(Perf) == 48, "cudnnConvolution*AlgoPerf_t is 48 bytes");
static_assert(offsetof(Perf, status) == 4 && offsetof(Perf, time) == 8 && offsetof(Perf, memory) == 16 &&
              offsetof(Perf, determinism) == 24 && offsetof(Perf, mathType) == 28 && offsetof(Perf, reserved) == 32,
              "cudnnConvolution*AlgoPerf_t's field offsets");

enum Need { ANY, STRIDE1, WINO3X3, NEVER };
enum Ws { WS_MIN, WS_IM2COL, WS_FFT, WS_FFT_TILE, WS_WINO };
struct Model { const char *name; double cost; int deterministic; Need need; Ws ws; bool tensor_cores; };

const Model FWD_M[8] = {
    {"IMPLICIT_GEMM", 1.6, 1, ANY, WS_MIN, true},      {"IMPLICIT_PRECOMP_GEMM", 1.0, 1, ANY, WS_MIN, true},
    {"GEMM", 0.9, 1, ANY, WS_IM2COL, true},            {"DIRECT", 0, 1, NEVER, WS_MIN, true},
    {"FFT", 0.4, 1, STRIDE1, WS_FFT, false},           {"FFT_TILING", 0.6, 1, STRIDE1, WS_FFT_TILE, false},
    {"WINOGRAD", 0.7, 1, WINO3X3, WS_MIN, true},       {"WINOGRAD_NONFUSED", 0.5, 1, WINO3X3, WS_WINO, true},
};
const Model BWD_DATA_M[6] = {
    {"ALGO_0", 0.5, 0, ANY, WS_MIN, true},             {"ALGO_1", 1.0, 1, ANY, WS_MIN, true},
    {"FFT", 0.6, 1, STRIDE1, WS_FFT, false},           {"FFT_TILING", 0.8, 1, STRIDE1, WS_FFT_TILE, false},
    {"WINOGRAD", 0.9, 1, WINO3X3, WS_MIN, true},       {"WINOGRAD_NONFUSED", 0.7, 1, WINO3X3, WS_WINO, true},
};
const Model BWD_FILTER_M[7] = {
    {"ALGO_0", 0.6, 0, ANY, WS_MIN, true},             {"ALGO_1", 1.0, 1, ANY, WS_MIN, true},
    {"FFT", 0.7, 1, STRIDE1, WS_FFT, false},           {"ALGO_3", 0.4, 0, ANY, WS_MIN, true},
    {"WINOGRAD", 0, 1, NEVER, WS_MIN, true},           {"WINOGRAD_NONFUSED", 0.8, 1, WINO3X3, WS_WINO, true},
    {"FFT_TILING", 0.75, 1, STRIDE1, WS_FFT_TILE, false},
};

const Model *models(Op op) { return op == FWD ? FWD_M : op == BWD_DATA ? BWD_DATA_M : BWD_FILTER_M; }
const char *op_name(Op op) { return op == FWD ? "forward" : op == BWD_DATA ? "backward-data" : "backward-filter"; }

std::atomic<int64_t> finds[3], gets[3];
std::atomic<int64_t> last[3] = {{-1}, {-1}, {-1}};
std::atomic<int> fail_next{0};

double flops(const Geom &g) { return 2.0 * g.n * g.k * g.oh * g.ow * g.c * g.r * g.s; }

int report_math(const Model &m, const Geom &g) { return g.math == TENSOR_OP_MATH && !m.tensor_cores ? DEFAULT_MATH : g.math; }

/* The ranked results: supported algorithms by cost, then the rest (NOT_SUPPORTED); measured: times filled, and an
 * algorithm needing more than ws_bytes gets a non-success status. */
std::vector<Perf> ranked(Op op, const Geom &g, bool measured, size_t ws_bytes) {
    std::vector<Perf> ok, no;
    const Model *m = models(op);
    for (int a = 0; a < algo_count(op); a++) {
        Perf p{};
        p.algo = a;
        p.determinism = m[a].deterministic;
        p.mathType = report_math(m[a], g);
        std::string why;
        if (support(op, a, g, &why) != SUCCESS) {
            p.status = NOT_SUPPORTED;
            p.time = -1;
            no.push_back(p);
            continue;
        }
        p.memory = workspace(op, a, g);
        p.time = measured ? (float)(m[a].cost * flops(g) / 1e9) : -1.0f;
        if (measured && p.memory > ws_bytes) {
            p.status = NOT_SUPPORTED;   /* cuDNN: a non-success status for an algorithm the workspace given cannot hold */
            p.time = -1;
            no.push_back(p);
            continue;
        }
        ok.push_back(p);
    }
    std::stable_sort(ok.begin(), ok.end(), [&](const Perf &a, const Perf &b) { return m[a.algo].cost < m[b.algo].cost; });
    ok.insert(ok.end(), no.begin(), no.end());
    return ok;
}

int injected(const char *fn) {
    int n = fail_next.load();
    while (n > 0 && !fail_next.compare_exchange_weak(n, n - 1)) {}
    if (n > 0) return fail(INTERNAL_ERROR, std::string(fn) + ": failure injected by latent_emu_cudnn_find_fail");
    return SUCCESS;
}

int write_out(int requested, int *returned, void *perf, const std::vector<Perf> &r, const char *fn) {
    if (requested < 1 || !returned || !perf) return fail(BAD_PARAM, std::string(fn) + ": requestedAlgoCount < 1 or a null output");
    const int n = std::min(requested, (int)r.size());
    std::memcpy(perf, r.data(), sizeof(Perf) * (size_t)n);
    *returned = n;
    return SUCCESS;
}

int heuristic(Op op, const char *fn, void *h, void *xd, void *wd, void *cd, void *yd, int requested, int *returned, void *perf) {
    Geom g;
    int rc = conv_geom(fn, h, xd, wd, cd, yd, &g);
    if (rc) return rc;
    if ((rc = injected(fn))) return rc;
    gets[op]++;
    return write_out(requested, returned, perf, ranked(op, g, false, 0), fn);
}

bool inside(const void *p, int64_t elems, int dtype) {
    return lt_driver_emu::inside((uintptr_t)p, (size_t)(elems * (dtype == BF16 ? 2 : 4)));
}

int64_t nx(const Geom &g) { return (int64_t)g.n * g.c * g.h * g.w; }
int64_t nw(const Geom &g) { return (int64_t)g.k * g.c * g.r * g.s; }
int64_t ny(const Geom &g) { return (int64_t)g.n * g.k * g.oh * g.ow; }

/* Find*Ex: the pass's buffers by role, x (or dx), w (or dw), y (or dy), their sizes from the geometry; the output is
 * y forward, dx backward-data, dw backward-filter. */
int find(Op op, const char *fn, void *h, void *xd, void *wd, void *cd, void *yd, const void *x, const void *w, const void *y,
         int requested, int *returned, void *perf, void *ws, size_t ws_bytes) {
    Geom g;
    int rc = conv_geom(fn, h, xd, wd, cd, yd, &g);
    if (rc) return rc;
    if ((rc = injected(fn))) return rc;
    if (lt_driver_emu::capturing())
        return fail(EXECUTION_FAILED, std::string(fn) + ": a stream is capturing (the search blocks the host and would break the capture)");
    if (!inside(x, nx(g), g.dtype) || !inside(w, nw(g), g.dtype) || !inside(y, ny(g), g.dtype))
        return fail(EXECUTION_FAILED, std::string(fn) + ": an operand is not inside one device allocation");
    if (ws_bytes > 0 && (!ws || !lt_driver_emu::inside((uintptr_t)ws, ws_bytes)))
        return fail(EXECUTION_FAILED, std::string(fn) + ": workspace is not inside one device allocation");
    finds[op]++;
    lt_driver_emu::count(lt_driver_emu::CNT_STREAM_SYNC);
    void *out = const_cast<void *>(op == FWD ? y : op == BWD_DATA ? x : w);
    const int64_t nout = op == FWD ? ny(g) : op == BWD_DATA ? nx(g) : nw(g);
    if (g.dtype == BF16) std::memset(out, 0xff, (size_t)nout * 2);   /* 0xffff: a bf16 NaN */
    else std::fill_n(static_cast<float *>(out), nout, std::numeric_limits<float>::quiet_NaN());
    return write_out(requested, returned, perf, ranked(op, g, true, ws_bytes), fn);
}

}  // namespace

int algo_count(Op op) { return op == FWD ? 8 : op == BWD_DATA ? 6 : 7; }

int support(Op op, int algo, const Geom &g, std::string *why) {
    if (algo < 0 || algo >= algo_count(op)) {
        *why = std::string("no ") + op_name(op) + " algorithm " + std::to_string(algo) + " (cuDNN's enum has 0.." +
               std::to_string(algo_count(op) - 1) + ")";
        return BAD_PARAM;
    }
    const Model &m = models(op)[algo];
    const bool s1 = g.u == 1 && g.v == 1 && g.dil_h == 1 && g.dil_w == 1;
    bool ok = true;
    switch (m.need) {
        case ANY: break;
        case STRIDE1: ok = s1 && g.dtype != BF16; break;
        case WINO3X3: ok = s1 && g.r == 3 && g.s == 3 && g.dtype != BF16; break;
        case NEVER: ok = false; break;
    }
    if (!ok) {
        *why = std::string(op_name(op)) + " algorithm " + m.name + " has no kernel for this geometry / data type";
        return NOT_SUPPORTED;
    }
    return SUCCESS;
}

size_t workspace(Op op, int algo, const Geom &g) {
    if (algo < 0 || algo >= algo_count(op)) return MIN_WS;
    const int64_t e = g.dtype == BF16 ? 2 : 4;
    const int64_t fft = 8 * ((int64_t)g.n * g.c + (int64_t)g.k * g.c + (int64_t)g.n * g.k) * (g.h + 2 * (int64_t)g.pad_h) *
                        (g.w + 2 * (int64_t)g.pad_w);
    switch (models(op)[algo].ws) {
        case WS_MIN: return MIN_WS;
        case WS_IM2COL: return MIN_WS + (size_t)(e * g.c * g.r * g.s * (int64_t)g.oh * g.ow);
        case WS_FFT: return MIN_WS + (size_t)fft;
        case WS_FFT_TILE: return MIN_WS + (size_t)(fft / 4);
        case WS_WINO: return MIN_WS + (size_t)(4 * (nx(g) + 16 * (int64_t)g.k * g.c + ny(g)));
    }
    return MIN_WS;
}

void ran(Op op, int algo) { last[op].store(algo); }

}  // namespace lt_cudnn_algo

using namespace lt_cudnn_algo;

API int cudnnGetConvolutionForwardAlgorithmMaxCount(void *h, int *count) {
    if (!h || !count) return fail(BAD_PARAM, "cudnnGetConvolutionForwardAlgorithmMaxCount: null handle or count");
    *count = algo_count(FWD);
    return SUCCESS;
}
API int cudnnGetConvolutionBackwardDataAlgorithmMaxCount(void *h, int *count) {
    if (!h || !count) return fail(BAD_PARAM, "cudnnGetConvolutionBackwardDataAlgorithmMaxCount: null handle or count");
    *count = algo_count(BWD_DATA);
    return SUCCESS;
}
API int cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(void *h, int *count) {
    if (!h || !count) return fail(BAD_PARAM, "cudnnGetConvolutionBackwardFilterAlgorithmMaxCount: null handle or count");
    *count = algo_count(BWD_FILTER);
    return SUCCESS;
}

API int cudnnGetConvolutionForwardAlgorithm_v7(void *h, void *xd, void *wd, void *cd, void *yd, int requested, int *returned, void *perf) {
    return heuristic(FWD, "cudnnGetConvolutionForwardAlgorithm_v7", h, xd, wd, cd, yd, requested, returned, perf);
}
API int cudnnGetConvolutionBackwardDataAlgorithm_v7(void *h, void *wd, void *dyd, void *cd, void *dxd, int requested, int *returned,
                                                    void *perf) {
    return heuristic(BWD_DATA, "cudnnGetConvolutionBackwardDataAlgorithm_v7", h, dxd, wd, cd, dyd, requested, returned, perf);
}
API int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void *h, void *xd, void *dyd, void *cd, void *dwd, int requested, int *returned,
                                                      void *perf) {
    return heuristic(BWD_FILTER, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", h, xd, dwd, cd, dyd, requested, returned, perf);
}

API int cudnnFindConvolutionForwardAlgorithmEx(void *h, void *xd, const void *x, void *wd, const void *w, void *cd, void *yd, void *y,
                                               int requested, int *returned, void *perf, void *ws, size_t ws_bytes) {
    return find(FWD, "cudnnFindConvolutionForwardAlgorithmEx", h, xd, wd, cd, yd, x, w, y, requested, returned, perf, ws, ws_bytes);
}
API int cudnnFindConvolutionBackwardDataAlgorithmEx(void *h, void *wd, const void *w, void *dyd, const void *dy, void *cd, void *dxd,
                                                    void *dx, int requested, int *returned, void *perf, void *ws, size_t ws_bytes) {
    return find(BWD_DATA, "cudnnFindConvolutionBackwardDataAlgorithmEx", h, dxd, wd, cd, dyd, dx, w, dy, requested, returned, perf, ws,
                ws_bytes);
}
API int cudnnFindConvolutionBackwardFilterAlgorithmEx(void *h, void *xd, const void *x, void *dyd, const void *dy, void *cd, void *dwd,
                                                      void *dw, int requested, int *returned, void *perf, void *ws, size_t ws_bytes) {
    return find(BWD_FILTER, "cudnnFindConvolutionBackwardFilterAlgorithmEx", h, xd, dwd, cd, dyd, x, dw, dy, requested, returned, perf, ws,
                ws_bytes);
}

/* ---- not part of cuDNN: test hooks ---- */

/* out[0..2] = Find*Ex calls (forward, backward-data, backward-filter), out[3..5] = _v7 calls, out[6..8] = the algorithm
 * the last convolution call of each pass ran (-1: none yet); fills min(n, 9) values, returns 9. */
API int latent_emu_cudnn_algo_stats(int64_t *out, int n) {
    int64_t v[9];
    for (int i = 0; i < 3; i++) {
        v[i] = finds[i].load();
        v[3 + i] = gets[i].load();
        v[6 + i] = last[i].load();
    }
    for (int i = 0; out && i < n && i < 9; i++) out[i] = v[i];
    return 9;
}

/* The next n algorithm-search calls (_v7 or Find*Ex) fail with CUDNN_STATUS_INTERNAL_ERROR (n <= 0: none). */
API void latent_emu_cudnn_find_fail(int n) { fail_next.store(n > 0 ? n : 0); }
