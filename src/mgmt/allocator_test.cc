#include "mgmt/allocator.h"

#include <gtest/gtest.h>

#include <set>

namespace spindle::mgmt {
namespace {

// servers × disks_per_server disks; disk id = server*100 + k (k from 1).
AllocRequest Cluster(uint32_t servers, uint32_t disks_per_server, uint32_t replication) {
  AllocRequest r;
  for (uint32_t s = 1; s <= servers; ++s) {
    for (uint32_t k = 1; k <= disks_per_server; ++k) {
      uint32_t id = s * 100 + k;
      r.disks[id] = {s, true};
      r.place_all.push_back(id);
    }
  }
  r.place_head = r.place_tail = r.place_all;
  r.replication = replication;
  return r;
}

void ExpectValid(const AllocRequest& r, const std::vector<std::vector<uint32_t>>& t) {
  ASSERT_EQ(t.size(), r.table_size);
  for (const auto& set : t) {
    ASSERT_EQ(set.size(), r.replication);
    std::set<uint32_t> disks, servers;
    for (uint32_t d : set) {
      ASSERT_TRUE(r.disks.count(d));
      EXPECT_TRUE(r.disks.at(d).up);
      disks.insert(d);
      servers.insert(r.disks.at(d).server_id);
    }
    EXPECT_EQ(disks.size(), set.size());
    if (!r.reuse_server) {
      EXPECT_EQ(servers.size(), set.size());
    }
  }
}

// Every combination of servers, disks per server, replication and table size yields valid sets
// that use each disk within one of every other disk (even spread), or the documented error.
TEST(Allocator, ExhaustiveSmallClustersAreValidAndEven) {
  for (uint32_t servers = 1; servers <= 5; ++servers) {
    for (uint32_t dps = 1; dps <= 3; ++dps) {
      for (uint32_t rep = 1; rep <= 3; ++rep) {
        for (uint32_t size : {1u, 2u, 8u, 32u, 64u}) {
          AllocRequest r = Cluster(servers, dps, rep);
          r.table_size = size;
          auto t = AllocateDiskSets(r);
          if (servers < rep) {
            ASSERT_FALSE(t.ok());
            EXPECT_EQ(t.status().message(),
                      "Not enough servers or fault sets for replication " + std::to_string(rep));
            continue;
          }
          ASSERT_TRUE(t.ok()) << t.status().ToString();
          ExpectValid(r, *t);
          std::map<uint32_t, int> use;
          for (const auto& set : *t)
            for (uint32_t d : set) ++use[d];
          int lo = 1 << 30, hi = 0;
          for (const auto& [d, _] : r.disks) {
            lo = std::min(lo, use[d]);
            hi = std::max(hi, use[d]);
          }
          EXPECT_LE(hi - lo, 1) << servers << "x" << dps << " rep " << rep << " size " << size;
        }
      }
    }
  }
}

// Head comes from placeHead, tail from placeTail and the middle from placeAll, in that order.
TEST(Allocator, RolesComeFromTheirGroups) {
  AllocRequest r = Cluster(3, 2, 3);
  r.place_head = {101, 102};
  r.place_all = {201, 202};
  r.place_tail = {301, 302};
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  for (const auto& set : *t) {
    EXPECT_EQ(set[0] / 100, 1u);
    EXPECT_EQ(set[1] / 100, 2u);
    EXPECT_EQ(set[2] / 100, 3u);
  }
  r.replication = 2;
  t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  for (const auto& set : *t) {
    EXPECT_EQ(set[0] / 100, 1u);
    EXPECT_EQ(set[1] / 100, 3u);
  }
  r.replication = 1;
  t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  for (const auto& set : *t) EXPECT_EQ(set[0] / 100, 3u);
}

// Tails (which serve reads) rotate over all servers instead of sticking to one.
TEST(Allocator, TailsSpreadOverServers) {
  AllocRequest r = Cluster(3, 2, 3);
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  std::map<uint32_t, int> tails;
  for (const auto& set : *t) ++tails[r.disks.at(set.back()).server_id];
  EXPECT_EQ(tails.size(), 3u);
  for (const auto& [s, n] : tails) EXPECT_GE(n, 32 / 3 - 1) << s;
}

// Down disks and disks outside the groups are never chosen; too few up servers is an error.
TEST(Allocator, SkipsDownDisksAndUnknownIds) {
  AllocRequest r = Cluster(3, 2, 3);
  r.disks[101].up = false;
  r.place_all.push_back(999);  // not a known disk
  r.place_head = r.place_tail = r.place_all;
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  ExpectValid(r, *t);
  for (const auto& set : *t) {
    for (uint32_t d : set) EXPECT_NE(d, 101u);
  }
  r.disks[102].up = false;
  EXPECT_EQ(AllocateDiskSets(r).status().code(), Code::kFailedPrecondition);
}

// reuseServer lets replicas share a server but never a disk.
TEST(Allocator, ReuseServerAllowsOneServer) {
  AllocRequest r = Cluster(1, 3, 3);
  EXPECT_FALSE(AllocateDiskSets(r).ok());
  r.reuse_server = true;
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  ExpectValid(r, *t);
  r = Cluster(1, 2, 3);
  r.reuse_server = true;
  EXPECT_FALSE(AllocateDiskSets(r).ok());
}

// A head group that shares its only server with the tail group forces backtracking choices.
TEST(Allocator, BacktracksWhenGreedyWouldFail) {
  AllocRequest r = Cluster(2, 1, 2);
  r.place_head = {101, 201};
  r.place_tail = {101};
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  for (const auto& set : *t) EXPECT_EQ(set, (std::vector<uint32_t>{201, 101}));
}

// The same input gives the same table; bad replication and table sizes are rejected.
TEST(Allocator, DeterministicAndValidatesInput) {
  AllocRequest r = Cluster(4, 2, 3);
  EXPECT_EQ(*AllocateDiskSets(r), *AllocateDiskSets(r));
  r.replication = 0;
  EXPECT_EQ(AllocateDiskSets(r).status().code(), Code::kInvalidArgument);
  r.replication = 4;
  EXPECT_EQ(AllocateDiskSets(r).status().code(), Code::kInvalidArgument);
  r.replication = 3;
  for (uint32_t bad : {0u, 3u, 65536u}) {
    r.table_size = bad;
    EXPECT_EQ(AllocateDiskSets(r).status().code(), Code::kInvalidArgument) << bad;
  }
  r.table_size = kMaxTableSize;
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size(), kMaxTableSize);
}

// Existing use from other volumes steers new sets to the emptier disks.
TEST(Allocator, ExistingUseIsBalanced) {
  AllocRequest r = Cluster(3, 2, 1);
  r.table_size = 1;
  for (const auto& [d, _] : r.disks) r.existing_use[d] = 5;
  r.existing_use[302] = 0;
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[0][0], 302u);
}

// Servers grouped into fault sets never hold two replicas of one disk set; with fewer fault
// sets than replicas the allocation fails with StorPool's message.
TEST(Allocator, ReplicasGoToDistinctFaultSets) {
  AllocRequest r = Cluster(4, 2, 2);
  for (auto& [id, d] : r.disks) d.fault_set = d.server_id <= 2 ? 1 : 2;  // {1,2} and {3,4}
  auto t = AllocateDiskSets(r);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (const auto& set : *t) {
    EXPECT_NE(r.disks.at(set[0]).fault_set, r.disks.at(set[1]).fault_set);
  }
  r.replication = 3;
  auto bad = AllocateDiskSets(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "Not enough servers or fault sets for replication 3");
}

// "reuse server implicit on disk down": with a node's disks down on a 3-node cluster,
// replication 3 succeeds (flagged) only when the switch is on; off, it fails as StorPool does.
TEST(Allocator, ReuseServerImplicitOnDiskDown) {
  AllocRequest r = Cluster(3, 2, 3);
  r.disks[301].up = false;
  r.disks[302].up = false;
  auto off = AllocateVolume(r, false);
  ASSERT_FALSE(off.ok());
  EXPECT_EQ(off.status().message(), "Not enough servers or fault sets for replication 3");
  auto on = AllocateVolume(r, true);
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_TRUE(on->constraints_violated);
  for (const auto& set : on->sets) {
    EXPECT_EQ(std::set<uint32_t>(set.begin(), set.end()).size(), 3u);
    for (uint32_t d : set) EXPECT_TRUE(r.disks.at(d).up);
  }
  // All disks up: the strict allocation succeeds and nothing is flagged.
  r.disks[301].up = r.disks[302].up = true;
  auto ok = AllocateVolume(r, true);
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(ok->constraints_violated);
  // Too few servers with nothing down is not a disk-down case: still an error.
  AllocRequest small = Cluster(2, 2, 3);
  EXPECT_FALSE(AllocateVolume(small, true).ok());
}

}  // namespace
}  // namespace spindle::mgmt
