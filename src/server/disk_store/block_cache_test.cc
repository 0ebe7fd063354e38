// Tests of the server's block cache.
#include "server/disk_store/block_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace spindle::server::jdisk {
namespace {

std::vector<uint8_t> Filled(uint8_t v) {
  return std::vector<uint8_t>(BlockCache::kBlock, v);
}

TEST(BlockCache, KeepsWhatWasReadAndFollowsWrites) {
  BlockCache cache(16 * BlockCache::kBlock);
  std::vector<uint8_t> out(BlockCache::kBlock);
  EXPECT_FALSE(cache.Lookup(8192, out.data()));
  const auto a = Filled(1);
  const BlockCache::Block read[] = {{8192, a.data()}};
  cache.Insert(read, cache.Epoch());
  ASSERT_TRUE(cache.Lookup(8192, out.data()));
  EXPECT_EQ(out, a);
  // An in-place rewrite replaces the cached bytes; a redirected write drops them.
  const auto b = Filled(2);
  cache.Update(8192, b.data());
  ASSERT_TRUE(cache.Lookup(8192, out.data()));
  EXPECT_EQ(out, b);
  cache.Invalidate(4096, 8192);
  EXPECT_FALSE(cache.Lookup(8192, out.data()));
  const BlockCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.blocks, 0u);
}

// A read that began before a write of its block must not put what it found back.
TEST(BlockCache, RefusesBlocksWrittenSinceTheReadBegan) {
  BlockCache cache(16 * BlockCache::kBlock);
  std::vector<uint8_t> out(BlockCache::kBlock);
  const auto old_bytes = Filled(7);
  const BlockCache::Block read[] = {{0, old_bytes.data()}};
  uint64_t epoch = cache.Epoch();
  cache.Update(0, Filled(8).data());  // not cached: only remembered
  cache.Insert(read, epoch);
  EXPECT_FALSE(cache.Lookup(0, out.data()));
  epoch = cache.Epoch();
  cache.Invalidate(0, BlockCache::kBlock);
  cache.Insert(read, epoch);
  EXPECT_FALSE(cache.Lookup(0, out.data()));
  EXPECT_EQ(cache.stats().refused, 2u);
  // A read begun after the write is taken.
  cache.Insert(read, cache.Epoch());
  EXPECT_TRUE(cache.Lookup(0, out.data()));
}

// The cache never holds more than its capacity; a block hit since the hand passed it stays.
TEST(BlockCache, BoundedWithASecondChanceForHits) {
  constexpr uint64_t kCap = 8;
  BlockCache cache(kCap * BlockCache::kBlock);
  std::vector<uint8_t> out(BlockCache::kBlock);
  std::vector<std::vector<uint8_t>> data;
  for (uint32_t i = 0; i < 3 * kCap; ++i) data.push_back(Filled(static_cast<uint8_t>(i)));
  for (uint32_t i = 0; i < kCap; ++i) {
    const BlockCache::Block b[] = {{i * BlockCache::kBlock, data[i].data()}};
    cache.Insert(b, cache.Epoch());
  }
  ASSERT_TRUE(cache.Lookup(0, out.data()));  // block 0 is hot
  for (uint32_t i = kCap; i < 2 * kCap - 1; ++i) {
    const BlockCache::Block b[] = {{i * BlockCache::kBlock, data[i].data()}};
    cache.Insert(b, cache.Epoch());
    ASSERT_TRUE(cache.Lookup(0, out.data()));
    EXPECT_EQ(out, data[0]);
  }
  const BlockCache::Stats s = cache.stats();
  EXPECT_EQ(s.blocks, kCap);
  EXPECT_EQ(s.evictions, kCap - 1);
  for (uint32_t i = 0; i < 2 * kCap - 1; ++i) {
    if (cache.Lookup(i * BlockCache::kBlock, out.data())) {
      EXPECT_EQ(out, data[i]) << i;
    }
  }
  BlockCache none(0);
  const BlockCache::Block b[] = {{0, data[0].data()}};
  none.Insert(b, none.Epoch());
  EXPECT_FALSE(none.Lookup(0, out.data()));
}

}  // namespace
}  // namespace spindle::server::jdisk
