#include "mgmt/sqlite_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "mgmt/cluster.h"

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
    ASSERT_TRUE((*s)->Commit(0, {{{"pg", "hdd"}, "{\"a\":1}"}}).ok());
    ASSERT_TRUE((*s)->Commit(1, {{{"pg", "ssd"}, "{}"}}).ok());
    EXPECT_EQ((*s)->Commit(1, {{{"pg", "x"}, "{}"}}).code(), Code::kAborted);
  }
  auto s = SqliteStore::Open(path);
  ASSERT_TRUE(s.ok());
  auto snap = (*s)->Load();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->generation, 2);
  EXPECT_EQ(snap->entities.size(), 2u);
  EXPECT_EQ((snap->entities[{"pg", "hdd"}]), "{\"a\":1}");
  ASSERT_TRUE((*s)->Commit(2, {{{"pg", "hdd"}, std::nullopt}}).ok());
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

}  // namespace
}  // namespace spindle::mgmt
