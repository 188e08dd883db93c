#pragma once
// Official initialisation of every parameter, per version (RWKV-LM: the fancy
// time_* / maa / w0 / a0 / v0 / k_k / k_a / r_k formulas in each TimeMix / ChannelMix
// __init__, and generate_init_weight for the matrices, embedding and ln_x), seeded and
// reproducible. Orthogonal init as torch.nn.init.orthogonal_ (QR of a Gaussian
// matrix, signs fixed by diag(R)), with LAPACK dgeqrf/dorgqr from OpenBLAS.
#include <cstdint>

#include "model/model_config.h"
#include "model/param_table.h"

namespace rwkv::model {

// Fills host [table.total] for cfg. Each parameter draws from its own stream of
// (seed, index in the table), so the result does not depend on the order of work;
// a tensor-parallel table gets its slabs of the same whole tensors.
template <typename F>
void init_params(const ModelConfig& cfg, const ParamTable& table, uint64_t seed, F* host);

// torch.nn.init.orthogonal_(W [rows, cols], gain) into out (row-major), as doubles.
void orthogonal_init(double* out, int64_t rows, int64_t cols, double gain, uint64_t seed);

}  // namespace rwkv::model
