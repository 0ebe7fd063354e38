#include "server/recovery.h"

#include <algorithm>
#include <bit>
#include <functional>

#include "common/log.h"
#include "proto/wire.h"
#include "server/offload.h"

namespace spindle::server {
namespace {

bool Bit(const std::vector<uint8_t>& bitmap, size_t i) {
  return (bitmap[i / 8] >> (i % 8)) & 1;
}

// Waits on a timer that stands for "something finished" (cancel() is the wake-up).
asio::awaitable<void> WaitWake(asio::steady_timer& t) {
  asio::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

Recovery::Recovery(asio::io_context& io, ServerId self, std::vector<ObjectStore*> stores,
                   net::ApiEndpoint mgmt)
    : io_(io), self_(self), mgmt_(std::move(mgmt)) {
  for (ObjectStore* s : stores) stores_[s->disk()] = s;
  sync_done_ = std::make_unique<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  writers_done_ = std::make_unique<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  for (ObjectStore* s : stores) {
    const DiskId disk = s->disk();
    s->SetGapHandler(
        [this, disk](LayerId layer, ObjectIndex object,
                     uint64_t wanted) -> asio::awaitable<Status> {
          // A write waited kGapGrace (ObjectStore) for version `wanted`, which usually is only
          // late; still missing: this disk missed it, fetch it from a peer.
          ObjectStore* store = Store(disk);
          if (store->Head(layer, object).version >= wanted) co_return Status::Ok();
          auto got = co_await Sync(disk, layer, object, wanted);
          if (!got.ok()) co_return got.status();
          co_return Status::Ok();
        },
        kGapGrace);
  }
}

Recovery::~Recovery() {
  Stop();
  control_pool_.join();
}

void Recovery::Stop() {
  stopped_ = true;
  for (auto& [key, c] : conns_) c->Close();
  conns_.clear();
}

ObjectStore* Recovery::Store(DiskId disk) const {
  auto it = stores_.find(disk);
  return it == stores_.end() ? nullptr : it->second;
}

void Recovery::OnHeartbeat(const nlohmann::json& data) {
  if (!data.is_object()) return;
  std::lock_guard lock(mu_);
  if (auto w = data.find("writers"); w != data.end() && w->is_object()) {
    int64_t gen = data.value("generation", int64_t{0});
    if (gen >= writers_generation_) {
      writers_generation_ = gen;
      ParseWriters(*w);
    }
  }
  if (auto drop = data.find("dropLayers"); drop != data.end() && drop->is_object()) {
    for (const auto& [key, ids] : drop->items()) {
      DiskId disk(static_cast<uint32_t>(std::strtoul(key.c_str(), nullptr, 10)));
      if (!Store(disk) || !ids.is_array()) continue;
      for (const auto& id : ids) {
        if (!id.is_number_unsigned()) continue;
        const uint64_t layer = id.get<uint64_t>();
        if (!dropping_.insert({disk.value(), layer}).second) continue;
        asio::co_spawn(io_, DropLayer(disk, LayerId(layer)), asio::detached);
      }
    }
  }
  auto disks = data.find("disks");
  if (disks == data.end() || !disks->is_object()) return;
  for (const auto& [key, d] : disks->items()) {
    if (!d.is_object()) continue;
    uint32_t id = static_cast<uint32_t>(std::strtoul(key.c_str(), nullptr, 10));
    if (!Store(DiskId(id))) continue;
    const std::string state = d.value("state", "");
    if (state != "recovering") {
      progress_.erase(id);
      continue;
    }
    const int64_t since = d.value("since", int64_t{0});
    if (!d.value("recover", false)) continue;  // wait until every client writes to it
    DiskProgress& p = progress_[id];
    if (p.since == since && (p.running || p.done)) continue;
    p = DiskProgress{since, true, false, 0, 0, 0};
    asio::co_spawn(io_, RunPass(DiskId(id), since), asio::detached);
  }
}

nlohmann::json Recovery::HeartbeatReport() {
  std::lock_guard lock(mu_);
  nlohmann::json progress = nlohmann::json::object(), recovered = nlohmann::json::array();
  for (const auto& [disk, p] : progress_) {
    progress[std::to_string(disk)] = {{"allObjects", p.all},
                                      {"completedObjects", p.completed},
                                      {"dispatchedObjects", p.running ? p.all : p.completed},
                                      {"unresolvedObjects", 0},
                                      {"recoveredBytes", p.bytes}};
    if (p.done) recovered.push_back({{"disk", disk}, {"since", p.since}});
  }
  return {{"recovery", std::move(progress)}, {"recovered", std::move(recovered)}};
}

asio::awaitable<void> Recovery::RunPass(DiskId disk, int64_t since) {
  auto current = [&] {
    std::lock_guard lock(mu_);
    auto it = progress_.find(disk.value());
    return !stopped_ && it != progress_.end() && it->second.since == since;
  };
  SP_LOG_INFO("disk {}: recovery pass {} starts", disk.value(), since);
  asio::steady_timer retry(io_);
  while (current()) {
    Status s = co_await Pass(disk, since);
    if (s.ok()) break;
    SP_LOG_WARN("disk {}: recovery pass {} failed ({}); again in {} ms", disk.value(), since,
                s.ToString(), kRecoveryRetry.count());
    retry.expires_after(kRecoveryRetry);
    asio::error_code ec;
    co_await retry.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  std::lock_guard lock(mu_);
  auto it = progress_.find(disk.value());
  if (it != progress_.end() && it->second.since == since) {
    it->second.running = false;
    it->second.done = !stopped_;
    SP_LOG_INFO("disk {}: recovery pass {} done: {} objects, {} bytes pulled", disk.value(), since,
                it->second.completed, it->second.bytes);
  }
}

asio::awaitable<Status> Recovery::Pass(DiskId disk, int64_t since) {
  ObjectStore* store = Store(disk);
  if (!store) co_return Error(Code::kNotFound, "no disk {}", disk.value());
  auto layout = co_await FetchLayout(disk);
  if (!layout.ok()) co_return layout.status();
  cached_layout_ = *layout;
  cached_layout_disk_ = disk;
  // Every up peer that shares a disk set with this disk, and what it holds.
  std::set<uint32_t> peers;
  for (const LayerLayout& l : layout->layers) {
    for (const auto& set : l.sets) {
      if (std::find(set.begin(), set.end(), disk.value()) == set.end()) continue;
      for (uint32_t p : set) {
        auto it = layout->disks.find(p);
        if (p != disk.value() && it != layout->disks.end() && it->second.up) peers.insert(p);
      }
    }
  }
  std::map<uint32_t, std::map<std::pair<uint64_t, uint32_t>, uint64_t>> held;
  for (uint32_t p : peers) {
    auto list = co_await ListPeer(p, layout->disks.at(p));
    if (!list.ok()) co_return list.status();
    held[p] = std::move(list).value();
  }
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> mine;
  for (const jdisk::ObjectEntry& e : store->store().List()) {
    mine[{e.layer.value(), e.object.value()}] = e.info.version;
  }
  std::vector<PassItem> work;
  for (const LayerLayout& l : layout->layers) {
    if (l.sets.empty()) continue;
    for (uint64_t i = 0; i < l.objects; ++i) {
      const auto& set = l.sets[i % l.sets.size()];
      if (std::find(set.begin(), set.end(), disk.value()) == set.end()) continue;
      const std::pair<uint64_t, uint32_t> key{l.layer.value(), static_cast<uint32_t>(i)};
      uint64_t best = 0;
      for (uint32_t p : set) {
        auto h = held.find(p);
        if (h == held.end()) continue;
        auto v = h->second.find(key);
        if (v != h->second.end()) best = std::max(best, v->second);
      }
      auto m = mine.find(key);
      const uint64_t have = m == mine.end() ? 0 : m->second;
      if (best > have) work.push_back({l.layer, ObjectIndex(key.second), best});
    }
  }
  {
    std::lock_guard lock(mu_);
    auto it = progress_.find(disk.value());
    if (it == progress_.end() || it->second.since != since) co_return Status::Ok();
    it->second.all = work.size();
    it->second.completed = 0;
  }
  SP_LOG_INFO("disk {}: {} objects behind their peers", disk.value(), work.size());
  // kRecoveryParallelism workers take items in turn.
  auto st = std::make_shared<PassState>();
  st->layout = std::move(layout).value();
  st->disk = disk;
  st->since = since;
  st->work = std::move(work);
  st->running = kRecoveryParallelism;
  st->all_done = std::make_unique<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  for (size_t i = 0; i < kRecoveryParallelism; ++i) {
    asio::co_spawn(io_, PassWorker(st), [st](std::exception_ptr) {
      if (--st->running == 0) st->all_done->cancel();
    });
  }
  while (st->running > 0) co_await WaitWake(*st->all_done);
  co_return st->first;
}

asio::awaitable<void> Recovery::PassWorker(std::shared_ptr<PassState> st) {
  ObjectStore* store = Store(st->disk);
  while (st->next < st->work.size() && st->first.ok() && !stopped_) {
    const PassItem item = st->work[st->next++];
    const uint64_t before = store->Head(item.layer, item.object).version;
    auto got = co_await SyncFrom(st->layout, st->disk, item.layer, item.object, item.version);
    if (!got.ok()) {
      if (st->first.ok()) st->first = got.status();
      co_return;
    }
    const uint64_t bytes =
        *got > before ? uint64_t{store->Info(item.layer, item.object).blocks_present} * kBlockSize
                      : 0;
    std::lock_guard lock(mu_);
    auto it = progress_.find(st->disk.value());
    if (it != progress_.end() && it->second.since == st->since) {
      ++it->second.completed;
      it->second.bytes += bytes;
    }
  }
}

asio::awaitable<Result<Recovery::Layout>> Recovery::FetchLayout(DiskId disk) {
  const std::string path = "/spindle/1/DiskLayout/" + std::to_string(disk.value());
  net::ApiEndpoint ep = mgmt_;
  ep.timeout = std::chrono::milliseconds(10000);
  // GCC 12: a lambda temporary inside a co_await expression is destroyed twice; name it.
  std::function<Result<nlohmann::json>()> fetch = [ep, path]() -> Result<nlohmann::json> {
    net::ApiClient api(ep);
    auto rep = api.Get(path);
    if (!rep.ok()) return rep.status();
    return rep.reply().data;
  };
  auto r = co_await Offload(control_pool_, std::move(fetch));
  if (!r.ok()) co_return r.status();
  const nlohmann::json& d = *r;
  Layout out;
  try {
    for (const auto& [key, jd] : d.at("disks").items()) {
      Peer p;
      p.addr = jd.at("addr").get<std::string>();
      p.port = jd.at("port").get<uint16_t>();
      p.up = jd.at("up").get<bool>();
      out.disks[static_cast<uint32_t>(std::stoul(key))] = p;
    }
    for (const auto& jl : d.at("layers")) {
      LayerLayout l;
      l.layer = LayerId(jl.at("layer").get<uint64_t>());
      l.objects = jl.at("objects").get<uint64_t>();
      l.sets = jl.at("sets").get<std::vector<std::vector<uint32_t>>>();
      out.layers.push_back(std::move(l));
    }
  } catch (const nlohmann::json::exception& e) {
    co_return Error(Code::kInvalidArgument, "mgmt sent a bad disk layout: {}", e.what());
  } catch (const std::exception& e) {
    co_return Error(Code::kInvalidArgument, "mgmt sent a bad disk layout: {}", e.what());
  }
  co_return out;
}

asio::awaitable<Result<std::map<std::pair<uint64_t, uint32_t>, uint64_t>>> Recovery::ListPeer(
    uint32_t peer, const Peer& where) {
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> out;
  proto::ObjectListRequest req{DiskId(peer), proto::kMaxListEntries, LayerId(0), ObjectIndex(0)};
  // Bounded: every page moves the cursor forward; a disk holds at most its chunk count.
  for (int page = 0; page < 1 << 20; ++page) {
    std::vector<uint8_t> payload;
    proto::EncodePayload(req, payload);
    auto reply = co_await CallPeer(where, proto::MsgType::kObjectList, std::move(payload));
    if (!reply.ok()) co_return reply.status();
    auto list = proto::DecodeObjectListResponse(reply->payload);
    if (!list.ok()) co_return list.status();
    for (const auto& e : list->entries) out[{e.layer.value(), e.object.value()}] = e.version;
    if (!list->more || list->entries.empty()) co_return out;
    req.after_layer = list->entries.back().layer;
    req.after_object = list->entries.back().object;
  }
  co_return Error(Code::kInternal, "object list of disk {} does not end", peer);
}

std::vector<uint32_t> Recovery::PeersOf(const Layout& layout, DiskId disk, LayerId layer,
                                        ObjectIndex object) {
  for (const LayerLayout& l : layout.layers) {
    if (l.layer != layer || l.sets.empty()) continue;
    const auto& set = l.sets[object.value() % l.sets.size()];
    if (std::find(set.begin(), set.end(), disk.value()) == set.end()) return {};
    std::vector<uint32_t> out;
    for (uint32_t p : set) {
      if (p != disk.value()) out.push_back(p);
    }
    return out;
  }
  return {};
}

asio::awaitable<Result<uint64_t>> Recovery::Sync(DiskId disk, LayerId layer, ObjectIndex object,
                                                 uint64_t version) {
  if (!Store(disk)) co_return Error(Code::kNotFound, "no disk {}", disk.value());
  bool known = cached_layout_ && cached_layout_disk_ == disk;
  if (known) {
    known = std::any_of(cached_layout_->layers.begin(), cached_layout_->layers.end(),
                        [&](const LayerLayout& l) { return l.layer == layer; });
  }
  if (!known) {
    auto layout = co_await FetchLayout(disk);
    if (!layout.ok()) co_return layout.status();
    cached_layout_ = std::move(layout).value();
    cached_layout_disk_ = disk;
  }
  const Layout layout = *cached_layout_;  // a copy: the cache may be replaced meanwhile
  co_return co_await SyncFrom(layout, disk, layer, object, version);
}

asio::awaitable<Result<uint64_t>> Recovery::SyncFrom(const Layout& layout, DiskId disk,
                                                     LayerId layer, ObjectIndex object,
                                                     uint64_t version, bool repair) {
  ObjectStore* store = Store(disk);
  const ObjKey key{disk.value(), layer.value(), object.value()};
  while (syncing_.count(key)) co_await WaitWake(*sync_done_);
  syncing_.insert(key);
  struct Done {
    Recovery* r;
    ObjKey key;
    ~Done() {
      r->syncing_.erase(key);
      r->sync_done_->cancel();
    }
  } done{this, key};

  const uint64_t have = store->Head(layer, object).version;
  if (have >= version && !repair) co_return have;
  // The newest copy among the peers that answer.
  uint64_t best = 0;
  uint32_t best_disk = 0;
  for (uint32_t p : PeersOf(layout, disk, layer, object)) {
    auto it = layout.disks.find(p);
    if (it == layout.disks.end() || !it->second.up) continue;
    std::vector<uint8_t> payload;
    proto::EncodePayload(proto::ObjectInfoRequest{DiskId(p), layer, object}, payload);
    auto reply = co_await CallPeer(it->second, proto::MsgType::kObjectInfo, std::move(payload));
    if (!reply.ok()) continue;
    auto info = proto::DecodeObjectInfoResponse(reply->payload);
    if (!info.ok() || info->version <= best) continue;
    best = info->version;
    best_disk = p;
  }
  if (best < have || best == 0 || (best == have && !repair)) co_return have;
  // Writes keep applying while the peers answered: skip a pull that is already obsolete.
  if (const uint64_t cur = store->Head(layer, object).version; cur > have && cur >= best) {
    co_return cur;
  }
  std::vector<uint8_t> payload;
  proto::EncodePayload(proto::ObjectPullRequest{DiskId(best_disk), object, layer}, payload);
  auto reply = co_await CallPeer(layout.disks.at(best_disk), proto::MsgType::kObjectPull,
                                 std::move(payload));
  if (!reply.ok()) co_return reply.status();
  auto image = proto::DecodeObjectPullResponse(reply->payload);
  if (!image.ok()) co_return image.status();
  Status crc = proto::VerifyChunkCrcs(image->data, image->crcs);
  if (!crc.ok()) co_return crc;
  if (image->version < have || (image->version == have && !repair)) co_return have;
  jdisk::ObjectImage img;
  img.version = image->version;
  img.present.resize(kBlocksPerObject);
  img.zeroed.resize(kBlocksPerObject);
  for (size_t i = 0; i < kBlocksPerObject; ++i) {
    img.present[i] = Bit(image->present, i);
    img.zeroed[i] = Bit(image->zeroed, i);
  }
  img.data.assign(image->data.begin(), image->data.end());
  const uint64_t pulled = img.version;
  // Writes may have moved the object past the image meanwhile: Install then keeps them (it
  // checks in the object's turn) and the version is what the object has now.
  Status s = co_await store->Install(layer, object, std::move(img));
  if (!s.ok()) co_return s;
  const uint64_t now = store->Head(layer, object).version;
  SP_LOG_INFO("disk {}: layer {} object {} pulled from disk {} at version {} (had {}, has {})",
              disk.value(), layer.value(), object.value(), best_disk, pulled, have, now);
  co_return now;
}

asio::awaitable<void> Recovery::DropLayer(DiskId disk, LayerId layer) {
  ObjectStore* store = Store(disk);
  std::function<Status()> drop = [store, layer] {
    return store->mutable_store().DeleteLayer(layer);
  };
  Status s = co_await Offload(control_pool_, std::move(drop));
  if (s.ok()) {
    SP_LOG_INFO("disk {}: layer {} deleted in mgmt: freed", disk.value(), layer.value());
  } else {
    SP_LOG_WARN("disk {}: freeing deleted layer {} failed: {}", disk.value(), layer.value(),
                s.ToString());
  }
  std::lock_guard lock(mu_);
  dropping_.erase({disk.value(), layer.value()});
}

void Recovery::Repair(DiskId disk, LayerId layer, ObjectIndex object) {
  asio::post(io_, [this, disk, layer, object] {
    const ObjKey key{disk.value(), layer.value(), object.value()};
    if (stopped_ || !repairing_.insert(key).second) return;
    asio::co_spawn(io_, RepairNow(disk, layer, object), asio::detached);
  });
}

asio::awaitable<void> Recovery::RepairNow(DiskId disk, LayerId layer, ObjectIndex object) {
  SP_LOG_WARN("disk {}: layer {} object {} has a bad block: repairing from a peer", disk.value(),
              layer.value(), object.value());
  Result<uint64_t> got = Error(Code::kUnavailable, "no layout");
  auto layout = co_await FetchLayout(disk);
  if (layout.ok()) {
    got = co_await SyncFrom(*layout, disk, layer, object, Store(disk)->Head(layer, object).version,
                            /*repair=*/true);
  } else {
    got = layout.status();
  }
  if (got.ok()) {
    SP_LOG_INFO("disk {}: layer {} object {} repaired (version {})", disk.value(), layer.value(),
                object.value(), *got);
  } else {
    SP_LOG_ERROR("disk {}: repair of layer {} object {} failed: {}", disk.value(), layer.value(),
                 object.value(), got.status().ToString());
  }
  repairing_.erase({disk.value(), layer.value(), object.value()});
}

asio::awaitable<Result<net::Frame>> Recovery::CallPeer(const Peer& where, proto::MsgType type,
                                                       std::vector<uint8_t> payload) {
  if (stopped_) co_return Error(Code::kUnavailable, "stopping");
  const std::string key = where.addr + ":" + std::to_string(where.port);
  std::shared_ptr<net::RpcClient> c;
  if (auto it = conns_.find(key); it != conns_.end() && it->second->is_open()) c = it->second;
  if (!c) {
    auto conn = co_await net::RpcClient::Connect(io_.get_executor(), where.addr, where.port,
                                                 kPeerConnectTimeout);
    if (!conn.ok()) co_return conn.status();
    std::vector<uint8_t> hello;
    proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kServer, self_.value()}, hello);
    auto h = co_await (*conn)->Call(proto::MsgType::kHello, std::move(hello), kPeerConnectTimeout);
    if (!h.ok()) {
      (*conn)->Close();
      co_return h.status();
    }
    // While this one connected, Stop() may have run, or another caller may have connected to
    // the same peer: a connection left out of conns_ is never closed, and its reader keeps the
    // io_context (and so the server's shutdown) running until the peer hangs up.
    if (stopped_) {
      (*conn)->Close();
      co_return Error(Code::kUnavailable, "stopping");
    }
    if (auto it = conns_.find(key); it != conns_.end() && it->second->is_open()) {
      (*conn)->Close();
      c = it->second;
    } else {
      c = *conn;
      conns_[key] = c;
    }
  }
  auto reply = co_await c->Call(type, std::move(payload), kPeerCallTimeout);
  if (!reply.ok() && !c->is_open()) conns_.erase(key);
  co_return reply;
}

void Recovery::ParseWriters(const nlohmann::json& writers) {
  std::map<uint64_t, std::set<uint32_t>> out;
  for (const auto& [layer, clients] : writers.items()) {
    if (!clients.is_array()) continue;
    auto& s = out[std::strtoull(layer.c_str(), nullptr, 10)];
    for (const auto& c : clients) {
      if (c.is_number_unsigned()) s.insert(c.get<uint32_t>());
    }
  }
  writers_ = std::move(out);
}

asio::awaitable<void> Recovery::RefreshWriters() {
  if (refreshing_writers_) {
    co_await WaitWake(*writers_done_);
    co_return;
  }
  refreshing_writers_ = true;
  const auto started = std::chrono::steady_clock::now();
  net::ApiEndpoint ep = mgmt_;
  ep.timeout = std::chrono::milliseconds(3000);
  std::function<Result<std::pair<int64_t, nlohmann::json>>()> fetch =
      [ep]() -> Result<std::pair<int64_t, nlohmann::json>> {
    net::ApiClient api(ep);
    auto rep = api.Get("/spindle/1/Writers");
    if (!rep.ok()) return rep.status();
    return std::pair{rep.reply().generation, rep.reply().data};
  };
  auto r = co_await Offload(control_pool_, std::move(fetch));
  if (r.ok()) {
    std::lock_guard lock(mu_);
    if (r->first >= writers_generation_ && r->second.is_object() && r->second.contains("writers")) {
      writers_generation_ = r->first;
      ParseWriters(r->second["writers"]);
    }
  } else {
    SP_LOG_WARN("fetching the writers map from mgmt failed: {}", r.status().ToString());
  }
  writers_fetch_started_ = started;
  refreshing_writers_ = false;
  writers_done_->cancel();
}

asio::awaitable<bool> Recovery::MayWrite(uint32_t client, LayerId layer) {
  if (client == 0) co_return true;
  const auto arrived = std::chrono::steady_clock::now();
  auto allowed = [&] {
    std::lock_guard lock(mu_);
    if (!writers_) return true;
    auto it = writers_->find(layer.value());
    return it != writers_->end() && it->second.count(client) > 0;
  };
  // At most two refreshes: one that may have started before this write, one after.
  for (int i = 0; i < 3; ++i) {
    if (allowed()) co_return true;
    if (writers_fetch_started_ >= arrived) co_return false;
    co_await RefreshWriters();
  }
  co_return allowed();
}

}  // namespace spindle::server
