// BlockCache: clean 4 KiB blocks of a store's data area, by their offset on the device, so that
// a read of a block read before needs no device read (the server's cache, SP_CACHE_SIZE).
//
// It holds only what the device holds: blocks enter when a read brought them from the device
// and its crc matched, and a write to the data area updates (in-place flush) or drops
// (redirected data) what it overwrites. A read that raced such a write must not put the old
// bytes back: readers take `Epoch()` before resolving their blocks, and `Insert` refuses a
// block whose offset was written since (stamps kept per hash bucket of offsets, so a refusal
// may also be a neighbour's; it only costs a later device read). Every block served from the
// cache is still checked against the index's crc by the store, and a mismatch drops it.
//
// Eviction: CLOCK (a second chance for blocks hit since the hand passed). Memory is taken in
// segments as the cache fills, never more than `capacity_bytes` of block images.
// Thread-safe (one mutex; every call is short).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "env/env.h"

namespace spindle::server::jdisk {

class BlockCache {
 public:
  static constexpr size_t kBlock = 4096;

  explicit BlockCache(uint64_t capacity_bytes);
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // The stamp a reader takes before it resolves which offsets to read (no lock: every read
  // of a store on a device takes it).
  uint64_t Epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Copies the block at `offset` into dst (kBlock bytes) when cached.
  bool Lookup(uint64_t offset, uint8_t* dst);
  // Blocks just read from the device and checked; each is refused if its offset was written
  // since `epoch`.
  struct Block {
    uint64_t offset;
    const uint8_t* bytes;
  };
  void Insert(std::span<const Block> blocks, uint64_t epoch);
  // The device block at `offset` is being rewritten with `bytes`: a cached copy takes them.
  void Update(uint64_t offset, const uint8_t* bytes);
  // The device range is being written with data the cache does not see: drop it.
  void Invalidate(uint64_t offset, uint64_t length);

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t inserts = 0;
    uint64_t refused = 0;  // inserts refused: written since the read began
    uint64_t evictions = 0;
    uint64_t blocks = 0;    // cached now
    uint64_t capacity = 0;  // in blocks
  };
  Stats stats();

 private:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  static constexpr size_t kSegmentBlocks = 2048;  // 8 MiB per segment
  static constexpr size_t kStampBuckets = 1 << 16;

  uint8_t* SlotBytes(uint32_t slot);
  size_t Bucket(uint64_t offset) const { return (offset / kBlock) & (kStampBuckets - 1); }
  void Stamp(uint64_t offset) {
    stamps_[Bucket(offset)] = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  void Drop(uint32_t slot);
  uint32_t TakeSlot();  // kNoSlot when the capacity is 0

  std::mutex mu_;
  const uint32_t capacity_;  // in blocks
  std::vector<env::AlignedBuffer> segments_;
  std::vector<uint64_t> slot_offset_;
  std::vector<uint8_t> referenced_;  // CLOCK bits
  std::vector<uint32_t> free_;       // dropped slots
  std::unordered_map<uint64_t, uint32_t> index_;
  uint32_t hand_ = 0;
  std::vector<uint64_t> stamps_;
  std::atomic<uint64_t> epoch_{0};  // written under mu_
  Stats stats_;
};

}  // namespace spindle::server::jdisk
