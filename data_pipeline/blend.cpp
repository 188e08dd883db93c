#include "data_pipeline/blend.h"

#include <cmath>

#include "common/error.h"

namespace rwkv::data {

std::vector<int64_t> blend_integer_weights(const std::vector<double>& proportions) {
  double sum = 0;
  for (const double p : proportions) {
    if (!(p >= 0) || !std::isfinite(p)) throw Error("blend weights must be finite and >= 0");
    sum += p;
  }
  if (!(sum > 0)) throw Error("blend weights must not all be 0");
  std::vector<int64_t> w;
  for (const double p : proportions) w.push_back(std::llround(p / sum * static_cast<double>(1 << 30)));
  return w;
}

std::vector<double> temperature_proportions(const std::vector<uint64_t>& sizes, double alpha) {
  std::vector<double> p;
  double sum = 0;
  for (const uint64_t n : sizes) {
    p.push_back(n == 0 ? 0.0 : std::pow(static_cast<double>(n), alpha));
    sum += p.back();
  }
  if (!(sum > 0)) throw Error("temperature blending: every group is empty");
  for (double& x : p) x /= sum;
  return p;
}

size_t blend_next(const std::vector<int64_t>& weights, std::vector<int64_t>& credit) {
  int64_t total = 0;
  size_t best = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    credit[g] += weights[g];
    total += weights[g];
    if (credit[g] > credit[best]) best = g;
  }
  credit[best] -= total;
  return best;
}

}  // namespace rwkv::data
