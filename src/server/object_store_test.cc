#include "server/object_store.h"

// GCC 12 reports a false -Wmismatched-new-delete on asio's coroutine frame allocator when a
// long test coroutine is inlined; the frame is allocated and freed by the same asio operators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <thread>

#include "server/test_util.h"

namespace spindle::server {
namespace {

using namespace std::chrono_literals;
using testing::Pattern;
using testing::RunCoroutine;

class ObjectStoreTest : public ::testing::Test {
 protected:
  void Make(std::chrono::milliseconds wait) {
    store_ = std::make_unique<ObjectStore>(io_, pool_, dir_.NewDisk(1), wait);
  }
  // store_ and a second replica peer_, store_'s gap handler pulling from peer_ (Recover).
  void MakeWithPeer() {
    Make(5s);
    peer_ = std::make_unique<ObjectStore>(io_, pool_, dir_.NewDisk(2), 5s);
    store_->SetGapHandler([this](LayerId layer, ObjectIndex object, uint64_t wanted) {
      return Recover(layer, object, wanted);
    });
  }
  void TearDown() override {
    testing::Drain(io_);
    pool_.join();
  }

  // Writes one version of (layer 1, object `object`) and records the result in *out.
  static asio::awaitable<void> WriteInto(ObjectStore* store, uint32_t object, uint64_t version,
                                         uint32_t offset, std::vector<uint8_t> data,
                                         std::optional<Result<uint64_t>>* out) {
    *out = co_await store->Write(LayerId(1), ObjectIndex(object), version, offset, data);
  }
  void Spawn(uint32_t object, uint64_t version, uint32_t offset, const std::vector<uint8_t>& data,
             std::optional<Result<uint64_t>>* out) {
    asio::co_spawn(io_, WriteInto(store_.get(), object, version, offset, data, out),
                   asio::detached);
  }
  asio::awaitable<void> Sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(io_, d);
    co_await t.async_wait(asio::use_awaitable);
  }
  asio::awaitable<std::vector<uint8_t>> ReadBlock(uint32_t object, uint64_t expect_version) {
    std::vector<LayerId> chain{LayerId(1)};
    auto r = co_await store_->Read(std::move(chain), ObjectIndex(object), 0, 4096);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) co_return std::vector<uint8_t>{};
    EXPECT_EQ(r->version, expect_version);
    co_return std::vector<uint8_t>(r->data.begin(), r->data.end());
  }

  asio::awaitable<void> OutOfOrderBody();
  asio::awaitable<void> GapBody();
  asio::awaitable<void> ManyBody();
  asio::awaitable<void> TrimOrderBody();
  asio::awaitable<void> InstallOrderBody();
  asio::awaitable<void> GapHandlerBody();
  asio::awaitable<void> StaleInstallBody();
  asio::awaitable<void> NextWaitingBody();
  asio::awaitable<void> SkippedCopyBody();
  // The gap handler of GapHandlerBody: pulls the object from peer_ as recovery would.
  asio::awaitable<Status> Recover(LayerId layer, ObjectIndex object, uint64_t wanted) {
    ++gap_calls_;
    wanted_ = wanted;
    co_await Sleep(30ms);  // more writes arrive meanwhile: they must not call it again
    auto image = co_await peer_->Export(layer, object);
    if (!image.ok()) co_return image.status();
    co_return co_await store_->Install(layer, object, std::move(image).value());
  }
  // A gap handler that only sits out a grace period, as recovery's does first.
  asio::awaitable<Status> SlowGap() {
    ++gap_calls_;
    co_await Sleep(5s);
    co_return Status::Ok();
  }
  static jdisk::ObjectImage Image(uint64_t version) {
    jdisk::ObjectImage img;
    img.version = version;
    img.present.assign(kBlocksPerObject, false);
    img.zeroed.assign(kBlocksPerObject, false);
    return img;
  }
  static asio::awaitable<void> TrimInto(ObjectStore* store, uint64_t version,
                                        std::optional<Result<uint64_t>>* out) {
    *out = co_await store->Trim(LayerId(1), ObjectIndex(0), version, 0, 4096);
  }

  testing::ScratchDir dir_;
  asio::io_context io_;
  asio::thread_pool pool_{2};
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<ObjectStore> peer_;  // a second replica (gap handler test)
  std::optional<Result<uint64_t>> r_[32];
  int gap_calls_ = 0;
  uint64_t wanted_ = 0;
};

asio::awaitable<void> ObjectStoreTest::OutOfOrderBody() {
  Spawn(0, 3, 0, Pattern(4096, 3), &r_[3]);
  Spawn(0, 2, 0, Pattern(4096, 2), &r_[2]);
  co_await Sleep(50ms);
  EXPECT_FALSE(r_[2].has_value());  // still waiting for version 1
  EXPECT_FALSE(r_[3].has_value());
  Spawn(0, 1, 0, Pattern(4096, 1), &r_[1]);
  while (!(r_[1] && r_[2] && r_[3])) co_await Sleep(5ms);
  EXPECT_EQ(co_await ReadBlock(0, 3), Pattern(4096, 3));
}

// Writes sent out of order (3, 2, then 1) all complete, in version order: the object ends at
// version 3 holding version 3's data.
TEST_F(ObjectStoreTest, OutOfOrderVersionsWaitAndApplyInOrder) {
  Make(5s);
  RunCoroutine(io_, OutOfOrderBody());
  for (uint64_t v = 1; v <= 3; ++v) EXPECT_EQ(r_[v]->value(), v);
}

asio::awaitable<void> ObjectStoreTest::GapBody() {
  auto d = Pattern(4096, 4);
  auto gap = co_await store_->Write(LayerId(1), ObjectIndex(0), 2, 0, d);
  EXPECT_EQ(gap.status().code(), Code::kUnavailable);
  auto first = co_await store_->Write(LayerId(1), ObjectIndex(0), 1, 0, d);
  EXPECT_EQ(first.value(), 1u);
  auto other = Pattern(4096, 5);
  auto again = co_await store_->Write(LayerId(1), ObjectIndex(0), 1, 0, other);
  EXPECT_EQ(again.value(), 1u);
  EXPECT_EQ(co_await ReadBlock(0, 1), d);
}

// A write whose predecessor never arrives fails with kUnavailable after the bounded wait, and
// a duplicate of an applied version is acknowledged with the current version, unchanged.
TEST_F(ObjectStoreTest, GapTimesOutDuplicateAcknowledged) {
  Make(100ms);
  RunCoroutine(io_, GapBody());
  EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(0)).version, 1u);
}

constexpr uint32_t kObjects = 3, kVersions = 8;

asio::awaitable<void> ObjectStoreTest::ManyBody() {
  for (uint32_t v = kVersions; v >= 1; --v) {
    for (uint32_t o = 0; o < kObjects; ++o) {
      Spawn(o, v, 4096 * v, Pattern(8192, v), &r_[o * kVersions + v - 1]);
    }
  }
  auto all_done = [this] {
    for (uint32_t i = 0; i < kObjects * kVersions; ++i) {
      if (!r_[i]) return false;
    }
    return true;
  };
  while (!all_done()) co_await Sleep(5ms);
}

// Many writes to several objects in flight at once all apply; each object ends at its last
// version (per-object order holds while objects proceed in parallel on the pool).
TEST_F(ObjectStoreTest, ManyObjectsConcurrently) {
  Make(5s);
  RunCoroutine(io_, ManyBody());
  for (uint32_t i = 0; i < kObjects * kVersions; ++i) EXPECT_TRUE(r_[i]->ok());
  for (uint32_t o = 0; o < kObjects; ++o) {
    EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(o)).version, kVersions);
    EXPECT_EQ(store_->Info(LayerId(1), ObjectIndex(o)).blocks_present, kVersions + 1);
  }
}

asio::awaitable<void> ObjectStoreTest::TrimOrderBody() {
  asio::co_spawn(io_, TrimInto(store_.get(), 2, &r_[2]), asio::detached);
  co_await Sleep(50ms);
  EXPECT_FALSE(r_[2].has_value());  // the trim waits for write version 1
  Spawn(0, 1, 0, Pattern(4096, 1), &r_[1]);
  while (!(r_[1] && r_[2])) co_await Sleep(5ms);
  EXPECT_EQ(co_await ReadBlock(0, 2), std::vector<uint8_t>(4096, 0));
  std::vector<LayerId> chain{LayerId(1)};
  auto status = co_await store_->BlockStatus(std::move(chain), ObjectIndex(0), 0, 8192);
  EXPECT_TRUE(status.ok() && *status == (std::vector<bool>{false, false}));
}

// A trim shares the per-object version queue with writes: sent before the write it follows,
// it waits, then applies, and the block reads as zeros and reports as a hole.
TEST_F(ObjectStoreTest, TrimOrderedWithWrites) {
  Make(5s);
  RunCoroutine(io_, TrimOrderBody());
  EXPECT_EQ(r_[1]->value(), 1u);
  EXPECT_EQ(r_[2]->value(), 2u);
}

asio::awaitable<void> ObjectStoreTest::InstallOrderBody() {
  auto first = co_await store_->Write(LayerId(1), ObjectIndex(0), 1, 0, Pattern(4096, 1));
  EXPECT_EQ(first.value(), 1u);
  Spawn(0, 2, 0, Pattern(4096, 2), &r_[2]);
  Spawn(0, 6, 4096, Pattern(4096, 6), &r_[6]);  // waits for version 5
  jdisk::ObjectImage img = Image(5);
  img.present[0] = true;
  img.data = Pattern(4096, 5);
  img.zeroed[7] = true;
  Status s = co_await store_->Install(LayerId(1), ObjectIndex(0), std::move(img));
  EXPECT_TRUE(s.ok()) << s.ToString();
  while (!(r_[2] && r_[6])) co_await Sleep(5ms);
  auto exported = co_await store_->Export(LayerId(1), ObjectIndex(0));
  EXPECT_TRUE(exported.ok()) << exported.status().ToString();
  if (!exported.ok()) co_return;
  EXPECT_EQ(exported->version, 6u);
  std::vector<uint8_t> want = Pattern(4096, 5);
  auto six = Pattern(4096, 6);
  want.insert(want.end(), six.begin(), six.end());
  EXPECT_EQ(exported->data, want);
  EXPECT_TRUE(exported->present[0] && exported->present[1] && !exported->present[2]);
  EXPECT_TRUE(exported->zeroed[7]);
}

// Install takes the object's turn like a write: a write in flight finishes before it (or is
// covered by it and acknowledged), a write above the installed version waits for it and then
// applies on top; Export then sees one consistent version.
TEST_F(ObjectStoreTest, InstallAndExportOrderedWithWrites) {
  Make(5s);
  RunCoroutine(io_, InstallOrderBody());
  ASSERT_TRUE(r_[2]->ok());
  EXPECT_TRUE(r_[2]->value() == 2u || r_[2]->value() == 5u) << r_[2]->value();
  EXPECT_EQ(r_[6]->value(), 6u);
}

asio::awaitable<void> ObjectStoreTest::GapHandlerBody() {
  for (uint64_t v = 1; v <= 4; ++v) {
    auto r = co_await peer_->Write(LayerId(1), ObjectIndex(0), v, 4096 * v, Pattern(4096, v));
    EXPECT_TRUE(r.ok());
  }
  Spawn(0, 5, 4096 * 5, Pattern(4096, 5), &r_[5]);
  Spawn(0, 6, 4096 * 6, Pattern(4096, 6), &r_[6]);
  co_await Sleep(10ms);
  Spawn(0, 7, 4096 * 7, Pattern(4096, 7), &r_[7]);
  while (!(r_[5] && r_[6] && r_[7])) co_await Sleep(5ms);
  EXPECT_EQ(gap_calls_, 1);
  EXPECT_EQ(wanted_, 4u);
  for (uint64_t v = 5; v <= 9; ++v) {
    auto r = co_await peer_->Write(LayerId(1), ObjectIndex(0), v, 4096 * v, Pattern(4096, v));
    EXPECT_TRUE(r.ok());
  }
  // A later gap is a new episode: the handler runs again.
  Spawn(0, 10, 4096 * 10, Pattern(4096, 10), &r_[10]);
  while (!r_[10]) co_await Sleep(5ms);
  EXPECT_EQ(gap_calls_, 2);
  EXPECT_EQ(wanted_, 9u);
  auto r = co_await peer_->Write(LayerId(1), ObjectIndex(0), 10, 4096 * 10, Pattern(4096, 10));
  EXPECT_TRUE(r.ok());
  auto mine = co_await store_->Export(LayerId(1), ObjectIndex(0));
  auto theirs = co_await peer_->Export(LayerId(1), ObjectIndex(0));
  EXPECT_TRUE(mine.ok() && theirs.ok());
  if (!mine.ok() || !theirs.ok()) co_return;
  EXPECT_EQ(mine->version, 10u);
  EXPECT_EQ(mine->version, theirs->version);
  EXPECT_EQ(mine->present, theirs->present);
  EXPECT_EQ(mine->data, theirs->data);
}

// Writes that find a version gap call the gap handler once per waiting episode, outside the
// object's turn (the handler's Install would deadlock otherwise); after it installs the peer's
// copy, the waiting writes apply in order and the replicas are byte-equal.
TEST_F(ObjectStoreTest, GapHandlerRecoversOncePerEpisode) {
  MakeWithPeer();
  RunCoroutine(io_, GapHandlerBody());
  for (uint64_t v = 5; v <= 7; ++v) EXPECT_EQ(r_[v]->value(), v);
  EXPECT_EQ(r_[10]->value(), 10u);
}

asio::awaitable<void> ObjectStoreTest::NextWaitingBody() {
  Spawn(0, 1, 0, Pattern(4096, 1), &r_[1]);       // takes the turn: on the pool
  Spawn(0, 2, 4096, Pattern(4096, 2), &r_[2]);    // waits for version 1
  co_await asio::post(io_, asio::use_awaitable);  // both have started (a timer may be too late)
  // Hold the io thread until version 1 is applied and its completion is queued, then queue
  // the arrival of version 3 behind it, as a request read from a socket: it runs when the turn
  // of version 1 has ended and version 2 is woken but not yet resumed.
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (store_->Info(LayerId(1), ObjectIndex(0)).version < 1 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(20ms);
  const auto spawned = std::chrono::steady_clock::now();
  asio::post(io_, [this] { Spawn(0, 3, 8192, Pattern(4096, 3), &r_[3]); });
  while (!(r_[1] && r_[2] && r_[3])) co_await Sleep(5ms);
  EXPECT_LT(std::chrono::steady_clock::now() - spawned, 2500ms);  // the handler sleeps 5 s
}

// A write that finds a gap while the missing version waits for its turn (woken by the end of
// the previous turn) does not start the gap handler: it waits, and all apply in order without
// the handler's grace period.
TEST_F(ObjectStoreTest, GapHandlerNotCalledWhenNextVersionWaits) {
  Make(5s);
  store_->SetGapHandler([this](LayerId, ObjectIndex, uint64_t) { return SlowGap(); });
  RunCoroutine(io_, NextWaitingBody());
  EXPECT_EQ(gap_calls_, 0);
  for (uint64_t v = 1; v <= 3; ++v) EXPECT_EQ(r_[v]->value(), v);
}

asio::awaitable<void> ObjectStoreTest::StaleInstallBody() {
  for (uint64_t v = 1; v <= 2; ++v) {
    auto r = co_await peer_->Write(LayerId(1), ObjectIndex(0), v, 0, Pattern(8192, v));
    EXPECT_TRUE(r.ok());
    r = co_await store_->Write(LayerId(1), ObjectIndex(0), v, 0, Pattern(8192, v));
    EXPECT_TRUE(r.ok());
  }
  // Recovery chose the peer's copy at version 2; writes 3..5 apply before it installs it.
  auto image = co_await peer_->Export(LayerId(1), ObjectIndex(0));
  EXPECT_TRUE(image.ok());
  if (!image.ok()) co_return;
  for (uint64_t v = 3; v <= 5; ++v) {
    auto r = co_await store_->Write(LayerId(1), ObjectIndex(0), v, 4096 * v, Pattern(4096, v));
    EXPECT_TRUE(r.ok());
  }
  auto before = co_await store_->Export(LayerId(1), ObjectIndex(0));
  Status s = co_await store_->Install(LayerId(1), ObjectIndex(0), *image);
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto after = co_await store_->Export(LayerId(1), ObjectIndex(0));
  EXPECT_TRUE(before.ok() && after.ok());
  if (!before.ok() || !after.ok()) co_return;
  EXPECT_EQ(after->version, 5u);
  EXPECT_EQ(after->present, before->present);
  EXPECT_EQ(after->data, before->data);
  auto six = co_await store_->Write(LayerId(1), ObjectIndex(0), 6, 0, Pattern(4096, 6));
  EXPECT_EQ(six.value(), 6u);
  // The same version is a repair: installed (the image's content replaces the object's).
  jdisk::ObjectImage same = Image(6);
  same.present[9] = true;
  same.data = Pattern(4096, 99);
  s = co_await store_->Install(LayerId(1), ObjectIndex(0), same);
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto repaired = co_await store_->Export(LayerId(1), ObjectIndex(0));
  EXPECT_TRUE(repaired.ok());
  if (!repaired.ok()) co_return;
  EXPECT_EQ(repaired->version, 6u);
  EXPECT_EQ(repaired->present, same.present);
  EXPECT_EQ(repaired->data, same.data);
}

// An image older than the object (writes applied between the caller choosing it and the
// install, as when recovery pulls a peer's copy while writes continue) is not installed: the
// acknowledged writes stay. An image of the same version still replaces the object (repair).
TEST_F(ObjectStoreTest, StaleInstallKeepsNewerWrites) {
  Make(5s);
  peer_ = std::make_unique<ObjectStore>(io_, pool_, dir_.NewDisk(2), 5s);
  RunCoroutine(io_, StaleInstallBody());
}

}  // namespace
}  // namespace spindle::server

namespace spindle::server {
namespace {

asio::awaitable<void> ObjectStoreTest::SkippedCopyBody() {
  const LayerId l(1);
  const ObjectIndex o(0);
  constexpr uint64_t kSkip = uint64_t{1} << 20;
  // Both copies at version 1; this one also holds a version 2 the writer never acknowledged.
  for (ObjectStore* s : {store_.get(), peer_.get()}) {
    EXPECT_TRUE((co_await s->Write(l, o, 1, 0, Pattern(4096, 1))).ok());
  }
  EXPECT_TRUE((co_await store_->Write(l, o, 2, 4096, Pattern(4096, 99))).ok());
  // The writer learnt version 1 from the peer alone and skips ahead: the peer applies it.
  auto skip_data = Pattern(4096, 7);
  auto on_peer = co_await peer_->Write(l, o, 1 + kSkip, 8192, skip_data, {}, 1);
  EXPECT_TRUE(on_peer.ok() && *on_peer == 1 + kSkip);
  // Here version 2 is neither the base nor the write's version: the copy is pulled, never
  // written on top of.
  auto here = co_await store_->Write(l, o, 1 + kSkip, 8192, skip_data, {}, 1);
  EXPECT_TRUE(here.ok() && *here == 1 + kSkip) << (here.ok() ? "" : here.status().ToString());
  EXPECT_EQ(gap_calls_, 1);
  auto mine = co_await store_->Export(l, o);
  auto theirs = co_await peer_->Export(l, o);
  EXPECT_TRUE(mine.ok() && theirs.ok());
  if (!mine.ok() || !theirs.ok()) co_return;
  EXPECT_EQ(mine->version, theirs->version);
  EXPECT_EQ(mine->present, theirs->present);
  EXPECT_EQ(mine->data, theirs->data);
  // A write that follows the skipped version applies as usual; a base above the copy's version
  // or at the write's own version is refused.
  EXPECT_TRUE((co_await store_->Write(l, o, 2 + kSkip, 0, Pattern(4096, 8))).ok());
  auto same = co_await store_->Write(l, o, 3 + kSkip, 0, Pattern(4096, 9), {}, 3 + kSkip);
  EXPECT_EQ(same.status().code(), Code::kInvalidArgument);
}

// A copy holding versions its writer's line skipped (a write nobody acknowledged, left on this
// replica only) is not at the skipping write's base: the gap handler pulls the line's copy,
// and the skipping write is then already there.
TEST_F(ObjectStoreTest, CopyWithSkippedVersionsIsPulled) {
  MakeWithPeer();
  RunCoroutine(io_, SkippedCopyBody());
}

}  // namespace
}  // namespace spindle::server
