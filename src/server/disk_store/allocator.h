// ChunkAllocator: the free-space map of the data area, one bit per 64 KiB chunk.
// Rebuilt at Open from the index (it is not stored on disk). Freed chunks are *deferred*: they
// stay unusable until the checkpoint that no longer references them is durable, so that
// neither the flusher nor a journal replay can write into a chunk that a new owner holds.
// Not thread-safe: the store calls it under its own mutex.
#pragma once

#include <cstdint>
#include <vector>

namespace spindle::server::jdisk {

class ChunkAllocator {
 public:
  explicit ChunkAllocator(uint32_t chunks);

  // A free chunk (next-fit from the last allocation), or false when none is free.
  bool Allocate(uint32_t* chunk);
  // Marks a chunk used (index load and journal replay); idempotent; cancels a pending free.
  void MarkUsed(uint32_t chunk);
  // Defers freeing `chunk` until Release.
  void Free(uint32_t chunk);
  // Frees a chunk that was allocated but never referenced by a durable record.
  void Return(uint32_t chunk);
  // The chunks freed since the last call; pass them to Release once they may be reused.
  std::vector<uint32_t> TakePending();
  void Release(const std::vector<uint32_t>& chunks);

  uint32_t total() const { return static_cast<uint32_t>(used_.size()); }
  uint32_t used() const { return used_count_; }  // including pending frees
  uint32_t pending() const { return static_cast<uint32_t>(pending_list_.size()); }
  bool is_used(uint32_t chunk) const { return used_[chunk]; }

 private:
  std::vector<bool> used_;
  std::vector<bool> pending_;
  std::vector<uint32_t> pending_list_;
  uint32_t used_count_ = 0;
  uint32_t cursor_ = 0;
};

}  // namespace spindle::server::jdisk
