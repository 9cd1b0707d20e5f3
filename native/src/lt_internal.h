/* Internal helpers shared by the runtime and the kernels. Nothing here is exported. */
#ifndef LT_INTERNAL_H
#define LT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "latent.h"

#define LT_HIDDEN __attribute__((visibility("hidden")))

/* Record a message for lt_last_error() on this thread and return `code`. printf-style. */
LT_HIDDEN lt_status lt_fail(lt_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
LT_HIDDEN void lt_clear_error(void);

/* ISA level in use (LT_ISA_*); fixed at load unless lt_set_isa() is called. */
LT_HIDDEN int lt_isa_level(void);

/* Run fn(ctx, task, worker) for task in [0, ntasks) on the pool. Tasks are claimed dynamically, so a
 * task must not depend on which worker runs it: a deterministic kernel gives every output element to
 * exactly one task and fixes its reduction order inside the task. `worker` in [0, lt_pool_width())
 * indexes per-worker scratch only. When the pool is busy (another caller) or we are already inside a
 * pool task, the tasks run inline on the calling thread with worker = 0. */
typedef void (*lt_task_fn)(void *ctx, int64_t task, int worker);
LT_HIDDEN void lt_parallel_for(int64_t ntasks, lt_task_fn fn, void *ctx);
/* The pool size, an upper bound of the `worker` index of this thread's next lt_parallel_for calls: they keep
 * workers at or beyond the value returned here out of the job even if another thread grows the pool in between,
 * so scratch sized by it stays in bounds. Never 0. */
LT_HIDDEN int lt_pool_width(void);

/* 64-byte aligned scratch; NULL on failure (caller reports LT_ERR_OUT_OF_MEMORY). */
LT_HIDDEN void *lt_alloc(size_t bytes);
LT_HIDDEN void lt_free(void *p);

#endif
