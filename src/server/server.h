// Server: one spindle-server process — its disks, the data-protocol listener and the mgmt
// registration — built from validated options. main() only parses flags and calls this.
//
// Threads: Run() runs the io_context (RpcServer, Service, ObjectStores) on the calling thread;
// a pool of kDiskThreads runs blocking disk I/O and the Scrubbers' steps; the Registrar has its
// own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>

#include "common/config.h"
#include "common/ids.h"
#include "env/env.h"
#include "net/api_client.h"
#include "net/rpc.h"
#include "net/run_loop.h"
#include "server/object_store.h"
#include "server/recovery.h"
#include "server/registrar.h"
#include "server/scrubber.h"
#include "server/service.h"
#include "server/uring_reader.h"

namespace spindle::server {

// Disk pool threads when SP_SERVER_DISK_THREADS is 0 (auto): a write waits on a pool thread
// for its journal round to be durable, so a device's rounds hold at most as many writes as
// threads wait (16: QD32 writes +28 % on this machine's virtual disk against 4); memory stores
// finish at once and more threads only contend for the cores (QD32 writes −10 % with 16).
inline constexpr size_t kDiskThreads = 4;
inline constexpr size_t kDeviceDiskThreads = 16;
inline constexpr int64_t kMaxDiskThreads = 64;
inline constexpr uint16_t kBasePort = 47000;
// SP_CACHE_SIZE: MiB of clean blocks a server keeps for reads of its disks on devices, shared
// out evenly between them (StorPool's key; it defaults to 4096 there). Memory is taken as the
// cache fills.
inline constexpr int64_t kDefaultCacheMb = 1024;
inline constexpr int64_t kMaxCacheMb = 1 << 20;

struct ServerOptions {
  ServerId id;
  NodeId node;
  std::vector<std::string> disk_paths;
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 in tests: any free port
  std::string cluster_id;
  net::ApiEndpoint api;
  bool register_with_mgmt = true;
  uint64_t scrub_bandwidth_bytes = kDefaultScrubBandwidth;  // per disk; 0: no scrubbing
  // How long the network thread keeps polling after its last event before it sleeps
  // (net/run_loop.h); 0 sleeps at once.
  std::chrono::microseconds poll_window{0};
  // Threads of the disk pool (writes, reads without the ring, scrubbing); 0: kDiskThreads when
  // every disk is in memory, else kDeviceDiskThreads.
  size_t disk_threads = 0;
  // Also accept clients of this host on a Unix socket (net::RpcServer::ListenLocal).
  bool local_socket = true;
  uint64_t cache_bytes = static_cast<uint64_t>(kDefaultCacheMb) * kMiB;  // 0: no read cache

  // Reads SP_OURID, SP_SERVER_DISKS, SP_SERVER_HOST, SP_SERVER_PORT (default 47000 + SP_OURID),
  // SP_CLUSTER_ID, SP_SCRUB_BANDWIDTH_MB (MiB/s per disk, 0: off), SP_SERVER_POLL_US,
  // SP_SERVER_DISK_THREADS (0..64, 0: auto), SP_SERVER_LOCAL_SOCKET (0/1), SP_CACHE_SIZE (MiB,
  // 0: none) and the API endpoint keys.
  // Errors name the bad key.
  static Result<ServerOptions> FromConfig(const Config& config);
};

class Server {
 public:
  // Opens every disk (refusing disks of another cluster or a duplicate disk id) and binds the
  // listener. Nothing runs until Run().
  static Result<std::unique_ptr<Server>> Create(env::Env& env, ServerOptions options);
  ~Server();

  // Serves until SIGTERM/SIGINT or Stop(); then closes the listener, lets in-flight requests
  // finish, stops the registrar and waits for the disk pool.
  Status Run();
  // Thread-safe.
  void Stop();
  uint16_t port() const { return rpc_->port(); }

 private:
  Server(env::Env& env, ServerOptions options);
  Status OpenDisks();
  // One Scrubber per disk on the disk pool (Run); Shutdown stops them before the pool joins.
  void StartScrubbers();
  void Shutdown();

  env::Env& env_;
  ServerOptions options_;
  asio::io_context io_;
  std::optional<asio::thread_pool> pool_;  // made by OpenDisks, sized for the disks
  std::unique_ptr<UringReader> uring_;     // device reads on io_'s thread (before the pool)
  asio::signal_set signals_{io_};
  std::vector<std::unique_ptr<ObjectStore>> stores_;
  std::unique_ptr<Recovery> recovery_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<net::RpcServer> rpc_;
  std::unique_ptr<Registrar> registrar_;
  std::vector<std::unique_ptr<Scrubber>> scrubbers_;
  bool shut_down_ = false;
};

}  // namespace spindle::server
