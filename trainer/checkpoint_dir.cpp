#include "trainer/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "trainer/checkpoint.h"

namespace fs = std::filesystem;

namespace rwkv::trainer {

namespace {

constexpr const char* kPrefix = "step-";
constexpr const char* kSuffix = ".h5";

[[noreturn]] void throw_errno(const std::string& what, const std::string& path) {
  throw Error(what + " " + path + ": " + std::strerror(errno));
}

void remove_file(const std::string& path) {
  std::error_code ec;
  if (!fs::remove(path, ec) && ec) throw Error("cannot remove " + path + ": " + ec.message());
}

// The entries of `dir`; none when it does not exist.
std::vector<fs::path> dir_entries(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path());
  if (ec) throw Error("cannot list " + dir + ": " + ec.message());
  return out;
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw_errno("cannot open", path);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) throw_errno("cannot fsync", path);
}

}  // namespace

std::string checkpoint_dir(const std::string& run_dir) {
  return (fs::path(run_dir) / "checkpoints").string();
}

std::string checkpoint_file_name(int64_t step) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%07lld%s", kPrefix, static_cast<long long>(step), kSuffix);
  return buf;
}

std::optional<int64_t> parse_checkpoint_file_name(const std::string& name) {
  const size_t p = std::strlen(kPrefix), s = std::strlen(kSuffix);
  if (name.size() <= p + s || name.compare(0, p, kPrefix) != 0 ||
      name.compare(name.size() - s, s, kSuffix) != 0)
    return std::nullopt;
  const std::string digits = name.substr(p, name.size() - p - s);
  if (digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(digits);
}

std::vector<CheckpointFile> list_checkpoints(const std::string& run_dir) {
  std::vector<CheckpointFile> out;
  for (const fs::path& p : dir_entries(checkpoint_dir(run_dir)))
    if (auto step = parse_checkpoint_file_name(p.filename().string()))
      out.push_back({*step, p.string()});
  std::sort(out.begin(), out.end(),
            [](const CheckpointFile& a, const CheckpointFile& b) { return a.step < b.step; });
  return out;
}

void fsync_file(const std::string& path) { fsync_path(path, O_RDONLY); }

void fsync_dir(const std::string& dir) { fsync_path(dir, O_RDONLY | O_DIRECTORY); }

void write_file_durably(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) throw Error("cannot write " + tmp);
  }
  fsync_file(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("cannot rename to", path);
  const fs::path parent = fs::path(path).parent_path();
  fsync_dir(parent.empty() ? "." : parent.string());
}

std::vector<std::string> remove_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  for (const fs::path& p : dir_entries(dir)) {
    if (p.extension() != ".tmp") continue;
    remove_file(p.string());
    removed.push_back(p.string());
  }
  return removed;
}

std::string read_latest(const std::string& run_dir) {
  std::ifstream f(fs::path(checkpoint_dir(run_dir)) / "latest");
  std::string name;
  if (f) std::getline(f, name);
  return name;
}

ResumePoint find_resume_checkpoint(const std::string& run_dir) {
  ResumePoint r;
  const std::vector<CheckpointFile> files = list_checkpoints(run_dir);
  const std::string latest = read_latest(run_dir);
  const std::string latest_path =
      latest.empty() ? "" : (fs::path(checkpoint_dir(run_dir)) / latest).string();
  if (!latest.empty() && !fs::exists(latest_path))
    r.warnings.push_back(latest_path + " (named by checkpoints/latest) does not exist");
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      verify_checkpoint(it->path);
    } catch (const Error& e) {
      r.warnings.push_back(std::string("skipping ") + e.what());
      continue;
    }
    r.path = it->path;
    r.step = it->step;
    break;
  }
  if (files.empty()) return r;
  if (r.path.empty()) {
    std::string msg = "no usable checkpoint in " + checkpoint_dir(run_dir) + ":";
    for (const std::string& w : r.warnings) msg += "\n  " + w;
    throw Error(msg);
  }
  if (!latest.empty() && fs::exists(latest_path) && latest_path != r.path)
    r.warnings.push_back("checkpoints/latest names " + latest + "; resuming from " + r.path +
                         " instead");
  return r;
}

std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep_last,
                                           int64_t keep_every, int64_t just_saved_step) {
  if (keep_last < 1) throw Error("prune_checkpoints: keep_last must be at least 1");
  const std::vector<CheckpointFile> files = list_checkpoints(run_dir);
  std::vector<std::string> removed;
  const int64_t n = static_cast<int64_t>(files.size());
  for (int64_t i = 0; i < n - keep_last; ++i) {  // all but the keep_last newest
    const CheckpointFile& f = files[static_cast<size_t>(i)];
    if (f.step == just_saved_step) continue;
    if (keep_every > 0 && f.step % keep_every == 0) continue;
    remove_file(f.path);
    removed.push_back(f.path);
  }
  return removed;
}

bool should_save(int64_t step, double last_save_time, double now, int64_t every_steps,
                 double every_minutes) {
  if (every_steps > 0 && step % every_steps == 0) return true;
  return every_minutes > 0 && now - last_save_time >= every_minutes * 60.0;
}

}  // namespace rwkv::trainer
