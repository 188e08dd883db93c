// Collective config loading under mpiexec -n 3: rank 0 validates, every rank gets
// the same verdict, and no rank hangs when the config is bad.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <fstream>

#include "common/config.h"

using namespace rwkv;

namespace {
int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
}  // namespace

TEST(ConfigMpi, EveryRankGetsTheSameResolvedConfig) {
  const Config c = load_config_collective(MPI_COMM_WORLD, {"", {"model.n_layer=5"}});
  EXPECT_EQ(c.get_int("model.n_layer"), 5);
  const std::string yaml = c.to_yaml();
  std::string root_yaml = yaml;
  int n = static_cast<int>(yaml.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  root_yaml.resize(n);
  MPI_Bcast(root_yaml.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
  EXPECT_EQ(yaml, root_yaml);
}

TEST(ConfigMpi, OnlyRankZeroReadsTheRequest) {
  // Other ranks pass a request that would fail on their own; they still get rank 0's config.
  ConfigRequest req = rank() == 0 ? ConfigRequest{"", {"model.n_embd=128"}}
                                  : ConfigRequest{"/nonexistent.yaml", {}};
  const Config c = load_config_collective(MPI_COMM_WORLD, req);
  EXPECT_EQ(c.get_int("model.n_embd"), 128);
}

TEST(ConfigMpi, BadConfigFailsOnEveryRankWithTheSameMessage) {
  std::string msg;
  try {
    load_config_collective(MPI_COMM_WORLD, {"", {"model.n_layer=0", "parallel.tp=3"}});
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("'model.n_layer' = 0"), std::string::npos) << msg;
  int len = static_cast<int>(msg.size()), min_len = 0, max_len = 0;
  MPI_Allreduce(&len, &min_len, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&len, &max_len, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(min_len, max_len);
  EXPECT_GT(min_len, 0);
}
