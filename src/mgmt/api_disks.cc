// DisksList, DiskDescribe, ServerDisksList and the placement-group calls.
#include <algorithm>
#include <set>
#include <sstream>

#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr size_t kMaxPlacementGroups = 1024;

Result<Json> DisksList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime& rt) {
    Json out = Json::object();
    for (const auto& [id, d] : s.disks) out[std::to_string(id)] = DiskSummaryJson(d, rt);
    return out;
  });
}

Result<Json> ServerDisksList(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t server, IntArg(req.args[0], "server id", 1, 32767));
  return c.Read([&](const State& s, const Runtime& rt) -> Result<Json> {
    if (!s.servers.count(static_cast<uint32_t>(server))) {
      return Error(Code::kNotFound, "server {} is not known", server);
    }
    Json out = Json::object();
    for (const auto& [id, d] : s.disks) {
      if (d.serverId == server) out[std::to_string(id)] = DiskSummaryJson(d, rt);
    }
    return out;
  });
}

Result<Json> DiskDescribe(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, IntArg(req.args[0], "disk id", 0, 4095));
  return c.Read([&](const State& s, const Runtime& rt) -> Result<Json> {
    auto it = s.disks.find(static_cast<uint32_t>(id));
    if (it == s.disks.end()) return Error(Code::kNotFound, "disk {} is not known", id);
    Json j = DiskSummaryJson(it->second, rt);
    Json objects = Json::object();
    auto st = rt.diskStats.find(it->first);
    if (st != rt.diskStats.end()) {
      int64_t n = 0;
      for (const ObjectUsage& o : st->second.objects) {
        auto v = s.volumes.find(o.layer);
        objects[std::to_string(n++)] = {
            {"objectId", o.object},
            {"generation", s.generation},
            {"version", o.version},
            {"volume",
             v == s.volumes.end() ? "#deleted-" + std::to_string(o.layer) : v->second.name},
            {"parentVolume", ""},
            {"onDiskSize", o.storedBytes},
            {"storedSize", o.storedBytes},
            {"state", o.state},
            {"volumeId", o.layer}};
      }
    }
    j["objects"] = std::move(objects);
    return j;
  });
}

Result<int64_t> DiskArg(const ApiRequest& req) {
  return IntArg(req.args[0], "disk id", 0, 4095);
}

// The known disk `id` or kNotFound; with must_be_down, kFailedPrecondition while it is up.
Result<DiskRecord*> FindDisk(State& s, int64_t id, bool must_be_down) {
  auto it = s.disks.find(static_cast<uint32_t>(id));
  if (it == s.disks.end()) return Error(Code::kNotFound, "disk {} is not known", id);
  if (must_be_down && DiskUsable(s, it->second.id)) {
    return Error(Code::kFailedPrecondition, "disk {} is up; eject it first", id);
  }
  return &it->second;
}

// DiskForget: a down disk leaves the cluster: its record and its placement-group memberships.
// Volumes keep the id in their disk sets (shown as missingDrives) until they are relocated.
Result<Json> DiskForget(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, DiskArg(req));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_RETURN_IF_ERROR(FindDisk(s, id, true).status());
    for (auto& [_, pg] : s.placementGroups) {
      std::erase(pg.disks, static_cast<uint32_t>(id));
    }
    for (auto& [_, sv] : s.servers) std::erase(sv.disks, static_cast<uint32_t>(id));
    s.disks.erase(static_cast<uint32_t>(id));
    return Status::Ok();
  }));
  return ApiOk(gen);
}

// DiskEject: the disk stops serving now, even with data on it: it is marked down (clients stop
// sending it I/O; volumes run degraded) and stays down until its server restarts, when it
// comes back recovering and catches up with its peers.
Result<Json> DiskEject(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, DiskArg(req));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(DiskRecord * d, FindDisk(s, id, false));
    if (d->ejected) return Status::Ok();
    auto sv = s.servers.find(d->serverId);
    d->ejected = true;
    d->ejectedServerStart = sv == s.servers.end() ? 0 : sv->second.startTime;
    if (DiskIsUp(*d)) d->generationLeft = s.generation;
    d->recovering = false;
    return Status::Ok();
  }));
  return ApiOk(gen);
}

// DiskIgnore: the cluster stops waiting for a down disk (it leaves missingDisks).
Result<Json> DiskIgnore(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, DiskArg(req));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(DiskRecord * d, FindDisk(s, id, true));
    d->ignored = true;
    return Status::Ok();
  }));
  return ApiOk(gen);
}

Result<Json> DiskSetDescription(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, DiskArg(req));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<std::string> text;
  SP_RETURN_IF_ERROR(OptString(body, "description", text));
  if (!text) return Error(Code::kInvalidArgument, "missing 'description'");
  SP_RETURN_IF_ERROR(proto::ValidateDiskDescription("description", *text));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(DiskRecord * d, FindDisk(s, id, false));
    d->description = *text;
    return Status::Ok();
  }));
  return ApiOk(gen);
}

Json PlacementGroupJson(const PlacementGroupRecord& pg) {
  return {{"id", pg.id}, {"name", pg.name}, {"disks", pg.disks}};
}

Result<std::string> PgArg(const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName("placement group", req.args[0]));
  return req.args[0];
}

Result<Json> PlacementGroupsList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime&) {
    Json out = Json::object();
    for (const auto& [name, pg] : s.placementGroups) out[name] = PlacementGroupJson(pg);
    return out;
  });
}

Result<Json> PlacementGroupDescribe(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::string name, PgArg(req));
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    auto it = s.placementGroups.find(name);
    if (it == s.placementGroups.end()) {
      return Error(Code::kNotFound, "placement group '{}' does not exist", name);
    }
    return PlacementGroupJson(it->second);
  });
}

// Renames every reference to a placement group.
void RenamePgReferences(State& s, const std::string& from, const std::string& to) {
  auto fix = [&](std::string& ref) {
    if (ref == from) ref = to;
  };
  for (auto& [_, t] : s.templates) {
    fix(t.placeAll);
    fix(t.placeHead);
    fix(t.placeTail);
  }
  std::vector<int64_t> hit;  // changed after the walk (a change clones the map)
  for (const auto& [id, v] : s.volumes) {
    if (v.placeAll == from || v.placeHead == from || v.placeTail == from) hit.push_back(id);
  }
  for (int64_t id : hit) {
    VolumeRecord v = s.volumes.at(id);
    fix(v.placeAll);
    fix(v.placeHead);
    fix(v.placeTail);
    s.PutVolume(std::move(v));
  }
}

Status UpdatePg(State& s, const std::string& name, const std::optional<std::string>& rename,
                const std::vector<uint32_t>& add, const std::vector<uint32_t>& rm) {
  for (uint32_t d : add) {
    if (!s.disks.count(d)) return Error(Code::kNotFound, "disk {} is not known", d);
  }
  auto it = s.placementGroups.find(name);
  if (it == s.placementGroups.end()) {
    if (s.placementGroups.size() >= kMaxPlacementGroups) {
      return Error(Code::kResourceExhausted, "at most {} placement groups", kMaxPlacementGroups);
    }
    PlacementGroupRecord pg{s.counters.nextPlacementGroupId++, name, {}};
    it = s.placementGroups.emplace(name, pg).first;
  }
  std::set<uint32_t> disks(it->second.disks.begin(), it->second.disks.end());
  disks.insert(add.begin(), add.end());
  for (uint32_t d : rm) disks.erase(d);
  it->second.disks.assign(disks.begin(), disks.end());
  if (rename && *rename != name) {
    if (s.placementGroups.count(*rename)) {
      return Error(Code::kAlreadyExists, "placement group '{}' already exists", *rename);
    }
    PlacementGroupRecord pg = std::move(it->second);
    s.placementGroups.erase(it);
    pg.name = *rename;
    s.placementGroups.emplace(*rename, std::move(pg));
    RenamePgReferences(s, name, *rename);
  }
  return Status::Ok();
}

Result<Json> PlacementGroupUpdate(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::string name, PgArg(req));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  std::optional<std::string> rename;
  std::vector<uint32_t> add, rm;
  SP_RETURN_IF_ERROR(OptString(body, "rename", rename));
  if (rename) SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName("rename", *rename));
  SP_RETURN_IF_ERROR(DiskIdList(body, "addDisks", add));
  SP_RETURN_IF_ERROR(DiskIdList(body, "rmDisks", rm));
  SP_ASSIGN_OR_RETURN(int64_t gen,
                      c.Mutate([&](State& s) { return UpdatePg(s, name, rename, add, rm); }));
  return ApiOk(gen);
}

Result<Json> PlacementGroupDelete(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::string name, PgArg(req));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    if (!s.placementGroups.count(name)) {
      return Error(Code::kNotFound, "placement group '{}' does not exist", name);
    }
    auto uses = [&](const auto& r) {
      return r.placeAll == name || r.placeHead == name || r.placeTail == name;
    };
    for (const auto& [tn, t] : s.templates) {
      if (uses(t)) {
        return Error(Code::kFailedPrecondition, "placement group '{}' is used by template '{}'",
                     name, tn);
      }
    }
    for (const auto& [_, v] : s.volumes) {
      if (uses(v)) {
        return Error(Code::kFailedPrecondition, "placement group '{}' is used by volume '{}'", name,
                     v.name);
      }
    }
    s.placementGroups.erase(name);
    return Status::Ok();
  }));
  return ApiOk(gen);
}

constexpr size_t kMaxFaultSets = 256;

Result<Json> FaultSetsList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime&) {
    Json out = Json::object();
    for (const auto& [name, fs] : s.faultSets) {
      out[name] = {{"name", name}, {"servers", fs.servers}};
    }
    return out;
  });
}

// Server ids of a body list: integers (or decimal strings) in ServerId's range.
Status ServerIdList(const Json& body, const char* key, std::vector<uint32_t>& out) {
  auto it = body.find(key);
  if (it == body.end()) return Status::Ok();
  if (!it->is_array()) return Error(Code::kInvalidArgument, "'{}' must be a list", key);
  for (const Json& x : *it) {
    std::string text = x.is_string()           ? x.get<std::string>()
                       : x.is_number_integer() ? std::to_string(x.get<int64_t>())
                                               : "";
    SP_ASSIGN_OR_RETURN(int64_t id, IntArg(text, key, 1, 32767));
    out.push_back(static_cast<uint32_t>(id));
  }
  return Status::Ok();
}

Status UpdateFaultSet(State& s, const std::string& name, const std::optional<std::string>& rename,
                      const std::vector<uint32_t>& add, const std::vector<uint32_t>& rm) {
  for (uint32_t sv : add) {
    if (!s.servers.count(sv)) return Error(Code::kNotFound, "server {} is not known", sv);
    for (const auto& [other, fs] : s.faultSets) {
      if (other != name && std::count(fs.servers.begin(), fs.servers.end(), sv)) {
        return Error(Code::kFailedPrecondition, "server {} is in fault set '{}'", sv, other);
      }
    }
  }
  auto it = s.faultSets.find(name);
  if (it == s.faultSets.end()) {
    if (s.faultSets.size() >= kMaxFaultSets) {
      return Error(Code::kResourceExhausted, "at most {} fault sets", kMaxFaultSets);
    }
    it = s.faultSets.emplace(name, FaultSetRecord{s.counters.nextFaultSetId++, name, {}}).first;
  }
  std::set<uint32_t> servers(it->second.servers.begin(), it->second.servers.end());
  servers.insert(add.begin(), add.end());
  for (uint32_t sv : rm) servers.erase(sv);
  it->second.servers.assign(servers.begin(), servers.end());
  if (rename && *rename != name) {
    if (s.faultSets.count(*rename)) {
      return Error(Code::kAlreadyExists, "fault set '{}' already exists", *rename);
    }
    FaultSetRecord fs = std::move(it->second);
    s.faultSets.erase(it);
    fs.name = *rename;
    s.faultSets.emplace(*rename, std::move(fs));
  }
  return Status::Ok();
}

}  // namespace

Result<FaultSetConfig> ParseFaultSetConfig(const std::string& text) {
  FaultSetConfig out;
  std::map<uint32_t, std::string> owner;
  std::string spaced = text;
  std::replace(spaced.begin(), spaced.end(), ';', ' ');
  std::istringstream in(spaced);
  for (std::string item; in >> item;) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos) {
      return Error(Code::kInvalidArgument, "SP_FAULT_SETS: '{}' is not <name>:<server ids>", item);
    }
    const std::string name = item.substr(0, colon);
    SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName("SP_FAULT_SETS name", name));
    if (out.count(name)) {
      return Error(Code::kInvalidArgument, "SP_FAULT_SETS: fault set '{}' given twice", name);
    }
    std::vector<uint32_t>& servers = out[name];
    std::istringstream ids(item.substr(colon + 1));
    for (std::string id; std::getline(ids, id, ',');) {
      SP_ASSIGN_OR_RETURN(int64_t sv, IntArg(id, "SP_FAULT_SETS server id", 1, 32767));
      auto [it, fresh] = owner.emplace(static_cast<uint32_t>(sv), name);
      if (!fresh) {
        return Error(Code::kInvalidArgument, "SP_FAULT_SETS: server {} is in '{}' and '{}'", sv,
                     it->second, name);
      }
      servers.push_back(static_cast<uint32_t>(sv));
    }
    if (servers.empty()) {
      return Error(Code::kInvalidArgument, "SP_FAULT_SETS: fault set '{}' lists no servers", name);
    }
    std::sort(servers.begin(), servers.end());
  }
  if (out.size() > kMaxFaultSets) {
    return Error(Code::kInvalidArgument, "SP_FAULT_SETS: at most {} fault sets", kMaxFaultSets);
  }
  return out;
}

Status ApplyFaultSetConfig(State& s, const FaultSetConfig& config) {
  for (const auto& [name, servers] : config) {
    for (auto& [other, fs] : s.faultSets) {
      if (other == name) continue;
      std::erase_if(fs.servers, [&](uint32_t sv) {
        return std::binary_search(servers.begin(), servers.end(), sv);
      });
    }
    auto it = s.faultSets.find(name);
    if (it == s.faultSets.end()) {
      if (s.faultSets.size() >= kMaxFaultSets) {
        return Error(Code::kResourceExhausted, "at most {} fault sets", kMaxFaultSets);
      }
      it = s.faultSets.emplace(name, FaultSetRecord{s.counters.nextFaultSetId++, name, {}}).first;
    }
    it->second.servers = servers;
  }
  return Status::Ok();
}

namespace {

// FaultSetUpdate/{name} {rename, addServers, rmServers} (Spindle extension; creates the set).
Result<Json> FaultSetUpdate(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName("fault set", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  std::optional<std::string> rename;
  std::vector<uint32_t> add, rm;
  SP_RETURN_IF_ERROR(OptString(body, "rename", rename));
  if (rename) SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName("rename", *rename));
  SP_RETURN_IF_ERROR(ServerIdList(body, "addServers", add));
  SP_RETURN_IF_ERROR(ServerIdList(body, "rmServers", rm));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) {
    return UpdateFaultSet(s, req.args[0], rename, add, rm);
  }));
  return ApiOk(gen);
}

Result<Json> FaultSetDelete(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName("fault set", req.args[0]));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    if (!s.faultSets.erase(req.args[0])) {
      return Error(Code::kNotFound, "fault set '{}' does not exist", req.args[0]);
    }
    return Status::Ok();
  }));
  return ApiOk(gen);
}

}  // namespace

void RegisterDiskCalls(CallTable& t) {
  t["DisksList"] = {Method::kGet, 0, DisksList};
  t["DiskDescribe"] = {Method::kGet, 1, DiskDescribe};
  t["ServerDisksList"] = {Method::kGet, 1, ServerDisksList};
  t["PlacementGroupsList"] = {Method::kGet, 0, PlacementGroupsList};
  t["PlacementGroupDescribe"] = {Method::kGet, 1, PlacementGroupDescribe};
  t["PlacementGroupUpdate"] = {Method::kPost, 1, PlacementGroupUpdate};
  t["PlacementGroupDelete"] = {Method::kPost, 1, PlacementGroupDelete};
  t["FaultSetsList"] = {Method::kGet, 0, FaultSetsList};
  t["FaultSetUpdate"] = {Method::kPost, 1, FaultSetUpdate};
  t["FaultSetDelete"] = {Method::kPost, 1, FaultSetDelete};
  t["DiskForget"] = {Method::kPost, 1, DiskForget};
  t["DiskEject"] = {Method::kPost, 1, DiskEject};
  t["DiskIgnore"] = {Method::kPost, 1, DiskIgnore};
  t["DiskSetDescription"] = {Method::kPost, 1, DiskSetDescription};
}

}  // namespace spindle::mgmt
