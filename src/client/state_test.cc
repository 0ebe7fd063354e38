#include "client/state.h"

#include <gtest/gtest.h>

namespace spindle::client {
namespace {

nlohmann::json Example() {
  return nlohmann::json::parse(R"({"generation": 23,
   "volumes": [{"name": "vol1", "globalId": "a.b.c", "snapshot": false, "rights": "rw",
                "layerId": 7, "chain": [7], "size": 1073741824, "replication": 3,
                "targetDiskSets": [[101, 201, 301], [102, 202, 302]],
                "overrides": {"4": [103, 203, 303]}}],
   "disks": {"101": {"serverId": 1, "addr": "127.0.0.1", "port": 47001, "up": true}}})");
}

// readReplicas defaults to 1 (reads from the tail only) and must be 1..3.
TEST(ClientState, ReadReplicas) {
  auto j = Example();
  auto st = ParseClientState(j);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->volumes[0].read_replicas, 1u);
  j["volumes"][0]["readReplicas"] = 3;
  st = ParseClientState(j);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->volumes[0].read_replicas, 3u);
  for (int bad : {0, 4}) {
    j["volumes"][0]["readReplicas"] = bad;
    EXPECT_EQ(ParseClientState(j).status().code(), Code::kInvalidArgument) << bad;
  }
}

// The documented example of internal-api.md parses into the expected typed state.
TEST(ClientState, ParsesDocumentedExample) {
  auto st = ParseClientState(Example());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->generation, 23);
  ASSERT_EQ(st->volumes.size(), 1u);
  const auto& v = st->volumes[0];
  EXPECT_EQ(v.name, "vol1");
  EXPECT_EQ(v.global_id, "a.b.c");
  EXPECT_FALSE(v.read_only);
  EXPECT_EQ(v.layer, LayerId(7));
  EXPECT_EQ(v.size_bytes, 1073741824u);
  ASSERT_EQ(v.disk_sets.size(), 2u);
  EXPECT_EQ(v.disk_sets[1][2], DiskId(302));
  EXPECT_EQ(DiskSetFor(v, 4)[0], DiskId(103));
  const auto& d = st->disks.at(DiskId(101));
  EXPECT_EQ(d.server, ServerId(1));
  EXPECT_EQ(d.port, 47001);
  EXPECT_TRUE(d.up);
}

// Read-only rights and snapshots both make the export read-only.
TEST(ClientState, ReadOnlyRights) {
  auto j = Example();
  j["volumes"][0]["rights"] = "ro";
  EXPECT_TRUE(ParseClientState(j)->volumes[0].read_only);
  j = Example();
  j["volumes"][0]["snapshot"] = true;
  EXPECT_TRUE(ParseClientState(j)->volumes[0].read_only);
}

// Malformed states are refused with a Status, never an exception: missing members, wrong
// types, a non-power-of-two disk set table, a disk id out of range, a chain not starting at
// the volume's layer.
TEST(ClientState, RejectsMalformed) {
  auto j = Example();
  j.erase("disks");
  EXPECT_FALSE(ParseClientState(j).ok());
  j = Example();
  j["volumes"][0]["size"] = "big";
  EXPECT_FALSE(ParseClientState(j).ok());
  j = Example();
  j["volumes"][0]["targetDiskSets"].push_back({104});
  EXPECT_FALSE(ParseClientState(j).ok());
  j = Example();
  j["volumes"][0]["targetDiskSets"][0][0] = 5000;
  EXPECT_FALSE(ParseClientState(j).ok());
  j = Example();
  j["volumes"][0]["chain"] = {8, 7};
  EXPECT_FALSE(ParseClientState(j).ok());
  EXPECT_FALSE(ParseClientState(nlohmann::json::array()).ok());
}

// A group snapshot's pause request parses; without one the cut is 0; a bad one is refused.
TEST(ClientState, PauseRequest) {
  auto j = Example();
  EXPECT_EQ(ParseClientState(j)->pause.cut, 0);
  j["pause"] = {{"cut", 3}, {"volumes", {"a.b.c"}}};
  auto st = ParseClientState(j);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->pause.cut, 3);
  EXPECT_EQ(st->pause.volumes, std::vector<std::string>{"a.b.c"});
  j["pause"]["cut"] = 0;
  EXPECT_FALSE(ParseClientState(j).ok());
  j["pause"] = {{"cut", 4}, {"volumes", {7}}};
  EXPECT_FALSE(ParseClientState(j).ok());
}

}  // namespace
}  // namespace spindle::client
