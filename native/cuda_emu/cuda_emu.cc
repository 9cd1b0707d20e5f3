/*
 * cuda_emu.cc — the scheduler behind cuda_emu.h: fibers, barriers, the per-warp exchange, error reports.
 *
 * A launch runs its blocks one after another on each worker OS thread (blocks are claimed from a shared
 * counter when there are several workers). A block is blockDim.x*y*z fibers, each on its own stack. The
 * scheduler resumes every ready fiber in thread order; a fiber runs until it reaches a synchronisation point
 * (barrier, shuffle, exit) and switches back. The last thread to arrive at a barrier releases the others.
 * A pass over the block that finds nothing ready while some fiber is still alive is a deadlock, reported
 * with where each thread waits.
 *
 * Context switch: cuda_emu_switch saves the callee-saved registers, MXCSR and the x87 control word on the
 * current stack, stores the stack pointer and loads the other one (System V x86-64 ABI: everything else is
 * caller-saved, so this is all a switch needs). About 20 instructions; ucontext's swapcontext also saves the
 * signal mask with a system call, which is what makes it ~10x slower.
 *
 * Sanitizers. ASan: every switch is bracketed by __sanitizer_start/finish_switch_fiber so it knows which
 * stack is live, and a stack is unpoisoned before reuse (frames left by a finished fiber keep their
 * redzones). TSan: each fiber of a block is a TSan fiber, switched with __tsan_switch_to_fiber(no_sync) so
 * that a switch itself implies no ordering; barriers and shuffles release before waiting and acquire after,
 * which is exactly the ordering __syncthreads / __shfl_sync give. The scheduler's own bookkeeping is not
 * instrumented (no_sanitize), so only the kernel's memory accesses are checked. Consecutive blocks on one
 * worker are ordered (the next block's fibers are created after the previous block's end is acquired):
 * they reuse the same stacks and `static thread_local` shared arrays, which on a GPU are fresh memory.
 */
#include "cuda_emu.h"

#include <sys/mman.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define EMU_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(__x86_64__)
#error "cuda_emu's context switch is x86-64 only"
#endif

#define NO_TSAN __attribute__((no_sanitize("thread")))

/* void cuda_emu_switch(void **save_sp, void *load_sp); a new fiber starts in cuda_emu_trampoline with its
 * entry function in r13 and argument in r12 (set up by init_stack). */
asm(R"(
    .text
    .p2align 4
    .globl cuda_emu_switch
    .hidden cuda_emu_switch
    .type cuda_emu_switch, @function
cuda_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuda_emu_switch, .-cuda_emu_switch

    .p2align 4
    .globl cuda_emu_trampoline
    .hidden cuda_emu_trampoline
    .type cuda_emu_trampoline, @function
cuda_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cuda_emu_trampoline, .-cuda_emu_trampoline
    .section .note.GNU-stack,"",@progbits
    .text
)");
extern "C" void cuda_emu_switch(void **save_sp, void *load_sp);
extern "C" void cuda_emu_trampoline();

namespace cuda_emu {

thread_local const ThreadInfo *cur;

const ThreadInfo *self() noexcept { return cur; }

namespace {

#if defined(EMU_ASAN) || defined(EMU_TSAN)
constexpr size_t STACK = 256 * 1024; /* sanitizers grow frames (redzones, shadow calls) */
#else
constexpr size_t STACK = 64 * 1024;
#endif

enum State { READY, AT_BARRIER, AT_WARP, DONE };

struct Block;

struct Fiber {
    ThreadInfo info;
    unsigned linear, lane, warp;
    State st;
    void *sp;
    char *stack;
    Block *blk;
    void *tsan_fiber;
    void *asan_fake;
};

struct Warp {
    unsigned exists;     /* lanes that exist (a partial last warp has fewer) */
    unsigned arrived;    /* lanes waiting in the current exchange */
    unsigned mask;       /* the mask of the current exchange */
    unsigned gen;        /* exchanges completed; buf[gen & 1] is the current one */
    int kind;
    const char *file;
    int line;
    uint64_t buf[2][32];
    char sync;           /* address for TSan release/acquire */
};

struct Block {
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    int n = 0, done = 0;
    int bar_count = 0;
    const char *bar_file = nullptr;
    int bar_line = 0;
    char bar_sync = 0;
    char end_token = 0;   /* TSan: this block's fibers -> the scheduler, then the next block */
    char start_token = 0; /* TSan: the scheduler (host writes, fiber setup) -> this block's fibers */
    bool failed = false;
    int code = OK;
    char msg[512];
    void *sched_sp = nullptr;
    void *tsan_sched = nullptr;
    const void *sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
    void *dyn = nullptr;
    void (*entry)(void *) = nullptr;
    void *closure = nullptr;
};

thread_local Block *cur_block;
thread_local Fiber *cur_fiber;
thread_local char last_msg[512];
int g_workers = 0;          /* 0: not read from the environment yet */

/* Stacks are cached per worker thread and reused by the next block (see the header on sanitizers). */
struct StackPool {
    std::vector<char *> stacks;
    std::vector<void *> tsan_fibers; /* TSan fiber of each stack slot: creating one per block is slow */
    ~StackPool() {
        for (char *s : stacks) munmap(s, STACK);
#ifdef EMU_TSAN
        for (void *f : tsan_fibers) __tsan_destroy_fiber(f);
#endif
    }
    char *get(size_t i) {
        while (stacks.size() <= i) {
            void *p = mmap(nullptr, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) return nullptr;
            stacks.push_back(static_cast<char *>(p));
#ifdef EMU_TSAN
            tsan_fibers.push_back(__tsan_create_fiber(0));
#else
            tsan_fibers.push_back(nullptr);
#endif
        }
        return stacks[i];
    }
};
thread_local StackPool stack_pool;

const char *where(const Fiber *f, char *buf, size_t len) {
    snprintf(buf, len, "thread (%u,%u,%u) of block (%u,%u,%u)", f->info.tid.x, f->info.tid.y, f->info.tid.z,
             f->info.bid.x, f->info.bid.y, f->info.bid.z);
    return buf;
}

void fmt_fail(Block *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fmt_fail(Block *b, int code, const char *fmt, ...) {
    if (b->failed) return;
    b->failed = true;
    b->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
}

/* Fiber -> scheduler. `dying`: the fiber never runs again (ASan frees its fake stack). */
NO_TSAN void to_scheduler(Fiber *f, bool dying) {
    Block *b = f->blk;
#ifdef EMU_TSAN
    /* Everything this fiber did so far happens before the block's end (acquired by the scheduler once the block
     * is over, even an aborted one): never acquired by another fiber, so it hides no race inside the block. */
    __tsan_release(&b->end_token);
    __tsan_switch_to_fiber(b->tsan_sched, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(dying ? nullptr : &f->asan_fake, b->sched_stack_bottom, b->sched_stack_size);
#endif
    cuda_emu_switch(&f->sp, b->sched_sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, nullptr, nullptr);
#endif
    (void)dying;
}

/* A fiber that hit an error: record it and leave for good (the scheduler abandons the block). */
[[noreturn]] void die(Fiber *f) {
    f->st = DONE;
    to_scheduler(f, true);
    __builtin_unreachable();
}

NO_TSAN void fiber_main(void *arg) {
    Fiber *f = static_cast<Fiber *>(arg);
    Block *b = f->blk;
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &b->sched_stack_bottom, &b->sched_stack_size);
#endif
#ifdef EMU_TSAN
    __tsan_acquire(&b->start_token); /* the host's writes and this block's setup happen before */
#endif
    b->entry(b->closure);
    f->st = DONE;
    b->done++;
    char w[96];
    if (b->bar_count > 0)
        fmt_fail(b, ERR_DIVERGENT, "divergent __syncthreads: %s exited while %d thread(s) wait at %s:%d",
                 where(f, w, sizeof w), b->bar_count, b->bar_file, b->bar_line);
    const Warp &wp = b->warps[f->warp];
    if (wp.arrived && (wp.mask >> f->lane & 1u))
        fmt_fail(b, ERR_DIVERGENT, "divergent warp: %s (lane %u) exited while lanes 0x%08x of its warp wait at %s:%d",
                 where(f, w, sizeof w), f->lane, wp.arrived, wp.file, wp.line);
    to_scheduler(f, true);
    __builtin_unreachable();
}

void init_stack(Fiber *f) {
#ifdef EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(f->stack, STACK);
#endif
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + STACK) & ~uintptr_t(15);
    uint64_t *sp = reinterpret_cast<uint64_t *>(top - 80); /* 16-aligned; ret leaves rsp = top - 16 */
    uint32_t csr[2] = {0x1F80u, 0x037Fu};                   /* default MXCSR, x87 control word */
    std::memcpy(&sp[0], csr, 8);
    sp[1] = 0;                                              /* r15 */
    sp[2] = 0;                                              /* r14 */
    sp[3] = reinterpret_cast<uint64_t>(&fiber_main);        /* r13: entry */
    sp[4] = reinterpret_cast<uint64_t>(f);                  /* r12: argument */
    sp[5] = 0;                                              /* rbx */
    sp[6] = 0;                                              /* rbp = 0 ends frame-pointer unwinding */
    sp[7] = reinterpret_cast<uint64_t>(&cuda_emu_trampoline);
    f->sp = sp;
}

/* Scheduler -> fiber. */
NO_TSAN void resume(Block *b, Fiber *f) {
    cur_fiber = f;
    cur = &f->info;
#ifdef EMU_TSAN
    __tsan_switch_to_fiber(f->tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack, STACK);
#endif
    cuda_emu_switch(&b->sched_sp, f->sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    cur_fiber = nullptr;
    cur = nullptr;
}

void report_deadlock(Block *b) {
    int at_bar = 0, at_warp = 0, exited = 0;
    const Warp *ww = nullptr;
    for (const Fiber &f : b->fibers) {
        if (f.st == AT_BARRIER) at_bar++;
        else if (f.st == AT_WARP) { at_warp++; if (!ww) ww = &b->warps[f.warp]; }
        else if (f.st == DONE) exited++;
    }
    char bar[160] = "", warp[200] = "";
    if (at_bar) snprintf(bar, sizeof bar, " (at %s:%d)", b->bar_file, b->bar_line);
    if (ww)
        snprintf(warp, sizeof warp, " (first: lanes 0x%08x of mask 0x%08x at %s:%d)", ww->arrived, ww->mask,
                 ww->file, ww->line);
    fmt_fail(b, ERR_DEADLOCK, "deadlock in block (%u,%u,%u): %d thread(s) wait at __syncthreads%s, %d in a warp "
             "exchange%s, %d exited", b->fibers[0].info.bid.x, b->fibers[0].info.bid.y, b->fibers[0].info.bid.z,
             at_bar, bar, at_warp, warp, exited);
}

/* Runs one block to completion or failure. */
NO_TSAN void run_block(Block *b, dim3 grid, dim3 block, uint3 bid) {
    const unsigned nx = block.x, ny = block.y, nz = block.z;
    b->n = static_cast<int>(nx * ny * nz);
    b->done = 0;
    b->bar_count = 0;
    b->fibers.resize(b->n);
    b->warps.assign((b->n + 31) / 32, Warp{});
    for (int w = 0; w < (int)b->warps.size(); w++) {
        int lanes = b->n - 32 * w < 32 ? b->n - 32 * w : 32;
        b->warps[w].exists = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
    }
    for (int i = 0; i < b->n; i++) {
        Fiber &f = b->fibers[i];
        f.info.tid = uint3{i % nx, (i / nx) % ny, i / (nx * ny)};
        f.info.bid = bid;
        f.info.bdim = block;
        f.info.gdim = grid;
        f.linear = i;
        f.lane = i & 31;
        f.warp = i >> 5;
        f.st = READY;
        f.blk = b;
        f.asan_fake = nullptr;
        f.stack = stack_pool.get(i);
        if (!f.stack) {
            fmt_fail(b, ERR_RESOURCES, "cannot map a %zu-byte fiber stack for thread %d", STACK, i);
            return;
        }
        init_stack(&f);
        f.tsan_fiber = stack_pool.tsan_fibers[i];
    }
#ifdef EMU_TSAN
    b->tsan_sched = __tsan_get_current_fiber();
    __tsan_release(&b->start_token);
#endif
    for (;;) {
        bool ran = false;
        for (int i = 0; i < b->n && !b->failed; i++)
            if (b->fibers[i].st == READY) {
                resume(b, &b->fibers[i]);
                ran = true;
            }
        if (b->failed || b->done == b->n) break;
        if (!ran) {
            report_deadlock(b);
            break;
        }
    }
#ifdef EMU_TSAN
    __tsan_acquire(&b->end_token); /* orders this block before the next one on this worker (header) */
#endif
}

std::mutex err_mu;

} // namespace

/* ---- device-side primitives ------------------------------------------------------------------------- */

NO_TSAN void syncthreads(const char *file, int line) {
    Fiber *f = cur_fiber;
    Block *b = f->blk;
    char w[96];
    if (b->done > 0) {
        fmt_fail(b, ERR_DIVERGENT, "divergent __syncthreads at %s:%d: %s arrives after %d thread(s) of its block exited",
                 file, line, where(f, w, sizeof w), b->done);
        die(f);
    }
    if (b->bar_count == 0) {
        b->bar_file = file;
        b->bar_line = line;
    } else if (line != b->bar_line || std::strcmp(file, b->bar_file) != 0) {
        fmt_fail(b, ERR_DIVERGENT, "divergent __syncthreads: %s waits at %s:%d while %d thread(s) wait at %s:%d",
                 where(f, w, sizeof w), file, line, b->bar_count, b->bar_file, b->bar_line);
        die(f);
    }
#ifdef EMU_TSAN
    __tsan_release(&b->bar_sync);
#endif
    if (++b->bar_count == b->n) {
        b->bar_count = 0;
        for (Fiber &o : b->fibers)
            if (o.st == AT_BARRIER) o.st = READY;
    } else {
        f->st = AT_BARRIER;
        to_scheduler(f, false);
    }
#ifdef EMU_TSAN
    __tsan_acquire(&b->bar_sync);
#endif
}

NO_TSAN uint64_t warp_op(int kind, unsigned mask, uint64_t value, int arg, int width, const char *file, int line) {
    static const char *const names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                        "__ballot_sync", "__syncwarp"};
    Fiber *f = cur_fiber;
    Block *b = f->blk;
    Warp &w = b->warps[f->warp];
    const unsigned lane = f->lane, bit = 1u << lane;
    char wh[96];
    if (!(mask & bit)) {
        fmt_fail(b, ERR_DIVERGENT, "%s at %s:%d: %s (lane %u) calls it with mask 0x%08x, which excludes it",
                 names[kind], file, line, where(f, wh, sizeof wh), lane, mask);
        die(f);
    }
    if (mask & ~w.exists) {
        fmt_fail(b, ERR_DIVERGENT, "%s at %s:%d: mask 0x%08x names lanes that do not exist (warp %u has 0x%08x; "
                 "blockDim is not a multiple of 32)", names[kind], file, line, mask, f->warp, w.exists);
        die(f);
    }
    if (width < 1 || width > 32 || (width & (width - 1))) {
        fmt_fail(b, ERR_LAUNCH, "%s at %s:%d: width %d is not a power of two in [1, 32]", names[kind], file, line, width);
        die(f);
    }
    if (w.arrived == 0) {
        w.mask = mask;
        w.kind = kind;
        w.file = file;
        w.line = line;
    } else if (w.mask != mask || w.kind != kind || w.line != line || std::strcmp(w.file, file) != 0) {
        fmt_fail(b, ERR_DIVERGENT, "divergent warp: %s (lane %u) calls %s with mask 0x%08x at %s:%d while lanes 0x%08x "
                 "wait in %s with mask 0x%08x at %s:%d", where(f, wh, sizeof wh), lane, names[kind], mask, file, line,
                 w.arrived, names[w.kind], w.mask, w.file, w.line);
        die(f);
    }
    const unsigned g = w.gen;
    w.buf[g & 1][lane] = value;
    w.arrived |= bit;
#ifdef EMU_TSAN
    __tsan_release(&w.sync);
#endif
    if (w.arrived == mask) {
        w.arrived = 0;
        w.gen++;
        Fiber *base = &b->fibers[f->warp * 32];
        for (unsigned l = 0; l < 32; l++)
            if ((mask >> l & 1u) && base[l].st == AT_WARP) base[l].st = READY;
    } else {
        f->st = AT_WARP;
        to_scheduler(f, false);
    }
#ifdef EMU_TSAN
    __tsan_acquire(&w.sync);
#endif
    const uint64_t *buf = w.buf[g & 1];
    if (kind == SYNCWARP) return 0;
    if (kind == BALLOT) {
        uint64_t r = 0;
        for (unsigned l = 0; l < 32; l++)
            if ((mask >> l & 1u) && buf[l]) r |= 1ull << l;
        return r;
    }
    const unsigned seg = lane & ~unsigned(width - 1), in = lane & unsigned(width - 1);
    unsigned src;
    switch (kind) {
    case SHFL_IDX: src = seg + (unsigned(arg) & unsigned(width - 1)); break;
    case SHFL_UP: src = in >= unsigned(arg) ? lane - unsigned(arg) : lane; break;
    case SHFL_DOWN: src = in + unsigned(arg) < unsigned(width) ? lane + unsigned(arg) : lane; break;
    default: src = ((in ^ unsigned(arg)) < unsigned(width)) ? seg + (in ^ unsigned(arg)) : lane; break;
    }
    if (!(mask >> src & 1u)) {
        fmt_fail(b, ERR_DIVERGENT, "%s at %s:%d: lane %u reads lane %u, which is not in mask 0x%08x (undefined on a GPU)",
                 names[kind], file, line, lane, src, mask);
        die(f);
    }
    return buf[src];
}

void trap(const char *what, const char *file, int line) {
    Fiber *f = cur_fiber;
    char wh[96];
    fmt_fail(f->blk, ERR_TRAP, "%s at %s:%d in %s", what, file, line, where(f, wh, sizeof wh));
    die(f);
}

void *dynamic_shared() { return cur_fiber->blk->dyn; }

/* ---- host side ------------------------------------------------------------------------------------- */

const char *last_error() { return last_msg; }

void set_workers(int n) { g_workers = n < 1 ? 1 : n; }

static int workers() {
    if (g_workers == 0) {
        const char *e = std::getenv("CUDA_EMU_WORKERS");
        int n = e ? std::atoi(e) : 1;
        g_workers = n < 1 ? 1 : n;
    }
    return g_workers;
}

NO_TSAN int launch_raw(dim3 grid, dim3 block, size_t dyn_smem, void (*entry)(void *), void *closure) {
    last_msg[0] = '\0';
    char msg[sizeof last_msg] = ""; /* workers write here (last_msg is per OS thread) */
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || nblocks == 0 || grid.y > 65535 || grid.z > 65535) {
        snprintf(last_msg, sizeof last_msg, "invalid launch: grid (%u,%u,%u), block (%u,%u,%u) (threads 1..1024, "
                 "block.z <= 64, grid.y, grid.z <= 65535)", grid.x, grid.y, grid.z, block.x, block.y, block.z);
        return ERR_LAUNCH;
    }
    if (dyn_smem > 227 * 1024) {
        snprintf(last_msg, sizeof last_msg, "invalid launch: %zu bytes of dynamic shared memory (sm_90 allows 227 KB)",
                 dyn_smem);
        return ERR_RESOURCES;
    }
    std::atomic<uint64_t> next{0};
    std::atomic<bool> stop{false};
    int code = OK;
    auto work = [&]() {
        Block *b = new (std::nothrow) Block();
        if (!b) {
            std::lock_guard<std::mutex> lk(err_mu);
            if (code == OK) { code = ERR_RESOURCES; snprintf(msg, sizeof msg, "out of memory"); }
            return;
        }
        b->entry = entry;
        b->closure = closure;
        if (dyn_smem) b->dyn = std::aligned_alloc(128, (dyn_smem + 127) & ~size_t(127));
        for (uint64_t i; !stop.load() && (i = next.fetch_add(1)) < nblocks;) {
            if (dyn_smem) std::memset(b->dyn, 0xA5, dyn_smem); /* garbage, as on a GPU, but deterministic */
            uint3 bid{unsigned(i % grid.x), unsigned((i / grid.x) % grid.y), unsigned(i / (uint64_t(grid.x) * grid.y))};
            cur_block = b;
            b->failed = false;
            run_block(b, grid, block, bid);
            cur_block = nullptr;
            if (b->failed) {
                std::lock_guard<std::mutex> lk(err_mu);
                if (code == OK) {
                    code = b->code;
                    std::memcpy(msg, b->msg, sizeof msg);
                }
                stop.store(true);
            }
        }
        std::free(b->dyn);
        delete b;
    };
    const int nw = workers() < (int)nblocks ? workers() : (int)nblocks;
    if (nw <= 1) {
        work();
    } else {
        std::vector<std::thread> ts;
        for (int t = 1; t < nw; t++) ts.emplace_back([&] {
            work();
        });
        work();
        for (auto &t : ts) t.join();
    }
    /* Workers were joined (an ordering TSan sees); a single worker was this thread. */
    std::memcpy(last_msg, msg, sizeof msg);
    return code;
}

} // namespace cuda_emu
