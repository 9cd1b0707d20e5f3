# Helpers for the kernel tree: per-file ISA flags and the native test registration.
#
# latent_isa_flags(<sources...>): `-mavx2 -mfma` on *_avx2.c only; AVX-512 F/BW/VL/DQ (+ AVX2, FMA) on
# *_avx512.c only; the same plus AVX512_BF16 on *_avx512_bf16.c only (called only when lt_cpu_bf16()). So
# nothing outside those files can emit those instructions, and a CPU without them still runs the level below
# (never -march=native in what ships).
set(LATENT_AVX512_FLAGS "-mavx2;-mfma;-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq")
function(latent_isa_flags)
  foreach(src ${ARGN})
    if(src MATCHES "_avx2\\.c$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
    elseif(src MATCHES "_avx512\\.c$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${LATENT_AVX512_FLAGS}")
    elseif(src MATCHES "_avx512_bf16\\.c$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${LATENT_AVX512_FLAGS};-mavx512bf16")
    endif()
  endforeach()
endfunction()

# latent_native_test(<name> <source>): one test binary linked against the shipped objects (never a copy),
# registered three times, at ISA ref, avx2 and avx512 (LATENT_MAX_ISA), as CI must run every level; on a CPU
# without AVX-512 the avx512 run prints "skipped: no AVX-512" and passes (lt_test.h's gate).
function(latent_native_test name src)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE latent_static m pthread)
  target_include_directories(${name} PRIVATE ${LATENT_INCLUDE_DIRS} ${CMAKE_SOURCE_DIR}/native/test)
  foreach(isa ref avx2 avx512)
    add_test(NAME ${name}_${isa} COMMAND ${name})
    set_tests_properties(${name}_${isa} PROPERTIES ENVIRONMENT "LATENT_MAX_ISA=${isa}" TIMEOUT 600)
  endforeach()
endfunction()
