#include "server/server.h"

#include <algorithm>
#include <csignal>
#include <set>
#include <sstream>

#include "common/log.h"

namespace spindle::server {
namespace {

constexpr int64_t kMaxScrubBandwidthMb = 1 << 20;  // 1 TiB/s: no device is that fast

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

}  // namespace

Result<ServerOptions> ServerOptions::FromConfig(const Config& config) {
  ServerOptions o;
  SP_ASSIGN_OR_RETURN(int64_t ourid, config.GetInt("SP_OURID", 0));
  if (ourid < 1 || ourid > kMaxNodeId) {
    return Error(Code::kInvalidArgument, "SP_OURID must be 1..{}, got {}", kMaxNodeId, ourid);
  }
  o.id = ServerId(static_cast<uint32_t>(ourid));
  o.node = NodeId(static_cast<uint32_t>(ourid));
  o.disk_paths = SplitList(config.GetOr("SP_SERVER_DISKS", ""));
  if (o.disk_paths.empty() || o.disk_paths.size() > proto::kMaxDisksPerServer) {
    return Error(Code::kInvalidArgument, "SP_SERVER_DISKS must list 1..{} disk files, got {}",
                 proto::kMaxDisksPerServer, o.disk_paths.size());
  }
  o.host = config.GetOr("SP_SERVER_HOST", o.host);
  SP_ASSIGN_OR_RETURN(int64_t port, config.GetInt("SP_SERVER_PORT", kBasePort + ourid));
  if (port < 1 || port > 65535) {
    return Error(Code::kInvalidArgument, "SP_SERVER_PORT {} out of range", port);
  }
  o.port = static_cast<uint16_t>(port);
  o.cluster_id = config.GetOr("SP_CLUSTER_ID", "");
  if (o.cluster_id.empty()) return Error(Code::kInvalidArgument, "SP_CLUSTER_ID is not set");
  SP_ASSIGN_OR_RETURN(o.api, net::ApiEndpoint::FromConfig(config));
  SP_ASSIGN_OR_RETURN(
      int64_t scrub_mb,
      config.GetInt("SP_SCRUB_BANDWIDTH_MB", static_cast<int64_t>(o.scrub_bandwidth_bytes / kMiB)));
  if (scrub_mb < 0 || scrub_mb > kMaxScrubBandwidthMb) {
    return Error(Code::kInvalidArgument, "SP_SCRUB_BANDWIDTH_MB must be 0..{}, got {}",
                 kMaxScrubBandwidthMb, scrub_mb);
  }
  o.scrub_bandwidth_bytes = static_cast<uint64_t>(scrub_mb) * kMiB;
  SP_ASSIGN_OR_RETURN(o.poll_window,
                      net::PollWindowFromConfig(config, "SP_SERVER_POLL_US", o.poll_window));
  SP_ASSIGN_OR_RETURN(int64_t threads, config.GetInt("SP_SERVER_DISK_THREADS",
                                                     static_cast<int64_t>(o.disk_threads)));
  if (threads < 0 || threads > kMaxDiskThreads) {
    return Error(Code::kInvalidArgument, "SP_SERVER_DISK_THREADS must be 0..{}, got {}",
                 kMaxDiskThreads, threads);
  }
  o.disk_threads = static_cast<size_t>(threads);
  SP_ASSIGN_OR_RETURN(int64_t local, config.GetInt("SP_SERVER_LOCAL_SOCKET", 1));
  if (local != 0 && local != 1) {
    return Error(Code::kInvalidArgument, "SP_SERVER_LOCAL_SOCKET must be 0 or 1, got {}", local);
  }
  o.local_socket = local == 1;
  SP_ASSIGN_OR_RETURN(int64_t cache_mb, config.GetInt("SP_CACHE_SIZE", kDefaultCacheMb));
  if (cache_mb < 0 || cache_mb > kMaxCacheMb) {
    return Error(Code::kInvalidArgument, "SP_CACHE_SIZE must be 0..{} (MiB), got {}", kMaxCacheMb,
                 cache_mb);
  }
  o.cache_bytes = static_cast<uint64_t>(cache_mb) * kMiB;
  return o;
}

Server::Server(env::Env& env, ServerOptions options) : env_(env), options_(std::move(options)) {}

Server::~Server() {
  Shutdown();
  if (pool_) pool_->join();
}

Result<std::unique_ptr<Server>> Server::Create(env::Env& env, ServerOptions options) {
  std::unique_ptr<Server> s(new Server(env, std::move(options)));
  SP_RETURN_IF_ERROR(s->OpenDisks());
  s->uring_ = std::make_unique<UringReader>(s->io_);
  if (s->uring_->ok()) {
    for (auto& st : s->stores_) st->set_uring(s->uring_.get());
  }
  std::vector<ObjectStore*> stores;
  std::vector<const jdisk::JStore*> disks;
  for (auto& st : s->stores_) {
    stores.push_back(st.get());
    disks.push_back(&st->store());
  }
  s->service_ = std::make_unique<Service>(s->options_.id, stores);
  if (s->options_.register_with_mgmt) {
    s->recovery_ = std::make_unique<Recovery>(s->io_, s->options_.id, stores, s->options_.api);
    s->service_->set_recovery(s->recovery_.get());
  }
  s->rpc_ = std::make_unique<net::RpcServer>(s->io_, s->service_->Handler());
  SP_RETURN_IF_ERROR(s->rpc_->Listen(s->options_.host, s->options_.port));
  if (s->options_.local_socket) {
    // Without it clients of this host still reach the server over TCP.
    if (Status ls = s->rpc_->ListenLocal(); !ls.ok()) SP_LOG_WARN("{}", ls.ToString());
  }
  RegistrationInfo info{s->options_.id, s->options_.node, s->options_.host, s->rpc_->port(),
                        env.clock().UnixSeconds()};
  s->registrar_ = std::make_unique<Registrar>(s->options_.api, info, std::move(disks));
  if (s->recovery_) {
    Recovery* r = s->recovery_.get();
    s->registrar_->set_hooks([r] { return r->HeartbeatReport(); },
                             [r](const nlohmann::json& data) { r->OnHeartbeat(data); });
  }
  return s;
}

Status Server::OpenDisks() {
  std::set<DiskId> seen;
  std::vector<std::unique_ptr<jdisk::JStore>> opened;
  jdisk::StoreOptions store_options;
  if (!options_.disk_paths.empty()) {
    store_options.cache_bytes = options_.cache_bytes / options_.disk_paths.size();
  }
  for (const std::string& path : options_.disk_paths) {
    SP_ASSIGN_OR_RETURN(auto store,
                        jdisk::JStore::Open(env_, path, options_.cluster_id, store_options));
    DiskId id = store->superblock().disk;
    if (!seen.insert(id).second) {
      return Error(Code::kFailedPrecondition, "{} is disk {}, which another path already is", path,
                   id.value());
    }
    jdisk::StoreStats st = store->Stats();
    SP_LOG_INFO("disk {} at {}: {} objects, {} bytes stored, {} of {} bytes allocated", id.value(),
                path, st.objects, st.bytes_stored, st.on_disk_bytes, st.data_bytes);
    opened.push_back(std::move(store));
  }
  size_t threads = options_.disk_threads;
  if (threads == 0) {
    const bool memory =
        std::all_of(opened.begin(), opened.end(), [](const auto& st) { return st->in_memory(); });
    threads = memory ? kDiskThreads : kDeviceDiskThreads;
  }
  pool_.emplace(threads);
  SP_LOG_INFO("disk pool: {} threads", threads);
  for (auto& store : opened) {
    stores_.push_back(std::make_unique<ObjectStore>(io_, *pool_, std::move(store)));
  }
  return Status::Ok();
}

Status Server::Run() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec) return;
    SP_LOG_INFO("signal {}: stopping", signo);
    Shutdown();
  });
  if (options_.register_with_mgmt) registrar_->Start();
  StartScrubbers();
  SP_LOG_INFO("server {} serving {} disks on {}:{}", options_.id.value(), stores_.size(),
              options_.host, rpc_->port());
  net::RunPolling(io_, options_.poll_window);  // returns when the listener, connections and
                                               // in-flight requests are all done
  registrar_->Stop();
  pool_->join();
  SP_LOG_INFO("server {} stopped", options_.id.value());
  return Status::Ok();
}

void Server::StartScrubbers() {
  for (auto& st : stores_) {
    ScrubOptions o;
    o.bandwidth_bytes_per_s = options_.scrub_bandwidth_bytes;
    auto scrubber = std::make_unique<Scrubber>(env_, *pool_, st->mutable_store(), o);
    if (recovery_) {  // a bad block is replaced by a peer's copy (same or newer version)
      Recovery* r = recovery_.get();
      scrubber->set_on_bad([r](DiskId d, LayerId l, ObjectIndex i) { r->Repair(d, l, i); });
    }
    scrubber->Start();
    scrubbers_.push_back(std::move(scrubber));
  }
}

void Server::Stop() {
  asio::post(io_, [this] { Shutdown(); });
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (rpc_) rpc_->Stop();
  for (auto& s : scrubbers_) s->Stop();  // a step in progress ends; the pool can then join
  if (recovery_) recovery_->Stop();
  if (uring_) uring_->Stop();  // its loop ends once the reads in flight are done
  signals_.cancel();
}

}  // namespace spindle::server
