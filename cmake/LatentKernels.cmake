# Helpers for the kernel tree: per-file ISA flags and the native test registration.
#
# latent_isa_flags(<sources...>): `-mavx2 -mfma` on *_avx2.c only, so nothing outside those files can emit
# AVX2 and a CPU without it still runs the reference (never -march=native in what ships).
function(latent_isa_flags)
  foreach(src ${ARGN})
    if(src MATCHES "_avx2\\.c$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
    endif()
  endforeach()
endfunction()

# latent_native_test(<name> <source>): one test binary linked against the shipped objects (never a copy),
# registered twice, at ISA ref and at ISA avx2 (LATENT_MAX_ISA), as CI must run every level.
function(latent_native_test name src)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE latent_static m pthread)
  target_include_directories(${name} PRIVATE ${LATENT_INCLUDE_DIRS} ${CMAKE_SOURCE_DIR}/native/test)
  foreach(isa ref avx2)
    add_test(NAME ${name}_${isa} COMMAND ${name})
    set_tests_properties(${name}_${isa} PROPERTIES ENVIRONMENT "LATENT_MAX_ISA=${isa}" TIMEOUT 600)
  endforeach()
endfunction()
