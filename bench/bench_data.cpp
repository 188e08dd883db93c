// Loader throughput: random windows of ctx_len+1 tokens from page-cached shards
// (docs/performance.md, "Data pipeline"). The dataset (64 Mi uint16 tokens in 4
// shards, random documents) is written once under $TMPDIR by ShardWriter.
// Throughput is the prefetch thread's: one core reads and assembles the windows.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "data_pipeline/loader.h"
#include "data_pipeline/manifest.h"
#include "data_pipeline/shard_writer.h"

namespace {

using namespace rwkv::data;

std::string make_dataset() {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/rwkv_bench_data";
  if (std::filesystem::exists(dir + "/" + kManifestName)) return dir;
  std::filesystem::create_directories(dir);
  Manifest m;
  m.format_version = kShardFormatVersion;
  m.tokenizer_kind = "world";
  m.vocab_size = 65536;
  m.token_bytes = 2;
  std::mt19937 rng(1);
  std::vector<uint32_t> doc;
  for (int s = 0; s < 4; ++s) {
    ShardInfo header;
    header.tokenizer_kind = "world";
    header.vocab_size = 65536;
    const std::string name = "shard-0000" + std::to_string(s) + ".h5";
    ShardWriter w(dir + "/" + name, header);
    for (uint64_t n = 0; n < (uint64_t{16} << 20);) {
      doc.resize(100 + rng() % 4000);
      for (auto& t : doc) t = 1 + rng() % 65535;
      doc.back() = 0;
      w.add(doc, "en", doc.size() * 4, false);
      n += doc.size();
    }
    const ShardInfo info = w.finish({}, {});
    ManifestShard e;
    e.file = name;
    e.file_bytes = std::filesystem::file_size(info.path);
    e.docs = e.train_docs = info.n_docs;
    e.tokens = e.train_tokens = info.n_tokens;
    e.sha256 = info.tokens_sha256;
    e.langs["en"] = {info.n_docs, info.n_tokens, 0};
    m.langs["en"].docs += info.n_docs;
    m.langs["en"].tokens += info.n_tokens;
    m.docs += info.n_docs;
    m.tokens += info.n_tokens;
    m.shards.push_back(e);
  }
  m.train_docs = m.docs;
  m.train_tokens = m.tokens;
  write_manifest(dir, m);
  return dir;
}

void BM_LoaderRandomWindows(benchmark::State& state) {
  LoaderOptions o;
  o.dataset = make_dataset();
  o.ctx_len = static_cast<uint64_t>(state.range(0));
  o.micro_batch = 8;
  Loader loader(o);
  for (int i = 0; i < 20; ++i) loader.next();  // warm the page cache
  for (auto _ : state) benchmark::DoNotOptimize(loader.next().inputs.data());
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations() * o.micro_batch * o.ctx_len),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LoaderRandomWindows)->Arg(512)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
