#include "mgmt/sqlite_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "mgmt/cluster.h"
#include "mgmt/state.h"

namespace spindle::mgmt {
namespace {

std::string TempDb(const char* name) {
  auto dir =
      std::filesystem::temp_directory_path() / ("spindle_store_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  return path.string();
}

// Commits move the generation by exactly one, survive reopening, and a commit with a stale
// expected generation is refused without changing anything.
TEST(SqliteStore, GenerationIsMonotonicAcrossReopen) {
  std::string path = TempDb("a.db");
  {
    auto s = SqliteStore::Open(path);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto snap = (*s)->Load();
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ(snap->generation, 0);
    ASSERT_TRUE((*s)->Commit(0, 1, {{{"pg", "hdd"}, "{\"a\":1}"}}).ok());
    ASSERT_TRUE((*s)->Commit(1, 2, {{{"pg", "ssd"}, "{}"}}).ok());
    EXPECT_EQ((*s)->Commit(1, 2, {{{"pg", "x"}, "{}"}}).code(), Code::kAborted);
  }
  auto s = SqliteStore::Open(path);
  ASSERT_TRUE(s.ok());
  auto snap = (*s)->Load();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->generation, 2);
  EXPECT_EQ(snap->entities.size(), 2u);
  EXPECT_EQ((snap->entities[{"pg", "hdd"}]), "{\"a\":1}");
  ASSERT_TRUE((*s)->Commit(2, 3, {{{"pg", "hdd"}, std::nullopt}}).ok());
  snap = (*s)->Load();
  EXPECT_EQ(snap->generation, 3);
  EXPECT_EQ(snap->entities.count({"pg", "hdd"}), 0u);
}

// A Cluster change that fails leaves state and generation alone; one that succeeds adds one;
// one that changes nothing adds none; all of it is what a reopened Cluster sees.
TEST(Cluster, MutateIsAllOrNothingAndPersists) {
  std::string path = TempDb("b.db");
  int64_t gen = 0;
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    ClusterOptions o;
    o.cluster_id = "a.b";
    auto c = Cluster::Open(std::move(*store), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    gen = (*c)->generation();
    EXPECT_EQ(gen, 1);  // fixing the cluster id is the first change
    auto bad = (*c)->Mutate([](State& s) {
      s.placementGroups["x"] = {1, "x", {}};
      return Error(Code::kInvalidArgument, "no");
    });
    EXPECT_FALSE(bad.ok());
    EXPECT_EQ((*c)->generation(), gen);
    auto good = (*c)->Mutate([](State& s) {
      s.placementGroups["y"] = {1, "y", {1, 2}};
      return Status::Ok();
    });
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, gen + 1);
    auto same = (*c)->Mutate([](State&) { return Status::Ok(); });
    EXPECT_EQ(*same, gen + 1);
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto c = Cluster::Open(std::move(*store), ClusterOptions{});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->generation(), gen + 1);
  (*c)->Read([](const State& s, const Runtime&) {
    EXPECT_EQ(s.counters.clusterId, "a.b");
    EXPECT_EQ(s.placementGroups.count("x"), 0u);
    EXPECT_EQ(s.placementGroups.at("y").disks, (std::vector<uint32_t>{1, 2}));
    return 0;
  });
}

// Concurrent changes are group-committed: every change still gets its own generation, each
// acknowledged one is durable (a reopened Cluster sees all of them), and the count matches.
TEST(Cluster, ConcurrentChangesGetDistinctDurableGenerations) {
  std::string path = TempDb("c.db");
  constexpr int kThreads = 8, kEach = 40;
  std::vector<int64_t> gens[kThreads];
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    ClusterOptions o;
    o.cluster_id = "a.b";
    auto c = Cluster::Open(std::move(*store), o);
    ASSERT_TRUE(c.ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          auto g = (*c)->Mutate([&](State& s) {
            std::string name = "pg" + std::to_string(t) + "_" + std::to_string(i);
            s.placementGroups[name] = {i, name, {}};
            return Status::Ok();
          });
          ASSERT_TRUE(g.ok());
          gens[t].push_back(*g);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ((*c)->generation(), 1 + kThreads * kEach);
  }
  std::set<int64_t> all;
  for (const auto& g : gens) {
    EXPECT_TRUE(std::is_sorted(g.begin(), g.end()));
    all.insert(g.begin(), g.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto c = Cluster::Open(std::move(*store), ClusterOptions{});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->generation(), 1 + kThreads * kEach);
  (*c)->Read([&](const State& s, const Runtime&) {
    EXPECT_EQ(s.placementGroups.size(), static_cast<size_t>(kThreads * kEach));
    return 0;
  });
}

// A store that fails its commits: the change is refused and nothing changes in memory.
class FailingStore : public StateStore {
 public:
  Result<StoreSnapshot> Load() override { return StoreSnapshot{}; }
  Status Commit(int64_t, int64_t, const std::vector<EntityChange>&) override {
    return fail ? Error(Code::kIoError, "disk full") : Status::Ok();
  }
  bool fail = false;
};

TEST(Cluster, FailedCommitChangesNothing) {
  auto owned = std::make_unique<FailingStore>();
  FailingStore* store = owned.get();
  ClusterOptions o;
  o.cluster_id = "a.b";
  auto c = Cluster::Open(std::move(owned), o);
  ASSERT_TRUE(c.ok());
  int64_t gen = (*c)->generation();
  store->fail = true;
  auto r = (*c)->Mutate([](State& s) {
    s.placementGroups["x"] = {1, "x", {}};
    return Status::Ok();
  });
  EXPECT_EQ(r.status().code(), Code::kIoError);
  EXPECT_EQ((*c)->generation(), gen);
  store->fail = false;
  auto ok = (*c)->Mutate([](State& s) {
    s.placementGroups["y"] = {1, "y", {}};
    return Status::Ok();
  });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, gen + 1);
  (*c)->Read([](const State& s, const Runtime&) {
    EXPECT_EQ(s.placementGroups.count("x"), 0u);
    return 0;
  });
}

// The indexes State keeps as records change (names, children, attachments, collection
// candidates, disk use) always equal the ones rebuilt from the records, and the lookups built
// on them find what a scan finds.
TEST(State, DerivedIndexesMatchARebuild) {
  State s;
  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  auto names = [](int i) { return "n" + std::to_string(i); };
  int64_t next_id = 1;
  auto check = [&](int step) {
    State r = s;
    r.RebuildDerived();
    ASSERT_EQ(s.diskUse, r.diskUse) << step;
    std::vector<int64_t> a, b;
    for (const auto& [id, _] : s.collectCandidates) a.push_back(id);
    for (const auto& [id, _] : r.collectCandidates) b.push_back(id);
    ASSERT_EQ(a, b) << step;
    for (int64_t id = 0; id <= next_id; ++id) {
      ASSERT_EQ(s.children.Get(id), r.children.Get(id)) << step;
      ASSERT_EQ(s.attachedTo.Get(id), r.attachedTo.Get(id)) << step;
    }
    for (int i = 0; i < 24; ++i) {
      for (const auto* m : {&s.volumes, &s.snapshots}) {
        const VolumeRecord* scan = nullptr;
        for (const auto& [_, v] : *m) {
          if (v.name == names(i)) {
            scan = &v;
            break;
          }
        }
        const VolumeRecord* found =
            m == &s.volumes ? s.FindVolume(names(i)) : s.FindSnapshot(names(i));
        ASSERT_EQ(found, scan) << step << " " << names(i);
      }
    }
    for (const auto* m : {&s.volumes, &s.snapshots}) {
      for (const auto& [id, v] : *m) {
        const VolumeRecord* found =
            m == &s.volumes ? s.FindVolume("~" + v.globalId) : s.FindSnapshot("~" + v.globalId);
        ASSERT_EQ(found, &v) << step;
      }
    }
  };
  for (int step = 0; step < 2000; ++step) {
    const bool snap = pick(2) == 0;
    const auto& m = snap ? s.snapshots : s.volumes;
    const int op = pick(4);
    if (op == 0 || m.empty()) {
      VolumeRecord v;
      v.id = next_id++;
      v.name = names(pick(24));
      if (snap ? s.FindSnapshot(v.name) : s.FindVolume(v.name))
        v.name = "~g" + std::to_string(v.id);
      v.globalId = "g" + std::to_string(v.id);
      if (next_id > 2 && pick(2)) v.parents = {1 + pick(static_cast<int>(next_id - 2))};
      if (pick(3) == 0) v.attachments[std::to_string(1 + pick(4))] = {"rw", 0};
      v.targetDiskSets =
          DiskSetTable(std::vector<DiskSetTable::Set>{{static_cast<uint32_t>(1 + pick(5))}});
      v.bound = snap && pick(3) == 0;
      if (snap) {
        s.PutSnapshot(std::move(v));
      } else {
        s.PutVolume(std::move(v));
      }
    } else {
      auto it = m.begin();
      for (int k = pick(static_cast<int>(m.size())); k > 0; --k) ++it;
      VolumeRecord v = it->second;
      if (op == 1) {
        if (snap) {
          s.EraseSnapshot(v.id);
        } else {
          s.EraseVolume(v.id);
        }
      } else {
        const std::string rename = names(pick(24));
        if (!(snap ? s.FindSnapshot(rename) : s.FindVolume(rename))) v.name = rename;
        v.attachments.clear();
        if (pick(2)) v.attachments[std::to_string(1 + pick(4))] = {"ro", 1};
        v.deleted = snap && pick(4) == 0;
        v.targetDeleteDate = pick(5) == 0 ? 100 : 0;
        if (!v.parents.empty() && pick(3) == 0) v.parents.erase(v.parents.begin());
        if (snap) {
          s.PutSnapshot(std::move(v));
        } else {
          s.PutVolume(std::move(v));
        }
      }
    }
    check(step);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace spindle::mgmt
