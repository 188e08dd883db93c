#include "trainer/evaluate.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "common/mpi_check.h"

namespace rwkv::trainer {

template <typename A>
EvalMetrics evaluate(model::Model<float, A>& model, const data::LoaderOptions& val, int64_t batches,
                     MPI_Comm comm) {
  data::Loader loader(val);
  const auto& langs = loader.languages();
  const size_t L = langs.size();
  // sums: [nats, tokens, bytes, nats per language (L), tokens per language (L)]
  std::vector<double> sums(3 + 2 * L, 0.0);
  const int T = static_cast<int>(val.ctx_len);
  for (int64_t b = 0; b < batches; ++b) {
    const data::Batch batch = loader.next();
    // Each window's own mean loss: the windows of a batch may be in different languages.
    const std::vector<int32_t> idx(batch.inputs.begin(), batch.inputs.end());
    const std::vector<int32_t> tgt(batch.targets.begin(), batch.targets.end());
    const std::vector<double> rows =
        model.row_losses(idx, tgt, static_cast<int>(batch.batch_size), T);
    for (uint64_t row = 0; row < batch.batch_size; ++row) {
      const double nats = rows[row] * T;
      sums[0] += nats;
      sums[1] += T;
      if (!batch.bytes.empty()) sums[2] += static_cast<double>(batch.bytes[row]);
      sums[3 + batch.lang[row]] += nats;
      sums[3 + L + batch.lang[row]] += T;
    }
  }
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums.data(), static_cast<int>(sums.size()), MPI_DOUBLE,
                          MPI_SUM, comm));
  EvalMetrics m;
  m.loss = sums[0] / sums[1];
  m.ppl = std::exp(m.loss);
  if (!val.token_bytes.empty() && sums[2] > 0) m.bpb = sums[0] / std::numbers::ln2 / sums[2];
  m.tokens = static_cast<uint64_t>(sums[1]);
  for (size_t l = 0; l < L; ++l)
    if (sums[3 + L + l] > 0) m.loss_by_lang[langs[l]] = sums[3 + l] / sums[3 + L + l];
  return m;
}

template EvalMetrics evaluate<float>(model::Model<float>&, const data::LoaderOptions&, int64_t,
                                     MPI_Comm);
template EvalMetrics evaluate<kernels::Bf16>(model::Model<float, kernels::Bf16>&,
                                             const data::LoaderOptions&, int64_t, MPI_Comm);

}  // namespace rwkv::trainer
