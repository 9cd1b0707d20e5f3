/*
 * driver_emu.cc — libcuda_emu.so: the CUDA driver API subset the Java backend uses, run on the CPU (driver_emu.h).
 *
 * Faithful where the Java side could go wrong: every device allocation is tracked, so a copy or memset outside one,
 * or a free of a pointer that is not one, fails with CUDA_ERROR_INVALID_VALUE as the driver does; an unknown kernel
 * name is CUDA_ERROR_NOT_FOUND; a module image without the fatbin magic is CUDA_ERROR_INVALID_IMAGE; launch geometry
 * beyond the device limits is CUDA_ERROR_INVALID_VALUE; a kernel that deadlocks, diverges at a barrier or traps is
 * CUDA_ERROR_LAUNCH_FAILED with the emulation's message in cuGetErrorString. Not emulated: asynchrony (a launch
 * runs to completion before cuLaunchKernel returns, so its errors surface there rather than at the next
 * synchronisation), streams (one queue), and device memory as a separate address space (a host pointer passed
 * where a device pointer belongs is not caught; ASan catches what runs past an allocation).
 * Stream capture and graphs (cuStreamBeginCapture_v2 .. cuGraphLaunch): the stream cuStreamCreate hands out can be
 * captured (global mode); launches, asynchronous copies and memsets on it (and the vendor stand-ins' work on a handle
 * bound to it) are recorded with copies of their by-value arguments, and a launched graph re-runs them in order. What
 * breaks a capture on a real GPU breaks it here, with the driver's codes: capturing the legacy stream is
 * CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; during a capture, work on the legacy stream (a synchronous copy or memset, a
 * launch on stream 0) is CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, and cuMemAlloc / cuMemFree / cuMemHostAlloc /
 * cuMemFreeHost / cuCtxSynchronize / cuStreamSynchronize / cuEventSynchronize are CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
 * each invalidates the capture, so cuStreamEndCapture then returns CUDA_ERROR_STREAM_CAPTURE_INVALIDATED and no graph.
 * cuEventQuery of an event recorded during the capture is CUDA_ERROR_CAPTURED_EVENT.
 * Never prints, never aborts.
 */
#include "driver_emu.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>
#include <memory>
#include <cstddef>

namespace {

enum : int {
    SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, NO_DEVICE = 100, INVALID_DEVICE = 101,
    INVALID_IMAGE = 200, INVALID_CONTEXT = 201, INVALID_HANDLE = 400, ILLEGAL_STATE = 401, NOT_FOUND = 500,
    LAUNCH_FAILED = 719, CAPTURE_UNSUPPORTED = 900, CAPTURE_INVALIDATED = 901, CAPTURE_IMPLICIT = 906, CAPTURED_EVENT = 907,
};

struct Kernel {
    lt_driver_emu::Trampoline launch;
    int nparams;
    const size_t *sizes;   /* each parameter's bytes */
};

std::unordered_map<std::string, Kernel> &registry() {
    static std::unordered_map<std::string, Kernel> r;
    return r;
}

std::mutex mem_mu;
std::map<uintptr_t, size_t> allocations;   /* base -> bytes */
std::atomic<bool> initialized{false};
int ctx_token, module_token, stream_token;  /* addresses used as opaque handles */
thread_local std::string launch_message;    /* detail of the last CUDA_ERROR_LAUNCH_FAILED on this thread */

std::atomic<uint64_t> counters[lt_driver_emu::CNT_COUNT];
std::map<uintptr_t, size_t> host_allocations;   /* page-locked host memory from cuMemHostAlloc: base -> bytes */
constexpr uint32_t EVENT_MAGIC = 0x6c746576u;
struct Event { uint32_t magic; bool recorded; bool captured; };

/* The capture of the one capturable stream (stream_token), and graphs: the recorded work, in order. */
std::mutex cap_mu;
struct Capture {
    bool active = false, invalid = false;
    std::vector<lt_driver_emu::Work> ops;
} cap;
constexpr uint32_t GRAPH_MAGIC = 0x6c746772u, EXEC_MAGIC = 0x6c746778u;
struct Graph { uint32_t magic; std::vector<lt_driver_emu::Work> ops; };

/* During a capture, a call that is not permitted then (allocation, freeing, a synchronisation) invalidates it. */
int refuse_if_capturing() {
    std::lock_guard<std::mutex> g(cap_mu);
    if (!cap.active) return SUCCESS;
    cap.invalid = true;
    return CAPTURE_UNSUPPORTED;
}

/* During a capture, work on the legacy default stream (synchronous copies and memsets) invalidates it. */
int refuse_legacy_if_capturing() {
    std::lock_guard<std::mutex> g(cap_mu);
    if (!cap.active) return SUCCESS;
    cap.invalid = true;
    return CAPTURE_IMPLICIT;
}

/* True when [p, p + n) lies inside one cuMemHostAlloc block. */
bool inside_pinned(uintptr_t p, size_t n) {
    std::lock_guard<std::mutex> g(mem_mu);
    auto it = host_allocations.upper_bound(p);
    if (it == host_allocations.begin()) return false;
    --it;
    return p >= it->first && p - it->first <= it->second && n <= it->second - (p - it->first);
}

}  // namespace

/* True when [p, p + n) lies inside one allocation. */
bool lt_driver_emu::inside(uintptr_t p, size_t n) {
    std::lock_guard<std::mutex> g(mem_mu);
    auto it = allocations.upper_bound(p);
    if (it == allocations.begin()) return false;
    --it;
    return p >= it->first && p - it->first <= it->second && n <= it->second - (p - it->first);
}

bool lt_driver_emu::initialized() { return ::initialized; }

bool lt_driver_emu::is_stream(const void *s) { return s == nullptr || s == &stream_token; }

void lt_driver_emu::count(Counter c) { counters[c].fetch_add(1, std::memory_order_relaxed); }

bool lt_driver_emu::capturing() {
    std::lock_guard<std::mutex> g(cap_mu);
    return cap.active;
}

int lt_driver_emu::submit(const void *stream, Work work) {
    {
        std::lock_guard<std::mutex> g(cap_mu);
        if (cap.active) {
            if (stream != &stream_token) {   /* the legacy stream, while a blocking stream captures */
                cap.invalid = true;
                return CAPTURE_IMPLICIT;
            }
            if (cap.invalid) return CAPTURE_INVALIDATED;
            cap.ops.push_back(std::move(work));
            return SUCCESS;
        }
    }
    return work();
}

using lt_driver_emu::inside;
using lt_driver_emu::count;

lt_driver_emu::Registration::Registration(const char *name, Trampoline t, int nparams, const size_t *sizes) {
    registry()[name] = Kernel{t, nparams, sizes};
}

#define API extern "C" __attribute__((visibility("default")))

API int cuInit(unsigned flags) {
    if (flags != 0) return INVALID_VALUE;
    initialized = true;
    return SUCCESS;
}

API int cuDriverGetVersion(int *v) {
    if (!v) return INVALID_VALUE;
    *v = 13000;
    return SUCCESS;
}

API int cuDeviceGetCount(int *n) {
    if (!initialized) return NOT_INITIALIZED;
    if (!n) return INVALID_VALUE;
    *n = 1;
    return SUCCESS;
}

API int cuDeviceGet(int *dev, int ordinal) {
    if (!initialized) return NOT_INITIALIZED;
    if (!dev) return INVALID_VALUE;
    if (ordinal != 0) return INVALID_DEVICE;
    *dev = 0;
    return SUCCESS;
}

API int cuDeviceGetAttribute(int *v, int attr, int dev) {
    if (!initialized) return NOT_INITIALIZED;
    if (!v) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    switch (attr) {
        case 1: *v = 1024; return SUCCESS;     /* MAX_THREADS_PER_BLOCK */
        case 8: *v = 49152; return SUCCESS;    /* MAX_SHARED_MEMORY_PER_BLOCK */
        case 10: *v = 32; return SUCCESS;      /* WARP_SIZE */
        case 16: *v = 2; return SUCCESS;       /* MULTIPROCESSOR_COUNT */
        case 75: *v = 9; return SUCCESS;       /* COMPUTE_CAPABILITY_MAJOR: behaves as sm_90 */
        case 76: *v = 0; return SUCCESS;       /* COMPUTE_CAPABILITY_MINOR */
        default: return INVALID_VALUE;
    }
}

API int cuDevicePrimaryCtxRetain(void **ctx, int dev) {
    if (!initialized) return NOT_INITIALIZED;
    if (!ctx) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    *ctx = &ctx_token;
    return SUCCESS;
}

API int cuCtxSetCurrent(void *ctx) { return ctx == nullptr || ctx == &ctx_token ? SUCCESS : INVALID_CONTEXT; }

API int cuCtxSynchronize(void) {
    if (!initialized) return NOT_INITIALIZED;
    if (int rc = refuse_if_capturing()) return rc;
    count(lt_driver_emu::CNT_CTX_SYNC);
    return SUCCESS;
}

API int cuModuleLoadData(void **module, const void *image) {
    if (!initialized) return NOT_INITIALIZED;
    if (!module || !image) return INVALID_VALUE;
    uint32_t magic;
    std::memcpy(&magic, image, 4);
    if (magic != 0xBA55ED50u) return INVALID_IMAGE;   /* a fatbin (fatbinary's header) */
    *module = &module_token;
    return SUCCESS;
}

API int cuModuleGetFunction(void **fn, void *module, const char *name) {
    if (!fn || !name) return INVALID_VALUE;
    if (module != &module_token) return INVALID_HANDLE;
    auto it = registry().find(name);
    if (it == registry().end()) return NOT_FOUND;
    *fn = &it->second;
    return SUCCESS;
}

API int cuMemAlloc_v2(uint64_t *dptr, size_t bytes) {
    if (!initialized) return NOT_INITIALIZED;
    if (!dptr || bytes == 0) return INVALID_VALUE;
    if (int rc = refuse_if_capturing()) return rc;
    void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);   /* cudaMalloc's alignment */
    if (!p) return OUT_OF_MEMORY;
    std::lock_guard<std::mutex> g(mem_mu);
    allocations[(uintptr_t)p] = bytes;
    *dptr = (uint64_t)(uintptr_t)p;
    return SUCCESS;
}

API int cuMemFree_v2(uint64_t dptr) {
    if (int rc = refuse_if_capturing()) return rc;
    std::lock_guard<std::mutex> g(mem_mu);
    auto it = allocations.find((uintptr_t)dptr);
    if (it == allocations.end()) return INVALID_VALUE;
    count(lt_driver_emu::CNT_FREE);
    allocations.erase(it);
    std::free((void *)(uintptr_t)dptr);
    return SUCCESS;
}

API int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes) {
    if (bytes == 0) return SUCCESS;
    if (!src || !inside((uintptr_t)dst, bytes)) return INVALID_VALUE;
    if (int rc = refuse_legacy_if_capturing()) return rc;
    count(lt_driver_emu::CNT_HTOD);
    std::memcpy((void *)(uintptr_t)dst, src, bytes);
    return SUCCESS;
}

API int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes) {
    if (bytes == 0) return SUCCESS;
    if (!dst || !inside((uintptr_t)src, bytes)) return INVALID_VALUE;
    if (int rc = refuse_legacy_if_capturing()) return rc;
    count(lt_driver_emu::CNT_DTOH);
    std::memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return SUCCESS;
}

API int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t bytes) {
    if (bytes == 0) return SUCCESS;
    if (!inside((uintptr_t)dst, bytes) || !inside((uintptr_t)src, bytes)) return INVALID_VALUE;
    if (int rc = refuse_legacy_if_capturing()) return rc;
    std::memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
    return SUCCESS;
}

/* Device-to-device copy and memset on a stream (recorded while that stream captures). */
API int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void *stream) {
    if (!lt_driver_emu::is_stream(stream)) return INVALID_HANDLE;
    if (bytes == 0) return SUCCESS;
    if (!inside((uintptr_t)dst, bytes) || !inside((uintptr_t)src, bytes)) return INVALID_VALUE;
    return lt_driver_emu::submit(stream, [dst, src, bytes] {
        std::memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
        return (int)SUCCESS;
    });
}

API int cuMemsetD8Async(uint64_t dst, unsigned value, size_t n, void *stream) {
    if (!lt_driver_emu::is_stream(stream)) return INVALID_HANDLE;
    if (n == 0) return SUCCESS;
    if (!inside((uintptr_t)dst, n)) return INVALID_VALUE;
    return lt_driver_emu::submit(stream, [dst, value, n] {
        std::memset((void *)(uintptr_t)dst, (int)(value & 0xff), n);
        return (int)SUCCESS;
    });
}

API int cuMemsetD8_v2(uint64_t dst, unsigned value, size_t n) {
    if (n == 0) return SUCCESS;
    if (!inside((uintptr_t)dst, n)) return INVALID_VALUE;
    if (int rc = refuse_legacy_if_capturing()) return rc;
    std::memset((void *)(uintptr_t)dst, (int)(value & 0xff), n);
    return SUCCESS;
}

/* Page-locked host memory. Here it is ordinary memory, tracked so that an asynchronous copy can tell it from pageable
 * memory: from pageable memory cuMemcpyHtoDAsync is synchronous on a real driver (counted as a host synchronisation). */
API int cuMemHostAlloc(void **pp, size_t bytes, unsigned flags) {
    if (!initialized) return NOT_INITIALIZED;
    if (!pp || bytes == 0 || (flags & ~0xfu)) return INVALID_VALUE;
    if (int rc = refuse_if_capturing()) return rc;
    void *p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!p) return OUT_OF_MEMORY;
    std::lock_guard<std::mutex> g(mem_mu);
    host_allocations[(uintptr_t)p] = bytes;
    *pp = p;
    return SUCCESS;
}

API int cuMemFreeHost(void *p) {
    if (int rc = refuse_if_capturing()) return rc;
    std::lock_guard<std::mutex> g(mem_mu);
    auto it = host_allocations.find((uintptr_t)p);
    if (it == host_allocations.end()) return INVALID_VALUE;
    host_allocations.erase(it);
    counters[lt_driver_emu::CNT_FREE].fetch_add(1, std::memory_order_relaxed);   /* like cuMemFree, it may synchronise */
    std::free(p);
    return SUCCESS;
}

API int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t bytes, void *stream) {
    if (stream != nullptr && stream != &stream_token) return INVALID_HANDLE;
    if (bytes == 0) return SUCCESS;
    if (!src || !inside((uintptr_t)dst, bytes)) return INVALID_VALUE;
    const bool pinned = inside_pinned((uintptr_t)src, bytes);
    /* the copy completes here (no asynchrony is emulated); from pageable memory a real driver blocks: count it so.
     * Captured, it becomes a node that reads src when the graph runs. */
    return lt_driver_emu::submit(stream, [dst, src, bytes, pinned] {
        count(pinned ? lt_driver_emu::CNT_HTOD_ASYNC : lt_driver_emu::CNT_HTOD);
        std::memcpy((void *)(uintptr_t)dst, src, bytes);
        return (int)SUCCESS;
    });
}

API int cuEventCreate(void **event, unsigned flags) {
    if (!initialized) return NOT_INITIALIZED;
    if (!event || (flags & ~0xfu)) return INVALID_VALUE;
    Event *e = new (std::nothrow) Event{EVENT_MAGIC, false, false};
    if (!e) return OUT_OF_MEMORY;
    *event = e;
    return SUCCESS;
}

static Event *as_event(void *e) {
    Event *ev = static_cast<Event *>(e);
    return ev && ev->magic == EVENT_MAGIC ? ev : nullptr;
}

API int cuEventRecord(void *event, void *stream) {
    Event *e = as_event(event);
    if (!e || (stream != nullptr && stream != &stream_token)) return INVALID_HANDLE;
    {
        std::lock_guard<std::mutex> g(cap_mu);
        if (cap.active && stream == nullptr) {
            cap.invalid = true;
            return CAPTURE_IMPLICIT;
        }
        e->captured = cap.active;   /* recorded into the capture: a dependency node, never "complete" on the host */
    }
    e->recorded = true;   /* every launch and copy before it has already completed */
    return SUCCESS;
}

/* CUDA_SUCCESS when the work before the record is done (here always) or the event was never recorded. */
API int cuEventQuery(void *event) {
    Event *e = as_event(event);
    if (!e) return INVALID_HANDLE;
    return e->captured ? CAPTURED_EVENT : SUCCESS;
}

API int cuEventSynchronize(void *event) {
    Event *e = as_event(event);
    if (!e) return INVALID_HANDLE;
    if (e->captured) return CAPTURED_EVENT;
    if (int rc = refuse_if_capturing()) return rc;
    count(lt_driver_emu::CNT_EVENT_SYNC);
    return SUCCESS;
}

API int cuEventDestroy_v2(void *event) {
    Event *e = as_event(event);
    if (!e) return INVALID_HANDLE;
    e->magic = 0;
    delete e;
    return SUCCESS;
}

API int cuStreamCreate(void **stream, unsigned flags) {
    (void)flags;
    if (!stream) return INVALID_VALUE;
    *stream = &stream_token;
    return SUCCESS;
}

API int cuStreamSynchronize(void *stream) {
    if (stream != nullptr && stream != &stream_token) return INVALID_HANDLE;
    if (int rc = refuse_if_capturing()) return rc;
    count(lt_driver_emu::CNT_STREAM_SYNC);
    return SUCCESS;
}

API int cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       unsigned smem, void *stream, void **params, void **extra) {
    if (!fn) return INVALID_HANDLE;
    if (stream != nullptr && stream != &stream_token) return INVALID_HANDLE;
    if (extra != nullptr) return INVALID_VALUE;   /* we pass arguments through kernelParams only */
    const Kernel *k = static_cast<const Kernel *>(fn);
    if (k->nparams > 0 && !params) return INVALID_VALUE;
    for (int i = 0; i < k->nparams; i++)
        if (!params[i]) return INVALID_VALUE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || gy > 65535 || gz > 65535 ||
        (uint64_t)bx * by * bz > 1024 || bz > 64 || smem > 232448)
        return INVALID_VALUE;
    count(lt_driver_emu::CNT_LAUNCH);
    if (!lt_driver_emu::capturing()) {
        int rc = k->launch(dim3(gx, gy, gz), dim3(bx, by, bz), smem, params);
        if (rc == cuda_emu::OK) return SUCCESS;
        launch_message = cuda_emu::last_error();
        return LAUNCH_FAILED;
    }
    /* captured: the graph keeps copies of the argument values (as the driver does), not the caller's pointers */
    auto args = std::make_shared<std::vector<std::vector<std::max_align_t>>>();
    for (int i = 0; i < k->nparams; i++) {
        args->emplace_back((k->sizes[i] + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t) + 1);
        std::memcpy(args->back().data(), params[i], k->sizes[i]);
    }
    const dim3 g(gx, gy, gz), b(bx, by, bz);
    return lt_driver_emu::submit(stream, [k, g, b, smem, args] {
        std::vector<void *> p(args->size() + 1);
        for (size_t i = 0; i < args->size(); i++) p[i] = (*args)[i].data();
        int rc = k->launch(g, b, smem, p.data());
        if (rc == cuda_emu::OK) return (int)SUCCESS;
        launch_message = cuda_emu::last_error();
        return (int)LAUNCH_FAILED;
    });
}

/* ---- stream capture and graphs ---- */

API int cuStreamBeginCapture_v2(void *stream, int mode) {
    if (!initialized) return NOT_INITIALIZED;
    if (stream == nullptr) return CAPTURE_UNSUPPORTED;   /* the legacy stream cannot be captured */
    if (stream != &stream_token) return INVALID_HANDLE;
    if (mode < 0 || mode > 2) return INVALID_VALUE;      /* GLOBAL, THREAD_LOCAL, RELAXED (all treated as global) */
    std::lock_guard<std::mutex> g(cap_mu);
    if (cap.active) return ILLEGAL_STATE;
    cap.active = true;
    cap.invalid = false;
    cap.ops.clear();
    return SUCCESS;
}

API int cuStreamEndCapture(void *stream, void **graph) {
    if (!graph) return INVALID_VALUE;
    if (stream != &stream_token) return stream == nullptr ? ILLEGAL_STATE : INVALID_HANDLE;
    std::lock_guard<std::mutex> g(cap_mu);
    if (!cap.active) return ILLEGAL_STATE;
    cap.active = false;
    *graph = nullptr;
    std::vector<lt_driver_emu::Work> ops;
    ops.swap(cap.ops);
    if (cap.invalid) return CAPTURE_INVALIDATED;
    Graph *gr = new (std::nothrow) Graph{GRAPH_MAGIC, std::move(ops)};
    if (!gr) return OUT_OF_MEMORY;
    *graph = gr;
    return SUCCESS;
}

/* *status: CU_STREAM_CAPTURE_STATUS_NONE 0, _ACTIVE 1, _INVALIDATED 2. */
API int cuStreamIsCapturing(void *stream, int *status) {
    if (!status) return INVALID_VALUE;
    if (!lt_driver_emu::is_stream(stream)) return INVALID_HANDLE;
    std::lock_guard<std::mutex> g(cap_mu);
    if (stream == nullptr) {
        if (cap.active) { cap.invalid = true; return CAPTURE_IMPLICIT; }
        *status = 0;
        return SUCCESS;
    }
    *status = !cap.active ? 0 : cap.invalid ? 2 : 1;
    return SUCCESS;
}

static Graph *as_graph(void *g, uint32_t magic) {
    Graph *gr = static_cast<Graph *>(g);
    return gr && gr->magic == magic ? gr : nullptr;
}

API int cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long flags) {
    if (!exec) return INVALID_VALUE;
    Graph *gr = as_graph(graph, GRAPH_MAGIC);
    if (!gr) return INVALID_VALUE;
    if (flags & ~0xfull) return INVALID_VALUE;
    Graph *e = new (std::nothrow) Graph{EXEC_MAGIC, gr->ops};   /* an executable copy: the graph may be destroyed after */
    if (!e) return OUT_OF_MEMORY;
    *exec = e;
    return SUCCESS;
}

API int cuGraphLaunch(void *exec, void *stream) {
    Graph *e = as_graph(exec, EXEC_MAGIC);
    if (!e) return INVALID_VALUE;
    if (!lt_driver_emu::is_stream(stream)) return INVALID_HANDLE;
    {
        std::lock_guard<std::mutex> g(cap_mu);
        if (cap.active) {   /* a graph launched into a capture (a child graph) is not emulated */
            cap.invalid = true;
            return stream == nullptr ? CAPTURE_IMPLICIT : CAPTURE_UNSUPPORTED;
        }
    }
    count(lt_driver_emu::CNT_GRAPH_LAUNCH);
    for (auto &w : e->ops)
        if (int rc = w()) return rc;
    return SUCCESS;
}

API int cuGraphExecDestroy(void *exec) {
    Graph *e = as_graph(exec, EXEC_MAGIC);
    if (!e) return INVALID_VALUE;
    e->magic = 0;
    delete e;
    return SUCCESS;
}

API int cuGraphDestroy(void *graph) {
    Graph *gr = as_graph(graph, GRAPH_MAGIC);
    if (!gr) return INVALID_VALUE;
    gr->magic = 0;
    delete gr;
    return SUCCESS;
}

/* The driver's own names and descriptions of the codes this library returns. */
struct ErrorText {
    int rc;
    const char *name, *text;
};
const ErrorText error_texts[] = {
    {SUCCESS, "CUDA_SUCCESS", "no error"},
    {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {ILLEGAL_STATE, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
    {CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"},
    {CAPTURE_IMPLICIT, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
     "operation would make the legacy stream depend on a capturing blocking stream"},
    {CAPTURED_EVENT, "CUDA_ERROR_CAPTURED_EVENT", "operation not permitted on an event last recorded in a capturing stream"},
    {NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
};

static const ErrorText *error_text(int rc) {
    for (const ErrorText &e : error_texts)
        if (e.rc == rc) return &e;
    return nullptr;
}

API int cuGetErrorName(int rc, const char **s) {
    if (!s) return INVALID_VALUE;
    const ErrorText *e = error_text(rc);
    *s = e ? e->name : nullptr;
    return e ? SUCCESS : INVALID_VALUE;
}

API int cuGetErrorString(int rc, const char **s) {
    if (!s) return INVALID_VALUE;
    const ErrorText *e = error_text(rc);
    if (!e) {
        *s = nullptr;
        return INVALID_VALUE;
    }
    static thread_local std::string buf;
    if (rc == LAUNCH_FAILED) {   /* with the emulation's reason for this thread's last failed launch */
        buf = std::string(e->text) + " (emulation: " + launch_message + ")";
        *s = buf.c_str();
    } else {
        *s = e->text;
    }
    return SUCCESS;
}

/* ---- not part of the driver API: the emulation's counters, for the Java tests (driver_emu.h, Counter) ---- */

/* out[i] = counter i for i < min(n, CNT_COUNT); returns CNT_COUNT. */
API int latent_emu_counters(uint64_t *out, int n) {
    for (int i = 0; out && i < n && i < lt_driver_emu::CNT_COUNT; i++) out[i] = counters[i].load(std::memory_order_relaxed);
    return lt_driver_emu::CNT_COUNT;
}
