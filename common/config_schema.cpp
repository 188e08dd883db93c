#include "common/config_schema.h"

#include <limits>

namespace rwkv {

namespace {

constexpr double kIntMax = static_cast<double>(std::numeric_limits<int32_t>::max());

std::vector<KeySpec> build_schema() {
  using K = KeyType;
  return {
      // model: architecture. Depth (n_layer) and width (n_embd) are independent.
      {"model.preset",
       K::String,
       "",
       {},
       {},
       {},
       "model preset to start from: a name from `rwkv config presets` or a YAML file "
       "(relative to the config file); keys set beside it override it"},
      {"model.version", K::Int, "7", {}, {}, {"4", "5", "6", "7"}, "RWKV architecture version"},
      {"model.n_layer", K::Int, "12", 1, 1024, {}, "number of blocks (depth)"},
      {"model.n_embd", K::Int, "768", 8, 65536, {}, "model width C"},
      {"model.head_size",
       K::Int,
       "64",
       1,
       4096,
       {},
       "channels per head N (v5-v7); n_embd must be a multiple"},
      {"model.vocab_size", K::Int, "65536", 2, kIntMax, {}, "vocabulary size V"},
      {"model.ctx_len", K::Int, "4096", 1, 1 << 24, {}, "training context length T"},
      {"model.dim_ffn",
       K::Int,
       "0",
       0,
       kIntMax,
       {},
       "channel-mix hidden size; 0 = the official default: 4*C for v4/v7, "
       "int(3.5*C)//32*32 for v5/v6"},
      {"model.norm",
       K::Enum,
       "layernorm",
       {},
       {},
       {"layernorm", "rmsnorm"},
       "normalisation of ln0/ln1/ln2/ln_out"},
      {"model.ffn_activation",
       K::Enum,
       "relu_squared",
       {},
       {},
       {"relu_squared", "relu"},
       "channel-mix activation"},

      // data: the preprocessed dataset the trainer reads.
      {"data.path",
       K::Path,
       "",
       {},
       {},
       {},
       "dataset directory written by `rwkv preprocess` (holds manifest.yaml)"},
      {"data.align_to_documents",
       K::Enum,
       "false",
       {},
       {},
       {"false", "true"},
       "false: windows run through the token stream across documents (RWKV-LM); true: "
       "windows start at document starts"},
      {"data.blend_alpha",
       K::Float,
       "0",
       0,
       1,
       {},
       "blend languages with probability proportional to tokens^alpha; 0 = no blending "
       "(every document of the split in one stream)"},

      // train: batch shape, length, seed, evaluation.
      {"train.micro_batch_size", K::Int, "8", 1, 1 << 20, {}, "sequences per rank per micro-batch"},
      {"train.grad_accum", K::Int, "1", 1, 1 << 20, {}, "micro-batches per optimizer step"},
      {"train.steps", K::Int, "1000", 1, kIntMax, {}, "optimizer steps to run"},
      {"train.seed", K::Int, "42", 0, kIntMax, {}, "seed of every random stream"},
      {"train.eval_every", K::Int, "100", 0, kIntMax, {}, "steps between evaluations; 0 = never"},
      {"train.max_nonfinite_skips",
       K::Int,
       "10",
       1,
       kIntMax,
       {},
       "consecutive skipped (non-finite) updates before the run stops"},
      {"train.eval_batches",
       K::Int,
       "8",
       1,
       kIntMax,
       {},
       "global batches of the validation split scored at each evaluation"},
      {"train.max_runtime",
       K::Float,
       "0",
       0,
       1e9,
       {},
       "minutes of wall-clock time, then checkpoint and exit as on SIGTERM; 0 = no limit"},
      {"train.threads",
       K::Int,
       "0",
       0,
       4096,
       {},
       "CPU threads per rank; 0 = the rank's share of the CPUs it may run on (each CPU "
       "divided among the node's ranks that may run on it). Exact resume needs the same "
       "count"},
      {"train.device",
       K::Enum,
       "cpu",
       {},
       {},
       {"cpu", "cuda"},
       "cpu, or cuda: one GPU per rank, the node-local rank's (a build with the CUDA "
       "backend); collectives through NCCL"},
      {"train.matmul_precision",
       K::Enum,
       "fp32",
       {},
       {},
       {"fp32", "bf16"},
       "operands of the matrix products: bf16 (tensor cores, fp32 accumulation; cuda "
       "only) or fp32; weights, optimizer state and everything else stay fp32"},
      {"train.activations",
       K::Enum,
       "fp32",
       {},
       {},
       {"fp32", "bf16"},
       "element type of the activations and their gradients: bf16 (each op reads bf16 and "
       "rounds its outputs once; on cuda the products then take bf16 operands as they are, "
       "whatever train.matmul_precision says; the tensor-parallel all-reduces of activations are "
       "then bf16 too) or fp32; weights, gradients, "
       "optimizer state and the WKV state stay fp32. On the CPU bf16 is the reference "
       "(each op in fp32 on the widened values), slower than fp32"},
      {"train.wkv",
       K::Enum,
       "auto",
       {},
       {},
       {"auto", "chunked", "sequential"},
       "form of the RWKV-5/6/7 WKV kernels: chunked (matrix products within chunks of 16 "
       "tokens, the state carried between chunks) or sequential (token by token: the CPU's "
       "naive recurrence, the GPU's per-head scan); auto = chunked on the CPU, sequential "
       "on cuda, whose chunked kernels have not run on a GPU yet"},
      {"train.recompute",
       K::Enum,
       "none",
       {},
       {},
       {"none", "full"},
       "activation recomputation: full keeps only each block's input between forward and "
       "backward and runs every block's forward (and the head's, by chunks of rows) again "
       "before its backward (RWKV-LM's --grad_cp 1): the activations of one block instead "
       "of all, one more forward per step"},
      {"train.gpu_memory",
       K::Float,
       "0",
       0,
       1e6,
       {},
       "GiB of GPU memory the backend allocates at start (cuda); 0 = all the free "
       "memory but 2 GiB left to CUDA and NCCL"},

      // optimizer: AdamW and the learning-rate schedule.
      {"optimizer.lr_init", K::Float, "6e-4", 0, 1, {}, "peak learning rate"},
      {"optimizer.lr_final", K::Float, "6e-5", 0, 1, {}, "learning rate at the end of decay"},
      {"optimizer.warmup_steps", K::Int, "10", 0, kIntMax, {}, "linear warmup steps"},
      {"optimizer.schedule",
       K::Enum,
       "cosine",
       {},
       {},
       {"cosine", "exponential"},
       "decay from lr_init to lr_final"},
      {"optimizer.beta1", K::Float, "0.9", 0, 0.999999, {}, "AdamW beta1"},
      {"optimizer.beta2", K::Float, "0.99", 0, 0.999999, {}, "AdamW beta2"},
      {"optimizer.eps", K::Float, "1e-8", 0, 1, {}, "AdamW epsilon"},
      {"optimizer.weight_decay",
       K::Float,
       "0.001",
       0,
       10,
       {},
       "decoupled weight decay, applied to 2-D weight matrices only"},
      {"optimizer.grad_clip", K::Float, "1.0", 0, 1e9, {}, "global gradient-norm clip; 0 = off"},

      // parallel: the tp x dp rank grid (dp = world size / tp).
      {"parallel.tp",
       K::Int,
       "1",
       1,
       1024,
       {},
       "tensor-parallel ranks per group; must divide the head count, dim_ffn and the ranks"},

      // checkpoint: where and how often.
      {"checkpoint.save_every_steps", K::Int, "1000", 0, kIntMax, {}, "0 = only at the end"},
      {"checkpoint.save_every_minutes", K::Float, "0", 0, 1e9, {}, "0 = off"},
      {"checkpoint.keep_last", K::Int, "3", 1, kIntMax, {}, "newest checkpoints kept"},
      {"checkpoint.keep_every",
       K::Int,
       "0",
       0,
       kIntMax,
       {},
       "also keep every checkpoint whose step is a multiple of this; 0 = none"},
      {"checkpoint.init_from",
       K::Path,
       "",
       {},
       {},
       {},
       "start a new run from this checkpoint's weights (fine-tuning)"},

      // log: run directory and what is reported.
      {"log.run_dir",
       K::String,
       "runs/default",
       {},
       {},
       {},
       "run directory: checkpoints, metrics.jsonl, TensorBoard events"},
      {"log.every_steps", K::Int, "1", 1, kIntMax, {}, "steps between log lines"},
      {"log.peak_flops",
       K::Float,
       "0",
       0,
       1e20,
       {},
       "peak FLOP/s of one device, for MFU; 0 = do not report MFU"},
  };
}

}  // namespace

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = build_schema();
  return schema;
}

const KeySpec* find_key(const std::string& path) {
  for (const auto& k : config_schema())
    if (k.path == path) return &k;
  return nullptr;
}

std::vector<std::string> config_sections() {
  std::vector<std::string> out;
  for (const auto& k : config_schema()) {
    std::string s = k.path.substr(0, k.path.find('.'));
    if (out.empty() || out.back() != s) out.push_back(s);
  }
  return out;
}

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::Int: return "integer";
    case KeyType::Float: return "number";
    case KeyType::String: return "string";
    case KeyType::Enum: return "one of";
    case KeyType::Path: return "path";
  }
  return "?";
}

}  // namespace rwkv
