/* Test fixture: a library claiming an ABI version Java does not know. LoaderTest expects a clear error. */
#include "latent.h"
LT_API int32_t lt_abi_version(void) { return LT_ABI_VERSION + 1000; }
