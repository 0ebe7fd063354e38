// Recovery: keeps this server's replicas equal to their peers' (DESIGN.md §5 "Recovery") and
// decides which clients may write (§5 "Fencing").
//
// - A disk that mgmt reports "recovering" (it was down and came back) runs one pass once mgmt
//   allows it (every client then sends it writes): it fetches the disk's layout from mgmt
//   (GET /spindle/1/DiskLayout/<disk>), lists the objects of every peer disk (OBJECT_LIST),
//   and pulls each object whose newest peer copy is ahead of its own (OBJECT_PULL, installed
//   crash-safely by ObjectStore::Install). The finished pass is reported with the next
//   heartbeat ("recovered"), and mgmt lets the disk serve reads again.
// - Sync(): brings one object up to a version on demand — for OBJECT_SYNC (a client found
//   replicas that differ) and when a write arrives with a gap in versions (ObjectStore's gap
//   handler).
// - Fencing: mgmt's heartbeat answer names the clients attached read-write to each layer; a
//   WRITE or TRIM from any other client is refused. Before refusing, the map is fetched again
//   (GET /spindle/1/Writers) so a just-attached client is not refused by a stale map.
//
// - Deleted layers: mgmt's heartbeat answer names layers a disk stores that no volume or
//   snapshot owns any more ("dropLayers"); they are freed (JStore::DeleteLayer).
//
// Threads: everything runs on the io_context thread except OnHeartbeat/HeartbeatReport (the
// registrar's thread; they lock mu_) and the blocking HTTP calls (on control_pool_).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/status.h"
#include "net/api_client.h"
#include "net/rpc.h"
#include "server/object_store.h"

namespace spindle::server {

inline constexpr std::chrono::milliseconds kPeerCallTimeout{20000};
inline constexpr std::chrono::milliseconds kPeerConnectTimeout{3000};
// Objects pulled at once by one recovery pass.
inline constexpr size_t kRecoveryParallelism = 2;
// A write that finds a gap in versions waits this long for the missing one before the object
// is pulled from a peer.
inline constexpr std::chrono::milliseconds kGapGrace{300};
// A failed pass is tried again after this.
inline constexpr std::chrono::milliseconds kRecoveryRetry{1000};

class Recovery {
 public:
  // stores: not owned, must outlive this. mgmt: where to fetch layouts and writers.
  Recovery(asio::io_context& io, ServerId self, std::vector<ObjectStore*> stores,
           net::ApiEndpoint mgmt);
  ~Recovery();

  // Registrar thread: mgmt's heartbeat answer / what to add to the next heartbeat.
  void OnHeartbeat(const nlohmann::json& data);
  nlohmann::json HeartbeatReport();

  // Whether `client` may write `layer` now (refreshing the writers map once when it says no).
  // client 0 (tools, servers) is not fenced; nor is anyone before mgmt sent a first map.
  asio::awaitable<bool> MayWrite(uint32_t client, LayerId layer);
  // Brings (layer, object) on `disk` to at least `version` from the peers that hold it;
  // returns the version it has then (may be lower when no peer has more).
  asio::awaitable<Result<uint64_t>> Sync(DiskId disk, LayerId layer, ObjectIndex object,
                                         uint64_t version);
  // Replaces this disk's copy of (layer, object) by a peer's copy at the same or a newer
  // version (a checksum failed here: DESIGN.md §5 "Corruption"). Runs in the background; at most
  // one repair per object at a time. Any thread.
  void Repair(DiskId disk, LayerId layer, ObjectIndex object);
  void Stop();

 private:
  asio::awaitable<void> RepairNow(DiskId disk, LayerId layer, ObjectIndex object);
  // Frees a layer mgmt no longer has (a deleted volume or snapshot).
  asio::awaitable<void> DropLayer(DiskId disk, LayerId layer);
  struct Peer {
    std::string addr;
    uint16_t port = 0;
    bool up = false;
  };
  struct LayerLayout {
    LayerId layer;
    uint64_t objects = 0;
    std::vector<std::vector<uint32_t>> sets;
  };
  struct Layout {
    std::vector<LayerLayout> layers;
    std::map<uint32_t, Peer> disks;
  };
  struct DiskProgress {
    int64_t since = 0;
    bool running = false;
    bool done = false;  // the pass for `since` finished: report it
    uint64_t all = 0, completed = 0, bytes = 0;
  };
  using ObjKey = std::tuple<uint32_t, uint64_t, uint32_t>;  // disk, layer, object
  struct PassItem {
    LayerId layer;
    ObjectIndex object;
    uint64_t version;  // the newest peer copy's
  };
  // One pass's shared work list, taken in turn by kRecoveryParallelism workers.
  struct PassState {
    Layout layout;
    DiskId disk;
    int64_t since = 0;
    std::vector<PassItem> work;
    size_t next = 0;
    Status first = Status::Ok();
    size_t running = 0;
    std::unique_ptr<asio::steady_timer> all_done;
  };
  asio::awaitable<void> PassWorker(std::shared_ptr<PassState> st);

  asio::awaitable<void> RunPass(DiskId disk, int64_t since);
  asio::awaitable<Status> Pass(DiskId disk, int64_t since);
  asio::awaitable<Result<Layout>> FetchLayout(DiskId disk);
  asio::awaitable<Result<std::map<std::pair<uint64_t, uint32_t>, uint64_t>>> ListPeer(
      uint32_t peer, const Peer& where);
  // The peers of (layer, object) for `disk` in `layout` (empty when it holds none).
  static std::vector<uint32_t> PeersOf(const Layout& layout, DiskId disk, LayerId layer,
                                       ObjectIndex object);
  // repair: take a peer copy at the same version too (ours is damaged).
  asio::awaitable<Result<uint64_t>> SyncFrom(const Layout& layout, DiskId disk, LayerId layer,
                                             ObjectIndex object, uint64_t version,
                                             bool repair = false);
  asio::awaitable<Result<net::Frame>> CallPeer(const Peer& where, proto::MsgType type,
                                               std::vector<uint8_t> payload);
  asio::awaitable<void> RefreshWriters();
  void ParseWriters(const nlohmann::json& writers);
  ObjectStore* Store(DiskId disk) const;

  asio::io_context& io_;
  const ServerId self_;
  std::map<DiskId, ObjectStore*> stores_;
  net::ApiEndpoint mgmt_;
  asio::thread_pool control_pool_{1};  // blocking HTTP calls to mgmt

  std::mutex mu_;  // progress_, writers_ and the fields below when touched off the io thread
  std::map<uint32_t, DiskProgress> progress_;
  std::set<std::pair<uint32_t, uint64_t>> dropping_;               // (disk, layer) being freed
  std::optional<std::map<uint64_t, std::set<uint32_t>>> writers_;  // layer → rw clients
  int64_t writers_generation_ = 0;

  // io thread only.
  std::map<std::string, std::shared_ptr<net::RpcClient>> conns_;  // "addr:port" → connection
  std::set<ObjKey> syncing_;
  std::set<ObjKey> repairing_;
  std::unique_ptr<asio::steady_timer> sync_done_;  // cancelled when a Sync finishes
  std::optional<Layout> cached_layout_;            // for on-demand Sync
  DiskId cached_layout_disk_;
  bool refreshing_writers_ = false;
  std::chrono::steady_clock::time_point writers_fetch_started_{};
  std::unique_ptr<asio::steady_timer> writers_done_;
  bool stopped_ = false;
};

}  // namespace spindle::server
