#include "kernels/cuda/arena.h"

#include <iterator>
#include <sstream>

namespace rwkv::cuda {

namespace {

size_t round_up(size_t bytes) { return (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign; }

}  // namespace

Arena::Arena(size_t capacity) : capacity_(capacity / kArenaAlign * kArenaAlign) {
  if (capacity_ > 0) free_[0] = capacity_;
}

size_t Arena::largest_free() const {
  size_t best = 0;
  for (const auto& [offset, size] : free_) best = size > best ? size : best;
  return best;
}

size_t Arena::alloc(size_t bytes) {
  const size_t need = round_up(bytes > 0 ? bytes : 1);
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it)
    if (it->second >= need && (best == free_.end() || it->second < best->second)) best = it;
  if (best == free_.end()) {
    std::ostringstream msg;
    msg << "CUDA memory arena: cannot allocate " << bytes << " bytes (arena " << capacity_
        << " bytes, " << used_bytes_ << " in use, largest free block " << largest_free()
        << " bytes); " << advice;
    throw ArenaFull(msg.str());
  }
  const size_t offset = best->first, left = best->second - need;
  free_.erase(best);
  if (left > 0) free_[offset + need] = left;
  inuse_[offset] = need;
  used_bytes_ += need;
  return offset;
}

size_t Arena::block_size(size_t offset) const {
  const auto it = inuse_.find(offset);
  if (it == inuse_.end()) {
    std::ostringstream msg;
    msg << "CUDA memory arena: offset " << offset << " is not a block in use";
    throw Error(msg.str());
  }
  return it->second;
}

void Arena::free(size_t offset) {
  size_t size = block_size(offset);
  inuse_.erase(offset);
  used_bytes_ -= size;
  // Merge with the free block that ends here and the one that starts right after.
  auto next = free_.lower_bound(offset);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      size += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end() && offset + size == next->first) {
    size += next->second;
    free_.erase(next);
  }
  free_[offset] = size;
}

}  // namespace rwkv::cuda
