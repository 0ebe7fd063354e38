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
// the same request id, or the timeout (checked every kTimeoutSweep, so it may fire that much
// late). The reader resumes the waiting caller at once, on its own stack (no pass through the
// executor's queue, docs/decisions/0015). Many calls may be in flight at once. When the connection
// breaks, every pending call completes with kUnavailable and the client is closed for good (make a
// new one to reconnect).
//
// Both ends read through a buffer (one recv can bring many frames) and write every queued frame
// with one gathering send: under load the syscalls per request fall with the queue depth.
//
// Peers on one host: a server may also listen on a Unix socket in the abstract namespace named
// after its TCP endpoint (LocalSocketName), and RpcClient::Connect tries that name first. The
// name is only visible in the server's network namespace, where the TCP endpoint is the same
// server, so both paths reach the same process; a Unix stream costs about a third less CPU per
// 4 KiB frame than TCP over loopback (docs/decisions/0018).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "common/bytes.h"
#include "common/status.h"
#include "proto/wire.h"

namespace spindle::net {

inline constexpr size_t kMaxInFlightPerConnection = 256;
inline constexpr size_t kMaxConnections = 1024;
inline constexpr std::chrono::milliseconds kTimeoutSweep{50};

// Bytes sent after a frame's own payload bytes without being copied: `owner` keeps `bytes`
// alive until the frame is written (one encoded write shared by the frames to every replica,
// or a read's data handed over as it came from the store).
struct SharedBytes {
  std::shared_ptr<const void> owner;
  std::span<const uint8_t> bytes;
};

struct Frame {
  proto::FrameHeader header;
  IoBytes payload;
  // Bytes of the payload's end received into the caller's sink instead (RpcClient::Call).
  size_t sunk = 0;
};

// A response built by a handler: status 0 with a payload (`payload` then `tail`), or an error
// status with a message.
struct Reply {
  int32_t status = 0;
  std::vector<uint8_t> payload;
  SharedBytes tail;
  static Reply Ok(std::vector<uint8_t> payload, SharedBytes tail = {}) {
    return Reply{0, std::move(payload), std::move(tail)};
  }
  static Reply Fail(const Status& s);
};

// A connection's stream: TCP, or a Unix socket to a server on this host.
using RpcSocket = asio::generic::stream_protocol::socket;

// The abstract Unix socket name (leading NUL) of the server listening on host:port; host is
// written as the address parses (so "::1" and "0:0:0:0:0:0:0:1" agree). Empty for an
// address that does not parse.
std::string LocalSocketName(const std::string& host, uint16_t port);

// Runs for each request. Must not throw.
using RpcHandler = std::function<asio::awaitable<Reply>(Frame request)>;

class OutQueue;  // frames waiting to be sent on one connection (rpc.cc)

class RpcServer {
 public:
  RpcServer(asio::io_context& io, RpcHandler handler);
  ~RpcServer();
  // Binds and starts accepting. port 0 picks a free port (see port()).
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  // After Listen: also accepts on LocalSocketName(host, port()), for clients on this host.
  // kUnavailable when the name is taken (another process of this network namespace has it).
  Status ListenLocal();
  // Stops accepting and closes every connection.
  void Stop();

 private:
  struct Conn;
  template <typename Acceptor>  // TCP or Unix
  asio::awaitable<void> AcceptLoop(Acceptor& acceptor);
  asio::awaitable<void> ServeConnection(std::shared_ptr<Conn> conn);

  asio::io_context& io_;
  RpcHandler handler_;
  asio::ip::tcp::acceptor acceptor_;
  asio::local::stream_protocol::acceptor local_acceptor_;
  uint16_t port_ = 0;
  std::vector<std::weak_ptr<Conn>> conns_;
  bool stopped_ = false;
};

class RpcClient : public std::enable_shared_from_this<RpcClient> {
 public:
  // Connects (with timeout) and starts the reader: through LocalSocketName(host, port) when a
  // server listens there, else over TCP.
  static asio::awaitable<Result<std::shared_ptr<RpcClient>>> Connect(
      asio::any_io_executor ex, std::string host, uint16_t port, std::chrono::milliseconds timeout);
  ~RpcClient();

  // Sends one request and waits for its response. Errors: kUnavailable (connection broken,
  // closed, or timeout), or the server's error status and message.
  // The request's payload is `payload` followed by `tail`.
  asio::awaitable<Result<Frame>> Call(proto::MsgType type, std::vector<uint8_t> payload,
                                      std::chrono::milliseconds timeout) {
    return Call(type, std::move(payload), SharedBytes{}, timeout);
  }
  // With a non-empty `sink`, a successful response's last sink.size() bytes (its bulk data)
  // are received straight into sink, when the response is that long; the frame's payload then
  // holds only the bytes before them and Frame::sunk == sink.size(). sink must stay valid until
  // the call returns.
  asio::awaitable<Result<Frame>> Call(proto::MsgType type, std::vector<uint8_t> payload,
                                      SharedBytes tail, std::chrono::milliseconds timeout,
                                      std::span<uint8_t> sink = {});
  bool is_open() const { return open_; }
  // Connected through the server's Unix socket (statistics, tests).
  bool is_local() const { return local_; }
  void Close();

  RpcClient(RpcSocket socket, bool local);  // use Connect()

 private:
  struct Pending;
  void Start(asio::any_io_executor ex);  // the reader, writer and sweeper
  asio::awaitable<void> ReadLoop();
  asio::awaitable<void> WriteLoop();
  asio::awaitable<void> SweepLoop();
  void FailAll(const Status& s);

  RpcSocket socket_;
  bool local_ = false;
  bool open_ = true;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending_;
  std::unique_ptr<OutQueue> out_;
  asio::steady_timer sweep_;
};

}  // namespace spindle::net
