/* Force-included (-include, CMakeLists.txt) into every source of liblatent.so on x86-64 glibc hosts, so the
 * library loads on glibc 2.28 and later whatever glibc it is built on (docs/decisions.md, "glibc 2.28").
 *
 * A build host links each libc/libm function at its newest (default) symbol version. Only these need more than
 * GLIBC_2.28 on a 2.34+ host; each is bound here to the x86-64 baseline version GLIBC_2.2.5, which every glibc
 * still exports:
 *   - exp, log, pow: GLIBC_2.29 versions only dropped the SVID error-handling wrapper; the 2.2.5 versions are that
 *     wrapper around the same implementation (same results; errno set as POSIX says).
 *   - pthread_create/join, pthread_barrier_*: GLIBC_2.34 is where libpthread moved into libc; the 2.2.5 versions
 *     are aliases of the same functions in libc 2.34+ and live in libpthread.so.0 before (a DT_NEEDED of ours).
 * Not redirected on purpose: pthread_cond_* stay at GLIBC_2.3.2 (2.2.5 is the old, incompatible condvar ABI).
 * ci/check-glibc.sh fails the build when any other symbol needs a newer version: add it here (with the reason)
 * or avoid the function. Only declarations of assembler aliases: this header adds no code. */
#ifndef LT_GLIBC_COMPAT_H
#define LT_GLIBC_COMPAT_H

#if defined(__x86_64__) && defined(__linux__)
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver log,log@GLIBC_2.2.5");
__asm__(".symver pow,pow@GLIBC_2.2.5");
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.2.5");
__asm__(".symver pthread_barrier_init,pthread_barrier_init@GLIBC_2.2.5");
__asm__(".symver pthread_barrier_wait,pthread_barrier_wait@GLIBC_2.2.5");
__asm__(".symver pthread_barrier_destroy,pthread_barrier_destroy@GLIBC_2.2.5");
#endif

#endif
