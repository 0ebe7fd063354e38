#include "net/api_client.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace spindle::net {
namespace {

// A loopback httplib server that records the last request and answers with a canned reply.
class FakeApi {
 public:
  FakeApi() {
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      res.status = status_;
      res.set_content(reply_, "application/json");
    });
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      res.status = status_;
      res.set_content(reply_, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Bounded wait: stop() is a no-op until the listen loop has started.
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~FakeApi() {
    server_.stop();
    thread_.join();
  }
  ApiEndpoint Endpoint() const {
    ApiEndpoint ep;
    ep.port = static_cast<uint16_t>(port_);
    ep.token = "1234";
    ep.timeout = std::chrono::milliseconds(5000);
    return ep;
  }
  void Reply(int status, std::string body) {
    status_ = status;
    reply_ = std::move(body);
  }

  std::string method, path, body, auth;
  bool has_content_length = false;

 private:
  void Record(const httplib::Request& req) {
    method = req.method;
    // target is the request line's raw target; httplib's path drops a '#...' tail.
    path = req.target;
    body = req.body;
    auth = req.get_header_value("Authorization");
    has_content_length = req.has_header("Content-Length");
  }
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  int status_ = 200;
  std::string reply_;
};

// A 200 reply without "error" yields its generation and data; the request carries the
// StorPool auth header and the path verbatim.
TEST(ApiClientTest, GetUnwrapsEnvelope) {
  FakeApi api;
  api.Reply(200, R"({"generation":7,"data":[{"id":1}]})");
  ApiClient client(api.Endpoint());
  ApiResult r = client.Get("/ctrl/1.0/SnapshotDescribe/*snap@1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.reply().generation, 7);
  EXPECT_EQ(r.reply().data, nlohmann::json::parse(R"([{"id":1}])"));
  EXPECT_EQ(api.method, "GET");
  EXPECT_EQ(api.path, "/ctrl/1.0/SnapshotDescribe/*snap@1");
  EXPECT_EQ(api.auth, "Storpool v1:1234");
}

// A '#' in a name goes on the wire literally (httplib's server would cut it off, so a raw
// socket reads the request line).
TEST(ApiClientTest, HashInPathIsSentLiterally) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string request_line;
  std::thread server([&] {
    int c = accept(fd, nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    ssize_t n = recv(c, buf, sizeof(buf), 0);
    std::string got(buf, n > 0 ? static_cast<size_t>(n) : 0);
    request_line = got.substr(0, got.find("\r\n"));
    const char kReply[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"data\":1}";
    (void)!send(c, kReply, sizeof(kReply) - 1, 0);
    close(c);
  });
  ApiEndpoint ep;
  ep.port = ntohs(addr.sin_port);
  ep.timeout = std::chrono::milliseconds(5000);
  ApiResult r = ApiClient(ep).Get("/ctrl/1.0/Volume/#tmp");
  server.join();
  close(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.reply().data, 1);
  EXPECT_EQ(request_line, "GET /ctrl/1.0/Volume/#tmp HTTP/1.1");
}

// POST sends the body as compact JSON; a null body sends an empty body with Content-Length.
TEST(ApiClientTest, PostSendsCompactJson) {
  FakeApi api;
  api.Reply(200, R"({"generation":3,"data":{"ok":true,"generation":3}})");
  ApiClient client(api.Endpoint());
  nlohmann::json body = {{"addDisks", {101, 102}}, {"rmDisks", nlohmann::json::array()}};
  ApiResult r = client.Post("/ctrl/1.0/PlacementGroupUpdate/hdd", body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(api.method, "POST");
  EXPECT_EQ(api.body, R"({"addDisks":[101,102],"rmDisks":[]})");
  EXPECT_TRUE(r.reply().data["ok"].get<bool>());

  r = client.Post("/ctrl/1.0/VolumeFreeze/v", nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(api.body, "");
  EXPECT_TRUE(api.has_content_length);
}

// An "error" object fails the call whatever the status, and a non-200 status fails it even
// without one; transient comes from the reply.
TEST(ApiClientTest, ErrorsBecomeApiError) {
  FakeApi api;
  ApiClient client(api.Endpoint());
  api.Reply(200, R"({"error":{"name":"objectDoesNotExist","descr":"no such volume"}})");
  ApiResult r = client.Get("/ctrl/1.0/Volume/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name, "objectDoesNotExist");
  EXPECT_EQ(r.error().descr, "no such volume");
  EXPECT_FALSE(r.error().transient);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);

  api.Reply(503, R"({"error":{"name":"busy","descr":"later","transient":true}})");
  r = client.Get("/ctrl/1.0/Volume/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 503);
  EXPECT_TRUE(r.error().transient);
  EXPECT_EQ(r.status().code(), Code::kUnavailable);

  api.Reply(404, R"({"data":1})");
  r = client.Get("/ctrl/1.0/Nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name, "<Missing error name>");

  api.Reply(200, "<html>");
  r = client.Get("/ctrl/1.0/Nope");
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.error().transient);
}

// A refused connection is a transient "transport" error, not a crash or a hang.
TEST(ApiClientTest, TransportFailureIsTransient) {
  ApiEndpoint ep;
  {
    FakeApi api;
    ep = api.Endpoint();
  }  // the server is gone: its port now refuses connections
  ApiClient client(ep);
  ApiResult r = client.Get("/ctrl/1.0/DisksList");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name, "transport");
  EXPECT_TRUE(r.error().transient);
}

// FromConfig reads host, port and token, and rejects a bad port.
TEST(ApiClientTest, EndpointFromConfig) {
  Config c;
  c.Set("SP_API_HTTP_HOST", "10.0.0.1");
  c.Set("SP_API_HTTP_PORT", "8081");
  c.Set("SP_AUTH_TOKEN", "42");
  auto ep = ApiEndpoint::FromConfig(c);
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->host, "10.0.0.1");
  EXPECT_EQ(ep->port, 8081);
  EXPECT_EQ(ep->token, "42");
  c.Set("SP_API_HTTP_PORT", "70000");
  EXPECT_FALSE(ApiEndpoint::FromConfig(c).ok());
}

}  // namespace
}  // namespace spindle::net
