#include "mgmt/api.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "mgmt/api_common.h"
#include "mgmt/api_errors.h"
#include "mgmt/sqlite_store.h"

namespace spindle::mgmt {
namespace {

constexpr const char* kAuth = "Storpool v1:secret";

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir =
        std::filesystem::temp_directory_path() / ("spindle_api_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string path = (dir / "api.db").string();
    for (const char* sfx : {"", "-wal", "-shm"}) std::filesystem::remove(path + sfx);
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    ClusterOptions o;
    o.cluster_id = "loc.cl";
    o.cluster_name = "home";
    auto c = Cluster::Open(std::move(*store), o);
    ASSERT_TRUE(c.ok());
    cluster_ = std::move(*c);
    api_ = std::make_unique<Api>(*cluster_, ApiOptions{"secret"});
  }

  Json Call(const std::string& method, const std::string& target, const std::string& body = "",
            int want_status = 200, const std::optional<std::string>& auth = kAuth) {
    ApiResponse r = api_->Handle(method, target, auth, body);
    EXPECT_EQ(r.http_status, want_status) << target << " " << r.body;
    Json j = Json::parse(r.body);
    EXPECT_TRUE(j.contains("generation")) << r.body;
    return j;
  }

  void RegisterServers() {
    for (int s = 1; s <= 3; ++s) {
      Json body = {{"type", "server"},
                   {"id", s},
                   {"addr", "127.0.0.1"},
                   {"port", 47000 + s},
                   {"disks", {{{"id", s * 100 + 1}}, {{"id", s * 100 + 2}}}}};
      Call("POST", "/spindle/1/ServiceRegister", body.dump());
    }
    Call("POST", "/ctrl/1.0/PlacementGroupUpdate/hdd",
         R"({"addDisks":[101,102,"201",202,301,302],"rmDisks":[]})");
  }

  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<Api> api_;
};

// Every Code maps to a distinct StorPool error name with a non-2xx status; only retry-safe
// codes are transient.
TEST(ApiErrors, TableIsCompleteAndNon2xx) {
  std::set<std::string> names;
  for (int c = 1; c <= static_cast<int>(Code::kInternal); ++c) {
    ApiErrorInfo info = ErrorInfoFor(static_cast<Code>(c));
    EXPECT_GE(info.http_status, 400);
    names.insert(info.name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(Code::kInternal));
  EXPECT_TRUE(ErrorInfoFor(Code::kUnavailable).transient);
  EXPECT_FALSE(ErrorInfoFor(Code::kInvalidArgument).transient);
  Json j = Json::parse(ErrorBody(Error(Code::kNotFound, "x"), 7));
  EXPECT_EQ(j["error"]["name"], "objectNotFound");
  EXPECT_EQ(j["error"]["descr"], "x");
  EXPECT_EQ(j["generation"], 7);
}

// Missing or wrong tokens are refused before any routing; the right token is accepted.
TEST_F(ApiTest, AuthIsRequired) {
  EXPECT_EQ(Call("GET", "/ctrl/1.0/DisksList", "", 401, std::nullopt)["error"]["name"],
            "authFailed");
  Call("GET", "/ctrl/1.0/DisksList", "", 401, std::string("Storpool v1:secreT"));
  Call("GET", "/ctrl/1.0/DisksList", "", 401, std::string("Storpool v1:"));
  Call("GET", "/ctrl/1.0/DisksList", "", 401, std::string("secret"));
  EXPECT_TRUE(Call("GET", "/ctrl/1.0/DisksList")["data"].is_object());
}

// Prefixes, unknown and unimplemented calls, wrong methods and argument counts are routed to
// the documented errors.
TEST_F(ApiTest, Routing) {
  EXPECT_EQ(Call("GET", "/ctrl/1.0/NoSuchCall", "", 404)["error"]["name"], "objectNotFound");
  EXPECT_EQ(Call("GET", "/ctrl/1.0/NetworkPeersList", "", 501)["error"]["name"], "notImplemented");
  Call("GET", "/ctrl/1.0/RemoteCommand/home/MultiCluster/VolumesList");
  Call("GET", "/ctrl/1.0/RemoteCommand/away/VolumesList", "", 404);
  Call("GET", "/ctrl/1.0/MultiCluster/DisksList", "", 400);
  Call("POST", "/ctrl/1.0/DisksList", "", 400);
  Call("GET", "/ctrl/1.0/VolumeDescribe", "", 400);
  Call("GET", "/ctrl/1.0/VolumeDescribe/a/b", "", 400);
  Call("GET", "/elsewhere", "", 404);
  Call("PUT", "/ctrl/1.0/DisksList", "", 400);
}

// Raw '#' and '~globalId' path arguments name volumes; bad names are invalidParam.
TEST_F(ApiTest, VolumeNamesInPaths) {
  RegisterServers();
  Json r = Call("POST", "/ctrl/1.0/VolumeCreate",
                R"({"name":"#tmp","size":1048576,"replication":3,"placeAll":"hdd"})");
  std::string gid = r["data"]["globalId"];
  EXPECT_EQ(gid.substr(0, 7), "loc.cl.");
  EXPECT_EQ(Call("GET", "/ctrl/1.0/Volume/#tmp")["data"][0]["name"], "#tmp");
  EXPECT_EQ(Call("GET", "/ctrl/1.0/VolumeDescribe/~" + gid)["data"]["name"], "#tmp");
  Call("GET", "/ctrl/1.0/Volume/bad*name", "", 400);
  Call("GET", "/ctrl/1.0/Volume/~a.b", "", 400);
  Call("GET", "/ctrl/1.0/Volume/nope", "", 404);
}

// Malformed bodies and invalid values fail without changing the generation or the state.
TEST_F(ApiTest, BadInputChangesNothing) {
  RegisterServers();
  int64_t gen = cluster_->generation();
  const char* bad[] = {"{",
                       "[]",
                       R"({"name":"v","size":1000,"replication":3,"placeAll":"hdd"})",
                       R"({"name":"v","size":"1024","replication":3,"placeAll":"hdd"})",
                       R"({"name":"v","size":1024,"replication":4,"placeAll":"hdd"})",
                       R"({"name":"v","size":1024,"replication":0,"placeAll":"hdd"})",
                       R"({"name":"v","size":1024,"replication":3,"placeAll":"nope"})",
                       R"({"name":"v","size":1024,"replication":3,"template":"nope"})",
                       R"({"name":"v*","size":1024,"replication":3,"placeAll":"hdd"})",
                       R"({"name":"v","size":1024,"placeAll":"hdd"})"};
  for (const char* body : bad) {
    ApiResponse r = api_->Handle("POST", "/ctrl/1.0/VolumeCreate", kAuth, body);
    EXPECT_GE(r.http_status, 400) << body;
    EXPECT_TRUE(Json::parse(r.body).contains("error")) << body;
  }
  Call("POST", "/ctrl/1.0/VolumeCreate", std::string(kMaxBodyBytes + 1, ' '), 400);
  EXPECT_EQ(cluster_->generation(), gen);
  EXPECT_TRUE(Call("GET", "/ctrl/1.0/VolumesList")["data"].empty());
}

// A change returns ApiOk with the new generation, one more than before.
TEST_F(ApiTest, ChangesReturnApiOk) {
  RegisterServers();
  int64_t gen = cluster_->generation();
  Json r = Call("POST", "/ctrl/1.0/VolumeTemplateCreate",
                R"({"name":"t1","replication":2,"placeAll":"hdd","size":4096})");
  EXPECT_EQ(r["data"]["ok"], true);
  EXPECT_EQ(r["data"]["generation"], gen + 1);
  EXPECT_EQ(r["generation"], gen + 1);
  r = Call("POST", "/ctrl/1.0/VolumeCreate", R"({"template":"t1"})");
  std::string name = r["data"]["name"];
  EXPECT_EQ(name[0], '~');
  Json v = Call("GET", "/ctrl/1.0/VolumeDescribe/" + name)["data"];
  EXPECT_EQ(v["replication"], 2);
  EXPECT_EQ(v["size"], 4096);
  EXPECT_EQ(v["targetDiskSets"].size(), 32u);
  EXPECT_EQ(v["objects"].size(), 1u);
}

// A snapshot freezes the volume's layer (the volume moves to a new one whose chain continues
// with it); a clone's chain is its own layer over the snapshot's; ClientState publishes both
// chains; a snapshot with children cannot be deleted, and a snapshot attaches read-only only.
TEST_F(ApiTest, SnapshotsAndClonesFormChains) {
  RegisterServers();
  Call("POST", "/ctrl/1.0/VolumeCreate",
       R"({"name":"v","size":1073741824,"replication":3,"placeAll":"hdd"})");
  const int64_t layer0 = Call("GET", "/ctrl/1.0/Volume/v")["data"][0]["id"];
  Json r = Call("POST", "/ctrl/1.0/VolumeSnapshot/v", "{}")["data"];
  const std::string auto_name = r["autoName"];
  EXPECT_EQ(auto_name.rfind("v@", 0), 0u) << r;
  EXPECT_EQ(r["snapshotVisibleVolumeId"], layer0);
  Json v = Call("GET", "/ctrl/1.0/Volume/v")["data"][0];
  EXPECT_NE(v["id"], layer0);
  EXPECT_EQ(v["parentName"], auto_name);
  Call("POST", "/ctrl/1.0/VolumeCreate", R"({"name":"c","parent":")" + auto_name + R"("})");
  Json c = Call("GET", "/ctrl/1.0/VolumeDescribe/c")["data"];
  EXPECT_EQ(c["targetDiskSets"],
            Call("GET", "/ctrl/1.0/SnapshotDescribe/" + auto_name)["data"]["targetDiskSets"]);
  Json body = {{"type", "client"}, {"id", 4}};
  Call("POST", "/spindle/1/ServiceRegister", body.dump());
  Call("POST", "/ctrl/1.0/VolumesReassign",
       R"([{"volume":"c","rw":[4]},{"snapshot":")" + auto_name + R"(","ro":[4]}])");
  Json st = Call("GET", "/spindle/1/ClientState/4?since=-1&timeoutMs=0")["data"];
  ASSERT_EQ(st["volumes"].size(), 2u) << st;
  for (const Json& e : st["volumes"]) {
    if (e["name"] == "c") {
      EXPECT_EQ(e["chain"], Json::array({c["id"], layer0}));
    } else {
      EXPECT_EQ(e["chain"], Json::array({layer0}));
      EXPECT_EQ(e["rights"], "ro");
      EXPECT_EQ(e["snapshot"], true);
    }
  }
  Call("POST", "/ctrl/1.0/SnapshotDelete/" + auto_name, "", 409);
  Call("POST", "/ctrl/1.0/VolumesReassign", R"([{"snapshot":"x","rw":[4]}])", 400);
}

// A group snapshot of a volume a client writes (docs/decisions/0007-group-snapshot.md): the
// client's ClientState long-poll wakes with a pause for it, nothing is committed before it
// answers ClientPaused, and the state of the committing generation carries the new layer and
// no pause; the call answers once the client reported that generation. A volume nobody
// writes needs no pause.
TEST_F(ApiTest, GroupSnapshotPausesWriters) {
  RegisterServers();
  for (const char* v : {"a", "b"}) {
    Json body = {{"name", v}, {"size", 1 << 20}, {"replication", 3}, {"placeAll", "hdd"}};
    Call("POST", "/ctrl/1.0/VolumeCreate", body.dump());
  }
  Call("POST", "/spindle/1/ServiceRegister", Json{{"type", "client"}, {"id", 4}}.dump());
  Call("POST", "/ctrl/1.0/VolumesReassign", R"([{"volume":"a","rw":[4]}])");
  const std::string gid = Call("GET", "/ctrl/1.0/Volume/a")["data"][0]["globalId"];
  const int64_t layer0 = Call("GET", "/ctrl/1.0/Volume/a")["data"][0]["id"];
  const std::string g0 = std::to_string(cluster_->generation());
  Json reply;
  std::thread group([&] {
    reply = Call("POST", "/ctrl/1.0/VolumesGroupSnapshot",
                 R"({"volumes":[{"volume":"a","name":"a1"},{"volume":"b","tags":{"x":"y"}}],
                     "tags":{"k":"v"}})")["data"];
  });
  Json st = Call("GET", "/spindle/1/ClientState/4?since=" + g0 + "&timeoutMs=10000&cut=0")["data"];
  ASSERT_TRUE(st.contains("pause")) << st;
  const int64_t cut = st["pause"]["cut"];
  EXPECT_EQ(st["pause"]["volumes"], Json::array({gid}));
  EXPECT_EQ(Call("GET", "/ctrl/1.0/SnapshotsList")["data"].size(), 0u);
  Call("POST", "/spindle/1/ClientPaused/4", Json{{"cut", cut}, {"volumes", {gid}}}.dump());
  st = Call("GET", "/spindle/1/ClientState/4?since=" + g0 +
                       "&timeoutMs=10000&cut=" + std::to_string(cut))["data"];
  EXPECT_FALSE(st.contains("pause")) << st;
  ASSERT_EQ(st["volumes"].size(), 1u);
  EXPECT_EQ(st["volumes"][0]["chain"][1], layer0);
  Call("POST", "/spindle/1/ClientReport/4", Json{{"generation", st["generation"]}}.dump());
  group.join();
  EXPECT_EQ(reply["generation"], st["generation"]) << reply;
  EXPECT_FALSE(reply.contains("info")) << reply;
  ASSERT_EQ(reply["snapshots"].size(), 2u) << reply;
  EXPECT_EQ(reply["snapshots"][0]["snapshot"], "a1");
  EXPECT_EQ(reply["snapshots"][0]["volumeGlobalId"], gid);
  EXPECT_EQ(reply["snapshots"][1]["volume"], "b");
  Json b =
      Call("GET", "/ctrl/1.0/Snapshot/" + reply["snapshots"][1]["snapshot"].get<std::string>());
  EXPECT_EQ(b["data"][0]["tags"], (Json{{"k", "v"}, {"x", "y"}}));
  // Nobody writes b: no pause, one change.
  Json r = Call("POST", "/ctrl/1.0/VolumesGroupSnapshot", R"({"volumes":[{"volume":"b"}]})");
  EXPECT_EQ(r["data"]["snapshots"].size(), 1u);
  Call("POST", "/ctrl/1.0/VolumesGroupSnapshot", R"({"volumes":[{"volume":"b"},{"volume":"b"}]})",
       400);
  Call("POST", "/ctrl/1.0/VolumesGroupSnapshot", R"({"volumes":[{"volume":"a","name":"a1"}]})",
       409);
}

// A chain has at most 64 layers (the servers refuse longer ones): the snapshot or clone that
// would make one longer is refused with limitExceeded.
TEST_F(ApiTest, ChainDepthIsBounded) {
  RegisterServers();
  Call("POST", "/ctrl/1.0/VolumeCreate",
       R"({"name":"v","size":1048576,"replication":3,"placeAll":"hdd"})");
  for (int i = 0; i < 62; ++i) Call("POST", "/ctrl/1.0/VolumeSnapshot/v", "{}");
  Call("POST", "/ctrl/1.0/VolumeSnapshot/v", R"({"name":"last"})");  // v: 64 layers
  EXPECT_EQ(Call("GET", "/ctrl/1.0/VolumeListSnapshots/v")["data"].size(), 63u);
  Json e = Call("POST", "/ctrl/1.0/VolumeSnapshot/v", "{}", 429);
  EXPECT_EQ(e["error"]["name"], "limitExceeded") << e;
  Call("POST", "/ctrl/1.0/VolumeCreate", R"({"name":"c","parent":"last"})");  // 64 layers
  Call("POST", "/ctrl/1.0/VolumeSnapshot/c", "{}", 429);
}

// SP_FAULT_SETS parses into sets of sorted server ids; malformed values are refused; applying
// gives the named sets exactly their servers and takes listed servers out of other sets.
TEST(FaultSetConfig, ParsesAndApplies) {
  auto cfg = ParseFaultSetConfig(" rack1:2,1; rack2:3  rack3:7 ");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(*cfg, (FaultSetConfig{{"rack1", {1, 2}}, {"rack2", {3}}, {"rack3", {7}}}));
  EXPECT_TRUE(ParseFaultSetConfig("")->empty());
  for (const char* bad : {"rack1", "rack1:", "rack1:0", "rack1:32768", "rack1:1,,2", "a.b:1",
                          "rack1:1;rack1:2", "rack1:1;rack2:1", "rack1:x"}) {
    EXPECT_FALSE(ParseFaultSetConfig(bad).ok()) << bad;
  }
  State s;
  s.faultSets["old"] = FaultSetRecord{1, "old", {2, 5}};
  s.faultSets["rack2"] = FaultSetRecord{2, "rack2", {4}};
  s.counters.nextFaultSetId = 3;
  ASSERT_TRUE(ApplyFaultSetConfig(s, *cfg).ok());
  EXPECT_EQ(s.faultSets.at("old").servers, (std::vector<uint32_t>{5}));
  EXPECT_EQ(s.faultSets.at("rack1").servers, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(s.faultSets.at("rack2").servers, (std::vector<uint32_t>{3}));
  EXPECT_EQ(s.faultSets.at("rack2").id, 2);
  EXPECT_EQ(s.faultSets.at("rack3").servers, (std::vector<uint32_t>{7}));
  EXPECT_EQ(s.faultSets.size(), 4u);
}

}  // namespace
}  // namespace spindle::mgmt
