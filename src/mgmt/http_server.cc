#include "mgmt/http_server.h"

#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "mgmt/api_errors.h"

namespace spindle::mgmt {
namespace {

constexpr int kSocketTimeoutMs = 30000;

// A socket stream that percent-encodes '#' in the request line. cpp-httplib drops everything
// after '#' as a URL fragment, but StorPool clients send names like "#tmp" raw in the path.
class RawTargetStream : public httplib::Stream {
 public:
  explicit RawTargetStream(int sock) : sock_(sock) {}
  bool is_readable() const override { return !pending_.empty() || Poll(POLLIN); }
  bool is_writable() const override { return Poll(POLLOUT); }
  ssize_t read(char* ptr, size_t size) override {
    if (pending_.empty()) {
      char buf[4096];
      if (!Poll(POLLIN)) return -1;
      ssize_t n = ::recv(sock_, buf, sizeof(buf), 0);
      if (n <= 0) return n;
      for (ssize_t i = 0; i < n; ++i) {
        if (in_request_line_ && buf[i] == '#') {
          pending_ += "%23";
          continue;
        }
        if (buf[i] == '\n') in_request_line_ = false;
        pending_ += buf[i];
      }
    }
    size_t n = std::min(size, pending_.size());
    std::copy(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n), ptr);
    pending_.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!Poll(POLLOUT)) return -1;
    return ::send(sock_, ptr, size, MSG_NOSIGNAL);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  int socket() const override { return sock_; }

 private:
  bool Poll(short events) const {
    pollfd p{sock_, events, 0};
    return ::poll(&p, 1, kSocketTimeoutMs) > 0;
  }
  int sock_;
  bool in_request_line_ = true;
  std::string pending_;
};

}  // namespace

// One request per connection, like StorPool's bindings use it.
class RawServer : public httplib::Server {
 private:
  bool process_and_close_socket(int sock) override {
    RawTargetStream strm(sock);
    bool closed = false;
    bool ok = process_request(strm, /*close_connection=*/true, closed, [](httplib::Request&) {});
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }
};

HttpServer::HttpServer(Api& api, Cluster& cluster)
    : api_(api), cluster_(cluster), server_(std::make_unique<RawServer>()) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  server_->set_payload_max_length(kMaxBodyBytes);
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    std::optional<std::string> auth;
    if (req.has_header("Authorization")) auth = req.get_header_value("Authorization");
    ApiResponse r = api_.Handle(req.method, req.target, auth, req.body);
    res.status = r.http_status;
    res.set_content(r.body, "application/json");
  };
  server_->Get(".*", handle);
  server_->Post(".*", handle);
  httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request& req,
                                                         httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    Status st = res.status == 413
                    ? Error(Code::kInvalidArgument, "request body exceeds {} bytes", kMaxBodyBytes)
                    : Error(Code::kNotFound, "no API at {} {} (HTTP {})", req.method, req.target,
                            res.status);
    res.set_content(ErrorBody(st, cluster_.generation()), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  server_->set_error_handler(on_error);
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::Bind(const std::string& host, int port) {
  int bound = port;
  if (port == 0) {
    bound = server_->bind_to_any_port(host);
  } else if (!server_->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) return Error(Code::kUnavailable, "cannot listen on {}:{}", host, port);
  return bound;
}

Status HttpServer::Run() {
  if (!server_->listen_after_bind()) return Error(Code::kIoError, "HTTP server failed");
  return Status::Ok();
}

void HttpServer::Stop() {
  server_->stop();
}

}  // namespace spindle::mgmt
