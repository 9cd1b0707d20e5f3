# cmake -P script: one nvcc run over the generated all-kernels translation unit.
#   nvcc -c (a full host + device compile, so host/device mistakes fail here) with --keep, whose device half
#   leaves latent_kernels.fatbin behind; -Xptxas -v prints registers / shared memory / spills per kernel.
# Inputs: NVCC, SRC, OUT_DIR, ARCHS (e.g. 80;90), INCLUDES. Outputs: OUT_DIR/latent_kernels.fatbin,
# OUT_DIR/ptxas-report.txt. Fails on any nvcc error or warning and on any spill.
set(gencode)
foreach(a ${ARCHS})
  list(APPEND gencode -gencode arch=compute_${a},code=sm_${a})
  set(last ${a})
endforeach()
list(APPEND gencode -gencode arch=compute_${last},code=compute_${last})
set(incs)
foreach(i ${INCLUDES})
  list(APPEND incs -I${i})
endforeach()
set(keep ${OUT_DIR}/keep)
file(REMOVE_RECURSE ${keep})
file(MAKE_DIRECTORY ${keep})
execute_process(
  COMMAND ${NVCC} -c -std=c++17 -O3 -Xptxas -v -Werror all-warnings --keep --keep-dir ${keep} ${gencode}
          ${incs} -o ${OUT_DIR}/latent_kernels.o ${SRC}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(WRITE ${OUT_DIR}/ptxas-report.txt "${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nvcc failed (${rc}):\n${out}${err}")
endif()
string(REGEX MATCHALL "[1-9][0-9]* bytes spill (stores|loads)" spills "${err}")
if(spills)
  message(FATAL_ERROR "a kernel spills registers (see ${OUT_DIR}/ptxas-report.txt):\n${err}")
endif()
file(GLOB fatbins ${keep}/*.fatbin)
list(LENGTH fatbins nfat)
if(NOT nfat EQUAL 1)
  message(FATAL_ERROR "expected one .fatbin in ${keep}, found: ${fatbins}")
endif()
file(COPY_FILE ${fatbins} ${OUT_DIR}/latent_kernels.fatbin)
