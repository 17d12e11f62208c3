# g3n_add_library(NAME DIR LIBS...): a static library of every DIR/*.c.
# Files named *_avx2.c and *_avx512.c are compiled for those instruction sets
# (and must only run after a run-time CPU check); everything else targets
# baseline x86-64.
set(G3N_AVX2_FLAGS -mavx2 -mfma -mf16c)
set(G3N_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx512vnni -mfma -mf16c)

function(g3n_simd_flags)
  foreach(source IN LISTS ARGN)
    if(source MATCHES "_avx512\\.c$")
      set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "${G3N_AVX512_FLAGS}")
    elseif(source MATCHES "_avx2\\.c$")
      set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "${G3N_AVX2_FLAGS}")
    endif()
  endforeach()
endfunction()

function(g3n_add_library name dir)
  file(GLOB sources CONFIGURE_DEPENDS ${dir}/*.c)
  g3n_simd_flags(${sources})
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${dir})
  target_link_libraries(${name} PUBLIC ${ARGN})
endfunction()
