// Framed RPC over TCP (or Unix) streams for the data wire protocol (proto/wire.h), on standalone
// Asio with C++20 coroutines.
//
// Threading: every object here belongs to the io_context (single thread) it was created on;
// call its methods only from that thread (from coroutines running on it).
//
// RpcServer: accepts connections, reads frames, runs the handler for each request in its own
// coroutine (at most kMaxInFlightPerConnection per connection; past that the reader waits), and
// writes responses in completion order. A frame that fails DecodeHeader closes the connection.
//
// RpcClient: one connection to a server; Call() sends a request and waits for the response with
// the same request id, or the timeout. Many calls may be in flight at once. When the connection
// breaks, every pending call completes with kUnavailable and the client is closed for good
// (make a new one to reconnect).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "common/status.h"
#include "proto/wire.h"

namespace spindle::net {

inline constexpr size_t kMaxInFlightPerConnection = 256;
inline constexpr size_t kMaxConnections = 1024;

struct Frame {
  proto::FrameHeader header;
  std::vector<uint8_t> payload;
};

// A response built by a handler: status 0 with a payload, or an error status with a message.
struct Reply {
  int32_t status = 0;
  std::vector<uint8_t> payload;
  static Reply Ok(std::vector<uint8_t> payload) { return Reply{0, std::move(payload)}; }
  static Reply Fail(const Status& s);
};

// Runs for each request. Must not throw.
using RpcHandler = std::function<asio::awaitable<Reply>(Frame request)>;

class RpcServer {
 public:
  RpcServer(asio::io_context& io, RpcHandler handler);
  ~RpcServer();
  // Binds and starts accepting. port 0 picks a free port (see port()).
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  // Stops accepting and closes every connection.
  void Stop();

 private:
  struct Conn;
  asio::awaitable<void> AcceptLoop();
  asio::awaitable<void> ServeConnection(std::shared_ptr<Conn> conn);

  asio::io_context& io_;
  RpcHandler handler_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::weak_ptr<Conn>> conns_;
  bool stopped_ = false;
};

class RpcClient : public std::enable_shared_from_this<RpcClient> {
 public:
  // Connects (with timeout) and starts the reader.
  static asio::awaitable<Result<std::shared_ptr<RpcClient>>> Connect(
      asio::any_io_executor ex, std::string host, uint16_t port, std::chrono::milliseconds timeout);
  ~RpcClient();

  // Sends one request and waits for its response. Errors: kUnavailable (connection broken,
  // closed, or timeout), or the server's error status and message.
  asio::awaitable<Result<Frame>> Call(proto::MsgType type, std::vector<uint8_t> payload,
                                      std::chrono::milliseconds timeout);
  bool is_open() const { return open_; }
  void Close();

  explicit RpcClient(asio::ip::tcp::socket socket);  // use Connect()

 private:
  struct Pending;
  asio::awaitable<void> ReadLoop();
  asio::awaitable<void> WriteLoop();
  void FailAll(const Status& s);

  asio::ip::tcp::socket socket_;
  bool open_ = true;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending_;
  std::deque<std::shared_ptr<std::vector<uint8_t>>> write_queue_;
  asio::steady_timer write_wake_;
};

}  // namespace spindle::net
