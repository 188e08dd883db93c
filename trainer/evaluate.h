#pragma once
// Evaluation on the validation split: the first `batches` global batches of the
// val split (the same windows at every evaluation: a fresh loader from the start),
// each rank scoring its slice; sums are all-reduced in double.
//   loss  = sum of token cross-entropies (nats) / tokens
//   ppl   = exp(loss)
//   bpb   = sum of nats / ln 2 / UTF-8 bytes of the targets (bits per byte, so runs
//           with different tokenizers compare)
// Per language: the same over the windows whose first target is in that language.
#include <mpi.h>

#include <cstdint>

#include "data_pipeline/loader.h"
#include "model/model.h"
#include "trainer/metrics_log.h"

namespace rwkv::trainer {

// val: the loader options of this rank (split "val", dp_rank/dp_size set). A: the model's
// activations (float or Bf16, both instantiated).
template <typename A>
EvalMetrics evaluate(model::Model<float, A>& model, const data::LoaderOptions& val, int64_t batches,
                     MPI_Comm comm);

}  // namespace rwkv::trainer
