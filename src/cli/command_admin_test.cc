#include <gtest/gtest.h>

#include "cli/command.h"

namespace spindle::cli {
namespace {

using nlohmann::json;

Command P(std::vector<std::string> words) {
  Result<Command> c = ParseCommand(words);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : Command{};
}

void ExpectRequest(const Command& c, const char* method, const std::string& path,
                   const json& body) {
  EXPECT_EQ(c.request.method, method);
  EXPECT_EQ(c.request.path, path);
  EXPECT_EQ(c.request.body, body) << path;
}

bool Fails(std::vector<std::string> words) {
  return !ParseCommand(words).ok();
}

// The space/status listings of issue 3 map to their GET calls and views.
TEST(CommandAdminTest, Listings) {
  struct Case {
    std::vector<std::string> words;
    const char* path;
    View view;
  } cases[] = {
      {{"template", "status"}, "/ctrl/1.0/VolumeTemplatesStatus", View::kTemplateStatus},
      {{"volume", "quickStatus"}, "/ctrl/1.0/VolumesGetStatusQuick", View::kVolumeQuickStatus},
      {{"volume", "usedSpace"}, "/ctrl/1.0/VolumesSpace", View::kVolumeSpace},
      {{"volume", "#v", "info"}, "/ctrl/1.0/VolumeGetInfo/#v", View::kVolumeInfo},
      {{"volume", "~a1.b2.c3", "info"}, "/ctrl/1.0/VolumeGetInfo/~a1.b2.c3", View::kVolumeInfo},
      {{"faultSet", "list"}, "/ctrl/1.0/FaultSetsList", View::kFaultSets},
      {{"vag", "7", "list"}, "/ctrl/1.0/VagList/7", View::kVag},
      {{"kv", "list"}, "/ctrl/1.0/KV", View::kKvBuckets},
      {{"task", "list"}, "/ctrl/1.0/TasksList", View::kTasks},
      {{"kv", "b.1", "list"}, "/ctrl/1.0/KV/List/b.1", View::kKvBucket},
      {{"kv", "b", "get", "a/b?c"}, "/ctrl/1.0/KV/Get/b/a/b?c", View::kKvBucket},
      {{"mgmtConfig", "list"}, "/ctrl/1.0/MgmtConfigList", View::kMgmtConfig},
  };
  for (const auto& c : cases) {
    Command cmd = P(c.words);
    ExpectRequest(cmd, "GET", c.path, nullptr);
    EXPECT_EQ(cmd.view, c.view) << c.path;
  }
  EXPECT_TRUE(Fails({"template", "status", "x"}));
  EXPECT_TRUE(Fails({"volume", "usedSpace", "x"}));
}

// disk forget/ignore/description: POSTs; the description is the rest of the line, checked
// against DiskDescription (up to 30 of [A-Za-z0-9_- ]).
TEST(CommandAdminTest, DiskVerbs) {
  ExpectRequest(P({"disk", "101", "forget"}), "POST", "/ctrl/1.0/DiskForget/101", nullptr);
  ExpectRequest(P({"disk", "101", "ignore"}), "POST", "/ctrl/1.0/DiskIgnore/101", nullptr);
  ExpectRequest(P({"disk", "7", "description", "rack", "2", "slot_3"}), "POST",
                "/ctrl/1.0/DiskSetDescription/7", json{{"description", "rack 2 slot_3"}});
  ExpectRequest(P({"disk", "7", "description"}), "POST", "/ctrl/1.0/DiskSetDescription/7",
                json{{"description", ""}});
  EXPECT_TRUE(Fails({"disk", "7", "description", std::string(31, 'x')}));
  EXPECT_TRUE(Fails({"disk", "7", "description", "a.b"}));
  EXPECT_TRUE(Fails({"disk", "4096", "forget"}));
  EXPECT_TRUE(Fails({"disk", "7", "ignore", "now"}));
}

// faultSet definitions mirror placementGroup: both server lists always present.
TEST(CommandAdminTest, FaultSets) {
  ExpectRequest(P({"faultSet", "rack1", "addServer", "1", "addServer", "2", "rmServer", "3"}),
                "POST", "/ctrl/1.0/FaultSetUpdate/rack1",
                json::parse(R"({"addServers":[1,2],"rmServers":[3]})"));
  ExpectRequest(P({"faultSet", "rack1", "rename", "rack2"}), "POST",
                "/ctrl/1.0/FaultSetUpdate/rack1",
                json::parse(R"({"addServers":[],"rmServers":[],"rename":"rack2"})"));
  ExpectRequest(P({"faultSet", "rack1", "delete", "rack1"}), "POST",
                "/ctrl/1.0/FaultSetDelete/rack1", nullptr);
  EXPECT_TRUE(Fails({"faultSet", "rack1", "delete", "rack2"}));
  EXPECT_TRUE(Fails({"faultSet", "rack1", "addServer", "0"}));
  EXPECT_TRUE(Fails({"faultSet", "rack1", "addServer", "32768"}));
  EXPECT_TRUE(Fails({"faultSet", "a.b", "addServer", "1"}));
  EXPECT_TRUE(Fails({"faultSet", std::string(128, 'f'), "addServer", "1"}));
  EXPECT_FALSE(Fails({"faultSet", std::string(127, 'f'), "addServer", "1"}));
}

// VagUpdate takes a power of two 1..32768; the vag id is sent as a string (VagUpdateDesc).
TEST(CommandAdminTest, Vag) {
  ExpectRequest(P({"vag", "12", "update", "targetsCount", "32768"}), "POST", "/ctrl/1.0/VagUpdate",
                json::parse(R"({"vagId":"12","targetsCount":32768})"));
  ExpectRequest(P({"vag", "12", "update", "targetsCount", "1"}), "POST", "/ctrl/1.0/VagUpdate",
                json::parse(R"({"vagId":"12","targetsCount":1})"));
  EXPECT_TRUE(Fails({"vag", "12", "update", "targetsCount", "3"}));
  EXPECT_TRUE(Fails({"vag", "12", "update", "targetsCount", "65536"}));
  EXPECT_TRUE(Fails({"vag", "12", "update", "targetsCount", "0"}));
  EXPECT_TRUE(Fails({"vag", "0", "list"}));
  EXPECT_TRUE(Fails({"vag", "x", "list"}));
  EXPECT_TRUE(Fails({"vag", "12"}));
}

// KV: create/delete/set/unset with runIfVersionIs; an unset key is sent as "".
TEST(CommandAdminTest, Kv) {
  ExpectRequest(P({"kv", "b", "create"}), "POST", "/ctrl/1.0/KV/Create/b", nullptr);
  ExpectRequest(P({"kv", "b", "delete", "b"}), "POST", "/ctrl/1.0/KV/Delete/b", nullptr);
  ExpectRequest(P({"kv", "b", "set", "k1", "v1", "k2", "v 2", "ifVersion", "7"}), "POST",
                "/ctrl/1.0/KV/Set/b",
                json::parse(R"({"set":{"k1":"v1","k2":"v 2"},"runIfVersionIs":7})"));
  ExpectRequest(P({"kv", "b", "unset", "k1"}), "POST", "/ctrl/1.0/KV/Set/b",
                json::parse(R"({"set":{"k1":""}})"));
  EXPECT_TRUE(Fails({"kv", "b", "set"}));
  EXPECT_TRUE(Fails({"kv", "b", "set", "k"}));
  EXPECT_TRUE(Fails({"kv", "b", "delete", "c"}));
  EXPECT_TRUE(Fails({"kv", "bad/name", "list"}));
  EXPECT_TRUE(Fails({"kv", "b", "get"}));
}

// mgmtConfig: on/off settings take enable|disable; others pass a number or word through.
TEST(CommandAdminTest, MgmtConfig) {
  ExpectRequest(P({"mgmtConfig", "reuseServerImplicitOnDiskDown", "enable"}), "POST",
                "/ctrl/1.0/MgmtConfigSet", json{{"reuseServerImplicitOnDiskDown", true}});
  ExpectRequest(P({"mgmtConfig", "reuseServerImplicitOnDiskDown", "disable"}), "POST",
                "/ctrl/1.0/MgmtConfigSet", json{{"reuseServerImplicitOnDiskDown", false}});
  ExpectRequest(P({"mgmtConfig", "maxLocalRecoveryRequests", "4"}), "POST",
                "/ctrl/1.0/MgmtConfigSet", json{{"maxLocalRecoveryRequests", 4}});
  EXPECT_TRUE(Fails({"mgmtConfig", "reuseServerImplicitOnDiskDown", "maybe"}));
  EXPECT_TRUE(Fails({"mgmtConfig", "reuseServerImplicitOnDiskDown"}));
  EXPECT_TRUE(Fails({"mgmtConfig", "Bad-Name", "1"}));
  EXPECT_TRUE(Fails({"mgmtConfig"}));
}

// Names at the reference's maximum lengths are accepted, one more is refused.
TEST(CommandAdminTest, NameLimits) {
  EXPECT_FALSE(Fails({"volume", std::string(199, 'v'), "describe"}));
  EXPECT_TRUE(Fails({"volume", std::string(200, 'v'), "describe"}));
  EXPECT_FALSE(Fails({"placementGroup", std::string(127, 'p'), "list"}));
  EXPECT_TRUE(Fails({"placementGroup", std::string(128, 'p'), "list"}));
}

}  // namespace
}  // namespace spindle::cli
