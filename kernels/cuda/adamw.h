#pragma once
// AdamW on the GPU, fp32: one step over a flat parameter buffer with per-segment
// learning-rate and weight-decay multipliers, the math of the CPU kernel
// kernels/cpu/adamw.h (decoupled decay as DeepSpeed FusedAdam(adam_w_mode=True), with
// bias correction). p, g, m, v are device pointers indexing the whole flat buffer; the
// segment table stays on the host and travels in the kernels' arguments (nothing is
// allocated or copied). Launches go to `stream`; nothing is synchronised. Bad segments
// or step throw rwkv::Error naming the function and the segment.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "kernels/op_types.h"

namespace rwkv::cuda {

// Step t counts from 1.
void adamw_step(float* p, const float* g, float* m, float* v,
                std::span<const kernels::AdamWSegment> segments, const kernels::AdamWHyper& h,
                int64_t t, cudaStream_t stream);

}  // namespace rwkv::cuda
