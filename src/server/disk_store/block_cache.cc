// BlockCache: see block_cache.h.
#include "server/disk_store/block_cache.h"

#include <algorithm>
#include <cstring>

namespace spindle::server::jdisk {
namespace {

constexpr uint64_t kEmpty = UINT64_MAX;

}  // namespace

BlockCache::BlockCache(uint64_t capacity_bytes)
    : capacity_(static_cast<uint32_t>(std::min<uint64_t>(capacity_bytes / kBlock, UINT32_MAX - 1))),
      stamps_(kStampBuckets, 0) {
  stats_.capacity = capacity_;
}

uint8_t* BlockCache::SlotBytes(uint32_t slot) {
  return segments_[slot / kSegmentBlocks].data() + (slot % kSegmentBlocks) * kBlock;
}

bool BlockCache::Lookup(uint64_t offset, uint8_t* dst) {
  std::lock_guard lock(mu_);
  auto it = index_.find(offset);
  if (it == index_.end()) {
    ++stats_.misses;
    return false;
  }
  referenced_[it->second] = 1;
  std::memcpy(dst, SlotBytes(it->second), kBlock);
  ++stats_.hits;
  return true;
}

uint32_t BlockCache::TakeSlot() {
  if (!free_.empty()) {
    const uint32_t slot = free_.back();
    free_.pop_back();
    return slot;
  }
  if (slot_offset_.size() < capacity_) {
    const auto slot = static_cast<uint32_t>(slot_offset_.size());
    if (slot / kSegmentBlocks >= segments_.size()) {
      const size_t blocks = std::min<size_t>(kSegmentBlocks, capacity_ - slot);
      segments_.emplace_back(blocks * kBlock, env::AlignedBuffer::Fill::kNone);
    }
    slot_offset_.push_back(kEmpty);
    referenced_.push_back(0);
    return slot;
  }
  if (capacity_ == 0) return kNoSlot;
  // Every slot holds a block (none is free): the first one not referenced since the hand last
  // passed it. Two turns at most: the first clears every bit it passes.
  for (uint64_t step = 0; step <= 2ull * capacity_; ++step) {
    const uint32_t slot = hand_;
    hand_ = (hand_ + 1) % capacity_;
    if (referenced_[slot] != 0) {
      referenced_[slot] = 0;
      continue;
    }
    index_.erase(slot_offset_[slot]);
    slot_offset_[slot] = kEmpty;
    ++stats_.evictions;
    return slot;
  }
  return kNoSlot;
}

void BlockCache::Insert(std::span<const Block> blocks, uint64_t epoch) {
  std::lock_guard lock(mu_);
  for (const Block& b : blocks) {
    if (stamps_[Bucket(b.offset)] > epoch) {
      ++stats_.refused;
      continue;
    }
    uint32_t slot;
    auto it = index_.find(b.offset);
    if (it != index_.end()) {
      slot = it->second;  // keeps its reference bit
    } else {
      slot = TakeSlot();
      if (slot == kNoSlot) return;
      slot_offset_[slot] = b.offset;
      referenced_[slot] = 0;  // a block earns its second chance by a hit
      index_.emplace(b.offset, slot);
    }
    std::memcpy(SlotBytes(slot), b.bytes, kBlock);
    ++stats_.inserts;
  }
}

void BlockCache::Update(uint64_t offset, const uint8_t* bytes) {
  std::lock_guard lock(mu_);
  Stamp(offset);
  auto it = index_.find(offset);
  if (it != index_.end()) std::memcpy(SlotBytes(it->second), bytes, kBlock);
}

void BlockCache::Drop(uint32_t slot) {
  index_.erase(slot_offset_[slot]);
  slot_offset_[slot] = kEmpty;
  referenced_[slot] = 0;
  free_.push_back(slot);
}

void BlockCache::Invalidate(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  const uint64_t first = offset / kBlock * kBlock;
  for (uint64_t at = first; at < offset + length; at += kBlock) {
    Stamp(at);
    if (index_.empty()) continue;
    auto it = index_.find(at);
    if (it != index_.end()) Drop(it->second);
  }
}

BlockCache::Stats BlockCache::stats() {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.blocks = index_.size();
  return s;
}

}  // namespace spindle::server::jdisk
