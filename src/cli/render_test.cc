#include "cli/render.h"

#include <gtest/gtest.h>

namespace spindle::cli {
namespace {

using nlohmann::json;

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// disk list shows StorPool's columns, sorts disks by id and marks a down disk.
TEST(RenderTest, DiskList) {
  json data = json::parse(R"({
    "201": {"id": 201, "serverId": 2, "generationLeft": 5, "ssd": false},
    "101": {"id": 101, "serverId": 1, "generationLeft": -1, "ssd": true, "journaled": false,
            "sectorsCount": 8388608, "objectsCount": 127, "objectsAllocated": 32,
            "objectsOnDiskSize": 1048576, "entriesCount": 127, "entriesAllocated": 3,
            "softEject": "off"}})");
  std::string out = Render(View::kDisks, data, nullptr);
  EXPECT_TRUE(Has(out, "| disk | server | size  | used  | est.free | %    | free entries |"))
      << out;
  EXPECT_TRUE(Has(out, "|  101 |      1 | 4 GiB | 1 GiB |    3 GiB | 25 % |          124 |"))
      << out;
  EXPECT_TRUE(Has(out, "32 / 127")) << out;
  EXPECT_TRUE(Has(out, "down")) << out;
  EXPECT_LT(out.find("|  101"), out.find("|  201"));
}

// volume status shows sizes human-readably with the status and flag letters.
TEST(RenderTest, VolumeStatus) {
  json data = json::parse(R"({"v1": {"name": "v1", "size": 1073741824, "replication": 3,
      "storedSize": 1048576, "onDiskSize": 3145728, "syncingDataBytes": 0, "downBytes": 0,
      "status": "up", "snapshot": false, "migrating": true, "decreasedRedundancy": false,
      "balancerBlocked": false}})");
  std::string out = Render(View::kVolumeStatus, data, nullptr);
  EXPECT_TRUE(Has(out, "| volume | size  | rdnd. | stored | on disk | syncing | missing |")) << out;
  EXPECT_TRUE(Has(out, "| v1     | 1 GiB |     3 |  1 MiB |   3 MiB |     0 B |     0 B | up"))
      << out;
  EXPECT_TRUE(Has(out, "| M     |")) << out;
}

// attach list takes the tags from the VolumesList in aux and prints RW/RO.
TEST(RenderTest, AttachList) {
  json data = json::parse(
      R"([{"volume": "v1", "snapshot": false, "client": 3, "rights": "rw", "pos": 0,
           "globalId": "a.b.c"}])");
  json vols = json::parse(R"([{"name": "v1", "tags": {"k": "v"}}])");
  std::string out = Render(View::kAttachments, data, vols);
  EXPECT_TRUE(Has(out, "| client | volume | globalId | mode | tags |")) << out;
  EXPECT_TRUE(Has(out, "|      3 | v1     | a.b.c    | RW   | k=v  |")) << out;
}

// Placement groups, templates and volumes list their names; OK is just "OK".
TEST(RenderTest, ListsAndOk) {
  EXPECT_EQ(Render(View::kOk, json::parse(R"({"ok":true,"generation":3})"), nullptr), "OK\n");
  std::string pg = Render(View::kPgList, json::parse(R"({"hdd":{"disks":[1]}})"), nullptr);
  EXPECT_TRUE(Has(pg, "| hdd  |")) << pg;
  std::string disks =
      Render(View::kPgDisks, json::parse(R"({"name":"hdd","disks":[201,101]})"), nullptr);
  EXPECT_TRUE(Has(disks, "| disk | 101 201 |")) << disks;
  std::string t = Render(View::kTemplates, json::parse(R"([{"name":"t1","size":"-","replication":3,
                           "placeAll":"hdd","placeTail":"hdd","placeHead":"hdd","iops":"-",
                           "bw":"-","parentName":"","reuseServer":true}])"),
                         nullptr);
  EXPECT_TRUE(Has(t, "| t1       |    - |     3 | hdd")) << t;
  std::string services =
      Render(View::kServices,
             json::parse(R"({"clusterStatus":"running","mgmt":{"1":{"id":1,"status":"running",
        "active":true}},"servers":{"1":{"id":1,"nodeId":1,"status":"running","version":"0.1"}},
        "clients":{},"bridges":{},"iscsiTargets":{}})"),
             nullptr);
  EXPECT_TRUE(Has(services, "cluster running")) << services;
  EXPECT_TRUE(Has(services, "| server |  1 |    1 | running")) << services;
}

// snapshot list: StorPool's columns, creation and delete dates in UTC, snapshot flags.
TEST(RenderTest, SnapshotList) {
  json data = json::parse(R"([{"name": "s1", "size": 1073741824, "replication": 3,
      "placeHead": "ssd", "placeAll": "hdd", "placeTail": "ssd", "creationTimestamp": 86400,
      "onVolume": "v1", "iops": "-", "bw": "-", "parentName": "", "templateName": "t",
      "bound": true, "deleted": true, "transient": false, "targetDeleteDate": 90061,
      "tags": {"k": "v"}}])");
  std::string out = Render(View::kSnapshots, data, nullptr);
  EXPECT_TRUE(
      Has(out, "| snapshot | size  | rdnd. | placeHead | placeAll | placeTail | created on"))
      << out;
  EXPECT_TRUE(Has(out, "| 1970-01-02 00:00:00 | v1 ")) << out;
  EXPECT_TRUE(Has(out, "| BD    | 1970-01-02 01:01:01 | k=v  |")) << out;
}

}  // namespace
}  // namespace spindle::cli
