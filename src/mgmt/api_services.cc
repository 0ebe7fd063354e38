// ServicesList, ServersList, ClientsConfigDump, TasksList and the internal service endpoints
// (ServiceRegister, ClientState, ClientReport; docs/formats/internal-api.md).
#include <algorithm>
#include <set>

#include "common/log.h"
#include "common/units.h"
#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr uint32_t kMgmtId = 1;  // MgmtId 1..4095; one mgmt instance in embedded mode
constexpr int64_t kHeartbeatIntervalMs = 1000;
constexpr int64_t kDefaultPollMs = 10000;
constexpr int64_t kMaxPollMs = 30000;
constexpr size_t kMaxDisksPerServer = 256;

Json ClusterStatusJson(const Cluster& cluster, const State& s, bool with_clients) {
  Json servers = Json::object(), clients = Json::object();
  size_t up = 0;
  std::map<uint32_t, std::vector<uint32_t>> missing;  // server → down disks it waits for
  for (const auto& [id, d] : s.disks) {
    if (!DiskIsUp(d) && !d.ignored) missing[d.serverId].push_back(id);
  }
  for (const auto& [id, sv] : s.servers) {
    up += sv.up;
    servers[std::to_string(id)] = {
        {"id", id},
        {"nodeId", sv.nodeId},
        {"version", sv.version},
        {"startTime", sv.startTime},
        {"status", sv.up ? "running" : "down"},
        {"missingDisks", missing.count(id) ? Json(missing[id]) : Json::array()},
        {"pendingDisks", Json::array()}};
  }
  if (with_clients) {
    for (const auto& [id, c] : s.clients) {
      clients[std::to_string(id)] = {{"id", id},
                                     {"nodeId", c.nodeId},
                                     {"version", c.version},
                                     {"startTime", c.startTime},
                                     {"status", c.up ? "running" : "down"}};
    }
  }
  // Running with a majority of the known servers, waiting below it, down with none up.
  const char* status = up == 0 ? "down" : (2 * up > s.servers.size() ? "running" : "waiting");
  Json mgmt = {{"id", kMgmtId},
               {"nodeId", cluster.options().node_id},
               {"version", SPINDLE_VERSION},
               {"startTime", nullptr},
               {"status", "running"},
               {"prio", 0},
               {"active", true}};
  return {{"clusterStatus", status},   {"mgmt", {{std::to_string(kMgmtId), mgmt}}},
          {"clients", clients},        {"servers", servers},
          {"bridges", Json::object()}, {"iscsiTargets", Json::object()}};
}

Result<Json> ServicesList(Cluster& c, const ApiRequest&) {
  return c.Read([&](const State& s, const Runtime&) { return ClusterStatusJson(c, s, true); });
}
Result<Json> ServersList(Cluster& c, const ApiRequest&) {
  return c.Read([&](const State& s, const Runtime&) { return ClusterStatusJson(c, s, false); });
}
// The same listing as ServersList; Spindle answers it whether or not the cluster is running.
Result<Json> ServersListBlocked(Cluster& c, const ApiRequest&) {
  return c.Read([&](const State& s, const Runtime&) { return ClusterStatusJson(c, s, false); });
}
// Recovery passes the servers report: one task per recovering disk.
Result<Json> TasksList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime& rt) {
    Json tasks = Json::array();
    for (const auto& [disk, p] : rt.recovery) {
      auto it = s.disks.find(disk);
      if (it == s.disks.end() || !it->second.recovering) continue;
      Json t = {{"diskId", disk},
                {"transactionId", it->second.recoveringSince},
                {"allObjects", p.value("allObjects", 0)},
                {"completedObjects", p.value("completedObjects", 0)},
                {"dispatchedObjects", p.value("dispatchedObjects", 0)},
                {"unresolvedObjects", p.value("unresolvedObjects", 0)},
                {"recoveredBytes", p.value("recoveredBytes", 0)}};
      tasks.push_back(std::move(t));
    }
    return tasks;
  });
}

int64_t Applied(const Runtime& rt, uint32_t client) {
  auto it = rt.clientApplied.find(client);
  return it == rt.clientApplied.end() ? 0 : it->second;
}

Json ConfigStatusJson(const State& s, const Runtime& rt, const ClientRecord& cl, int64_t delay) {
  int64_t applied = Applied(rt, cl.id);
  const char* st = !cl.up ? "down" : (applied >= s.generation ? "ok" : "updating");
  return {{"id", cl.id},
          {"generation", s.generation},
          {"clientGeneration", applied},
          {"configStatus", st},
          {"delay", delay}};
}

Result<Json> ClientsConfigDump(Cluster& c, const ApiRequest&) {
  return c.Read([&](const State& s, const Runtime& rt) {
    Json out = Json::array();
    for (const auto& [id, cl] : s.clients) out.push_back(ConfigStatusJson(s, rt, cl, 0));
    return out;
  });
}

// Blocks (at most kMaxConfigWaitMs) until the client has applied the generation current when
// the request arrived, or is down; delay = how long that took, in milliseconds.
constexpr int64_t kMaxConfigWaitMs = 60000;

Result<Json> ClientConfigWait(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id64, IntArg(req.args[0], "client id", 1, 4095));
  auto id = static_cast<uint32_t>(id64);
  int64_t target = c.generation();
  bool known = c.Read([&](const State& s, const Runtime&) { return s.clients.count(id) > 0; });
  if (!known) return Error(Code::kNotFound, "client {} is not known", id);
  auto t0 = std::chrono::steady_clock::now();
  c.WaitUntil(
      [&](const State& s, const Runtime& rt) {
        auto it = s.clients.find(id);
        return it == s.clients.end() || !it->second.up || Applied(rt, id) >= target;
      },
      std::chrono::milliseconds(kMaxConfigWaitMs));
  int64_t delay =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  return c.Read([&](const State& s, const Runtime& rt) -> Result<Json> {
    auto it = s.clients.find(id);
    if (it == s.clients.end()) return Error(Code::kNotFound, "client {} is not known", id);
    return Json::array({ConfigStatusJson(s, rt, it->second, delay)});
  });
}

constexpr size_t kMaxReportedLayers = 65536;
constexpr size_t kMaxReportedObjects = 65536;

// Per-layer usage ("usage": [{layer, objects, storedBytes}]) and per-object entries
// ("objectList": [{layer, object, version, state, storedBytes}]) of one registered disk.
Status ParseUsage(const Json& d, DiskStats& out) {
  auto num = [](const Json& o, const char* k) -> Result<int64_t> {
    auto it = o.find(k);
    if (it == o.end() || !it->is_number_integer() || it->get<int64_t>() < 0) {
      return Error(Code::kInvalidArgument, "usage entry needs a non-negative '{}'", k);
    }
    return it->get<int64_t>();
  };
  auto list = [&](const char* key, size_t max) -> Result<const Json*> {
    auto it = d.find(key);
    if (it == d.end()) return nullptr;
    if (!it->is_array() || it->size() > max) {
      return Error(Code::kInvalidArgument, "'{}' must be a list of at most {}", key, max);
    }
    return &*it;
  };
  SP_ASSIGN_OR_RETURN(const Json* usage, list("usage", kMaxReportedLayers));
  for (const Json& u : usage ? *usage : Json::array()) {
    if (!u.is_object()) return Error(Code::kInvalidArgument, "usage entries must be objects");
    SP_ASSIGN_OR_RETURN(int64_t layer, num(u, "layer"));
    SP_ASSIGN_OR_RETURN(int64_t objects, num(u, "objects"));
    SP_ASSIGN_OR_RETURN(int64_t bytes, num(u, "storedBytes"));
    out.layers[layer] = {objects, bytes};
  }
  SP_ASSIGN_OR_RETURN(const Json* objects, list("objectList", kMaxReportedObjects));
  for (const Json& o : objects ? *objects : Json::array()) {
    if (!o.is_object()) return Error(Code::kInvalidArgument, "objectList entries must be objects");
    ObjectUsage ou;
    SP_ASSIGN_OR_RETURN(ou.layer, num(o, "layer"));
    SP_ASSIGN_OR_RETURN(ou.object, num(o, "object"));
    SP_ASSIGN_OR_RETURN(ou.version, num(o, "version"));
    SP_ASSIGN_OR_RETURN(ou.state, num(o, "state"));
    SP_ASSIGN_OR_RETURN(ou.storedBytes, num(o, "storedBytes"));
    out.objects.push_back(ou);
  }
  return Status::Ok();
}

struct RegisteredDisk {
  DiskRecord rec;
  DiskStats stats;
  bool full = false;  // no free space left: a down disk stays down until space is freed
};

Result<RegisteredDisk> ParseDisk(const Json& d) {
  if (!d.is_object()) return Error(Code::kInvalidArgument, "disks[] must be objects");
  RegisteredDisk out;
  std::optional<int64_t> id, sectors, oc, oa, ood, ss, ec, ea;
  std::optional<std::string> device;
  std::optional<bool> ssd, journaled;
  SP_RETURN_IF_ERROR(OptInt(d, "id", id));
  if (!id) return Error(Code::kInvalidArgument, "disk without 'id'");
  SP_RETURN_IF_ERROR(proto::ValidateDiskId("disks[].id", *id));
  SP_RETURN_IF_ERROR(OptString(d, "device", device));
  SP_RETURN_IF_ERROR(OptBool(d, "ssd", ssd));
  SP_RETURN_IF_ERROR(OptBool(d, "journaled", journaled));
  std::optional<bool> full;
  SP_RETURN_IF_ERROR(OptBool(d, "full", full));
  out.full = full.value_or(false);
  for (auto [key, slot] : {std::pair{"sectorsCount", &sectors},
                           {"objectsCount", &oc},
                           {"objectsAllocated", &oa},
                           {"objectsOnDiskSize", &ood},
                           {"storedSize", &ss},
                           {"entriesCount", &ec},
                           {"entriesAllocated", &ea}}) {
    SP_RETURN_IF_ERROR(OptInt(d, key, *slot));
  }
  out.rec.id = static_cast<uint32_t>(*id);
  out.rec.device = device.value_or("");
  out.rec.ssd = ssd.value_or(false);
  out.rec.journaled = journaled.value_or(false);
  out.rec.sectorsCount = sectors.value_or(0);
  out.stats = {oc.value_or(0),
               oa.value_or(0),
               ood.value_or(0),
               ss.value_or(0),
               ec.value_or(0),
               ea.value_or(0),
               {},
               {}};
  SP_RETURN_IF_ERROR(ParseUsage(d, out.stats));
  return out;
}

struct ServiceHeader {
  int64_t id = 0;
  int64_t node_id = 0;
  std::string version;
  int64_t start_time = 0;
};

Result<ServiceHeader> ParseHeader(const Json& body, bool server) {
  std::optional<int64_t> id, node, start;
  std::optional<std::string> version;
  SP_RETURN_IF_ERROR(OptInt(body, "id", id));
  SP_RETURN_IF_ERROR(OptInt(body, "nodeId", node));
  SP_RETURN_IF_ERROR(OptInt(body, "startTime", start));
  SP_RETURN_IF_ERROR(OptString(body, "version", version));
  if (!id) return Error(Code::kInvalidArgument, "missing 'id'");
  SP_RETURN_IF_ERROR(server ? proto::ValidateServerId("id", *id)
                            : proto::ValidateClientId("id", *id));
  SP_RETURN_IF_ERROR(proto::ValidateNodeId("nodeId", node.value_or(0)));
  return ServiceHeader{*id, node.value_or(0), version.value_or(""), start.value_or(0)};
}

// Applies one server registration to the state (see internal-api.md for the rules).
Status ApplyServer(State& s, const ServerRecord& reg, const std::vector<RegisteredDisk>& disks) {
  for (const RegisteredDisk& d : disks) {
    auto it = s.disks.find(d.rec.id);
    if (it != s.disks.end() && it->second.serverId != reg.id) {
      return Error(Code::kInvalidArgument, "disk {} belongs to server {}", d.rec.id,
                   it->second.serverId);
    }
  }
  std::set<uint32_t> now(reg.disks.begin(), reg.disks.end());
  if (auto old = s.servers.find(reg.id); old != s.servers.end()) {
    for (uint32_t gone : old->second.disks) {
      auto it = s.disks.find(gone);
      if (!now.count(gone) && it != s.disks.end() && DiskIsUp(it->second)) {
        it->second.generationLeft = s.generation;
      }
    }
  }
  for (const RegisteredDisk& d : disks) {
    DiskRecord& rec = s.disks[d.rec.id];
    if (rec.ejected && rec.ejectedServerStart == reg.startTime) continue;  // stays down
    if (d.full && rec.id != 0 && rec.generationLeft >= 0) continue;        // full: stays down
    DiskRecord fresh = d.rec;
    fresh.serverId = reg.id;
    fresh.model = rec.model;
    fresh.serial = rec.serial;
    fresh.description = rec.description;
    fresh.softEject = rec.softEject.empty() ? "off" : rec.softEject;
    fresh.generationLeft = -1;
    // A disk that was down comes back recovering (it may have missed writes); one that was
    // recovering stays so. The generation of this change is s.generation + 1.
    fresh.recovering = rec.recovering;
    fresh.recoveringSince = rec.recoveringSince;
    fresh.leftAt = rec.leftAt;
    fresh.ejected = false;
    fresh.ejectedServerStart = 0;
    if (rec.id != 0 && rec.generationLeft >= 0) {
      fresh.recovering = true;
      fresh.recoveringSince = s.generation + 1;
      fresh.leftAt = rec.generationLeft;
    }
    rec = fresh;
  }
  s.servers[reg.id] = reg;
  return Status::Ok();
}

// Calls f(set) for every disk set of every volume's and snapshot's table that holds `disk`.
template <typename F>
void ForEachSetWith(const State& s, uint32_t disk, F&& f) {
  for (const auto* m : {&s.volumes, &s.snapshots}) {
    for (const auto& [id, v] : *m) {
      for (const auto& set : v.targetDiskSets) {
        if (std::find(set.begin(), set.end(), disk) != set.end()) f(set);
      }
    }
  }
}

// Whether recovering `disk` may serve reads now that its server caught up with the replicas
// it could reach: in every disk set that holds it, some other replica is up and not
// recovering (the server pulled what it missed from such a one), or no other replica left
// later than it did (it holds every acknowledged write of that set).
bool MayFinishRecovery(const State& s, const DiskRecord& disk) {
  bool ok = true;
  ForEachSetWith(s, disk.id, [&](const std::vector<uint32_t>& set) {
    bool healthy_peer = false, newer_peer = false;
    for (uint32_t m : set) {
      if (m == disk.id) continue;
      auto it = s.disks.find(m);
      if (it == s.disks.end()) continue;
      const DiskRecord& p = it->second;
      if (DiskIsUp(p) && !p.recovering) healthy_peer = true;
      int64_t left = DiskIsUp(p) ? p.leftAt : p.generationLeft;
      if (!(DiskIsUp(p) && !p.recovering) && left > disk.leftAt) newer_peer = true;
    }
    if (!healthy_peer && newer_peer) ok = false;
  });
  return ok;
}

// Whether every client that is up applied `generation` (so it sends writes to a disk that
// came back then, and a recovery pass started after this sees every later write).
bool ClientsApplied(const State& s, const Runtime& rt, int64_t generation) {
  for (const auto& [id, cl] : s.clients) {
    if (cl.up && Applied(rt, id) < generation) return false;
  }
  return true;
}

Json WritersJson(const State& s);

// What a server learns with each heartbeat: the state of its disks (and whether it may run a
// recovery pass for them) and, for fencing, the clients allowed to write each layer.
Json ServerHeartbeatJson(const State& s, const Runtime& rt, const ServerRecord& sv) {
  Json disks = Json::object();
  for (uint32_t d : sv.disks) {
    auto it = s.disks.find(d);
    if (it == s.disks.end()) continue;
    const DiskRecord& r = it->second;
    const char* state = !DiskIsUp(r) ? "down" : (r.recovering ? "recovering" : "up");
    disks[std::to_string(d)] = {
        {"state", state},
        {"since", r.recoveringSince},
        {"recover", r.recovering && ClientsApplied(s, rt, r.recoveringSince)}};
  }
  // Layers a disk still stores that no volume or snapshot owns any more (deleted): the server
  // frees them. Ids at or above nextVolumeId were never handed out and are left alone.
  Json drop = Json::object();
  for (uint32_t d : sv.disks) {
    auto st = rt.diskStats.find(d);
    if (st == rt.diskStats.end()) continue;
    Json ids = Json::array();
    for (const auto& [layer, usage] : st->second.layers) {
      if (layer > 0 && layer < s.counters.nextVolumeId && !s.volumes.count(layer) &&
          !s.snapshots.count(layer)) {
        ids.push_back(layer);
      }
    }
    if (!ids.empty()) drop[std::to_string(d)] = std::move(ids);
  }
  return {{"heartbeatIntervalMs", kHeartbeatIntervalMs},
          {"generation", s.generation},
          {"disks", std::move(disks)},
          {"writers", WritersJson(s)},
          {"dropLayers", std::move(drop)}};
}

// For fencing: layer id → clients attached read-write to a volume whose chain holds the layer
// (writes issued just before a snapshot may still reach the layer it froze).
Json WritersJson(const State& s) {
  Json writers = Json::object();
  std::set<int64_t> attached;  // volumes (and snapshots, skipped below) attached anywhere
  for (const auto& [client, _] : s.clients) {
    for (int64_t id : s.attachedTo.Get(client)) attached.insert(id);
  }
  for (int64_t id : attached) {
    const VolumeRecord* found = s.volumes.get(id);
    if (found == nullptr) continue;
    const VolumeRecord& v = *found;
    std::vector<uint32_t> rw;
    for (const auto& [client, at] : v.attachments) {
      if (at.rights == "rw") rw.push_back(static_cast<uint32_t>(std::stoul(client)));
    }
    if (rw.empty()) continue;
    writers[std::to_string(v.id)] = rw;
    for (int64_t p : v.parents) {
      Json& w = writers[std::to_string(p)];
      if (w.is_null()) w = Json::array();
      for (uint32_t c : rw) w.push_back(c);
    }
  }
  return writers;
}

Result<Json> Writers(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime&) {
    return ApiOk(s.generation, {{"writers", WritersJson(s)}});
  });
}

// The "recovered" list of a server heartbeat: [{"disk": id, "since": generation}, ...].
Result<std::vector<std::pair<uint32_t, int64_t>>> ParseRecovered(const Json& body) {
  std::vector<std::pair<uint32_t, int64_t>> out;
  auto it = body.find("recovered");
  if (it == body.end()) return out;
  if (!it->is_array() || it->size() > kMaxDisksPerServer) {
    return Error(Code::kInvalidArgument, "'recovered' must be a list of at most {} entries",
                 kMaxDisksPerServer);
  }
  for (const Json& e : *it) {
    if (!e.is_object() || !e.contains("disk") || !e["disk"].is_number_unsigned() ||
        !e.contains("since") || !e["since"].is_number_integer()) {
      return Error(Code::kInvalidArgument, "'recovered' entries are {{disk, since}}");
    }
    out.emplace_back(e["disk"].get<uint32_t>(), e["since"].get<int64_t>());
  }
  return out;
}

Result<Json> RegisterServer(Cluster& c, const Json& body, const ServiceHeader& h) {
  std::optional<std::string> addr;
  std::optional<int64_t> port;
  SP_RETURN_IF_ERROR(OptString(body, "addr", addr));
  SP_RETURN_IF_ERROR(OptInt(body, "port", port));
  if (!addr || !port || *port < 1 || *port > 65535) {
    return Error(Code::kInvalidArgument, "a server registration needs 'addr' and 'port'");
  }
  auto it = body.find("disks");
  if (it != body.end() && (!it->is_array() || it->size() > kMaxDisksPerServer)) {
    return Error(Code::kInvalidArgument, "'disks' must be a list of at most {} disks",
                 kMaxDisksPerServer);
  }
  ServerRecord reg{static_cast<uint32_t>(h.id),
                   static_cast<uint32_t>(h.node_id),
                   h.version,
                   h.start_time,
                   *addr,
                   static_cast<uint32_t>(*port),
                   true,
                   {}};
  std::vector<RegisteredDisk> disks;
  for (const Json& d : it == body.end() ? Json::array() : *it) {
    SP_ASSIGN_OR_RETURN(RegisteredDisk rd, ParseDisk(d));
    if (std::find(reg.disks.begin(), reg.disks.end(), rd.rec.id) != reg.disks.end()) {
      return Error(Code::kInvalidArgument, "disk {} listed twice", rd.rec.id);
    }
    reg.disks.push_back(rd.rec.id);
    disks.push_back(std::move(rd));
  }
  SP_ASSIGN_OR_RETURN(auto recovered, ParseRecovered(body));
  std::optional<int64_t> applied;
  SP_RETURN_IF_ERROR(OptInt(body, "appliedGeneration", applied));
  Json progress = body.contains("recovery") ? body["recovery"] : Json::object();
  if (!progress.is_object() || progress.size() > kMaxDisksPerServer) {
    return Error(Code::kInvalidArgument, "'recovery' must be an object keyed by disk id");
  }
  c.UpdateRuntime([&](Runtime& rt) {
    rt.serverHeard[reg.id] = std::chrono::steady_clock::now();
    for (const RegisteredDisk& d : disks) {
      rt.diskStats[d.rec.id] = d.stats;
      rt.recovery.erase(d.rec.id);
    }
    for (const auto& [disk, p] : progress.items()) {
      uint32_t id = static_cast<uint32_t>(std::strtoul(disk.c_str(), nullptr, 10));
      if (std::find(reg.disks.begin(), reg.disks.end(), id) != reg.disks.end()) {
        rt.recovery[id] = p;
      }
    }
    if (applied) rt.serverApplied[reg.id] = *applied;
  });
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) {
    SP_RETURN_IF_ERROR(ApplyServer(s, reg, disks));
    for (auto [disk, since] : recovered) {
      auto it = s.disks.find(disk);
      if (it == s.disks.end() || it->second.serverId != reg.id || !it->second.recovering ||
          it->second.recoveringSince != since || !MayFinishRecovery(s, it->second)) {
        continue;
      }
      SP_LOG_INFO("disk {} recovered: serving reads again", disk);
      it->second.recovering = false;
      it->second.leftAt = -1;
    }
    return Status::Ok();
  }));
  (void)gen;
  return c.Read([&](const State& s, const Runtime& rt) {
    auto sv = s.servers.find(reg.id);
    return ApiOk(s.generation, ServerHeartbeatJson(s, rt, sv->second));
  });
}

// Bound on the volumes one client may report open (its attachment positions).
constexpr size_t kMaxOpenVolumes = 1024;

Result<Json> RegisterClient(Cluster& c, const Json& body, const ServiceHeader& h) {
  std::optional<int64_t> applied;
  SP_RETURN_IF_ERROR(OptInt(body, "appliedGeneration", applied));
  Json nbd = body.contains("nbd") ? body["nbd"] : Json::object();
  if (!nbd.is_object()) return Error(Code::kInvalidArgument, "'nbd' must be an object");
  std::set<std::string> open;
  if (auto it = body.find("openVolumes"); it != body.end()) {
    if (!it->is_array() || it->size() > kMaxOpenVolumes) {
      return Error(Code::kInvalidArgument, "'openVolumes' must be a list of at most {} ids",
                   kMaxOpenVolumes);
    }
    for (const Json& g : *it) {
      if (!g.is_string()) return Error(Code::kInvalidArgument, "'openVolumes' holds strings");
      open.insert(g.get<std::string>());
    }
  }
  ClientRecord reg{static_cast<uint32_t>(h.id),
                   static_cast<uint32_t>(h.node_id),
                   h.version,
                   h.start_time,
                   true,
                   nbd};
  c.UpdateRuntime([&](Runtime& rt) {
    rt.clientHeard[reg.id] = std::chrono::steady_clock::now();
    if (applied) rt.clientApplied[reg.id] = *applied;
    rt.clientOpen[reg.id] = std::move(open);
  });
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) {
    s.clients[reg.id] = reg;
    return Status::Ok();
  }));
  return ApiOk(gen, {{"heartbeatIntervalMs", kHeartbeatIntervalMs}});
}

Result<Json> ServiceRegister(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<std::string> type;
  SP_RETURN_IF_ERROR(OptString(body, "type", type));
  if (type == "server") {
    SP_ASSIGN_OR_RETURN(ServiceHeader h, ParseHeader(body, true));
    return RegisterServer(c, body, h);
  }
  if (type == "client") {
    SP_ASSIGN_OR_RETURN(ServiceHeader h, ParseHeader(body, false));
    return RegisterClient(c, body, h);
  }
  return Error(Code::kInvalidArgument, "'type' must be \"server\" or \"client\"");
}

// The value of `key` in a raw query string "a=1&b=2" as an integer in [lo, hi].
Result<int64_t> QueryInt(const std::string& query, const std::string& key, int64_t fallback,
                         int64_t lo, int64_t hi) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string part = query.substr(pos, amp - pos);
    if (part.rfind(key + "=", 0) == 0)
      return IntArg(part.substr(key.size() + 1), key.c_str(), lo, hi);
    pos = amp + 1;
  }
  return fallback;
}

// How many replicas at the end of each disk set are on the read tier, placeTail's placement
// group: disk sets are [head, all..., tail] (mgmt/allocator.h), so this counts the roles from
// the tail while their group is placeTail's. The client spreads reads over those.
int64_t ReadTierReplicas(const VolumeRecord& v) {
  auto group = [&v](const std::string& pg) -> const std::string& {
    return pg.empty() ? v.placeAll : pg;
  };
  const std::string& tail = group(v.placeTail);
  int64_t n = 1;
  for (int64_t i = static_cast<int64_t>(v.replication) - 2; i >= 0; --i, ++n) {
    const std::string& role = i == 0 ? group(v.placeHead) : group(v.placeAll);
    if (role != tail) break;
  }
  return n;  // at most replication: the loop looks at replication - 1 roles
}

// One attached volume or snapshot of ClientState; adds the disks of its table to `disks`.
Json ClientVolumeJson(const State& s, const VolumeRecord& v, const AttachmentRecord& at,
                      bool snapshot, Json& disks) {
  Json chain = Json::array({v.id});
  for (int64_t p : v.parents) chain.push_back(p);
  for (const auto& set : v.targetDiskSets) {
    for (uint32_t d : set) {
      auto di = s.disks.find(d);
      if (di == s.disks.end()) continue;
      auto sv = s.servers.find(di->second.serverId);
      bool up = DiskIsUp(di->second) && sv != s.servers.end() && sv->second.up;
      disks[std::to_string(d)] = {{"serverId", di->second.serverId},
                                  {"addr", sv == s.servers.end() ? "" : sv->second.addr},
                                  {"port", sv == s.servers.end() ? 0 : sv->second.port},
                                  {"up", up},
                                  {"recovering", up && di->second.recovering}};
    }
  }
  return {{"name", v.name},
          {"globalId", v.globalId},
          {"snapshot", snapshot},
          {"rights", snapshot ? "ro" : at.rights},
          {"layerId", v.id},
          {"chain", std::move(chain)},
          {"size", v.size},
          {"replication", v.replication},
          {"readReplicas", ReadTierReplicas(v)},
          {"targetDiskSets", v.targetDiskSets},
          {"overrides", Json::object()}};
}

Json ClientStateJson(const State& s, const Runtime& rt, uint32_t client) {
  Json volumes = Json::array(), disks = Json::object();
  std::string key = std::to_string(client);
  for (const auto* m : {&s.volumes, &s.snapshots}) {
    for (int64_t id : s.attachedTo.Get(client)) {
      const VolumeRecord* v = m->get(id);
      if (v == nullptr) continue;
      auto at = v->attachments.find(key);
      if (at == v->attachments.end()) continue;
      volumes.push_back(ClientVolumeJson(s, *v, at->second, m == &s.snapshots, disks));
    }
  }
  Json out = {{"generation", s.generation}, {"volumes", volumes}, {"disks", disks}};
  if (auto p = PauseFor(s, rt, client)) out["pause"] = {{"cut", p->cut}, {"volumes", *p->volumes}};
  return out;
}

int64_t PausedCut(const State& s, const Runtime& rt, uint32_t client) {
  auto p = PauseFor(s, rt, client);
  return p ? p->cut : 0;
}

// `cut` (optional): the group-snapshot cut the client last saw (0: none); the long-poll also
// returns as soon as the cut asked of it differs, so a pause or its end reaches it at once.
Result<Json> ClientState(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, IntArg(req.args[0], "client id", 1, 4095));
  SP_ASSIGN_OR_RETURN(int64_t since, QueryInt(req.query, "since", -1, -1, INT64_MAX));
  SP_ASSIGN_OR_RETURN(int64_t timeout,
                      QueryInt(req.query, "timeoutMs", kDefaultPollMs, 0, kMaxPollMs));
  SP_ASSIGN_OR_RETURN(int64_t known_cut, QueryInt(req.query, "cut", -1, -1, INT64_MAX));
  const auto client = static_cast<uint32_t>(id);
  if (known_cut < 0) {
    c.WaitForChange(since, std::chrono::milliseconds(timeout));
  } else {
    c.WaitUntil(
        [&](const State& s, const Runtime& rt) {
          return s.generation > since || PausedCut(s, rt, client) != known_cut;
        },
        std::chrono::milliseconds(timeout));
  }
  return c.Read([&](const State& s, const Runtime& rt) { return ClientStateJson(s, rt, client); });
}

// Bound on the volumes one ClientPaused may name (its attachment positions).
constexpr size_t kMaxPausedVolumes = 1024;

// A client holds the writes of the listed volumes for group-snapshot cut `cut`, none in
// flight. Body: {"cut": N, "volumes": [globalId...]}.
Result<Json> ClientPaused(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t client, IntArg(req.args[0], "client id", 1, 4095));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<int64_t> cut;
  SP_RETURN_IF_ERROR(OptInt(body, "cut", cut));
  if (!cut || *cut <= 0) return Error(Code::kInvalidArgument, "missing 'cut'");
  auto list = body.find("volumes");
  if (list == body.end() || !list->is_array() || list->size() > kMaxPausedVolumes) {
    return Error(Code::kInvalidArgument, "'volumes' must be a list of at most {} ids",
                 kMaxPausedVolumes);
  }
  std::set<std::string> volumes;
  for (const Json& g : *list) {
    if (!g.is_string()) return Error(Code::kInvalidArgument, "'volumes' holds strings");
    volumes.insert(g.get<std::string>());
  }
  c.UpdateRuntime([&](Runtime& rt) {
    RecordPaused(rt, static_cast<uint32_t>(client), *cut, std::move(volumes));
  });
  return ApiOk(c.generation());
}

// A client could not complete a write on a replica: the disk is marked down (a new
// generation) before the client completes the write without it, so no later read is served
// from the stale copy (DESIGN.md §5). Body: {"disk": id, "reason": text}.
Result<Json> DiskFailed(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t client, IntArg(req.args[0], "client id", 1, 4095));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<int64_t> disk;
  std::optional<std::string> reason;
  SP_RETURN_IF_ERROR(OptInt(body, "disk", disk));
  SP_RETURN_IF_ERROR(OptString(body, "reason", reason));
  if (!disk) return Error(Code::kInvalidArgument, "missing 'disk'");
  SP_RETURN_IF_ERROR(proto::ValidateDiskId("disk", *disk));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) {
    auto it = s.disks.find(static_cast<uint32_t>(*disk));
    if (it == s.disks.end()) return Error(Code::kNotFound, "disk {} not found", *disk);
    if (DiskIsUp(it->second)) {
      SP_LOG_WARN("client {} reports disk {} failed ({}): down", client, *disk,
                  reason.value_or("no reason given"));
      it->second.generationLeft = s.generation;
      it->second.recovering = false;
    }
    return Status::Ok();
  }));
  return ApiOk(gen);
}

// What a server needs to recover `disk`: every layer whose table holds it (with the table
// and the object count) and where the other disks of those tables are.
Result<Json> DiskLayout(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t disk, IntArg(req.args[0], "disk id", 1, 4095));
  return c.Read([&](const State& s, const Runtime&) {
    Json layers = Json::array(), disks = Json::object();
    for (const auto* m : {&s.volumes, &s.snapshots}) {
      for (const auto& [id, v] : *m) {
        bool holds = false;
        for (const auto& set : v.targetDiskSets) {
          if (std::find(set.begin(), set.end(), static_cast<uint32_t>(disk)) != set.end()) {
            holds = true;
          }
        }
        if (!holds) continue;
        ClientVolumeJson(s, v, AttachmentRecord{}, m == &s.snapshots, disks);
        layers.push_back(
            {{"layer", v.id},
             {"objects", (static_cast<uint64_t>(v.size) + kObjectSize - 1) / kObjectSize},
             {"sets", v.targetDiskSets}});
      }
    }
    return ApiOk(s.generation, {{"layers", std::move(layers)}, {"disks", std::move(disks)}});
  });
}

Result<Json> ClientReport(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t client, IntArg(req.args[0], "client id", 1, 4095));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<int64_t> gen;
  SP_RETURN_IF_ERROR(OptInt(body, "generation", gen));
  if (!gen || *gen < 0) return Error(Code::kInvalidArgument, "missing 'generation'");
  c.UpdateRuntime([&](Runtime& rt) { rt.clientApplied[static_cast<uint32_t>(client)] = *gen; });
  return ApiOk(c.generation());
}

}  // namespace

void RegisterServiceCalls(CallTable& pub, CallTable& internal) {
  pub["ServicesList"] = {Method::kGet, 0, ServicesList};
  pub["ServersList"] = {Method::kGet, 0, ServersList};
  pub["TasksList"] = {Method::kGet, 0, TasksList};
  pub["ClientsConfigDump"] = {Method::kGet, 0, ClientsConfigDump};
  pub["ClientConfigWait"] = {Method::kGet, 1, ClientConfigWait};
  pub["ServersListBlocked"] = {Method::kGet, 0, ServersListBlocked};
  internal["ServiceRegister"] = {Method::kPost, 0, ServiceRegister};
  internal["ClientState"] = {Method::kGet, 1, ClientState};
  internal["ClientReport"] = {Method::kPost, 1, ClientReport};
  internal["ClientPaused"] = {Method::kPost, 1, ClientPaused};
  internal["DiskFailed"] = {Method::kPost, 1, DiskFailed};
  internal["DiskLayout"] = {Method::kGet, 1, DiskLayout};
  internal["Writers"] = {Method::kGet, 0, Writers};
}

}  // namespace spindle::mgmt
