#pragma once
// Blending groups of windows (languages) in fixed proportions, deterministically:
// smooth weighted round-robin (the nginx upstream scheduler): every step each
// group's credit grows by its weight, the group with the most credit is chosen
// and pays the total weight. After t steps group g has been chosen t*w_g/W times
// up to an error below the number of groups, so any 10,000 consecutive choices
// match the target proportions to within a few groups / 10,000.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rwkv::data {

// Target proportions -> integer weights (sum about 2^30) for blend_next().
std::vector<int64_t> blend_integer_weights(const std::vector<double>& proportions);

// Temperature sampling: p_g proportional to n_g^alpha (alpha = 1: natural sizes,
// alpha -> 0: uniform), normalised to sum 1.
std::vector<double> temperature_proportions(const std::vector<uint64_t>& sizes, double alpha);

// One step: updates `credit` (one entry per group, starts at 0) and returns the chosen group.
size_t blend_next(const std::vector<int64_t>& weights, std::vector<int64_t>& credit);

}  // namespace rwkv::data
