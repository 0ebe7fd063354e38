// One data-protocol connection (net::RpcClient) per storage server, made on first use and
// remade after it breaks. Disk ids are resolved to servers through the `disks` map of the
// latest ClientState.
// Thread: owned by the io_context thread; all methods run there.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "client/async_util.h"
#include "client/state.h"
#include "common/ids.h"
#include "net/rpc.h"

namespace spindle::client {

inline constexpr std::chrono::milliseconds kConnectTimeout{3000};
// Attempts per call; a broken connection is remade between attempts.
inline constexpr int kMaxCallAttempts = 3;

class ServerPool {
 public:
  ServerPool(asio::any_io_executor ex, ClientId self);
  ServerPool(const ServerPool&) = delete;
  ServerPool& operator=(const ServerPool&) = delete;

  // Replaces the disk map of state `generation`. A server whose address changed gets a new
  // connection. A disk this client had mgmt mark down stays down in states older than that.
  void UpdateDisks(const std::unordered_map<DiskId, DiskEndpoint>& disks, int64_t generation = 0);

  // Hands a failed replica to mgmt: calls done(generation) once mgmt marked the disk down, or
  // done(error) when it could not. Set by the owner; may run `done` on any thread.
  using FailureReportFn =
      std::function<void(DiskId, std::string reason, std::function<void(Result<int64_t>)> done)>;
  void set_failure_report(FailureReportFn fn) { report_ = std::move(fn); }
  // Reports `disk` failed (one report in flight per disk; concurrent callers share it) and,
  // once mgmt confirmed, marks it down here. kUnavailable when mgmt could not be told.
  asio::awaitable<Status> ReportFailed(DiskId disk, std::string reason);
  // A disk's endpoint, valid until the next UpdateDisks; nullptr for an unknown disk.
  const DiskEndpoint* FindDisk(DiskId disk) const {
    auto it = disks_.find(disk);
    return it == disks_.end() ? nullptr : &it->second;
  }
  ClientId self() const { return self_; }

  // Sends one request to the server owning `disk`; reconnects and retries (up to
  // kMaxCallAttempts) while the failure is a broken connection. Errors: kNotFound (unknown
  // disk), kUnavailable, or the server's error.
  asio::awaitable<Result<net::Frame>> Call(DiskId disk, proto::MsgType type,
                                           std::shared_ptr<const std::vector<uint8_t>> payload,
                                           std::chrono::milliseconds timeout) {
    net::SharedBytes tail{payload, *payload};
    return Call(disk, type, {}, std::move(tail), timeout);
  }
  // The same with the payload `head` followed by `tail` (shared, not copied); `sink` as in
  // net::RpcClient::Call.
  asio::awaitable<Result<net::Frame>> Call(DiskId disk, proto::MsgType type,
                                           std::vector<uint8_t> head, net::SharedBytes tail,
                                           std::chrono::milliseconds timeout,
                                           std::span<uint8_t> sink = {});
  // Closes every connection (pending calls fail with kUnavailable).
  void CloseAll();

 private:
  struct Conn {
    explicit Conn(asio::any_io_executor ex) : connected(ex) {}
    std::string addr;
    uint16_t port = 0;
    std::shared_ptr<net::RpcClient> client;
    bool connecting = false;
    AsyncSignal connected;
  };
  asio::awaitable<Result<std::shared_ptr<net::RpcClient>>> GetClient(std::shared_ptr<Conn> c);
  asio::awaitable<Result<std::shared_ptr<net::RpcClient>>> Dial(std::shared_ptr<Conn> c);

  asio::any_io_executor ex_;
  ClientId self_;
  std::unordered_map<DiskId, DiskEndpoint> disks_;
  std::unordered_map<DiskId, int64_t> marked_down_;  // disk → generation mgmt marked it down in
  struct Report {
    bool done = false;
    Status status;
    std::shared_ptr<asio::steady_timer> wake;
  };
  std::unordered_map<DiskId, std::shared_ptr<Report>> reports_;
  FailureReportFn report_;
  std::unordered_map<ServerId, std::shared_ptr<Conn>> conns_;
  bool closed_ = false;
};

}  // namespace spindle::client
