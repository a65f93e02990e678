# G3Cuda.cmake: the optional CUDA backend (src/cuda/).
#
# G3_CUDA = ON | OFF | AUTO (default AUTO). AUTO builds the backend when nvcc
# is found: CMAKE_CUDA_COMPILER if given, else nvcc on PATH, in CUDA_HOME
# (or CUDA_PATH), in /usr/local/cuda, or in the project's private toolkit
# folder .cuda/toolkit (scripts/get-cuda.sh puts the toolkit from the Python
# package index there). ON fails the configure without nvcc.
#
# With the backend, src/cuda/*.cu (CUDA C kernels behind the C interface
# src/cuda/g3_cuda.h) join the library, compiled for G3_CUDA_ARCHS (default
# 90: sm_90 code for H100/H200 plus compute_90 PTX that newer GPUs JIT), and
# the CUDA runtime is linked statically: the binary needs only the driver
# (libcuda.so.1, loaded at run time), so it still starts, CPU-only, on a
# machine without one. Without the backend, src/cuda/g3_cuda_stub.c answers
# "no CUDA device" and the rest of the project is unchanged.
set(G3_CUDA AUTO CACHE STRING "CUDA backend: ON, OFF or AUTO (on when nvcc is found)")
set_property(CACHE G3_CUDA PROPERTY STRINGS ON OFF AUTO)
set(G3_CUDA_ARCHS 90 CACHE STRING "CUDA architectures (CMAKE_CUDA_ARCHITECTURES syntax)")

set(G3_CUDA_ENABLED OFF)
if(NOT G3_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER)
    set(_g3_hints "")
    foreach(_v CUDA_HOME CUDA_PATH)
      if(DEFINED ENV{${_v}})
        list(APPEND _g3_hints "$ENV{${_v}}/bin")
      endif()
    endforeach()
    find_program(G3_NVCC nvcc HINTS ${_g3_hints}
                 PATHS /usr/local/cuda/bin "${PROJECT_SOURCE_DIR}/.cuda/toolkit/bin")
    if(G3_NVCC)
      set(CMAKE_CUDA_COMPILER "${G3_NVCC}")
    endif()
  endif()
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES ${G3_CUDA_ARCHS})
    endif()
    set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
    enable_language(CUDA)
    set(G3_CUDA_ENABLED ON)
  elseif(G3_CUDA STREQUAL "ON")
    message(FATAL_ERROR "G3_CUDA=ON but no nvcc was found: install the CUDA toolkit, set CUDA_HOME, "
                        "or run scripts/get-cuda.sh (the toolkit from the Python package index into .cuda/)")
  endif()
endif()

if(G3_CUDA_ENABLED)
  file(GLOB G3_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda/*.cu)
  target_sources(gemma3 PRIVATE ${G3_CUDA_SOURCES})
  # the library target existed before enable_language(CUDA): set what a
  # target made afterwards would have taken from CMAKE_CUDA_*
  set_target_properties(gemma3 PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                        CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}" CUDA_RUNTIME_LIBRARY Static)
  target_compile_options(gemma3 PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter,-Wno-unknown-pragmas>
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>)
  if(G3_WERROR)
    target_compile_options(gemma3 PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
  endif()
  # the static runtime's own dependencies (C++ runtime, dlopen of the driver)
  target_link_libraries(gemma3 PUBLIC ${CMAKE_DL_LIBS} rt stdc++)
  target_compile_definitions(gemma3 PRIVATE G3_HAVE_CUDA=1)
  message(STATUS "gemma-chat: CUDA backend ON (${CMAKE_CUDA_COMPILER}, ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  target_sources(gemma3 PRIVATE ${PROJECT_SOURCE_DIR}/src/cuda/g3_cuda_stub.c)
  message(STATUS "gemma-chat: CUDA backend OFF (G3_CUDA=${G3_CUDA}; no nvcc found or disabled)")
endif()
