# Warnings for the project's own C++ targets: -Wall -Wextra, -Werror when RWKV_WERROR is ON.
add_library(rwkv_warnings INTERFACE)
target_compile_options(rwkv_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${RWKV_WERROR}>>:-Werror>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${RWKV_WERROR}>>:-Werror=all-warnings>)
