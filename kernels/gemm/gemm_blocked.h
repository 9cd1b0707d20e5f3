/* The blocked GEMM driver shared by gemm_avx2.c and gemm_avx512.c (Goto's algorithm; gemm_avx2.c's header
 * describes the blocking, the task split and why the bits do not depend on the thread count). Included once
 * by each, after it has defined:
 *   MR, NR, KC, MC, NC, SLACK       its tile, cache blocking and the floats pack_a may write past a block
 *   min64, rup                      helpers
 *   pack_a(d, a, i0, mc, p0, kc, ap), pack_b(d, b, p0, kc, j0, nc, bp)   its packed layouts
 *   sliver_times_block(mc, nr, kc, ap, bs, c, ldc, alpha, beta_eff)     its micro-kernel down one A block
 *   GEMM_ENTRY                      the name of the entry point this defines (gemm_avx2, gemm_avx512)
 * Everything here is static, so each ISA gets its own copy compiled with its own flags (the
 * parked-scratch cache included). Not a public header. */
#ifndef SERIAL_FLOPS
#define SERIAL_FLOPS (1 << 20)  /* below this (~80^3) one product runs on the calling thread: the pool costs more */
#endif
#ifndef BATCH_FLOPS
#define BATCH_FLOPS (1 << 23)   /* below this a batch is split by entries, each entry serial */
#endif
#ifndef TASKS_PER_THREAD
#define TASKS_PER_THREAD 4      /* fewer row blocks than this per thread: split the slivers too */
#endif
#ifndef PANEL_FLOATS
#define PANEL_FLOATS (4 << 20)  /* packed B kept for a group of k blocks: 16 MB */
#endif

/* ---- drivers ---------------------------------------------------------------------------------------------- */

/* The K split depends on k alone (ceil(k / KC) near-equal blocks), and every C element is summed over those
 * blocks in order by the same micro-kernel, so the bits never depend on the thread count or task split. */
static inline int64_t k_blocks(int64_t k) { return (k + KC - 1) / KC; }
static inline int64_t k_lo(int64_t k, int64_t nkb, int64_t q) { return k * q / nkb; }

/* The blocking of one product (one batch entry) at one moment: which column block and group of k blocks
 * is packed in the panel, and how that is cut into tasks. */
typedef struct {
    const lt_gemm_desc *d;
    const float *a, *b; /* this batch entry */
    float *c;
    float *bp;          /* packed B, k blocks q0 .. q1 of columns jc .. jc+nc: block q at (k_lo(q) - k_lo(q0)) * ncpad */
    _Atomic int *ready; /* per (k block, sliver): 0 not packed, 1 being packed, 2 packed */
    int64_t nkb, ncpad, group;
    int64_t jc, nc, nsl, q0, q1;
    int64_t mb, n_ic, n_jp; /* MR-row groups; task grid: row blocks x sliver ranges */
    int width;              /* threads that may run tasks at once */
} plan;

/* The packed B sliver (k block q, sliver s), packing it first if no task has. Whoever comes first packs (a
 * compare-and-swap claims it), a task that finds it being packed waits: packing is a copy, so the panel is
 * the same whoever makes it, B is packed once per column block without a barrier, and the task that packs
 * a sliver uses it at once, from L1. */
static const float *sliver(plan *pl, int64_t q, int64_t s, int64_t pc, int64_t kc) {
    float *bs = pl->bp + (pc - k_lo(pl->d->k, pl->nkb, pl->q0)) * pl->ncpad + s * NR * kc;
    _Atomic int *st = &pl->ready[(q - pl->q0) * pl->nsl + s];
    if (atomic_load_explicit(st, memory_order_acquire) != 2) {
        int expect = 0;
        if (atomic_compare_exchange_strong_explicit(st, &expect, 1, memory_order_acquire, memory_order_relaxed)) {
            pack_b(pl->d, pl->b, pc, kc, pl->jc + s * NR, min64(NR, pl->nc - s * NR), bs);
            atomic_store_explicit(st, 2, memory_order_release);
        } else {
            while (atomic_load_explicit(st, memory_order_acquire) != 2) _mm_pause();
        }
    }
    return bs;
}

/* Task t of the current column block and k group: a block of MR-row groups times a range of slivers. For each
 * k block it packs its A block into ap, then multiplies it into the slivers in order. The task owns its C
 * block for all the group's k blocks, so no barrier separates k blocks. */
static void run_task(plan *pl, int64_t t, float *ap) {
    const lt_gemm_desc *d = pl->d;
    int64_t ti = t / pl->n_jp, tj = t % pl->n_jp;
    int64_t i0 = pl->mb * ti / pl->n_ic * MR, i1 = min64(pl->mb * (ti + 1) / pl->n_ic * MR, d->m);
    int64_t s0 = pl->nsl * tj / pl->n_jp, s1 = pl->nsl * (tj + 1) / pl->n_jp;
    if (i1 <= i0 || s1 <= s0) return;
    /* Tasks run about in index order, so neighbouring row blocks are in flight together; each starts at a
     * different point of its slivers (the order does not change any sum), so they pack different slivers
     * instead of one waiting while the other packs the one both need (8% at 1024^3 on 2 threads). */
    int64_t off = (ti % pl->width) * (s1 - s0) / pl->width;
    for (int64_t q = pl->q0; q < pl->q1; q++) {
        int64_t pc = k_lo(d->k, pl->nkb, q), kc = k_lo(d->k, pl->nkb, q + 1) - pc;
        float beta_eff = q == 0 ? d->beta : 1.0f; /* later k blocks add to what the first wrote */
        pack_a(d, pl->a, i0, i1 - i0, pc, kc, ap);
        for (int64_t u = 0; u < s1 - s0; u++) {
            int64_t s = s0 + (off + u) % (s1 - s0);
            sliver_times_block(i1 - i0, min64(NR, pl->nc - s * NR), kc, ap, sliver(pl, q, s, pc, kc),
                               pl->c + i0 * d->ldc + pl->jc + s * NR, d->ldc, d->alpha, beta_eff);
        }
    }
}

/* Column block jc: its width and the task grid. Row blocks of at most MC rows, a multiple of the pool size so
 * equal tasks end together; if that gives too few tasks, the slivers are split too (each such task repacks
 * its A block: cheap when M is that small). Serial runs take row blocks only. */
static void plan_columns(plan *pl, int64_t jc, int width, int serial) {
    pl->jc = jc;
    pl->width = width;
    pl->nc = min64(pl->ncpad, pl->d->n - jc);
    pl->nsl = (pl->nc + NR - 1) / NR;
    pl->n_ic = (pl->mb + MC / MR - 1) / (MC / MR);
    pl->n_jp = 1;
    if (serial) return;
    if (pl->n_ic > width) pl->n_ic = rup(pl->n_ic, width);
    int64_t want = TASKS_PER_THREAD * (int64_t)width;
    if (pl->n_ic < want) pl->n_jp = min64((want + pl->n_ic - 1) / pl->n_ic, (pl->nsl + 3) / 4);
    if (pl->n_jp < 1) pl->n_jp = 1;
}

static void plan_group(plan *pl, int64_t q0) {
    pl->q0 = q0;
    pl->q1 = min64(q0 + pl->group, pl->nkb);
    for (int64_t i = 0; i < (pl->q1 - pl->q0) * pl->nsl; i++) atomic_init(&pl->ready[i], 0);
}

typedef struct {
    const lt_gemm_desc *d;
    float *scratch;  /* nw per-worker slots of `slot` floats (then the shared panel and flags in intra mode) */
    int64_t slot, ap_size, bp_size, group;
    int nw;
    _Atomic int oom;
    plan pl;         /* intra mode: the product being computed */
} gemm_ctx;

/* Per-worker scratch; a worker index past what was sized at entry (pool resized meanwhile by another
 * thread) gets a private allocation, freed by the caller through *own. */
static float *slot_of(gemm_ctx *x, int worker, float **own) {
    *own = NULL;
    if (worker < x->nw) return x->scratch + worker * x->slot;
    *own = lt_alloc((size_t)x->slot * sizeof(float));
    if (!*own) atomic_store(&x->oom, 1);
    return *own;
}

/* Batch mode (small products, batches of them, or a pool of one): task t = batch entry t, all of it on one
 * thread in the worker's slot [A block | B panel | flags]. */
static void batch_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    float *own, *s = slot_of(x, worker, &own);
    if (!s) return;
    const lt_gemm_desc *d = x->d;
    plan pl = x->pl;
    pl.a += t * d->stride_a;
    pl.b += t * d->stride_b;
    pl.c += t * d->stride_c;
    pl.bp = s + x->ap_size;
    pl.ready = (_Atomic int *)(s + x->ap_size + x->bp_size);
    pl.group = x->group;
    pl.mb = (d->m + MR - 1) / MR;
    for (int64_t jc = 0; jc < d->n; jc += pl.ncpad) {
        plan_columns(&pl, jc, 1, 1);
        for (int64_t q0 = 0; q0 < pl.nkb; q0 += pl.group) {
            plan_group(&pl, q0);
            for (int64_t u = 0; u < pl.n_ic * pl.n_jp; u++) run_task(&pl, u, s);
        }
    }
    lt_free(own);
}

/* Intra mode: one product on the pool, task = run_task on the shared plan. */
static void intra_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    float *own, *ap = slot_of(x, worker, &own);
    if (!ap) return;
    run_task(&x->pl, t, ap);
    lt_free(own);
}

/* Scratch kept between calls. Fresh pages cost a fault each (~10 us in this VM: a 1024^3 product on one
 * core took 25 ms instead of 21 while malloc kept handing back new pages), so the last buffer is parked in
 * a one-slot cache and the next call takes it if it is large enough. Calls from several threads at once
 * park up to PARKED_SLOTS buffers (conv tiles call GEMM from each worker). The block sizes bound each: at most PANEL_FLOATS + workers * MC * KC floats in
 * intra mode, workers * (MC * KC + KC * NC) in batch mode (~21 MB on 2 workers). Its size is kept in its
 * first 64 bytes. */
#define PARKED_SLOTS 4   /* several: convolutions call GEMM from every worker at once (one call per tile) */
static _Atomic(float *) parked[PARKED_SLOTS];

static float *scratch_get(size_t floats) {
#ifndef __SANITIZE_ADDRESS__ /* under ASan every call gets an exact-size buffer, so an overrun is caught */
    for (int i = 0; i < PARKED_SLOTS; i++) {
        float *p = atomic_exchange(&parked[i], NULL);
        if (!p) continue;
        if (*(size_t *)p >= floats) return p + 16;
        lt_free(p);   /* too small for this call: drop it, a large enough one replaces it below */
    }
#endif
    float *p = lt_alloc((floats + 16) * sizeof(float));
    if (!p) return NULL;
    *(size_t *)p = floats;
    return p + 16;
}

static void scratch_put(float *s) {
    if (!s) return;
    float *p = s - 16;
    for (int i = 0; i < PARKED_SLOTS; i++) {
        float *none = NULL;
        if (atomic_compare_exchange_strong(&parked[i], &none, p)) return;
    }
    lt_free(p);
}

lt_status GEMM_ENTRY(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
    gemm_ctx x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.pl.d = d; x.pl.a = a; x.pl.b = b; x.pl.c = c;
    double flops = 2.0 * (double)d->m * (double)d->n * (double)d->k;
    int width = lt_pool_width();
    int batch_mode = width == 1 || flops < SERIAL_FLOPS || (d->batch > 1 && flops < BATCH_FLOPS);
    int64_t nkb = k_blocks(d->k), kcmax = (d->k + nkb - 1) / nkb;
    /* Column blocks: ceil(n / NC) of them, equally wide (in slivers), so the last is not a sliver of work. */
    int64_t njc = (d->n + NC - 1) / NC, ncpad = rup((d->n + njc - 1) / njc, NR);
    /* k blocks per group: as many as keep the packed panel within PANEL_FLOATS. */
    int64_t group = PANEL_FLOATS / (kcmax * ncpad);
    group = group < 1 ? 1 : group > nkb ? nkb : group;
    x.pl.nkb = nkb; x.pl.ncpad = ncpad; x.pl.group = x.group = group;
    x.ap_size = rup(rup(min64(MC, d->m), MR) * kcmax + SLACK, 16); /* keeps what follows 64-byte aligned */
    x.bp_size = rup(group * kcmax * ncpad, 16);
    int64_t flags = rup(group * (ncpad / NR), 16);
    if (batch_mode) {
        /* One thread per product: nothing to gain from packing more than one k block ahead. Any worker may
         * claim a task, so every worker index gets a slot (one when the single task runs inline). */
        x.group = 1;
        x.bp_size = rup(kcmax * ncpad, 16);
        flags = rup(ncpad / NR, 16);
        x.nw = d->batch == 1 ? 1 : width;
        x.slot = x.ap_size + x.bp_size + flags;
        x.scratch = scratch_get((size_t)(x.nw * x.slot));
        if (!x.scratch) goto oom;
        lt_parallel_for(d->batch, batch_task, &x);
    } else {
        x.nw = width;
        x.slot = x.ap_size;
        x.scratch = scratch_get((size_t)(x.nw * x.slot + x.bp_size + flags));
        if (!x.scratch) goto oom;
        x.pl.bp = x.scratch + x.nw * x.slot;
        x.pl.ready = (_Atomic int *)(x.pl.bp + x.bp_size);
        x.pl.mb = (d->m + MR - 1) / MR;
        for (int64_t t = 0; t < d->batch; t++) {
            x.pl.a = a + t * d->stride_a; x.pl.b = b + t * d->stride_b; x.pl.c = c + t * d->stride_c;
            for (int64_t jc = 0; jc < d->n; jc += ncpad) {
                plan_columns(&x.pl, jc, width, 0);
                for (int64_t q0 = 0; q0 < nkb; q0 += group) {
                    plan_group(&x.pl, q0);
                    lt_parallel_for(x.pl.n_ic * x.pl.n_jp, intra_task, &x);
                }
            }
        }
    }
    scratch_put(x.scratch);
    if (atomic_load(&x.oom)) goto oom;
    return LT_OK;
oom:
    return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_gemm: scratch for m=%lld n=%lld k=%lld (KC=%d MC=%d NC=%d)",
                   (long long)d->m, (long long)d->n, (long long)d->k, KC, MC, NC);
}
