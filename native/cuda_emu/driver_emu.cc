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

namespace {

enum : int {
    SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, NO_DEVICE = 100, INVALID_DEVICE = 101,
    INVALID_IMAGE = 200, INVALID_CONTEXT = 201, INVALID_HANDLE = 400, NOT_FOUND = 500, LAUNCH_FAILED = 719,
};

struct Kernel {
    lt_driver_emu::Trampoline launch;
    int nparams;
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
struct Event { uint32_t magic; bool recorded; };

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

using lt_driver_emu::inside;
using lt_driver_emu::count;

lt_driver_emu::Registration::Registration(const char *name, Trampoline t, int nparams) {
    registry()[name] = Kernel{t, nparams};
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
    void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);   /* cudaMalloc's alignment */
    if (!p) return OUT_OF_MEMORY;
    std::lock_guard<std::mutex> g(mem_mu);
    allocations[(uintptr_t)p] = bytes;
    *dptr = (uint64_t)(uintptr_t)p;
    return SUCCESS;
}

API int cuMemFree_v2(uint64_t dptr) {
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
    count(lt_driver_emu::CNT_HTOD);
    std::memcpy((void *)(uintptr_t)dst, src, bytes);
    return SUCCESS;
}

API int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes) {
    if (bytes == 0) return SUCCESS;
    if (!dst || !inside((uintptr_t)src, bytes)) return INVALID_VALUE;
    count(lt_driver_emu::CNT_DTOH);
    std::memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return SUCCESS;
}

API int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t bytes) {
    if (bytes == 0) return SUCCESS;
    if (!inside((uintptr_t)dst, bytes) || !inside((uintptr_t)src, bytes)) return INVALID_VALUE;
    std::memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
    return SUCCESS;
}

API int cuMemsetD8_v2(uint64_t dst, unsigned value, size_t n) {
    if (n == 0) return SUCCESS;
    if (!inside((uintptr_t)dst, n)) return INVALID_VALUE;
    std::memset((void *)(uintptr_t)dst, (int)(value & 0xff), n);
    return SUCCESS;
}

/* Page-locked host memory. Here it is ordinary memory, tracked so that an asynchronous copy can tell it from pageable
 * memory: from pageable memory cuMemcpyHtoDAsync is synchronous on a real driver (counted as a host synchronisation). */
API int cuMemHostAlloc(void **pp, size_t bytes, unsigned flags) {
    if (!initialized) return NOT_INITIALIZED;
    if (!pp || bytes == 0 || (flags & ~0xfu)) return INVALID_VALUE;
    void *p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!p) return OUT_OF_MEMORY;
    std::lock_guard<std::mutex> g(mem_mu);
    host_allocations[(uintptr_t)p] = bytes;
    *pp = p;
    return SUCCESS;
}

API int cuMemFreeHost(void *p) {
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
    /* the copy completes here (no asynchrony is emulated); from pageable memory a real driver blocks: count it so */
    count(inside_pinned((uintptr_t)src, bytes) ? lt_driver_emu::CNT_HTOD_ASYNC : lt_driver_emu::CNT_HTOD);
    std::memcpy((void *)(uintptr_t)dst, src, bytes);
    return SUCCESS;
}

API int cuEventCreate(void **event, unsigned flags) {
    if (!initialized) return NOT_INITIALIZED;
    if (!event || (flags & ~0xfu)) return INVALID_VALUE;
    Event *e = new (std::nothrow) Event{EVENT_MAGIC, false};
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
    e->recorded = true;   /* every launch and copy before it has already completed */
    return SUCCESS;
}

/* CUDA_SUCCESS when the work before the record is done (here always) or the event was never recorded. */
API int cuEventQuery(void *event) { return as_event(event) ? SUCCESS : INVALID_HANDLE; }

API int cuEventSynchronize(void *event) {
    if (!as_event(event)) return INVALID_HANDLE;
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
    int rc = k->launch(dim3(gx, gy, gz), dim3(bx, by, bz), smem, params);
    if (rc == cuda_emu::OK) return SUCCESS;
    launch_message = cuda_emu::last_error();
    return LAUNCH_FAILED;
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
