/*
 * libnccl_emu.so: a CPU stand-in for the part of NCCL that dev.latent.spark.collective.Nccl binds, with the same
 * symbol names, signatures, enum values and calling conventions as NVIDIA's libnccl.so.2 (nccl.h, NCCL 2.x), so the
 * spark module's NCCL path runs end to end without a GPU or NCCL. Test-only: never shipped.
 *
 * What it emulates: every rank of a communicator lives in this process (threads: Spark's local mode, or the tests'
 * in-process ranks), and "device" buffers are host addresses (the emulated CUDA driver, libcuda_emu.so, hands out
 * host memory). ncclCommInitRank blocks until all nranks ranks of the unique id have joined, as NCCL does.
 * ncclAllReduce (float32, ncclSum only: the one reduction the trainers use; anything else is ncclInvalidArgument)
 * is synchronous: every rank posts its buffers, then computes element i as ((s_0[i] + s_1[i]) + s_2[i]) + ...
 * in rank order (so the result is one fixed float expression, the TCP all-reduce's), then writes it to its
 * receive buffer after every rank has read every send buffer (in-place calls are safe). Real NCCL sums in its own
 * ring / tree order (docs/decisions.md): latent_nccl_emu_ring(1) makes the stand-in sum as a ring does (the buffer
 * cut into N chunks, chunk j summed s_{j+1} + s_{j+2} + ... wrapping), for the tests of that tolerance.
 *
 * Errors are returned as NCCL's codes, never printed: a bad argument (null pointer, rank outside [0, nranks), a
 * unique id not made by ncclGetUniqueId, an unsupported type or op) is ncclInvalidArgument; ranks of one id that
 * disagree (different nranks, the same rank twice, different counts in one all-reduce) are ncclInvalidUsage;
 * a rank that does not arrive within LATENT_NCCL_EMU_TIMEOUT_S seconds (default 120) fails the others with
 * ncclSystemError and marks the communicator broken, after which ncclCommGetAsyncError reports ncclRemoteError.
 * latent_nccl_emu_fail(comm, code) injects an asynchronous error (what a dead peer or a NIC failure looks like
 * to ncclCommGetAsyncError); latent_nccl_emu_allreduces() counts successful all-reduce calls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

typedef enum {
    ncclSuccess = 0, ncclUnhandledCudaError = 1, ncclSystemError = 2, ncclInternalError = 3, ncclInvalidArgument = 4,
    ncclInvalidUsage = 5, ncclRemoteError = 6, ncclInProgress = 7, ncclNumResults = 8
} ncclResult_t;

enum { ncclFloat32 = 7 };
enum { ncclSum = 0 };

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;

static const char MAGIC[16] = "latent-nccl-emu";

typedef struct group {
    char id[NCCL_UNIQUE_ID_BYTES];
    int nranks, joined, alive;      /* alive: ranks not yet destroyed */
    int broken;                     /* a rank timed out: every later call fails */
    /* the collective in progress */
    const float **send;
    size_t *count;
    int arrived;
    unsigned long generation;
    struct group *next;
} group;

typedef struct ncclComm {
    group *g;
    int rank;
    int async_error;
} ncclComm;
typedef ncclComm *ncclComm_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static group *groups;
static unsigned long id_counter;
static long allreduces;
static int ring_order;   /* 0: every element summed in rank order 0..N-1; 1: chunk j of N summed from rank j+1 on, as a ring does */

static int timeout_s(void) {
    const char *v = getenv("LATENT_NCCL_EMU_TIMEOUT_S");
    int t = v ? atoi(v) : 0;
    return t > 0 ? t : 120;
}

static void deadline(struct timespec *ts) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_s();
}

/* Waits (mu held) until every rank of g has arrived at this generation's barrier; 0 or an NCCL error. */
static int barrier(group *g) {
    unsigned long gen = g->generation;
    if (++g->arrived == g->nranks) {
        g->arrived = 0;
        g->generation++;
        pthread_cond_broadcast(&cv);
        return ncclSuccess;
    }
    struct timespec ts;
    deadline(&ts);
    while (g->generation == gen && !g->broken) {
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) {
            g->broken = 1;
            pthread_cond_broadcast(&cv);
        }
    }
    return g->generation == gen ? ncclSystemError : ncclSuccess;
}

API ncclResult_t ncclGetVersion(int *version) {
    if (!version) return ncclInvalidArgument;
    *version = 22105;   /* reports itself as NCCL 2.21.5 (major * 10000 + minor * 100 + patch, NCCL >= 2.9) */
    return ncclSuccess;
}

API ncclResult_t ncclGetUniqueId(ncclUniqueId *uid) {
    if (!uid) return ncclInvalidArgument;
    memset(uid, 0, sizeof *uid);
    memcpy(uid->internal, MAGIC, sizeof MAGIC);
    pthread_mutex_lock(&mu);
    unsigned long n = ++id_counter;
    pthread_mutex_unlock(&mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t words[3] = {(uint64_t)getpid(), (uint64_t)n, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec};
    memcpy(uid->internal + sizeof MAGIC, words, sizeof words);
    return ncclSuccess;
}

API ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm || nranks < 1 || rank < 0 || rank >= nranks || memcmp(id.internal, MAGIC, sizeof MAGIC) != 0)
        return ncclInvalidArgument;
    pthread_mutex_lock(&mu);
    group *g = groups;
    while (g && memcmp(g->id, id.internal, NCCL_UNIQUE_ID_BYTES) != 0) g = g->next;
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g || !(g->send = calloc((size_t)nranks, sizeof *g->send)) || !(g->count = calloc((size_t)nranks, sizeof *g->count))) {
            if (g) { free(g->send); free(g); }
            pthread_mutex_unlock(&mu);
            return ncclSystemError;
        }
        memcpy(g->id, id.internal, NCCL_UNIQUE_ID_BYTES);
        g->nranks = nranks;
        g->next = groups;
        groups = g;
    }
    if (g->nranks != nranks || g->joined >= nranks || g->send[rank] == (const float *)g) {
        pthread_mutex_unlock(&mu);
        return ncclInvalidUsage;   /* ranks disagree on the size, or a rank joins twice */
    }
    g->send[rank] = (const float *)g;   /* marks the rank as joined until the barrier clears it */
    g->joined++;
    g->alive++;
    ncclComm *c = calloc(1, sizeof *c);
    if (!c) {
        pthread_mutex_unlock(&mu);
        return ncclSystemError;
    }
    c->g = g;
    c->rank = rank;
    int r = g->broken ? ncclSystemError : barrier(g);
    if (r == ncclSuccess) g->send[rank] = NULL;
    pthread_mutex_unlock(&mu);
    if (r != ncclSuccess) {
        free(c);
        return (ncclResult_t)r;
    }
    *comm = c;
    return ncclSuccess;
}

API ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, int datatype, int op, ncclComm_t comm, void *stream) {
    (void)stream;   /* synchronous: done when it returns, so ordered before anything later on any stream */
    if (!comm || !comm->g) return ncclInvalidArgument;
    if (datatype != ncclFloat32 || op != ncclSum) return ncclInvalidArgument;   /* the stand-in has float32 sums only */
    if (count > 0 && (!sendbuff || !recvbuff)) return ncclInvalidArgument;
    if (comm->async_error) return ncclInvalidUsage;   /* NCCL: a communicator in error must be aborted, not used */
    group *g = comm->g;
    float *tmp = count ? malloc(count * sizeof(float)) : NULL;
    if (count && !tmp) return ncclSystemError;
    pthread_mutex_lock(&mu);
    if (g->broken) {
        pthread_mutex_unlock(&mu);
        free(tmp);
        return ncclSystemError;
    }
    g->send[comm->rank] = sendbuff;
    g->count[comm->rank] = count;
    int r = barrier(g);   /* every rank has posted */
    if (r == ncclSuccess) {
        int same = 1;
        for (int k = 0; k < g->nranks; k++) same &= g->count[k] == count;
        if (same) {
            pthread_mutex_unlock(&mu);   /* the send buffers stay valid: their owners wait at the next barrier */
            int nr = g->nranks;
            size_t chunk = (count + (size_t)nr - 1) / (size_t)nr;
            for (int j = 0; j < nr; j++) {   /* chunk j starts at rank 0 (rank order) or, in ring order, at rank j+1 */
                size_t lo = (size_t)j * chunk, hi = lo + chunk < count ? lo + chunk : count;
                if (lo >= count) break;
                int first = ring_order ? (j + 1) % nr : 0;
                const float *s0 = g->send[first];
                for (size_t i = lo; i < hi; i++) tmp[i] = s0[i];
                for (int k = 1; k < nr; k++) {
                    const float *s = g->send[(first + k) % nr];
                    for (size_t i = lo; i < hi; i++) tmp[i] += s[i];
                }
            }
            pthread_mutex_lock(&mu);
        }
        int r2 = barrier(g);   /* every rank has read every send buffer */
        if (r2 == ncclSuccess && !same) r2 = ncclInvalidUsage;
        r = r2;
    }
    if (r == ncclSuccess) allreduces++;
    pthread_mutex_unlock(&mu);
    if (r == ncclSuccess && count) memcpy(recvbuff, tmp, count * sizeof(float));
    free(tmp);
    return (ncclResult_t)r;
}

API ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
    if (!comm || !asyncError) return ncclInvalidArgument;
    pthread_mutex_lock(&mu);
    *asyncError = comm->async_error ? (ncclResult_t)comm->async_error : comm->g && comm->g->broken ? ncclRemoteError : ncclSuccess;
    pthread_mutex_unlock(&mu);
    return ncclSuccess;
}

API ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return ncclInvalidArgument;
    pthread_mutex_lock(&mu);
    group *g = comm->g;
    if (g && --g->alive == 0 && g->joined == g->nranks) {
        for (group **p = &groups; *p; p = &(*p)->next)
            if (*p == g) { *p = g->next; break; }
        free(g->send);
        free(g->count);
        free(g);
    }
    pthread_mutex_unlock(&mu);
    free(comm);
    return ncclSuccess;
}

API const char *ncclGetErrorString(ncclResult_t result) {
    switch (result) {
        case ncclSuccess: return "no error";
        case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
        case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
        case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
        case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
        case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
        case ncclRemoteError: return "remote process exited or there was a network error";
        case ncclInProgress: return "NCCL operation in progress";
        default: return "unknown result code";
    }
}

/* ---- test hooks (not NCCL API) ---- */

/* Makes ncclCommGetAsyncError report `code` on comm from now on (what a failed peer looks like). */
API int latent_nccl_emu_fail(ncclComm_t comm, int code) {
    if (!comm) return ncclInvalidArgument;
    pthread_mutex_lock(&mu);
    comm->async_error = code;
    pthread_mutex_unlock(&mu);
    return ncclSuccess;
}

/* 1: sum as a ring all-reduce does (chunk j of N from rank j+1 on, wrapping); 0: rank order (the default). */
API void latent_nccl_emu_ring(int on) {
    pthread_mutex_lock(&mu);
    ring_order = on != 0;
    pthread_mutex_unlock(&mu);
}

/* Successful ncclAllReduce calls so far, over every rank (a test's proof that NCCL served). */
API long latent_nccl_emu_allreduces(void) {
    pthread_mutex_lock(&mu);
    long n = allreduces;
    pthread_mutex_unlock(&mu);
    return n;
}
