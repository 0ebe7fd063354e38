// DisksList, DiskDescribe, ServerDisksList and the placement-group calls.
#include <algorithm>
#include <set>

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
    // Per-object details come from the servers; mgmt does not track them yet.
    j["objects"] = Json::object();
    return j;
  });
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
  for (auto& [_, v] : s.volumes) {
    fix(v.placeAll);
    fix(v.placeHead);
    fix(v.placeTail);
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

Result<Json> FaultSetsList(Cluster&, const ApiRequest&) {
  return Json::object();  // fault sets cannot be defined yet, so there are none
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
}

}  // namespace spindle::mgmt
