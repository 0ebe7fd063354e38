#include "cli/cli.h"

#include <httplib.h>

#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace spindle::cli {
namespace {

using nlohmann::json;

// A loopback API that answers from a fixed script and counts calls per path.
class FakeApi {
 public:
  FakeApi() {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_[req.method + " " + req.path];
      last_body_[req.path] = req.body;
      auto it = replies_.find(req.path);
      if (it == replies_.end()) {
        res.status = 404;
        res.set_content(R"({"error":{"name":"notFound","descr":"no such call"}})", "text/json");
        return;
      }
      res.status = it->second.first;
      res.set_content(it->second.second, "application/json");
    };
    server_.Get(".*", handler);
    server_.Post(".*", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~FakeApi() {
    server_.stop();
    thread_.join();
  }
  void Reply(const std::string& path, int status, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_[path] = {status, body};
  }
  int Calls(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[key];
  }
  std::string Body(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return last_body_[path];
  }
  net::ApiEndpoint Endpoint() const {
    net::ApiEndpoint ep;
    ep.port = static_cast<uint16_t>(port_);
    ep.timeout = std::chrono::milliseconds(5000);
    return ep;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<int, std::string>> replies_;
  std::map<std::string, int> calls_;
  std::map<std::string, std::string> last_body_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

struct RunOut {
  int status;
  std::string out, err;
};

RunOut RunWords(FakeApi& api, Options opts, std::vector<std::string> words) {
  net::ApiClient client(api.Endpoint());
  std::ostringstream out, err;
  Runner runner(client, opts, out, err);
  int status = runner.Run(words);
  return {status, out.str(), err.str()};
}

// Options combine (-jB), stop at the first word, and reject unknown letters.
TEST(CliTest, ParsesOptions) {
  size_t first = 0;
  auto o = ParseOptions({"-jB", "--config", "/x.conf", "-M", "disk", "list"}, &first);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->json && o->batch && o->multi_cluster);
  EXPECT_EQ(o->config_path, "/x.conf");
  EXPECT_EQ(first, 4u);
  EXPECT_FALSE(ParseOptions({"-x"}, &first).ok());
  auto words = SplitLine("  volume 'a b' \"c\"  list ");
  ASSERT_TRUE(words.ok());
  EXPECT_EQ(*words, (std::vector<std::string>{"volume", "a b", "c", "list"}));
  EXPECT_FALSE(SplitLine("volume 'x").ok());
}

// A change prints OK; -j prints the envelope with the API's data; an API error goes to stderr
// with its name and a non-zero status; a grammar error exits 2 without any request.
TEST(CliTest, OutputsAndExitCodes) {
  FakeApi api;
  api.Reply("/ctrl/1.0/VolumeDelete/v1", 200,
            R"({"generation":4,"data":{"ok":true,"generation":4}})");
  RunOut r = RunWords(api, {}, {"volume", "v1", "delete", "v1"});
  EXPECT_EQ(r.status, kExitOk);
  EXPECT_EQ(r.out, "OK\n");

  Options j;
  j.json = true;
  r = RunWords(api, j, {"volume", "v1", "delete", "v1"});
  EXPECT_EQ(json::parse(r.out),
            json::parse(R"({"generation":4,"data":{"ok":true,"generation":4}})"));

  api.Reply("/ctrl/1.0/VolumeDelete/v2", 404,
            R"({"error":{"name":"objectDoesNotExist","descr":"volume v2 does not exist"}})");
  r = RunWords(api, {}, {"volume", "v2", "delete", "v2"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_EQ(r.err, "Error: objectDoesNotExist: volume v2 does not exist\n");

  r = RunWords(api, {}, {"volume", "v2", "delete", "v3"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_EQ(api.Calls("POST /ctrl/1.0/VolumeDelete/v3"), 0);
}

// template create-or-update: a known name updates, an unknown one creates.
TEST(CliTest, TemplateUpsert) {
  FakeApi api;
  api.Reply("/ctrl/1.0/VolumeTemplatesList", 200, R"({"generation":1,"data":[{"name":"old"}]})");
  const char* ok = R"({"generation":2,"data":{"ok":true,"generation":2}})";
  api.Reply("/ctrl/1.0/VolumeTemplateCreate", 200, ok);
  api.Reply("/ctrl/1.0/VolumeTemplateUpdate/old", 200, ok);
  EXPECT_EQ(RunWords(api, {}, {"template", "old", "replication", "2"}).status, kExitOk);
  EXPECT_EQ(api.Calls("POST /ctrl/1.0/VolumeTemplateUpdate/old"), 1);
  EXPECT_EQ(RunWords(api, {}, {"template", "new", "replication", "2"}).status, kExitOk);
  EXPECT_EQ(api.Calls("POST /ctrl/1.0/VolumeTemplateCreate"), 1);
  EXPECT_EQ(json::parse(api.Body("/ctrl/1.0/VolumeTemplateCreate")),
            json::parse(R"({"name":"new","replication":2})"));
}

// -B retries a transient error (here once, then success); without -B it fails at once.
TEST(CliTest, BatchRetriesTransient) {
  FakeApi api;
  api.Reply("/ctrl/1.0/DisksList", 503,
            R"({"error":{"name":"busy","descr":"try later","transient":true}})");
  RunOut r = RunWords(api, {}, {"disk", "list"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_EQ(api.Calls("GET /ctrl/1.0/DisksList"), 1);

  Options b;
  b.batch = true;
  std::thread fixer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    api.Reply("/ctrl/1.0/DisksList", 200, R"({"generation":1,"data":{}})");
  });
  r = RunWords(api, b, {"disk", "list"});
  fixer.join();
  EXPECT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(api.Calls("GET /ctrl/1.0/DisksList"), 3);
}

// The prompt reads commands until quit, printing the prompt before each.
TEST(CliTest, InteractivePrompt) {
  FakeApi api;
  api.Reply("/ctrl/1.0/PlacementGroupsList", 200, R"({"generation":1,"data":{"hdd":{}}})");
  net::ApiClient client(api.Endpoint());
  std::istringstream in("placementGroup list\n\n-j placementGroup list\nquit\ndisk list\n");
  std::ostringstream out, err;
  Runner runner(client, {}, out, err);
  EXPECT_EQ(runner.Interactive(in, "StorPool> "), kExitOk);
  EXPECT_NE(out.str().find("StorPool> ------"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("\"hdd\""), std::string::npos) << out.str();
  EXPECT_EQ(api.Calls("GET /ctrl/1.0/DisksList"), 0);
  setenv("SP_CLI_PROMPT", "${SP_TEST_NODE} node  ", 1);
  setenv("SP_TEST_NODE", "n1", 1);
  EXPECT_EQ(PromptFromEnv(), "n1 node> ");
  unsetenv("SP_CLI_PROMPT");
  EXPECT_EQ(PromptFromEnv(), "StorPool> ");
}

}  // namespace
}  // namespace spindle::cli
