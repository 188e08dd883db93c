// The TP group's sum of bf16 activations over MPI (trainer/tp_comm_mpi.h, TpBf16Mpi), on 4
// ranks, in groups of 2 and of 4: bf16 values travel as 16-bit words and a user-defined
// sum adds each pair in fp32 and rounds once.
//   - two ranks: every element is exactly from_float(a + b), the sum rounded once, on
//     both ranks (cases chosen to round: ties to even, carries, cancellation, infinity);
//   - four ranks: every rank gets the same bits, each within the rounding of three
//     additions of the exact sum (3 half-steps of bf16 at the partial sums' magnitude);
//   - one rank: nothing changes.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/mpi_check.h"
#include "common/mpi_util.h"
#include "kernels/cuda/bf16.h"
#include "trainer/tp_comm_mpi.h"

namespace rwkv::trainer {
namespace {

using cuda::Bf16;
using cuda::from_float;
using cuda::to_float;

// Ranks in groups of `size` consecutive world ranks.
struct Group {
  explicit Group(int size) {
    const int rank = comm_rank(MPI_COMM_WORLD);
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, rank / size, rank % size, &comm));
  }
  ~Group() { MPI_Comm_free(&comm); }
  MPI_Comm comm = MPI_COMM_NULL;
};

// Value i of rank r: random bf16 of spread magnitudes, the same on every rank for the
// same (r, i).
std::vector<Bf16> values_of(int r, int64_t n) {
  std::mt19937 gen(1234 + static_cast<unsigned>(r));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> scale(-6, 6);
  std::vector<Bf16> x(static_cast<size_t>(n));
  for (Bf16& e : x) e = from_float<Bf16>(std::ldexp(normal(gen), scale(gen)));
  return x;
}

TEST(TpBf16Mpi, TwoRanksGiveTheSumRoundedOnce) {
  const Group g(2);
  TpBf16Mpi sum(g.comm);
  const int r = comm_rank(g.comm);
  ASSERT_EQ(sum.where().size, 2);
  ASSERT_EQ(sum.where().rank, r);
  // Pairs (rank 0's, rank 1's) whose sums must round: 1 + 2^-8 is a tie between 1 and
  // 1 + 2^-7 (even: 1); 1 + 3 * 2^-8 a tie up to 1 + 2^-6; 255 + 1.5 carries into the
  // exponent (256 + 2 rounds to 256 or 258); x + (-x) is 0; two large values overflow.
  const std::vector<std::pair<float, float>> pairs = {
      {1.0f, 0x1p-8f},      {1.0f, 3 * 0x1p-8f}, {255.0f, 1.5f}, {3.140625f, -3.140625f},
      {0x1p127f, 0x1p127f}, {-2.5f, 0.0078125f}, {1e-3f, 1e3f},  {0.1f, 0.2f}};
  std::vector<Bf16> a = values_of(0, 1000), b = values_of(1, 1000);
  for (const auto& [x, y] : pairs) {
    a.push_back(from_float<Bf16>(x));
    b.push_back(from_float<Bf16>(y));
  }
  std::vector<Bf16> buf = r == 0 ? a : b;
  sum.all_reduce_sum(buf.data(), static_cast<int64_t>(buf.size()));
  for (size_t i = 0; i < buf.size(); ++i) {
    const Bf16 want = from_float<Bf16>(to_float(a[i]) + to_float(b[i]));
    ASSERT_EQ(buf[i].bits, want.bits) << "element " << i << ": " << to_float(a[i]) << " + "
                                      << to_float(b[i]) << " gave " << to_float(buf[i]);
  }
  EXPECT_TRUE(std::isinf(to_float(buf[1000 + 4])));
}

TEST(TpBf16Mpi, FourRanksAgreeWithinTheRoundingOfThreeAdditions) {
  const Group g(4);
  TpBf16Mpi sum(g.comm);
  const int r = comm_rank(g.comm);
  const int64_t n = 100000;
  std::vector<Bf16> buf = values_of(r, n);
  sum.all_reduce_sum(buf.data(), n);
  std::vector<std::vector<Bf16>> terms;
  for (int q = 0; q < 4; ++q) terms.push_back(values_of(q, n));
  for (int64_t i = 0; i < n; ++i) {
    double exact = 0, bound = 0;
    for (int q = 0; q < 4; ++q) {
      exact += to_float(terms[q][static_cast<size_t>(i)]);
      bound += std::abs(to_float(terms[q][static_cast<size_t>(i)]));
    }
    // Each of the three roundings errs by at most half a step (2^-8 relative) of a
    // partial sum, which is at most the sum of the magnitudes (1.01: second-order terms).
    ASSERT_LE(std::abs(to_float(buf[static_cast<size_t>(i)]) - exact), 1.01 * 3 * 0x1p-8 * bound)
        << "element " << i;
  }
  // Every rank holds the same bits: rank 0's, broadcast, against each rank's.
  std::vector<Bf16> first = buf;
  MPI_CHECK(MPI_Bcast(first.data(), static_cast<int>(n), MPI_UINT16_T, 0, g.comm));
  int differ = 0;
  for (int64_t i = 0; i < n; ++i)
    differ += first[static_cast<size_t>(i)].bits != buf[static_cast<size_t>(i)].bits;
  EXPECT_EQ(differ, 0) << "TP rank " << r << " holds other bits than rank 0";
}

TEST(TpBf16Mpi, OneRankLeavesTheValues) {
  const Group g(1);
  TpBf16Mpi sum(g.comm);
  EXPECT_EQ(sum.where().size, 1);
  const std::vector<Bf16> want = values_of(comm_rank(MPI_COMM_WORLD), 64);
  std::vector<Bf16> buf = want;
  sum.all_reduce_sum(buf.data(), 64);
  for (size_t i = 0; i < buf.size(); ++i) EXPECT_EQ(buf[i].bits, want[i].bits) << i;
}

}  // namespace
}  // namespace rwkv::trainer
