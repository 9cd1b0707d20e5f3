/* Test fixture for ci/check-glibc.sh: a library built WITHOUT native/src/glibc_compat.h that calls exp and
 * pthread_create, so on a glibc 2.34+ build host it needs GLIBC_2.29 and GLIBC_2.34. The check must reject it. */
#include <math.h>
#include <pthread.h>

static void *lt_fixture_run(void *arg) { return arg; }

__attribute__((visibility("default"))) double lt_fixture_newglibc(double x) {
    pthread_t t;
    if (pthread_create(&t, 0, lt_fixture_run, 0) == 0) pthread_join(t, 0);
    return exp(x);
}
