// Bad input gets an rwkv::Error naming the position and the id.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BadInput, TokenOutsideVocabNamesPositionAndId) {
  const ModelConfig cfg = test::tiny_config(7);
  kernels::CpuBackend<float> be;
  Model<float> m(cfg, be);
  m.init(1);
  std::vector<int32_t> idx(2 * 4, 3), tgt(2 * 4, 1);
  idx[1 * 4 + 2] = cfg.vocab_size;  // batch 1, t 2
  const std::string msg = error_of([&] { m.forward(idx, tgt, 2, 4); });
  EXPECT_NE(msg.find("token id 12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("batch 1, t 2"), std::string::npos) << msg;

  idx[1 * 4 + 2] = 0;
  tgt[3] = -1;
  const std::string msg2 = error_of([&] { m.forward(idx, tgt, 2, 4); });
  EXPECT_NE(msg2.find("targets"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("token id -1 at position (batch 0, t 3)"), std::string::npos) << msg2;

  RecurrentState<float> s = m.new_state();
  const std::string msg3 = error_of([&] { m.forward_step(100, s); });
  EXPECT_NE(msg3.find("token id 100"), std::string::npos) << msg3;
}

TEST(BadInput, LongerThanCtxLen) {
  const ModelConfig cfg = make_model_config(6, 1, 16, 8, 12, 4);
  kernels::CpuBackend<float> be;
  Model<float> m(cfg, be);
  const std::vector<int32_t> ids(5, 0);
  const std::string msg = error_of([&] { m.forward(ids, ids, 1, 5); });
  EXPECT_NE(msg.find("model.ctx_len (4)"), std::string::npos) << msg;
}

TEST(BadInput, WrongTokenCount) {
  const ModelConfig cfg = test::tiny_config(5);
  kernels::CpuBackend<float> be;
  Model<float> m(cfg, be);
  const std::vector<int32_t> idx(5, 0);
  EXPECT_THROW(m.forward_logits(idx, 2, 3), Error);
}

TEST(BadInput, HeadSizeMustDivideWidth) {
  kernels::CpuBackend<float> be;
  const ModelConfig cfg = make_model_config(6, 2, 20, 8, 12, 16);
  const std::string msg = error_of([&] { Model<float> m(cfg, be); });
  EXPECT_NE(msg.find("model.head_size"), std::string::npos) << msg;
}

}  // namespace
}  // namespace rwkv::model
