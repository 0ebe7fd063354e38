// NBD endpoint of spindle-block: accepts connections on a Unix socket and on TCP, runs one
// NbdSession per connection (fixed newstyle handshake, then transmission with many requests
// in flight), and closes the sessions of an export when it goes away.
// Thread: owned by the io_context thread; all methods run there.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include <asio.hpp>

#include "client/async_util.h"
#include "client/nbd_proto.h"
#include "client/volume.h"
#include "client/volume_table.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/status.h"

namespace spindle::client {

inline constexpr size_t kMaxNbdConnections = 256;
// Per connection: requests running at once, and the bytes of their buffers.
inline constexpr size_t kMaxRequestsInFlight = 64;
inline constexpr uint64_t kMaxBytesInFlight = 128ull * 1024 * 1024;

struct NbdServerOptions {
  std::string unix_path;  // empty: no Unix listener
  std::string tcp_host = "127.0.0.1";
  uint16_t tcp_port = 10809;  // 0: pick a free port
  bool tcp = true;
};

class NbdServer;

// One NBD connection. Owned by shared_ptr: the session's coroutines each hold one.
class NbdSession : public std::enable_shared_from_this<NbdSession> {
 public:
  using Socket = asio::generic::stream_protocol::socket;
  NbdSession(Socket socket, NbdServer& server);

  // Handshake then transmission; returns when the connection is closed.
  static asio::awaitable<void> Run(std::shared_ptr<NbdSession> self);
  // Transmission only, for `v` (the kernel's end of a socketpair does no handshake).
  static asio::awaitable<void> RunAttached(std::shared_ptr<NbdSession> self,
                                           std::shared_ptr<Volume> v);
  // Closes the socket; in-flight requests finish, their replies are dropped.
  void Close();
  const Volume* volume() const { return volume_.get(); }

 private:
  struct Reply {
    // The reply up to its data: simple replies and READ chunks in `fixed` (no heap), error
    // and BLOCK_STATUS chunks in `header`.
    std::array<uint8_t, std::max(nbd::kSimpleReplySize, nbd::kReadChunkHeadSize)> fixed{};
    size_t fixed_size = 0;
    std::vector<uint8_t> header;
    IoBytes data;
    uint64_t cost_bytes = 0;  // released with the request's slot once the reply is written
    size_t sent = 0;          // bytes a direct send (QueueReply) got out already
    std::span<const uint8_t> head() const {
      return fixed_size > 0 ? std::span<const uint8_t>(fixed.data(), fixed_size)
                            : std::span<const uint8_t>(header);
    }
  };

  // nbd_handshake.cc. true: an export was chosen (volume_ set), go to transmission.
  asio::awaitable<bool> Handshake();
  asio::awaitable<Result<bool>> HandleOption(uint32_t option, std::vector<uint8_t> body);
  asio::awaitable<Status> SendOptionReply(uint32_t option, uint32_t type,
                                          std::span<const uint8_t> data);
  asio::awaitable<Status> SendExportInfo(uint32_t option, const nbd::InfoRequest& req,
                                         const Volume& v);
  asio::awaitable<Status> FinishExportName(std::shared_ptr<Volume> v, const std::string& name);
  asio::awaitable<Result<bool>> HandleMetaContext(uint32_t option, std::vector<uint8_t> body);
  // An export was chosen: meta contexts selected for another export no longer apply.
  void ChooseExport(std::shared_ptr<Volume> v, const std::string& name);
  asio::awaitable<Status> ReadExact(std::span<uint8_t> buf);
  asio::awaitable<Status> WriteAll(std::span<const uint8_t> buf);

  // nbd_session.cc
  asio::awaitable<void> Transmission();
  asio::awaitable<bool> WaitForSlot(uint64_t bytes);
  static asio::awaitable<void> Execute(std::shared_ptr<NbdSession> self, nbd::Request r,
                                       IoBytes payload);
  asio::awaitable<Status> Perform(const nbd::Request& r, std::span<const uint8_t> payload,
                                  IoBytes& data, std::vector<nbd::StatusExtent>& extents);
  asio::awaitable<Status> BlockStatus(const nbd::Request& r,
                                      std::vector<nbd::StatusExtent>& extents);
  // Queues the reply to r (simple or structured as negotiated): READ data or BLOCK_STATUS
  // extents on success, else `error`. The request's slot is freed once it is written (or
  // dropped if closed).
  void QueueReply(const nbd::Request& r, uint32_t error, std::string_view message, IoBytes data,
                  std::span<const nbd::StatusExtent> extents);
  void ReleaseSlot(uint64_t cost);
  static asio::awaitable<void> WriterLoop(std::shared_ptr<NbdSession> self);
  nbd::ExportView View() const;

  Socket socket_;
  // Bytes received but not consumed yet (ReadExact): one recv can bring several requests.
  std::vector<uint8_t> in_;
  size_t in_begin_ = 0, in_end_ = 0;
  NbdServer& server_;
  bool no_zeroes_ = false;
  bool open_ = true;
  bool structured_ = false;       // NBD_OPT_STRUCTURED_REPLY acknowledged
  bool base_allocation_ = false;  // base:allocation selected for meta_export_
  std::string meta_export_;
  std::shared_ptr<Volume> volume_;
  size_t in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;
  AsyncSignal slot_freed_;
  // Bounded by kMaxRequestsInFlight: every queued reply still holds its request's slot.
  std::deque<Reply> replies_;
  size_t writing_ = 0;  // the first `writing_` replies are being sent (Close leaves them)
  AsyncSignal reply_queued_;
  bool reading_done_ = false;
  bool writer_done_ = false;
};

class NbdServer {
 public:
  NbdServer(asio::io_context& io, VolumeTable& table, NbdServerOptions options);
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  Status Start();
  // Stops accepting and closes every session.
  void Stop();
  // Closes every session using `v` (its export went away or changed).
  void CloseSessionsOf(const Volume* v);
  // Serves `socket` (already connected, no handshake) as an export of `v`.
  Status Adopt(NbdSession::Socket socket, std::shared_ptr<Volume> v);
  uint16_t tcp_port() const { return tcp_port_; }

  VolumeTable& table() { return table_; }
  // Counts NBD connections in transmission per volume (globalId); `on_in_use` gets the set of
  // volumes with at least one, whenever it changes.
  void NoteInUse(const std::string& global_id, int delta);
  void set_on_in_use(std::function<void(std::vector<std::string>)> fn) {
    on_in_use_ = std::move(fn);
  }
  void Forget(NbdSession* s) { sessions_.erase(s); }

 private:
  using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
  Status Listen(Acceptor& acc, const asio::generic::stream_protocol::endpoint& ep);
  asio::awaitable<void> AcceptLoop(Acceptor& acc, bool tcp);

  asio::io_context& io_;
  VolumeTable& table_;
  NbdServerOptions options_;
  Acceptor unix_acceptor_;
  Acceptor tcp_acceptor_;
  uint16_t tcp_port_ = 0;
  bool unix_bound_ = false;  // the socket file at options_.unix_path is ours (Stop removes it)
  std::unordered_set<NbdSession*> sessions_;
  std::map<std::string, int> in_use_;
  std::function<void(std::vector<std::string>)> on_in_use_;
  bool stopped_ = false;
};

}  // namespace spindle::client
