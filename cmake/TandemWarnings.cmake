add_library(tandem_warnings INTERFACE)
target_compile_options(tandem_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Werror=return-type -Werror=unused-result>)

# CPU kernels target x86-64-v3 (AVX2, FMA, F16C) as the floor; wider paths are chosen at run time.
add_library(tandem_cpu_arch INTERFACE)
if(TANDEM_NATIVE)
  target_compile_options(tandem_cpu_arch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  target_compile_options(tandem_cpu_arch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=x86-64-v3>)
endif()
