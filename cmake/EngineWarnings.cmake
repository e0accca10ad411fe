# Warnings and sanitizers, applied per target with eng_target_defaults(<target>).
set(ENG_C_WARNINGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
    -Wvla -Wundef -Wimplicit-fallthrough)
# nvcc compiles .cu as C++: the C-only warnings would be rejected by the host compiler.
set(ENG_CUDA_HOST_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wundef)

set(ENG_SAN_FLAGS "")
if(ENG_SANITIZE)
  set(ENG_SAN_FLAGS -fsanitize=${ENG_SANITIZE} -fno-omit-frame-pointer)
  if(ENG_SANITIZE MATCHES "undefined")
    list(APPEND ENG_SAN_FLAGS -fno-sanitize-recover=undefined)
  endif()
  add_link_options(-fsanitize=${ENG_SANITIZE})
endif()

# ENG_FUZZ: everything carries coverage for libFuzzer plus ASan/UBSan; harnesses add
# -fsanitize=fuzzer at link time (tests/*.cmake). Needs clang.
if(ENG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ENG_FUZZ=ON needs clang (libFuzzer): -DCMAKE_C_COMPILER=clang")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-fsanitize=fuzzer-no-link,address,undefined>
                      $<$<COMPILE_LANGUAGE:C>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
endif()

function(eng_target_defaults target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:${ENG_C_WARNINGS} ${ENG_SAN_FLAGS}>)
  if(ENG_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror>)
  endif()
  if(ENG_CUDA)
    list(JOIN ENG_CUDA_HOST_WARNINGS "," _hw)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${_hw} --expt-relaxed-constexpr>)
    if(ENG_WERROR)
      target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
    endif()
    # nvcc passes the toolkit's include directory with -I, so -Wundef fires inside
    # cuda_runtime.h; naming it again with -isystem makes those system headers.
    foreach(_inc ${CUDAToolkit_INCLUDE_DIRS})
      target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-isystem,${_inc}>)
    endforeach()
  endif()
endfunction()
