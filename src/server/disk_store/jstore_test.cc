// Tests of the journaled store (format 2) on the simulated disk and on a real file.
#include "server/disk_store/jstore.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "common/crc32c.h"
#include "server/disk_store/sim_disk.h"

namespace spindle::server::jdisk {
namespace {

constexpr char kCluster[] = "test-cluster";

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

class JStoreTest : public ::testing::Test {
 protected:
  void MakeDisk(uint64_t size) {
    disk_ = env_.AddDisk("d", size, 99);
    ASSERT_TRUE(JStore::Init(env_, "d", {DiskId(3), kCluster, 0, 0}).ok());
    Reopen();
  }
  void Reopen(StoreOptions options = {}) {
    store_.reset();
    auto s = JStore::Open(env_, "d", kCluster, options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  std::vector<uint8_t> ReadAll(std::vector<LayerId> chain, uint32_t object, uint32_t offset,
                               uint32_t len) {
    std::vector<uint8_t> out(len);
    Status s = store_->Read(chain, ObjectIndex(object), offset, out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  Result<uint64_t> Put(uint64_t layer, uint32_t object, uint64_t version, uint32_t offset,
                       const std::vector<uint8_t>& data) {
    return store_->Write(LayerId(layer), ObjectIndex(object), version, offset, data);
  }
  SimEnv env_;
  std::shared_ptr<SimDisk> disk_;
  std::unique_ptr<JStore> store_;
};

// Sub-block, small and large (redirected) writes read back exactly, before and after a
// restart that replays the journal and after a checkpoint.
TEST_F(JStoreTest, WritesReadBackAcrossRestart) {
  MakeDisk(48 * kMiB);
  std::vector<uint8_t> model(2 * kMiB, 0);
  auto apply = [&](uint64_t v, uint32_t off, size_t len) {
    auto d = Pattern(len, static_cast<uint32_t>(v));
    ASSERT_EQ(*Put(1, 0, v, off, d), v);
    std::memcpy(model.data() + off, d.data(), len);
  };
  apply(1, 1536, 512);
  apply(2, 8192, 4096);
  apply(3, 100 * 1024, 1 * kMiB);  // large: 64 KiB chunks redirected, edges journaled
  apply(4, 100 * 1024 + 512, 3000 / 512 * 512);
  apply(5, 0, 130 * 1024);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 2 * kMiB), model);
  Reopen();  // replay
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 2 * kMiB), model);
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 5u);
  ASSERT_TRUE(store_->Checkpoint().ok());
  Reopen();
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 2 * kMiB), model);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 1536, 512),
            std::vector<uint8_t>(model.begin() + 1536, model.begin() + 2048));
}

// Versions apply in order: duplicates are no-ops, gaps are refused.
TEST_F(JStoreTest, VersionOrder) {
  MakeDisk(24 * kMiB);
  auto d = Pattern(4096, 1);
  EXPECT_EQ(Put(1, 2, 2, 0, d).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(*Put(1, 2, 1, 0, d), 1u);
  EXPECT_EQ(*Put(1, 2, 1, 0, Pattern(4096, 2)), 1u);
  EXPECT_EQ(ReadAll({LayerId(1)}, 2, 0, 4096), d);
  EXPECT_EQ(Put(1, 2, 0, 0, d).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Put(1, 2, 2, 100, d).status().code(), Code::kInvalidArgument);
  // A write may follow an earlier version than its own minus one (a writer skipping ahead),
  // only from exactly that version.
  EXPECT_EQ(store_->Write(LayerId(1), ObjectIndex(2), 1000, 0, d, {}, 5).status().code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(*store_->Write(LayerId(1), ObjectIndex(2), 1000, 0, d, {}, 1), 1000u);
  EXPECT_EQ(*store_->Write(LayerId(1), ObjectIndex(2), 999, 0, d, {}, 1), 1000u);  // no change
  EXPECT_EQ(store_->Trim(LayerId(1), ObjectIndex(2), 2000, 0, 4096, 1).status().code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(*store_->Trim(LayerId(1), ObjectIndex(2), 2000, 0, 4096, 1000), 2000u);
  EXPECT_EQ(store_->Write(LayerId(1), ObjectIndex(2), 3000, 0, d, {}, 3000).status().code(),
            Code::kInvalidArgument);
}

// Reads fall through a chain of layers; trim makes holes that stop the fall-through; partial
// trims zero sectors; BlockStatus reports it all; everything survives a restart.
TEST_F(JStoreTest, ChainTrimAndBlockStatus) {
  MakeDisk(24 * kMiB);
  auto base = Pattern(64 * 1024, 7);
  ASSERT_TRUE(Put(10, 0, 1, 0, base).ok());  // lower layer: blocks 0..15
  auto top = Pattern(4096, 8);
  ASSERT_TRUE(Put(11, 0, 1, 4096, top).ok());  // upper layer: block 1
  ASSERT_TRUE(store_->Trim(LayerId(11), ObjectIndex(0), 2, 8192, 8192).ok());  // blocks 2, 3
  ASSERT_TRUE(store_->Trim(LayerId(10), ObjectIndex(0), 2, 512, 1024).ok());   // partial block 0
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<LayerId> chain{LayerId(11), LayerId(10)};
    auto got = ReadAll(chain, 0, 0, 64 * 1024);
    std::vector<uint8_t> want = base;
    std::memset(want.data() + 512, 0, 1024);
    std::memcpy(want.data() + 4096, top.data(), 4096);
    std::memset(want.data() + 8192, 0, 8192);
    EXPECT_EQ(got, want) << "pass " << pass;
    auto st = store_->BlockStatus(chain, ObjectIndex(0), 0, 8 * 4096);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(*st, (std::vector<bool>{true, true, false, false, true, true, true, true}));
    EXPECT_EQ(store_->Info(LayerId(11), ObjectIndex(0)).version, 2u);
    Reopen();
  }
}

// A whole-block read hands out each block's crc32c (checked device blocks, journaled images,
// zeros of holes and unwritten blocks), equal to the crc of the data it returned; a read that
// is not whole blocks hands out none. Head is Info without the block count.
TEST_F(JStoreTest, ReadHandsOutTheBlockCrcs) {
  MakeDisk(24 * kMiB);
  ASSERT_TRUE(Put(10, 0, 1, 0, Pattern(64 * 1024, 7)).ok());
  ASSERT_TRUE(Put(11, 0, 1, 4096, Pattern(4096, 8)).ok());
  ASSERT_TRUE(store_->Trim(LayerId(11), ObjectIndex(0), 2, 8192, 8192).ok());
  // Written with the caller's crcs: a redirected chunk, a journaled block, a partial tail.
  const std::vector<uint8_t> given = Pattern(kChunkBytes + 4096 + 512, 9);
  std::vector<uint32_t> given_crcs;
  for (size_t at = 0; at < given.size(); at += kBlockSize) {
    given_crcs.push_back(
        Crc32c(given.data() + at, std::min<size_t>(kBlockSize, given.size() - at)));
  }
  ASSERT_TRUE(store_->Write(LayerId(11), ObjectIndex(0), 3, kChunkBytes, given, given_crcs).ok());
  const std::vector<LayerId> chain{LayerId(11), LayerId(10)};
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<uint8_t> back(given.size());
    ASSERT_TRUE(store_->Read(chain, ObjectIndex(0), kChunkBytes, back).ok());
    EXPECT_EQ(back, given);
    std::vector<uint8_t> out(192 * 1024);  // blocks 34..47 were never written
    std::vector<uint32_t> crcs{1, 2, 3};
    ASSERT_TRUE(store_->Read(chain, ObjectIndex(0), 0, out, &crcs).ok());
    ASSERT_EQ(crcs.size(), out.size() / kBlockSize);
    for (size_t k = 0; k < crcs.size(); ++k) {
      EXPECT_EQ(crcs[k], Crc32c(out.data() + k * kBlockSize, kBlockSize)) << "block " << k;
    }
    std::vector<uint8_t> part(4096);
    ASSERT_TRUE(store_->Read(chain, ObjectIndex(0), 512, part, &crcs).ok());
    EXPECT_TRUE(crcs.empty());
    const ObjectInfo head = store_->Head(LayerId(11), ObjectIndex(0));
    const ObjectInfo info = store_->Info(LayerId(11), ObjectIndex(0));
    EXPECT_EQ(head.version, info.version);
    EXPECT_EQ(head.state, info.state);
    EXPECT_EQ(head.blocks_present, 0u);
    ASSERT_TRUE(store_->Checkpoint().ok());
    Reopen();
  }
}

// A disk of another cluster, an old-format disk and a non-Spindle device are refused; Init
// refuses to overwrite a Spindle disk.
TEST_F(JStoreTest, RefusesForeignDisks) {
  MakeDisk(24 * kMiB);
  store_.reset();
  EXPECT_EQ(JStore::Open(env_, "d", "other").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(JStore::Init(env_, "d", {DiskId(3), kCluster, 0, 0}).code(), Code::kAlreadyExists);
  env_.AddDisk("old", 24 * kMiB, 1);
  auto f = env_.OpenFile("old", {});
  Superblock sb = *Layout(24 * kMiB, 0);
  sb.format_version = 1;
  env::AlignedBuffer block(kMetaBlock);
  EncodeSuperblock(sb, block.span());
  ASSERT_TRUE((*f)->PWrite(0, block.span()).ok());
  auto old = JStore::Open(env_, "old", "");
  EXPECT_EQ(old.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("version 1"), std::string::npos);
  sb.format_version = 2;  // format 2 synced redirected data before its record: not read by 3
  EncodeSuperblock(sb, block.span());
  ASSERT_TRUE((*f)->PWrite(0, block.span()).ok());
  old = JStore::Open(env_, "old", "");
  EXPECT_EQ(old.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("disk format version 2 is not supported"),
            std::string::npos)
      << old.status().message();
  env_.AddDisk("blank", 24 * kMiB, 1);
  EXPECT_EQ(JStore::Open(env_, "blank", "").status().code(), Code::kFailedPrecondition);
}

// Filling the disk gives a clear "no space" error without damaging stored data; after a
// layer is deleted (and a trim) writes are accepted again.
TEST_F(JStoreTest, FullDiskThenFreed) {
  MakeDisk(16 * kMiB);
  const uint32_t chunks = store_->superblock().data_chunks;
  auto d = Pattern(kChunkBytes, 3);
  Status full;
  uint32_t written = 0;
  for (uint32_t i = 0; i < chunks + 5; ++i) {
    auto r = Put(1 + i % 2, i, 1, 0, d);
    if (!r.ok()) {
      full = r.status();
      break;
    }
    ++written;
  }
  EXPECT_EQ(full.code(), Code::kResourceExhausted);
  EXPECT_NE(full.message().find("no space"), std::string::npos) << full.message();
  EXPECT_EQ(written, chunks);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, kChunkBytes), d);
  ASSERT_TRUE(store_->DeleteLayer(LayerId(2)).ok());
  EXPECT_EQ(store_->Layer(LayerId(2)).on_disk_bytes, 0u);
  ASSERT_TRUE(Put(3, 0, 1, 0, d).ok());  // space is back
  ASSERT_TRUE(store_->Trim(LayerId(1), ObjectIndex(0), 2, 0, kChunkBytes).ok());
  ASSERT_TRUE(Put(3, 1, 1, 0, d).ok());
  Reopen();
  EXPECT_EQ(ReadAll({LayerId(3)}, 1, 0, kChunkBytes), d);
  EXPECT_EQ(ReadAll({LayerId(1)}, 2, 0, kChunkBytes), d);
  EXPECT_EQ(store_->Layer(LayerId(1)).stored_bytes, (written + 1) / 2 * kChunkBytes - kChunkBytes);
}

// A flipped byte in the data area is reported as kCorruption by a read (never wrong data) and
// by Verify.
TEST_F(JStoreTest, CorruptionIsDetected) {
  MakeDisk(24 * kMiB);
  ASSERT_TRUE(Put(1, 0, 1, 0, Pattern(256 * 1024, 5)).ok());
  ASSERT_TRUE(store_->Checkpoint().ok());
  auto bad = store_->Verify();
  ASSERT_TRUE(bad.ok());
  EXPECT_TRUE(bad->empty());
  // Find the chunk holding block 17 (chunk 1) and flip a byte in it.
  store_.reset();
  const Superblock sb = *Layout(24 * kMiB, 0);
  for (uint32_t c = 0; c < 8; ++c) disk_->FlipByte(sb.ChunkOffset(c) + kBlockSize + 10);
  Reopen();
  std::vector<uint8_t> out(4096);
  Status s = store_->Read(std::vector<LayerId>{LayerId(1)}, ObjectIndex(0), 4096, out);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  bad = store_->Verify();
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->size(), 4u);  // block 1 of each of the 4 chunks
}

// With a read cache: random small, large (redirected) and trimming writes, checkpoints and
// reads on a disk small enough that freed chunks are reused; every read matches the model and
// the cache served some of them.
TEST_F(JStoreTest, CachedReadsMatchTheModel) {
  MakeDisk(24 * kMiB);
  StoreOptions cached;
  cached.cache_bytes = 96 * kBlockSize;  // fewer blocks than the data: evictions too
  cached.flush_interval = std::chrono::hours(1);
  Reopen(cached);
  constexpr uint32_t kObjects = 3, kSpan = 1 * kMiB;
  std::vector<std::vector<uint8_t>> model(kObjects, std::vector<uint8_t>(kSpan, 0));
  std::vector<uint64_t> version(kObjects, 0);
  std::mt19937 rng(42);
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  for (int op = 0; op < 3000; ++op) {
    const uint32_t o = pick(kObjects);
    const uint32_t kind = pick(10);
    if (kind < 3) {  // small write, journaled
      const uint32_t off = pick(kSpan / kBlockSize - 4) * kBlockSize;
      const auto d = Pattern((1 + pick(3)) * kBlockSize, static_cast<uint32_t>(op));
      ASSERT_TRUE(Put(1, o, ++version[o], off, d).ok()) << op;
      std::memcpy(model[o].data() + off, d.data(), d.size());
    } else if (kind == 3) {  // large write: fresh chunks
      const uint32_t off = pick(kSpan / kChunkBytes - 3) * static_cast<uint32_t>(kChunkBytes);
      const auto d = Pattern(3 * kChunkBytes, static_cast<uint32_t>(op));
      ASSERT_TRUE(Put(1, o, ++version[o], off, d).ok()) << op;
      std::memcpy(model[o].data() + off, d.data(), d.size());
    } else if (kind == 4) {  // trim a chunk
      const uint32_t off = pick(kSpan / kChunkBytes) * static_cast<uint32_t>(kChunkBytes);
      ASSERT_TRUE(store_->Trim(LayerId(1), ObjectIndex(o), ++version[o], off, kChunkBytes).ok());
      std::memset(model[o].data() + off, 0, kChunkBytes);
    } else if (kind == 5) {
      ASSERT_TRUE(store_->Checkpoint().ok());
    } else {
      const uint32_t off = pick(kSpan / kBlockSize - 8) * kBlockSize;
      const uint32_t len = (1 + pick(8)) * kBlockSize;
      ASSERT_EQ(ReadAll({LayerId(1)}, o, off, len),
                std::vector<uint8_t>(model[o].begin() + off, model[o].begin() + off + len))
          << "op " << op << " object " << o << " offset " << off;
    }
  }
  const StoreStats st = store_->Stats();
  EXPECT_GT(st.cache_hits, 100u);
  EXPECT_GT(st.cache_misses, 100u);
  EXPECT_LE(st.cache_bytes, cached.cache_bytes);
}

// Readers never see a block older than the last write of it that completed before the read
// began, while writers rewrite blocks in place (small writes, flushed by checkpoints) and move
// them (large writes) and a thread checkpoints all the time.
TEST_F(JStoreTest, CachedReadsNeverGoBack) {
  MakeDisk(48 * kMiB);
  StoreOptions cached;
  cached.cache_bytes = 64 * kBlockSize;
  cached.flush_interval = std::chrono::hours(1);
  Reopen(cached);
  constexpr uint32_t kObjects = 2, kBlocks = 32;  // two 64 KiB chunks per object
  auto block_image = [](uint64_t v, uint32_t o, uint32_t b) {
    auto img = Pattern(kBlockSize, static_cast<uint32_t>(v * 131 + o * 17 + b));
    std::memcpy(img.data(), &v, sizeof v);
    return img;
  };
  std::vector<std::atomic<uint64_t>> done(kObjects * kBlocks);
  for (auto& d : done) d = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (uint32_t o = 0; o < kObjects; ++o) {
    threads.emplace_back([&, o] {  // one writer per object (the store's contract)
      std::mt19937 rng(o);
      for (uint64_t v = 1; v <= 400; ++v) {
        if (v % 10 == 0) {  // everything, redirected
          std::vector<uint8_t> d;
          for (uint32_t b = 0; b < kBlocks; ++b) {
            auto img = block_image(v, o, b);
            d.insert(d.end(), img.begin(), img.end());
          }
          if (!Put(1, o, v, 0, d).ok()) ++failures;
          for (uint32_t b = 0; b < kBlocks; ++b) done[o * kBlocks + b] = v;
        } else {
          const uint32_t b = static_cast<uint32_t>(rng() % kBlocks);
          if (!Put(1, o, v, b * kBlockSize, block_image(v, o, b)).ok()) ++failures;
          done[o * kBlocks + b] = v;
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop) {
      if (!store_->Checkpoint().ok()) ++failures;
    }
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 rng(100 + r);
      std::vector<uint8_t> out(kBlocks * kBlockSize);
      while (!stop) {
        const uint32_t o = static_cast<uint32_t>(rng() % kObjects);
        std::vector<uint64_t> floor(kBlocks);
        for (uint32_t b = 0; b < kBlocks; ++b) floor[b] = done[o * kBlocks + b];
        if (!store_->Read(std::vector<LayerId>{LayerId(1)}, ObjectIndex(o), 0, out).ok()) {
          ++failures;
          continue;
        }
        for (uint32_t b = 0; b < kBlocks; ++b) {
          uint64_t v = 0;
          std::memcpy(&v, out.data() + b * kBlockSize, sizeof v);
          const bool zero_ok = v == 0 && floor[b] == 0;
          if (zero_ok) continue;
          const auto want = block_image(v, o, b);
          if (v < floor[b] ||
              std::memcmp(want.data(), out.data() + b * kBlockSize, kBlockSize) != 0) {
            ++failures;
            ADD_FAILURE() << "object " << o << " block " << b << ": read version " << v
                          << ", at least " << floor[b] << " was done";
            return;
          }
        }
      }
    });
  }
  for (uint32_t o = 0; o < kObjects; ++o) threads[o].join();
  stop = true;
  threads[kObjects].join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_GT(store_->Stats().cache_hits, 0u);
}

// Concurrent small writes share journal syncs (group commit) and all read back.
TEST_F(JStoreTest, GroupCommit) {
  MakeDisk(48 * kMiB);
  disk_->SetSyncDelay(std::chrono::microseconds(500));  // a round lasts long enough to overlap
  const uint64_t syncs_before = disk_->syncs();
  constexpr int kThreads = 8, kWrites = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        auto r = Put(1, static_cast<uint32_t>(t), static_cast<uint64_t>(i + 1),
                     static_cast<uint32_t>(i * 4096), Pattern(4096, t * 1000 + i));
        EXPECT_TRUE(r.ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t syncs = disk_->syncs() - syncs_before;
  EXPECT_LT(syncs, uint64_t{kThreads * kWrites});
  RecordProperty("syncs", static_cast<int>(syncs));
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(ReadAll({LayerId(1)}, t, 7 * 4096, 4096), Pattern(4096, t * 1000 + 7));
  }
}

// Asynchronous writes and trims (an event loop's path): queued ones are called back once
// durable, share rounds with blocked writers, and survive a restart; ranges that need the device
// or a redirect are declined; duplicates and gaps are answered at once; closing the store calls
// back every write still queued.
TEST_F(JStoreTest, AsyncWritesAndTrims) {
  MakeDisk(48 * kMiB);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Result<uint64_t>> results;
  auto done = [&](Result<uint64_t> r) {
    std::lock_guard lock(mu);
    results.push_back(std::move(r));
    cv.notify_all();
  };
  auto wait_for = [&](size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return results.size() >= n; });
  };
  using Kind = JStore::AsyncStart::Kind;
  constexpr uint32_t kObjects = 6, kVersions = 20;
  std::thread blocked([&] {  // blocked writers on other objects meanwhile
    for (uint32_t v = 1; v <= kVersions; ++v) {
      EXPECT_TRUE(Put(2, 0, v, v * kBlockSize, Pattern(kBlockSize, 500 + v)).ok());
    }
  });
  size_t queued = 0;
  for (uint32_t v = 1; v <= kVersions; ++v) {
    for (uint32_t o = 0; o < kObjects; ++o) {
      const auto d = Pattern(2 * kBlockSize, o * 100 + v);
      auto start = store_->WriteAsync(LayerId(1), ObjectIndex(o), v, (v % 8) * kBlockSize, d, {},
                                      v - 1, done);
      ASSERT_EQ(start.kind, Kind::kQueued);
      ++queued;
    }
    // A version may only follow the one applied before it: wait for this round of versions.
    ASSERT_TRUE(wait_for(queued));
  }
  blocked.join();
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(results.size(), size_t{kObjects * kVersions});
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(3)).version, kVersions);

  // Answered at once, or declined for the pool.
  const auto block = Pattern(kBlockSize, 7);
  auto dup = store_->WriteAsync(LayerId(1), ObjectIndex(0), 3, 0, block, {}, 2, done);
  EXPECT_EQ(dup.kind, Kind::kDone);
  EXPECT_EQ(*dup.result, kVersions);
  auto gap = store_->WriteAsync(LayerId(1), ObjectIndex(0), kVersions + 2, 0, block, {},
                                kPreviousVersion, done);
  EXPECT_EQ(gap.kind, Kind::kDone);
  EXPECT_EQ(gap.result.status().code(), Code::kFailedPrecondition);
  const auto half = Pattern(512, 8);
  EXPECT_EQ(store_
                ->WriteAsync(LayerId(1), ObjectIndex(0), kVersions + 1, 512, half, {},
                             kPreviousVersion, done)
                .kind,
            Kind::kBlocking);
  const auto big = Pattern(256 * kKiB, 9);
  EXPECT_EQ(store_
                ->WriteAsync(LayerId(1), ObjectIndex(0), kVersions + 1, 0, big, {},
                             kPreviousVersion, done)
                .kind,
            Kind::kBlocking);
  EXPECT_EQ(
      store_
          ->TrimAsync(LayerId(1), ObjectIndex(0), kVersions + 1, 512, 4096, kPreviousVersion, done)
          .kind,
      Kind::kBlocking);
  EXPECT_EQ(store_
                ->WriteAsync(LayerId(1), ObjectIndex(0), kVersions + 1, kObjectSize, block, {},
                             kPreviousVersion, done)
                .result.status()
                .code(),
            Code::kInvalidArgument);

  // A trim of whole blocks.
  ASSERT_EQ(store_
                ->TrimAsync(LayerId(1), ObjectIndex(1), kVersions + 1, 0, 16 * kBlockSize,
                            kPreviousVersion, done)
                .kind,
            Kind::kQueued);
  ASSERT_TRUE(wait_for(++queued));
  EXPECT_TRUE(results.back().ok());
  EXPECT_EQ(ReadAll({LayerId(1)}, 1, 0, 16 * kBlockSize), std::vector<uint8_t>(16 * kBlockSize));

  // Queued writes still hear when the store closes at once; all of them survive a restart.
  for (uint32_t o = 2; o < kObjects; ++o) {
    ASSERT_EQ(store_
                  ->WriteAsync(LayerId(1), ObjectIndex(o), kVersions + 1, 0, block, {},
                               kPreviousVersion, done)
                  .kind,
              Kind::kQueued);
    ++queued;
  }
  store_.reset();
  ASSERT_EQ(results.size(), queued);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  Reopen();
  for (uint32_t o = 2; o < kObjects; ++o) {
    EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(o)).version, kVersions + 1);
    EXPECT_EQ(ReadAll({LayerId(1)}, o, 0, kBlockSize), block);
    const uint32_t v = kVersions;  // the last 2-block write of the object, at (v % 8) blocks
    EXPECT_EQ(ReadAll({LayerId(1)}, o, (v % 8) * kBlockSize, 2 * kBlockSize),
              Pattern(2 * kBlockSize, o * 100 + v));
  }
  EXPECT_EQ(ReadAll({LayerId(2)}, 0, 5 * kBlockSize, kBlockSize), Pattern(kBlockSize, 505));
}

// The in-memory index (without checksums) of fully written objects stays below 0.05 % of the
// data; checksums add 0.1 %.
TEST_F(JStoreTest, IndexMemoryIsBounded) {
  MakeDisk(100 * kMiB);
  for (uint32_t o = 0; o < 2; ++o) {
    ASSERT_TRUE(Put(1, o, 1, 0, Pattern(kObjectSize, o)).ok());
  }
  ASSERT_TRUE(store_->Checkpoint().ok());
  StoreStats s = store_->Stats();
  EXPECT_EQ(s.bytes_stored, 2 * kObjectSize);
  EXPECT_LT(static_cast<double>(s.index_bytes) / s.bytes_stored, 0.0005);
  EXPECT_LE(static_cast<double>(s.crc_bytes) / s.bytes_stored, 0.001);
}

// A read-only open replays the journal in memory, reads and checks everything, refuses
// writes and writes nothing to the disk.
TEST_F(JStoreTest, ReadOnlyOpenInspectsWithoutWriting) {
  MakeDisk(24 * kMiB);
  auto d = Pattern(8192, 4);
  ASSERT_TRUE(Put(1, 0, 1, 0, d).ok());
  ASSERT_TRUE(Put(1, 0, 2, 8192, Pattern(200 * 1024, 5)).ok());
  disk_->CrashNow();  // no checkpoint: the writes live in the journal only
  store_.reset();
  disk_->Revive();
  const uint64_t writes = disk_->writes(), syncs = disk_->syncs();
  StoreOptions ro;
  ro.read_only = true;
  auto s = JStore::Open(env_, "d", "", ro);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_GE((*s)->open_report().replayed_records, 2u);
  std::vector<uint8_t> out(8192);
  ASSERT_TRUE((*s)->Read(std::vector<LayerId>{LayerId(1)}, ObjectIndex(0), 0, out).ok());
  EXPECT_EQ(out, d);
  EXPECT_TRUE((*s)->CheckIndex().empty());
  auto bad = (*s)->Verify();
  ASSERT_TRUE(bad.ok());
  EXPECT_TRUE(bad->empty());
  EXPECT_EQ((*s)->Write(LayerId(1), ObjectIndex(0), 3, 0, d).status().code(),
            Code::kFailedPrecondition);
  s = Status(Code::kUnavailable, "closed");
  EXPECT_EQ(disk_->writes(), writes);
  EXPECT_EQ(disk_->syncs(), syncs);
}

ObjectImage EmptyImage(uint64_t version) {
  ObjectImage img;
  img.version = version;
  img.present.assign(kBlocksPerObject, false);
  img.zeroed.assign(kBlocksPerObject, false);
  return img;
}

// Appends block b with contents `data` to an image (blocks must be added in order).
void AddBlock(ObjectImage& img, uint32_t b, const std::vector<uint8_t>& data) {
  img.present[b] = true;
  img.data.insert(img.data.end(), data.begin(), data.end());
}

// Export gives a layer's own blocks (present, zeroed, absent) over a chain with a lower layer;
// installing the exports of both layers on another disk reproduces the chain read exactly,
// before and after replay and a checkpoint, and the second disk exports the same image.
TEST_F(JStoreTest, ExportInstallRoundTripOverChain) {
  MakeDisk(48 * kMiB);
  ASSERT_TRUE(Put(10, 0, 1, 0, Pattern(512 * 1024, 1)).ok());           // lower: blocks 0..127
  ASSERT_TRUE(Put(11, 0, 1, 4 * 4096, Pattern(4 * 4096, 2)).ok());      // blocks 4..7 journaled
  ASSERT_TRUE(Put(11, 0, 2, 128 * 1024, Pattern(192 * 1024, 3)).ok());  // 32..79 redirected
  ASSERT_TRUE(store_->Trim(LayerId(11), ObjectIndex(0), 3, 10 * 4096, 2 * 4096).ok());
  ASSERT_TRUE(Put(11, 0, 4, 20 * 4096 + 512, Pattern(512, 4)).ok());  // block 20, merged
  auto top = store_->Export(LayerId(11), ObjectIndex(0));
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(top->version, 4u);
  for (uint32_t b = 0; b < kBlocksPerObject; ++b) {
    const bool present = (b >= 4 && b < 8) || (b >= 32 && b < 80) || b == 20;
    EXPECT_EQ(top->present[b], present) << b;
    EXPECT_EQ(top->zeroed[b], b == 10 || b == 11) << b;
  }
  ASSERT_EQ(top->data.size(), 53u * 4096);
  EXPECT_EQ(std::vector<uint8_t>(top->data.begin(), top->data.begin() + 4 * 4096),
            Pattern(4 * 4096, 2));
  auto low = store_->Export(LayerId(10), ObjectIndex(0));
  ASSERT_TRUE(low.ok());
  EXPECT_EQ(store_->Export(LayerId(12), ObjectIndex(0))->version, 0u);  // absent
  const std::vector<LayerId> chain{LayerId(11), LayerId(10)};
  const auto want = ReadAll(chain, 0, 0, 512 * 1024);

  env_.AddDisk("e", 48 * kMiB, 5);
  ASSERT_TRUE(JStore::Init(env_, "e", {DiskId(4), kCluster, 0, 0}).ok());
  for (int pass = 0; pass < 3; ++pass) {
    auto other = JStore::Open(env_, "e", kCluster);
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    if (pass == 0) {
      ASSERT_TRUE((*other)->Install(LayerId(10), ObjectIndex(0), *low).ok());
      Status s = (*other)->Install(LayerId(11), ObjectIndex(0), *top);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    if (pass == 1) {
      ASSERT_TRUE((*other)->Checkpoint().ok());
    }
    std::vector<uint8_t> got(512 * 1024);
    ASSERT_TRUE((*other)->Read(chain, ObjectIndex(0), 0, got).ok());
    EXPECT_EQ(got, want) << "pass " << pass;
    auto again = (*other)->Export(LayerId(11), ObjectIndex(0));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->version, top->version);
    EXPECT_EQ(again->present, top->present);
    EXPECT_EQ(again->zeroed, top->zeroed);
    EXPECT_EQ(again->data, top->data);
    EXPECT_EQ((*other)->Info(LayerId(11), ObjectIndex(0)).state, ObjectState::kOk);
    EXPECT_TRUE((*other)->CheckIndex().empty());
  }
}

// Installing over stored data frees the old chunks (reusable after a checkpoint); writes then
// continue at the installed version + 1 and the version order holds; all survives a restart.
TEST_F(JStoreTest, InstallReplacesAndWritesContinue) {
  MakeDisk(24 * kMiB);
  ASSERT_TRUE(Put(1, 0, 1, 0, Pattern(1 * kMiB, 1)).ok());
  ASSERT_TRUE(Put(1, 0, 2, 2 * kMiB, Pattern(4096, 2)).ok());
  EXPECT_EQ(store_->Layer(LayerId(1)).on_disk_bytes, 17 * kChunkBytes);
  ObjectImage img = EmptyImage(9);
  AddBlock(img, 5, Pattern(4096, 3));
  img.zeroed[100] = true;
  ASSERT_TRUE(store_->Install(LayerId(1), ObjectIndex(0), img).ok());
  EXPECT_EQ(store_->Layer(LayerId(1)).on_disk_bytes, kChunkBytes);
  ASSERT_TRUE(store_->Checkpoint().ok());
  EXPECT_EQ(store_->Stats().on_disk_bytes, kChunkBytes);
  const ObjectInfo info = store_->Info(LayerId(1), ObjectIndex(0));
  EXPECT_EQ(info.version, 9u);
  EXPECT_EQ(info.state, ObjectState::kOk);
  EXPECT_EQ(info.blocks_present, 1u);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 5 * 4096, 4096), Pattern(4096, 3));
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 4096), std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(Put(1, 0, 11, 0, Pattern(4096, 4)).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(*Put(1, 0, 9, 0, Pattern(4096, 4)), 9u);  // already applied: no change
  EXPECT_EQ(*Put(1, 0, 10, 0, Pattern(4096, 5)), 10u);
  Reopen();
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 10u);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 4096), Pattern(4096, 5));
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 5 * 4096, 4096), Pattern(4096, 3));
  auto st = store_->BlockStatus(std::vector<LayerId>{LayerId(1)}, ObjectIndex(0), 0, 101 * 4096);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE((*st)[0] && (*st)[5] && !(*st)[1] && !(*st)[100]);
  EXPECT_TRUE(store_->CheckIndex().empty());
}

// Installing version 0 with nothing present removes the object; malformed images are refused
// and change nothing.
TEST_F(JStoreTest, InstallVersionZeroRemovesAndBadImagesAreRefused) {
  MakeDisk(24 * kMiB);
  ASSERT_TRUE(Put(1, 0, 1, 0, Pattern(8192, 1)).ok());
  ObjectImage both = EmptyImage(3);
  AddBlock(both, 2, Pattern(4096, 2));
  both.zeroed[2] = true;
  EXPECT_EQ(store_->Install(LayerId(1), ObjectIndex(0), both).code(), Code::kInvalidArgument);
  ObjectImage short_data = EmptyImage(3);
  short_data.present[1] = true;
  EXPECT_EQ(store_->Install(LayerId(1), ObjectIndex(0), short_data).code(), Code::kInvalidArgument);
  ObjectImage zero_with_data = EmptyImage(0);
  zero_with_data.zeroed[7] = true;
  EXPECT_EQ(store_->Install(LayerId(1), ObjectIndex(0), zero_with_data).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 1u);
  ASSERT_TRUE(store_->Install(LayerId(1), ObjectIndex(0), EmptyImage(0)).ok());
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).state, ObjectState::kUndef);
  EXPECT_TRUE(store_->List().empty());
  EXPECT_EQ(store_->Layer(LayerId(1)).on_disk_bytes, 0u);
  Reopen();
  EXPECT_TRUE(store_->List().empty());
  EXPECT_EQ(*Put(1, 0, 1, 0, Pattern(4096, 3)), 1u);
}

// A crash after the install's first record leaves the object outdated at version 0 (also
// across a checkpoint): reads through any chain holding it and BlockStatus are kUnavailable,
// writes kFailedPrecondition, Export kUnavailable, List shows it; a new install completes it.
TEST_F(JStoreTest, CrashMidInstallLeavesObjectOutdated) {
  MakeDisk(24 * kMiB);
  StoreOptions quiet;
  quiet.flush_interval = std::chrono::hours(1);  // no background checkpoint in the crash window
  Reopen(quiet);
  ASSERT_TRUE(Put(10, 0, 1, 0, Pattern(64 * 1024, 1)).ok());
  ASSERT_TRUE(Put(11, 0, 1, 0, Pattern(8192, 2)).ok());
  ASSERT_TRUE(store_->Checkpoint().ok());
  ObjectImage img = EmptyImage(7);
  AddBlock(img, 0, Pattern(4096, 3));
  for (uint32_t b = 16; b < 48; ++b) AddBlock(img, b, Pattern(4096, b));  // 2 whole chunks
  disk_->ArmCrash(3);  // the first record's write and sync succeed, the data write fails
  EXPECT_FALSE(store_->Install(LayerId(11), ObjectIndex(0), img).ok());
  disk_->CrashNow();
  store_.reset();
  disk_->Revive();
  for (int pass = 0; pass < 2; ++pass) {
    Reopen(quiet);
    const ObjectInfo info = store_->Info(LayerId(11), ObjectIndex(0));
    EXPECT_EQ(info.version, 0u);
    EXPECT_EQ(info.state, ObjectState::kOutdated);
    std::vector<uint8_t> out(4096);
    const ObjectIndex o(0);
    EXPECT_EQ(store_->Read(std::vector<LayerId>{LayerId(11)}, o, 0, out).code(),
              Code::kUnavailable);
    Status s = store_->Read(std::vector<LayerId>{LayerId(12), LayerId(11), LayerId(10)}, o, 0, out);
    EXPECT_EQ(s.code(), Code::kUnavailable);
    EXPECT_NE(s.message().find("outdated"), std::string::npos) << s.message();
    EXPECT_TRUE(store_->Read(std::vector<LayerId>{LayerId(10)}, o, 0, out).ok());
    EXPECT_EQ(store_->BlockStatus(std::vector<LayerId>{LayerId(11), LayerId(10)}, o, 0, 4096)
                  .status()
                  .code(),
              Code::kUnavailable);
    auto w = Put(11, 0, 1, 0, Pattern(4096, 9));
    EXPECT_EQ(w.status().code(), Code::kFailedPrecondition);
    EXPECT_NE(w.status().message().find("outdated"), std::string::npos);
    EXPECT_EQ(store_->Trim(LayerId(11), o, 1, 0, 4096).status().code(), Code::kFailedPrecondition);
    EXPECT_EQ(store_->Export(LayerId(11), o).status().code(), Code::kUnavailable);
    auto list = store_->List();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[1].layer, LayerId(11));
    EXPECT_EQ(list[1].info.state, ObjectState::kOutdated);
    EXPECT_TRUE(store_->CheckIndex().empty());
    ASSERT_TRUE(store_->Checkpoint().ok());  // the state is in the checkpoint too
  }
  ASSERT_TRUE(store_->Install(LayerId(11), ObjectIndex(0), img).ok());
  EXPECT_EQ(store_->Info(LayerId(11), ObjectIndex(0)).version, 7u);
  EXPECT_EQ(ReadAll({LayerId(11), LayerId(10)}, 0, 16 * 4096, 4096), Pattern(4096, 16));
  const auto low = Pattern(64 * 1024, 1);  // block 1 falls through to the lower layer
  EXPECT_EQ(ReadAll({LayerId(11), LayerId(10)}, 0, 4096, 4096),
            std::vector<uint8_t>(low.begin() + 4096, low.begin() + 8192));
  EXPECT_EQ(*Put(11, 0, 8, 0, Pattern(4096, 10)), 8u);
}

// Writes acknowledged after an install (small and large, into chunks the install created and
// into fresh ones) survive every way of reopening: clean close, read-only open, a crash without
// a checkpoint, and checkpoints between the install and the writes or after them; also with the
// flusher checkpointing continuously. The reopened object is at the last version with exactly
// the written bytes.
TEST_F(JStoreTest, WritesAfterInstallSurviveReopen) {
  constexpr uint32_t kSpanBytes = 2 * kMiB;
  for (int variant = 0; variant < 6; ++variant) {
    SCOPED_TRACE(variant);
    store_.reset();
    MakeDisk(48 * kMiB);
    StoreOptions options;
    // 0..4: no background checkpoint, so each variant controls when one happens; 5: many.
    options.flush_interval = variant == 5 ? std::chrono::milliseconds(1) : std::chrono::hours(1);
    Reopen(options);
    std::vector<uint8_t> model(kSpanBytes, 0);
    auto write = [&](uint64_t v, uint32_t off, size_t len) {
      auto d = Pattern(len, static_cast<uint32_t>(v * 7 + variant));
      auto r = Put(1, 0, v, off, d);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(*r, v);
      std::memcpy(model.data() + off, d.data(), len);
    };
    write(1, 0, 256 * 1024);           // large: redirected chunks 0..3
    write(2, 300 * 1024, 8192);        // small
    write(3, 512 * 1024, 192 * 1024);  // large
    // The image: a partial chunk (inline), whole chunks (redirected), zeroed and absent blocks.
    ObjectImage img = EmptyImage(40);
    std::fill(model.begin(), model.end(), 0);
    for (uint32_t b = 0; b < 3; ++b) {
      auto d = Pattern(4096, 1000 + b);
      AddBlock(img, b, d);
      std::memcpy(model.data() + b * 4096, d.data(), 4096);
    }
    img.zeroed[5] = true;
    for (uint32_t b = 32; b < 80; ++b) {
      auto d = Pattern(4096, 2000 + b);
      AddBlock(img, b, d);
      std::memcpy(model.data() + b * 4096, d.data(), 4096);
    }
    img.zeroed[100] = img.zeroed[101] = true;
    ASSERT_TRUE(store_->Install(LayerId(1), ObjectIndex(0), img).ok());
    if (variant == 3) {
      ASSERT_TRUE(store_->Checkpoint().ok());
    }
    write(41, 4096 + 512, 1024);        // into a chunk the install created (inline)
    write(42, 128 * 1024, 128 * 1024);  // large over installed redirected chunks 2..3
    write(43, 96 * 4096, 8 * 4096);     // over the zeroed blocks
    write(44, 1 * kMiB, 320 * 1024);    // large into fresh chunks
    write(45, 40 * 4096, 4096);         // inside an installed whole chunk
    if (variant == 4) {
      ASSERT_TRUE(store_->Checkpoint().ok());
    }
    const ObjectInfo live = store_->Info(LayerId(1), ObjectIndex(0));
    EXPECT_EQ(live.version, 45u);
    EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, kSpanBytes), model);
    StoreOptions read_only = options;
    read_only.read_only = true;
    if (variant == 1) {  // as an inspection tool opens it after the server stopped
      Reopen(read_only);
    } else if (variant == 2) {  // crash: nothing after the last acknowledged write survives
      disk_->CrashNow();
      store_.reset();
      disk_->Revive();
      Reopen(options);
    } else {
      Reopen(options);
    }
    for (int pass = 0; pass < 2; ++pass) {
      SCOPED_TRACE(pass);
      const ObjectInfo info = store_->Info(LayerId(1), ObjectIndex(0));
      EXPECT_EQ(info.version, 45u);
      EXPECT_EQ(info.state, ObjectState::kOk);
      EXPECT_EQ(info.blocks_present, live.blocks_present);
      EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, kSpanBytes), model);
      EXPECT_TRUE(store_->CheckIndex().empty());
      Reopen(read_only);
    }
  }
}

// A large write is one durable round: its data and its record are written, then one fdatasync.
TEST_F(JStoreTest, LargeWriteIsOneDurableRound) {
  MakeDisk(48 * kMiB);
  StoreOptions quiet;
  quiet.flush_interval = std::chrono::hours(1);
  Reopen(quiet);
  const uint64_t syncs = disk_->syncs(), writes = disk_->writes();
  auto d = Pattern(kMiB, 1);
  ASSERT_TRUE(Put(1, 0, 1, 0, d).ok());
  EXPECT_EQ(disk_->syncs() - syncs, 1u);
  EXPECT_EQ(disk_->writes() - writes, 2u);  // 16 fresh chunks side by side, one record
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, kMiB), d);
  Reopen(quiet);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, kMiB), d);
}

// A crash at the fdatasync of a large write's round whose record reached the disk but whose
// redirected data did not (dropped or torn): replay drops the record (it was never
// acknowledged), the object stays at its previous version and content, the fresh chunks stay
// free, and the object takes new writes. When everything reached the disk, it is applied.
TEST_F(JStoreTest, RoundWithTornRedirectedDataIsDropped) {
  using Fate = SimDisk::Fate;
  for (Fate data_fate : {Fate::kDrop, Fate::kTear, Fate::kKeep}) {
    SCOPED_TRACE(static_cast<int>(data_fate));
    store_.reset();
    MakeDisk(24 * kMiB);  // a fresh disk each time
    StoreOptions quiet;
    quiet.flush_interval = std::chrono::hours(1);
    Reopen(quiet);
    const auto v1 = Pattern(8192, 1);
    ASSERT_TRUE(Put(1, 0, 1, 4096, v1).ok());
    ASSERT_TRUE(store_->Checkpoint().ok());
    const uint64_t on_disk = store_->Stats().on_disk_bytes;
    const uint64_t data_offset = store_->superblock().data_offset;
    disk_->SetCrashPolicy([&](uint64_t offset, uint64_t) {
      return offset >= data_offset ? data_fate : Fate::kKeep;  // the record always survives
    });
    disk_->ArmCrashAtSync(1);
    const auto v2 = Pattern(256 * 1024, 2);
    EXPECT_FALSE(Put(1, 0, 2, 0, v2).ok());
    store_.reset();
    disk_->Revive();
    disk_->SetCrashPolicy(nullptr);
    Reopen(quiet);
    EXPECT_TRUE(store_->CheckIndex().empty());
    if (data_fate == Fate::kKeep) {
      EXPECT_EQ(store_->open_report().dropped_records, 0u);
      EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 2u);
      EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 256 * 1024), v2);
      continue;
    }
    EXPECT_EQ(store_->open_report().dropped_records, 1u);
    EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 1u);
    EXPECT_EQ(ReadAll({LayerId(1)}, 0, 4096, 8192), v1);
    EXPECT_EQ(store_->Stats().on_disk_bytes, on_disk);
    auto bad = store_->Verify();
    ASSERT_TRUE(bad.ok());
    EXPECT_TRUE(bad->empty());
    const auto v2b = Pattern(256 * 1024, 3);
    ASSERT_TRUE(Put(1, 0, 2, 0, v2b).ok());
    Reopen(quiet);  // the dropped record is behind the checkpoint now: never replayed again
    EXPECT_EQ(store_->open_report().dropped_records, 0u);
    EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 2u);
    EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 256 * 1024), v2b);
  }
}

// Only the last round is checked against its data: an earlier large write whose chunk was
// since rewritten in place (a later small write flushed by a checkpoint that crashed before
// its header was durable) is replayed, not dropped, and the later write applies over it.
TEST_F(JStoreTest, EarlierRoundOverwrittenInPlaceStillReplays) {
  MakeDisk(24 * kMiB);
  StoreOptions quiet;
  quiet.flush_interval = std::chrono::hours(1);
  Reopen(quiet);
  auto want = Pattern(128 * 1024, 1);
  ASSERT_TRUE(Put(1, 0, 1, 0, want).ok());  // two redirected chunks
  const auto small = Pattern(4096, 2);
  ASSERT_TRUE(Put(1, 0, 2, 4096, small).ok());  // a journaled block in the first chunk
  std::copy(small.begin(), small.end(), want.begin() + 4096);
  // The checkpoint writes that block in place and syncs, then crashes at its header's sync.
  disk_->SetCrashPolicy([](uint64_t, uint64_t) { return SimDisk::Fate::kDrop; });
  disk_->ArmCrashAtSync(2);
  EXPECT_FALSE(store_->Checkpoint().ok());
  store_.reset();
  disk_->Revive();
  disk_->SetCrashPolicy(nullptr);
  Reopen(quiet);
  EXPECT_EQ(store_->open_report().replayed_records, 2u);
  EXPECT_EQ(store_->open_report().dropped_records, 0u);
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 2u);
  EXPECT_EQ(ReadAll({LayerId(1)}, 0, 0, 128 * 1024), want);
  auto bad = store_->Verify();
  ASSERT_TRUE(bad.ok());
  EXPECT_TRUE(bad->empty());
}

// A flipped byte in a stored block makes Export fail with kCorruption naming the block.
TEST_F(JStoreTest, ExportDetectsCorruption) {
  MakeDisk(24 * kMiB);
  ASSERT_TRUE(Put(1, 0, 1, 0, Pattern(256 * 1024, 5)).ok());
  ASSERT_TRUE(store_->Checkpoint().ok());
  auto at = store_->BlockOffset(LayerId(1), ObjectIndex(0), 17);
  ASSERT_TRUE(at.ok());
  store_.reset();
  disk_->FlipByte(*at + 100);
  Reopen();
  auto img = store_->Export(LayerId(1), ObjectIndex(0));
  EXPECT_EQ(img.status().code(), Code::kCorruption);
  EXPECT_NE(img.status().message().find("block 17"), std::string::npos) << img.status().message();
}

// On a real file (O_DIRECT when the filesystem allows), the store initialises, writes,
// reopens and reads back.
TEST(JStoreFile, RealFileRoundTrip) {
  std::string path = ::testing::TempDir() + "/jstore_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  env::Env& env = env::Env::Default();
  ASSERT_TRUE(JStore::Init(env, path, {DiskId(1), kCluster, 32 * kMiB, 0}).ok());
  auto d = Pattern(200 * 1024, 9);
  {
    auto s = JStore::Open(env, path, kCluster);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->Write(LayerId(1), ObjectIndex(5), 1, 4096, d).ok());
  }
  auto s = JStore::Open(env, path, kCluster);
  ASSERT_TRUE(s.ok());
  std::vector<uint8_t> out(d.size());
  ASSERT_TRUE((*s)->Read(std::vector<LayerId>{LayerId(1)}, ObjectIndex(5), 4096, out).ok());
  EXPECT_EQ(out, d);
  s = Status(Code::kUnavailable, "closed");  // closes the store before the file goes
  ::unlink(path.c_str());
}

// On a real file with each I/O engine: 1 MiB writes from aligned (written in place) and
// unaligned (copied) buffers, reads into aligned (read in place) and unaligned buffers and
// across several extents, before and after a reopen.
TEST(JStoreFile, LargeIoOnBothEngines) {
  for (env::IoEngine engine : {env::IoEngine::kIoUring, env::IoEngine::kPosix}) {
    env::SetIoEngine(engine);
    SCOPED_TRACE(env::IoEngineName(env::CurrentIoEngine()));
    std::string path = ::testing::TempDir() + "/jstore_io_" + std::to_string(::getpid());
    ::unlink(path.c_str());
    env::Env& env = env::Env::Default();
    ASSERT_TRUE(JStore::Init(env, path, {DiskId(1), kCluster, 64 * kMiB, 0}).ok());
    const auto a = Pattern(kMiB, 1), b = Pattern(kMiB, 2), c = Pattern(8192, 3);
    env::AlignedBuffer aligned(kMiB);
    std::memcpy(aligned.data(), a.data(), kMiB);
    std::vector<uint8_t> model(4 * kMiB, 0);
    for (int pass = 0; pass < 2; ++pass) {
      auto s = JStore::Open(env, path, kCluster);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      JStore& st = **s;
      if (pass == 0) {
        ASSERT_TRUE(st.Write(LayerId(1), ObjectIndex(0), 1, 0, {aligned.data(), kMiB}).ok());
        ASSERT_TRUE(st.Write(LayerId(1), ObjectIndex(0), 2, 2 * kMiB, b).ok());
        ASSERT_TRUE(st.Write(LayerId(1), ObjectIndex(0), 3, kMiB - 4096, c).ok());
        std::copy(a.begin(), a.end(), model.begin());
        std::copy(b.begin(), b.end(), model.begin() + 2 * kMiB);
        std::copy(c.begin(), c.end(), model.begin() + kMiB - 4096);
      }
      const std::vector<LayerId> chain{LayerId(1)};
      env::AlignedBuffer out(3 * kMiB + 4096);
      ASSERT_TRUE(st.Read(chain, ObjectIndex(0), 0, {out.data(), 3 * kMiB}).ok());
      EXPECT_EQ(std::memcmp(out.data(), model.data(), 3 * kMiB), 0);
      std::memset(out.data(), 0xff, out.size());
      ASSERT_TRUE(st.Read(chain, ObjectIndex(0), 512, {out.data() + 512, kMiB}).ok());
      EXPECT_EQ(std::memcmp(out.data() + 512, model.data() + 512, kMiB), 0);
    }
    ::unlink(path.c_str());
  }
  env::SetIoEngine(env::IoEngine::kIoUring);
}

}  // namespace
}  // namespace spindle::server::jdisk
