#include <gtest/gtest.h>

#include "cli/render.h"

namespace spindle::cli {
namespace {

using nlohmann::json;

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// template status prints StorPool's 14 columns with sizes from the status record.
TEST(RenderAdminTest, TemplateStatus) {
  json data = json::parse(R"([{"name":"hdd","placeHead":"h","placeAll":"a","placeTail":"t",
    "replication":3,"volumesCount":2,"snapshotsCount":1,"removingSnapshotsCount":0,
    "totalSize":2147483648,"availablePlaceAll":1073741824,"availablePlaceTail":1073741824,
    "availablePlaceHead":1073741824,"stored":{"capacity":4294967296,"free":3221225472}}])");
  std::string out = Render(View::kTemplateStatus, data, nullptr);
  EXPECT_TRUE(Has(out,
                  "| template | place head | place all | place tail | rdnd. | volumes | "
                  "snapshots/removing | size  | capacity | avail. | avail. all | "
                  "avail. tail | avail. head | flags |"))
      << out;
  EXPECT_TRUE(Has(out, "| hdd      | h          | a         | t          |     3 |       2 |"))
      << out;
  EXPECT_TRUE(Has(out, "1/0")) << out;
  EXPECT_TRUE(Has(out, "4 GiB")) << out;
}

// quickStatus shows the C flag of a volume placed with reuseServer implied.
TEST(RenderAdminTest, QuickStatusFlags) {
  json data = json::parse(R"({"v1":{"size":1073741824,"replication":3,"status":"up",
    "syncingDataBytes":0,"downBytes":0,"decreasedRedundancy":true,"constraintsViolated":true}})");
  std::string out = Render(View::kVolumeQuickStatus, data, nullptr);
  EXPECT_TRUE(Has(out, "| volume | size  | rdnd. | syncing | missing | status | flags |")) << out;
  EXPECT_TRUE(Has(out, "| up     | DC    |")) << out;
}

// mgmtConfig list: one StorPool-worded line per setting.
TEST(RenderAdminTest, MgmtConfig) {
  EXPECT_EQ(Render(View::kMgmtConfig, json{{"reuseServerImplicitOnDiskDown", false}}, nullptr),
            "reuse server implicit on disk down disabled\n");
}

// KV views, fault sets and VAGs render the members they are given; junk never crashes.
TEST(RenderAdminTest, KvFaultSetsVag) {
  std::string out = Render(View::kKvBuckets, json::parse(R"({"buckets":{"b":3}})"), nullptr);
  EXPECT_TRUE(Has(out, "| b      |       3 |")) << out;
  out = Render(View::kKvBucket, json::parse(R"({"name":"b","version":3,"pairs":{"k":"v"}})"),
               nullptr);
  EXPECT_TRUE(Has(out, "bucket b version 3")) << out;
  EXPECT_TRUE(Has(out, "| k   | v     |")) << out;
  out = Render(View::kFaultSets, json::parse(R"({"r1":{"name":"r1","servers":[3,1]}})"), nullptr);
  EXPECT_TRUE(Has(out, "| r1   | 1 3     |")) << out;
  out = Render(View::kVag, json::parse(R"({"name":5,"replication":2,"targetDiskSets":[[1,2]]})"),
               nullptr);
  EXPECT_TRUE(Has(out, "| 0 | 1 2   |")) << out;
  for (View v : {View::kTemplateStatus, View::kVolumeQuickStatus, View::kVolumeSpace,
                 View::kVolumeInfo, View::kFaultSets, View::kVag, View::kKvBuckets, View::kKvBucket,
                 View::kMgmtConfig, View::kTasks}) {
    EXPECT_FALSE(Render(v, json("junk"), nullptr).empty() && v != View::kMgmtConfig);
    Render(v, json::parse(R"({"a":[1,{"b":null}]})"), nullptr);
  }
}

}  // namespace
}  // namespace spindle::cli
