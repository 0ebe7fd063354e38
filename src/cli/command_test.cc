#include "cli/command.h"

#include <gtest/gtest.h>

namespace spindle::cli {
namespace {

using nlohmann::json;

Command P(std::vector<std::string> words) {
  Result<Command> c = ParseCommand(words);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : Command{};
}

void ExpectRequest(const Command& c, const char* method, const char* path, const json& body) {
  EXPECT_EQ(c.request.method, method);
  EXPECT_EQ(c.request.path, path);
  EXPECT_EQ(c.request.body, body);
}

bool Fails(std::vector<std::string> words) {
  return !ParseCommand(words).ok();
}

// Every listing maps to its GET call and view.
TEST(CommandTest, Listings) {
  struct Case {
    std::vector<std::string> words;
    const char* path;
    View view;
  } cases[] = {
      {{"service", "list"}, "/ctrl/1.0/ServicesList", View::kServices},
      {{"server", "list"}, "/ctrl/1.0/ServersList", View::kServers},
      {{"server", "3", "disk", "list"}, "/ctrl/1.0/ServerDisksList/3", View::kDisks},
      {{"client", "status"}, "/ctrl/1.0/ClientsConfigDump", View::kClientStatus},
      {{"disk", "list"}, "/ctrl/1.0/DisksList", View::kDisks},
      {{"disk", "101", "describe"}, "/ctrl/1.0/DiskDescribe/101", View::kDescribe},
      {{"placementGroup", "list"}, "/ctrl/1.0/PlacementGroupsList", View::kPgList},
      {{"placementGroup", "hdd", "list"}, "/ctrl/1.0/PlacementGroupDescribe/hdd", View::kPgDisks},
      {{"template", "list"}, "/ctrl/1.0/VolumeTemplatesList", View::kTemplates},
      {{"template", "t1", "describe"}, "/ctrl/1.0/VolumeTemplateDescribe/t1", View::kDescribe},
      {{"volume", "list"}, "/ctrl/1.0/VolumesList", View::kVolumes},
      {{"volume", "status"}, "/ctrl/1.0/VolumesGetStatus", View::kVolumeStatus},
      {{"volume", "#v1", "list"}, "/ctrl/1.0/Volume/#v1", View::kVolumes},
      {{"volume", "v1", "describe"}, "/ctrl/1.0/VolumeDescribe/v1", View::kDescribe},
      {{"attach", "list"}, "/ctrl/1.0/AttachmentsList", View::kAttachments},
  };
  for (const auto& c : cases) {
    Command cmd = P(c.words);
    ExpectRequest(cmd, "GET", c.path, nullptr);
    EXPECT_EQ(cmd.view, c.view) << c.path;
  }
  EXPECT_EQ(P({"attach", "list"}).aux->path, "/ctrl/1.0/VolumesList");
}

// Placement-group changes always carry both disk lists; delete needs the name twice.
TEST(CommandTest, PlacementGroups) {
  ExpectRequest(P({"placementGroup", "hdd", "addDisk", "101", "addDisk", "201", "rmDisk", "301",
                   "rename", "hdd2"}),
                "POST", "/ctrl/1.0/PlacementGroupUpdate/hdd",
                json::parse(R"({"addDisks":[101,201],"rmDisks":[301],"rename":"hdd2"})"));
  ExpectRequest(P({"placementGroup", "hdd", "rmDisk", "1"}), "POST",
                "/ctrl/1.0/PlacementGroupUpdate/hdd",
                json::parse(R"({"addDisks":[],"rmDisks":[1]})"));
  ExpectRequest(P({"placementGroup", "hdd", "delete", "hdd"}), "POST",
                "/ctrl/1.0/PlacementGroupDelete/hdd", nullptr);
  EXPECT_TRUE(Fails({"placementGroup", "hdd", "delete", "ssd"}));
  EXPECT_TRUE(Fails({"placementGroup", "hdd", "addDisk", "4096"}));
  EXPECT_TRUE(Fails({"placementGroup", "hdd", "addDisk"}));
  EXPECT_TRUE(Fails({"placementGroup", "a.b", "addDisk", "1"}));
}

// A template command creates or updates: the create body names it, the update path does.
TEST(CommandTest, TemplateUpsert) {
  Command c = P({"template", "t1", "replication", "3", "placeAll", "hdd", "placeTail", "ssd",
                 "size", "10G", "iops", "1000", "bw", "100M", "reuseServer"});
  json expect = json::parse(
      R"({"replication":3,"placeAll":"hdd","placeTail":"ssd","size":10737418240,"iops":1000,
          "bw":100,"reuseServer":true})");
  json create = expect;
  create["name"] = "t1";
  ExpectRequest(c, "POST", "/ctrl/1.0/VolumeTemplateCreate", create);
  ASSERT_TRUE(c.probe && c.alternate);
  EXPECT_EQ(c.probe->path, "/ctrl/1.0/VolumeTemplatesList");
  EXPECT_EQ(c.probe_name, "t1");
  EXPECT_EQ(c.alternate->path, "/ctrl/1.0/VolumeTemplateUpdate/t1");
  EXPECT_EQ(c.alternate->body, expect);
  ExpectRequest(P({"template", "t1", "delete", "t1"}), "POST", "/ctrl/1.0/VolumeTemplateDelete/t1",
                nullptr);
  EXPECT_TRUE(Fails({"template", "t1", "replication", "4"}));
  EXPECT_TRUE(Fails({"template", "t1", "delete", "t2"}));
  EXPECT_TRUE(ListHasName(json::parse(R"([{"name":"t1"}])"), "t1"));
  EXPECT_FALSE(ListHasName(json::parse(R"([{"name":"t2"}])"), "t1"));
}

// Volume create/update/delete build the VolumeCreateDesc / VolumeUpdateDesc bodies.
TEST(CommandTest, Volumes) {
  ExpectRequest(P({"volume",   "v1",  "create",      "size", "1G",          "template", "t1",
                   "placeAll", "hdd", "replication", "2",    "reuseServer", "iops",     "500",
                   "bw",       "-",   "tag",         "a=b",  "tag",         "c="}),
                "POST", "/ctrl/1.0/VolumeCreate",
                json::parse(R"({"name":"v1","size":1073741824,"template":"t1","placeAll":"hdd",
                   "replication":2,"reuseServer":true,"iops":500,"bw":"-",
                   "tags":{"a":"b","c":""}})"));
  ExpectRequest(P({"volume", "v1", "update", "size", "+1G", "rename", "v2", "shrinkOk"}), "POST",
                "/ctrl/1.0/VolumeUpdate/v1",
                json::parse(R"({"sizeAdd":1073741824,"rename":"v2","shrinkOk":true})"));
  ExpectRequest(P({"volume", "v1", "update", "size", "2G", "template", "t", "tag", "k=v"}), "POST",
                "/ctrl/1.0/VolumeUpdate/v1",
                json::parse(R"({"size":2147483648,"template":"t","tags":{"k":"v"}})"));
  ExpectRequest(P({"volume", "v1", "delete", "v1"}), "POST", "/ctrl/1.0/VolumeDelete/v1", nullptr);
  EXPECT_TRUE(Fails({"volume", "v1", "delete", "v2"}));
  EXPECT_TRUE(Fails({"volume", "v1", "delete"}));
  EXPECT_TRUE(Fails({"volume", "v1", "create"}));
  EXPECT_TRUE(Fails({"volume", "v1", "create", "size", "1000"}));  // not a sector multiple
  EXPECT_TRUE(Fails({"volume", "v1", "create", "size", "+1G"}));
  EXPECT_TRUE(Fails({"volume", "v1", "update"}));
  EXPECT_TRUE(Fails({"volume", "list", "create", "size", "1G"}));
  EXPECT_TRUE(Fails({"volume", "bad/name", "describe"}));
}

// attach/detach in both spellings become one VolumesReassign item; timeout waits.
TEST(CommandTest, AttachDetach) {
  json rw = json::parse(R"([{"volume":"v1","rw":[3],"force":false}])");
  ExpectRequest(P({"attach", "volume", "v1", "client", "3"}), "POST", "/ctrl/1.0/VolumesReassign",
                rw);
  ExpectRequest(P({"volume", "v1", "attach", "client", "3"}), "POST", "/ctrl/1.0/VolumesReassign",
                rw);
  ExpectRequest(P({"attach", "volume", "v1", "client", "3", "mode", "ro"}), "POST",
                "/ctrl/1.0/VolumesReassign",
                json::parse(R"([{"volume":"v1","ro":[3],"force":false}])"));
  ExpectRequest(P({"detach", "volume", "v1", "client", "all", "force"}), "POST",
                "/ctrl/1.0/VolumesReassign",
                json::parse(R"([{"volume":"v1","detach":"all","force":true}])"));
  ExpectRequest(P({"detach", "volume", "v1", "client", "2"}), "POST", "/ctrl/1.0/VolumesReassign",
                json::parse(R"([{"volume":"v1","detach":[2],"force":false}])"));
  ExpectRequest(P({"attach", "volume", "v1", "client", "3", "timeout", "10"}), "POST",
                "/ctrl/1.0/VolumesReassignWait",
                json::parse(R"({"reassign":[{"volume":"v1","rw":[3],"force":false}],
                                "attachTimeout":10})"));
  EXPECT_TRUE(Fails({"attach", "volume", "v1"}));
  EXPECT_TRUE(Fails({"attach", "volume", "v1", "client", "all"}));
  EXPECT_TRUE(Fails({"attach", "volume", "v1", "client", "0"}));
  EXPECT_TRUE(Fails({"detach", "list"}));
}

// Unknown objects and verbs are usage errors; -M only rewrites multicluster calls.
TEST(CommandTest, UnknownAndMultiCluster) {
  EXPECT_TRUE(Fails({"frobnicate"}));
  EXPECT_TRUE(Fails({"volume", "v1", "frobnicate"}));
  EXPECT_TRUE(Fails({"disk", "list", "extra"}));
  EXPECT_EQ(WithMultiCluster("/ctrl/1.0/VolumesList"), "/ctrl/1.0/MultiCluster/VolumesList");
  EXPECT_EQ(WithMultiCluster("/ctrl/1.0/VolumeDescribe/v"),
            "/ctrl/1.0/MultiCluster/VolumeDescribe/v");
  EXPECT_EQ(WithMultiCluster("/ctrl/1.0/DisksList"), "/ctrl/1.0/DisksList");
}

// Snapshot commands map to their calls; a snapshot attaches read-only.
TEST(CommandTest, Snapshots) {
  ExpectRequest(P({"volume", "v", "snapshot"}), "POST", "/ctrl/1.0/VolumeSnapshot/v",
                json::object());
  ExpectRequest(P({"volume", "v", "snapshot", "v@1", "bind"}), "POST", "/ctrl/1.0/VolumeSnapshot/v",
                json{{"name", "v@1"}, {"bind", true}});
  ExpectRequest(P({"snapshot", "list"}), "GET", "/ctrl/1.0/SnapshotsList", nullptr);
  ExpectRequest(P({"snapshot", "s", "delete", "s"}), "POST", "/ctrl/1.0/SnapshotDelete/s", nullptr);
  ExpectRequest(P({"attach", "snapshot", "s", "client", "4"}), "POST", "/ctrl/1.0/VolumesReassign",
                json::array({{{"snapshot", "s"}, {"force", false}, {"ro", {4}}}}));
  ExpectRequest(P({"volume", "c", "create", "parent", "s"}), "POST", "/ctrl/1.0/VolumeCreate",
                json{{"name", "c"}, {"parent", "s"}});
  EXPECT_TRUE(Fails({"snapshot", "s", "delete", "t"}));
  EXPECT_TRUE(Fails({"volume", "v", "snapshot", "a", "b"}));
  ExpectRequest(P({"volume", "v", "snapshot", "s", "deleteAfter", "2h"}), "POST",
                "/ctrl/1.0/VolumeSnapshot/v", json{{"name", "s"}, {"deleteAfter", 7200}});
  EXPECT_TRUE(Fails({"volume", "v", "snapshot", "deleteAfter", "1d", "targetDeleteDate", "5"}));
  EXPECT_EQ(P({"snapshot", "list"}).view, View::kSnapshots);
  EXPECT_EQ(P({"volume", "v", "listSnapshots"}).view, View::kSnapshots);
}

// group_snapshot: volumes each with an optional name and tags; tags before the first volume
// are the group's.
TEST(CommandTest, GroupSnapshot) {
  ExpectRequest(P({"group_snapshot", "a", "b"}), "POST", "/ctrl/1.0/VolumesGroupSnapshot",
                json{{"volumes", {{{"volume", "a"}}, {{"volume", "b"}}}}});
  ExpectRequest(
      P({"group_snapshot", "tag", "g=1", "a", "name", "a-s", "tag", "k=v", "~x.y.z"}), "POST",
      "/ctrl/1.0/VolumesGroupSnapshot",
      json{{"tags", {{"g", "1"}}},
           {"volumes",
            {{{"volume", "a"}, {"name", "a-s"}, {"tags", {{"k", "v"}}}}, {{"volume", "~x.y.z"}}}}});
  EXPECT_TRUE(Fails({"group_snapshot"}));
  EXPECT_TRUE(Fails({"group_snapshot", "name", "s"}));
  EXPECT_TRUE(Fails({"group_snapshot", "a", "name", "s", "name", "t"}));
  EXPECT_TRUE(Fails({"group_snapshot", "a", "name"}));
  EXPECT_TRUE(Fails({"group_snapshot", "bad name"}));
}

// SnapshotUpdate: `update` is optional before its keywords; bind/unbind, tags, dates.
TEST(CommandTest, SnapshotUpdate) {
  ExpectRequest(P({"snapshot", "s", "rename", "s2"}), "POST", "/ctrl/1.0/SnapshotUpdate/s",
                json{{"rename", "s2"}});
  ExpectRequest(P({"snapshot", "s", "update", "rename", "s@2", "template", "t", "bind", "tag",
                   "k=v", "deleteAfter", "1d"}),
                "POST", "/ctrl/1.0/SnapshotUpdate/s",
                json{{"rename", "s@2"},
                     {"template", "t"},
                     {"bind", true},
                     {"tags", {{"k", "v"}}},
                     {"deleteAfter", 86400}});
  ExpectRequest(P({"snapshot", "~a.b.c", "unbind"}), "POST", "/ctrl/1.0/SnapshotUpdate/~a.b.c",
                json{{"bind", false}});
  ExpectRequest(P({"snapshot", "s", "tag", "k="}), "POST", "/ctrl/1.0/SnapshotUpdate/s",
                json{{"tags", {{"k", ""}}}});
  ExpectRequest(P({"snapshot", "s", "targetDeleteDate", "1700000000"}), "POST",
                "/ctrl/1.0/SnapshotUpdate/s", json{{"targetDeleteDate", 1700000000}});
  ExpectRequest(P({"snapshot", "s", "deleteAfter", "0"}), "POST", "/ctrl/1.0/SnapshotUpdate/s",
                json{{"deleteAfter", 0}});
  EXPECT_TRUE(Fails({"snapshot", "s", "update"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "rename"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "rename", "bad name"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "rename", "~a.b.c"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "deleteAfter", "1y"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "deleteAfter", "-1"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "update", "frobnicate", "1"}));
}

// space/info listings, rebase, revert and freeze.
TEST(CommandTest, SnapshotAndVolumeChainCommands) {
  Command space = P({"snapshot", "space"});
  ExpectRequest(space, "GET", "/ctrl/1.0/SnapshotsSpace", nullptr);
  EXPECT_EQ(space.view, View::kSnapshotSpace);
  Command info = P({"snapshot", "s", "info"});
  ExpectRequest(info, "GET", "/ctrl/1.0/SnapshotGetInfo/s", nullptr);
  EXPECT_EQ(info.view, View::kVolumeInfo);
  ExpectRequest(P({"snapshot", "s", "rebase"}), "POST", "/ctrl/1.0/SnapshotRebase/s",
                json::object());
  ExpectRequest(P({"snapshot", "s", "rebase", "p"}), "POST", "/ctrl/1.0/SnapshotRebase/s",
                json{{"parentName", "p"}});
  ExpectRequest(P({"volume", "v", "rebase", "p"}), "POST", "/ctrl/1.0/VolumeRebase/v",
                json{{"parentName", "p"}});
  ExpectRequest(P({"volume", "v", "revertToSnapshot", "s"}), "POST", "/ctrl/1.0/VolumeRevert/v",
                json{{"toSnapshot", "s"}});
  ExpectRequest(P({"volume", "v", "revert", "~a.b.c"}), "POST", "/ctrl/1.0/VolumeRevert/v",
                json{{"toSnapshot", "~a.b.c"}});
  ExpectRequest(P({"volume", "v", "freeze"}), "POST", "/ctrl/1.0/VolumeFreeze/v", nullptr);
  ExpectRequest(P({"volume", "v", "freeze", "deleteAfter", "30m"}), "POST",
                "/ctrl/1.0/VolumeFreeze/v", json{{"deleteAfter", 1800}});
  EXPECT_TRUE(Fails({"snapshot", "s", "rebase", "p", "q"}));
  EXPECT_TRUE(Fails({"snapshot", "s", "rebase", "bad name"}));
  EXPECT_TRUE(Fails({"volume", "v", "revertToSnapshot"}));
  EXPECT_TRUE(Fails({"volume", "v", "revertToSnapshot", "s", "extra"}));
  EXPECT_TRUE(Fails({"volume", "v", "freeze", "now"}));
  EXPECT_TRUE(Fails({"snapshot", "space", "x"}));
}

}  // namespace
}  // namespace spindle::cli
