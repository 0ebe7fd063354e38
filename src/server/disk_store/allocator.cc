#include "server/disk_store/allocator.h"

#include "common/assert.h"

namespace spindle::server::jdisk {

ChunkAllocator::ChunkAllocator(uint32_t chunks) : used_(chunks, false), pending_(chunks, false) {}

bool ChunkAllocator::Allocate(uint32_t* chunk) {
  const uint32_t n = total();
  if (used_count_ >= n) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t c = (cursor_ + i) % n;
    if (!used_[c]) {
      used_[c] = true;
      ++used_count_;
      cursor_ = (c + 1) % n;
      *chunk = c;
      return true;
    }
  }
  return false;
}

void ChunkAllocator::MarkUsed(uint32_t chunk) {
  SP_ASSERT(chunk < total());
  pending_[chunk] = false;  // its pending_list_ entry is skipped at Release
  if (!used_[chunk]) {
    used_[chunk] = true;
    ++used_count_;
  }
}

void ChunkAllocator::Free(uint32_t chunk) {
  SP_ASSERT(chunk < total() && used_[chunk]);
  if (pending_[chunk]) return;
  pending_[chunk] = true;
  pending_list_.push_back(chunk);
}

void ChunkAllocator::Return(uint32_t chunk) {
  SP_ASSERT(chunk < total() && used_[chunk] && !pending_[chunk]);
  used_[chunk] = false;
  --used_count_;
}

std::vector<uint32_t> ChunkAllocator::TakePending() {
  std::vector<uint32_t> out;
  out.swap(pending_list_);
  return out;
}

void ChunkAllocator::Release(const std::vector<uint32_t>& chunks) {
  for (uint32_t c : chunks) {
    if (!pending_[c]) continue;  // used again (MarkUsed) since it was freed
    pending_[c] = false;
    used_[c] = false;
    --used_count_;
  }
}

}  // namespace spindle::server::jdisk
