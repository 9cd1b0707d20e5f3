/*
 * driver_emu.h — the kernel registry of libcuda_emu.so, the emulated CUDA driver.
 *
 * libcuda_emu.so exports the subset of the CUDA driver API that the Java backend binds (dev.latent.cuda.CudaDriver)
 * with the same names and signatures as libcuda.so.1. Its "device" is this process: device memory is host memory,
 * cuModuleLoadData accepts our fatbin (checked by its magic number, otherwise ignored) and cuLaunchKernel runs the
 * kernel compiled by g++ from the same kernels/<op>/<op>.cu against cuda_emu.h. So the Java side (argument marshalling
 * into kernelParams, by-value structs, launch geometry, copies, error translation) runs end to end without a GPU:
 * the tests point -Dlatent.cuda.driver at this library.
 *
 * Kernels register by name; the generated translation unit (cmake/LatentCuda.cmake) includes every .cu and lists
 * each `LT_KERNEL void ltk_*` it finds with LT_EMU_REGISTER.
 */
#ifndef LT_DRIVER_EMU_H
#define LT_DRIVER_EMU_H

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuda_emu.h"

namespace lt_driver_emu {

/* Launches the kernel with the arguments cuLaunchKernel received (kernelParams[i] points at argument i). */
using Trampoline = int (*)(dim3 grid, dim3 block, size_t dyn_smem, void **params);

struct Registration {
    Registration(const char *name, Trampoline t, int nparams, const size_t *param_sizes);
};

template <class... P, std::size_t... I>
int call(void (*k)(P...), dim3 g, dim3 b, size_t smem, void **params, std::index_sequence<I...>) {
    return cuda_emu::launch(k, g, b, smem, *static_cast<std::remove_cv_t<P> *>(params[I])...);
}

template <class... P> constexpr int arity(void (*)(P...)) { return (int)sizeof...(P); }

/* The byte size of each parameter (what cuLaunchKernel copies out of kernelParams; a graph keeps these copies). */
template <class... P> const size_t *param_sizes(void (*)(P...)) {
    static const size_t s[] = {sizeof(std::remove_cv_t<P>)..., 0};
    return s;
}

template <auto K> int trampoline(dim3 g, dim3 b, size_t smem, void **params) {
    return call(K, g, b, smem, params, std::make_index_sequence<arity(K)>{});
}

/* Shared with the vendor stand-ins (vendor_emu.cc), which check their operands the way the driver checks copies. */
bool inside(uintptr_t p, size_t n);   /* [p, p + n) lies inside one device allocation */
bool initialized();                   /* cuInit ran */
bool is_stream(const void *s);        /* NULL (the legacy default stream) or the one stream cuStreamCreate hands out */

/*
 * Stream capture (CUDA graphs). Work enqueued on a stream goes through submit: while that stream is capturing, the work
 * is recorded into the capture (and runs when the instantiated graph is launched); otherwise it runs now. Work on the
 * legacy default stream while a stream captures invalidates the capture (CUDA_ERROR_STREAM_CAPTURE_IMPLICIT), as a real
 * driver does. The vendor stand-ins (vendor_emu.cc) submit their computation on their handle's stream the same way, so
 * cuBLAS / cuDNN calls inside a captured step are replayed too. Returns a CUresult (cuBLAS / cuDNN callers map it).
 */
using Work = std::function<int()>;
int submit(const void *stream, Work work);
bool capturing();                      /* a capture is active (on any stream) */

/* Counters read by the Java tests through latent_emu_counters (indices are part of that ABI; append only).
 * The first five are the calls that block the host on a real GPU: a synchronous device-to-host copy, a synchronous
 * host-to-device copy from pageable memory (the driver synchronises the stream before it starts), cuCtxSynchronize,
 * cuStreamSynchronize and cuMemFree (an implicit device-wide synchronisation). The rest count vendor stand-in calls,
 * so a test can prove which path served an op. */
enum Counter : int {
    CNT_DTOH, CNT_HTOD, CNT_CTX_SYNC, CNT_STREAM_SYNC, CNT_FREE,
    CNT_CUBLAS_GEMM_EX, CNT_CUBLAS_GEMM_STRIDED_BATCHED_EX,
    CNT_CUDNN_CONV_FWD, CNT_CUDNN_CONV_BWD_DATA, CNT_CUDNN_CONV_BWD_FILTER,
    CNT_EVENT_SYNC,      /* cuEventSynchronize: blocks the host (a host synchronisation, like the first five) */
    CNT_HTOD_ASYNC,      /* cuMemcpyHtoDAsync from page-locked memory: does not block (not a synchronisation) */
    CNT_CUBLASLT_MATMUL, /* cublasLtMatmul (any epilogue) */
    CNT_CUDNN_SDPA_FWD,  /* cudnnBackendExecute of the causal SDPA forward graph */
    CNT_CUDNN_SDPA_BWD,  /* cudnnBackendExecute of the causal SDPA backward graph */
    CNT_LAUNCH,          /* cuLaunchKernel calls (a graph's replayed kernels are not calls) */
    CNT_GRAPH_LAUNCH,    /* cuGraphLaunch calls */
    CNT_COUNT
};
void count(Counter c);

}  // namespace lt_driver_emu

#define LT_EMU_REGISTER(k) \
    static ::lt_driver_emu::Registration lt_emu_reg_##k(#k, &::lt_driver_emu::trampoline<&k>, ::lt_driver_emu::arity(&k), \
                                                        ::lt_driver_emu::param_sizes(&k));

#endif
