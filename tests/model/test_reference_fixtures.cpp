// The model against the independent PyTorch reference (tests/reference/, fixtures
// rwkv{4,5,6,7}_tiny.h5: random weights, float64). Loads every official parameter by
// name and shape into the model in double and compares the logits (parallel and
// recurrent), the loss and the gradient of every parameter (L2Wrap off), with the
// naive and the chunked WKV. Measure: max |ours - ref| / max |ref| per tensor < 1e-9.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model/model.h"

namespace rwkv::model {
namespace {

struct H5File {
  hid_t id;
  explicit H5File(const std::string& path)
      : id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {}
  ~H5File() {
    if (id >= 0) H5Fclose(id);
  }
  int64_t attr(const char* name) const {
    int64_t v = 0;
    const hid_t a = H5Aopen(id, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    return v;
  }
  // Reads a dataset; its shape goes to *shape.
  template <typename T>
  std::vector<T> read(const std::string& name, hid_t type, std::vector<int64_t>* shape) const {
    const hid_t d = H5Dopen2(id, name.c_str(), H5P_DEFAULT);
    if (d < 0) return {};
    const hid_t s = H5Dget_space(d);
    const int rank = H5Sget_simple_extent_ndims(s);
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(s, dims.data(), nullptr);
    size_t n = 1;
    shape->clear();
    for (hsize_t x : dims) {
      n *= x;
      shape->push_back(static_cast<int64_t>(x));
    }
    std::vector<T> out(n);
    H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    H5Sclose(s);
    H5Dclose(d);
    return out;
  }
};

double rel_err(const double* a, const double* ref, size_t n) {
  double diff = 0, mx = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(a[i] - ref[i]));
    mx = std::max(mx, std::abs(ref[i]));
  }
  return mx > 0 ? diff / mx : diff;
}

void check_fixture(int version) {
  const std::string path = std::string(RWKV_SOURCE_DIR) + "/tests/reference/fixtures/rwkv" +
                           std::to_string(version) + "_tiny.h5";
  H5File f(path);
  ASSERT_GE(f.id, 0) << "cannot open " << path;
  ModelConfig cfg = make_model_config(
      version, static_cast<int>(f.attr("n_layer")), static_cast<int>(f.attr("n_embd")),
      static_cast<int>(f.attr("head_size")), static_cast<int>(f.attr("vocab_size")), 64,
      static_cast<int>(f.attr("dim_ffn")));
  ASSERT_EQ(f.attr("version"), version);
  const int B = static_cast<int>(f.attr("B")), T = static_cast<int>(f.attr("T"));
  std::vector<int64_t> shape;
  const auto idx = f.read<int32_t>("idx", H5T_NATIVE_INT32, &shape);
  const auto tgt = f.read<int32_t>("targets", H5T_NATIVE_INT32, &shape);
  const auto logits_ref = f.read<double>("logits", H5T_NATIVE_DOUBLE, &shape);
  const auto loss_ref = f.read<double>("loss", H5T_NATIVE_DOUBLE, &shape);
  ASSERT_EQ(loss_ref.size(), 1u);

  for (kernels::WkvAlgo algo : {kernels::WkvAlgo::naive, kernels::WkvAlgo::chunked}) {
    kernels::CpuBackend<double> be(4);
    Model<double> m(cfg, be, {algo, false});
    std::vector<double> params(static_cast<size_t>(m.table.total));
    for (const ParamInfo& p : m.table.params) {
      const auto v = f.read<double>("params/" + p.name, H5T_NATIVE_DOUBLE, &shape);
      ASSERT_EQ(shape, p.shape) << p.name << " missing or of another shape in the fixture";
      std::copy(v.begin(), v.end(), params.begin() + p.offset);
    }
    m.set_params(params);
    const auto logits = m.forward_logits(idx, B, T);
    EXPECT_LT(rel_err(logits.data(), logits_ref.data(), logits.size()), 1e-9) << "logits";

    // Recurrent, one batch row at a time.
    double step_err = 0;
    const size_t V = static_cast<size_t>(cfg.vocab_size);
    for (int b = 0; b < B; ++b) {
      RecurrentState<double> s = m.new_state();
      for (int t = 0; t < T; ++t) {
        const size_t row = static_cast<size_t>(b * T + t);
        const auto step = m.forward_step(idx[row], s);
        step_err = std::max(step_err, rel_err(step.data(), logits_ref.data() + row * V, V));
      }
    }
    EXPECT_LT(step_err, 1e-9) << "recurrent logits";

    m.zero_grad();
    const double loss = m.forward(idx, tgt, B, T);
    EXPECT_LT(std::abs(loss - loss_ref[0]) / std::abs(loss_ref[0]), 1e-9) << "loss";
    m.backward();
    const auto grads = m.get_grads();
    for (const ParamInfo& p : m.table.params) {
      const auto g = f.read<double>("grads/" + p.name, H5T_NATIVE_DOUBLE, &shape);
      ASSERT_EQ(static_cast<int64_t>(g.size()), p.size) << p.name;
      EXPECT_LT(rel_err(grads.data() + p.offset, g.data(), g.size()), 1e-9)
          << "grad of " << p.name << " (version " << version << ")";
    }
  }
}

TEST(ReferenceFixtures, V4) { check_fixture(4); }
TEST(ReferenceFixtures, V5) { check_fixture(5); }
TEST(ReferenceFixtures, V6) { check_fixture(6); }
TEST(ReferenceFixtures, V7) { check_fixture(7); }

}  // namespace
}  // namespace rwkv::model
