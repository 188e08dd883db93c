# Warnings for the project's own C++ targets: -Wall -Wextra, -Werror when RWKV_WERROR is ON.
# CUDA code also gets ptxas's warning for registers spilled to local memory (an error in
# CI, where RWKV_WERROR is ON: the issue asks for kernels without spills).
add_library(rwkv_warnings INTERFACE)
target_compile_options(rwkv_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${RWKV_WERROR}>>:-Werror>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xptxas=-warn-spills>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${RWKV_WERROR}>>:-Werror=all-warnings>)
