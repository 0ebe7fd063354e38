// VolumesSpace, SnapshotsSpace, VolumeGetInfo, SnapshotGetInfo, VolumeTemplatesStatus, VagList,
// VagUpdate and the Spindle extensions MgmtConfigList, MgmtConfigSet and AlertsList (docs/api.md).
#include <set>

#include "common/units.h"
#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

// storpool.md §1.11: a template's available space keeps this much free on its fullest disk.
constexpr int64_t kSafetyMarginBytes = static_cast<int64_t>(10 * kGiB);

std::string ClusterName(const Cluster& c) {
  return c.options().cluster_name;
}

Result<Json> VolumesSpace(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime& rt) {
    Json out = Json::array();
    for (const auto& [_, v] : s.volumes) {
      Json j = VolumeSummaryJson(s, v, req.multi_cluster, ClusterName(c));
      VolumeUsage u = UsageOf(s, rt, v);
      j["storedSize"] = u.stored;
      j["spaceUsed"] = u.stored;  // its top layer: nothing else reads through it
      out.push_back(std::move(j));
    }
    return out;
  });
}

// spaceUsed = what deleting the snapshot would free: all of its layer when nothing reads
// through it, else nothing (its children may read any of its blocks; Spindle does not track
// which of them every child has overwritten).
Result<Json> SnapshotsSpace(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime& rt) {
    std::set<int64_t> with_children;
    for (const auto* m : {&s.volumes, &s.snapshots}) {
      for (const auto& [_, v] : *m) {
        if (!v.parents.empty()) with_children.insert(v.parents.front());
      }
    }
    Json out = Json::array();
    for (const auto& [_, v] : s.snapshots) {
      Json j = SnapshotSummaryJson(s, v, req.multi_cluster, ClusterName(c));
      VolumeUsage u = UsageOf(s, rt, v);
      j["storedSize"] = u.stored;
      j["spaceUsed"] = with_children.count(v.id) ? 0 : u.stored;
      out.push_back(std::move(j));
    }
    return out;
  });
}

// The disk list object i lives on (its disk set).
const DiskSetTable::Set& ObjectSet(const VolumeRecord& v, int64_t i) {
  return v.targetDiskSets[static_cast<size_t>(i) % v.targetDiskSets.size()];
}

// VolumeInfo / SnapshotInfo: `j` (the summary) plus how the objects spread over the disks.
Json InfoJson(Json j, const VolumeRecord& v) {
  std::map<uint32_t, int64_t> per_disk;
  std::map<DiskSetTable::Set, int64_t> per_chain;
  std::vector<int64_t> per_set(v.targetDiskSets.size(), 0);
  int64_t n = v.targetDiskSets.empty() ? 0 : ObjectsCount(v);
  for (int64_t i = 0; i < n; ++i) {
    const auto& set = ObjectSet(v, i);
    for (uint32_t d : set) ++per_disk[d];
    ++per_chain[set];
    ++per_set[static_cast<size_t>(i) % per_set.size()];
  }
  std::set<uint32_t> disks;
  for (const auto& set : v.targetDiskSets) disks.insert(set.begin(), set.end());
  Json opd = Json::object(), chains = Json::array(), sets = Json::array();
  for (const auto& [d, count] : per_disk) opd[std::to_string(d)] = count;
  for (const auto& [set, count] : per_chain) chains.push_back({{"disks", set}, {"count", count}});
  for (size_t i = 0; i < per_set.size(); ++i) {
    sets.push_back({{"disks", v.targetDiskSets[i]}, {"count", per_set[i]}});
  }
  j.update({{"disksCount", disks.size()},
            {"objectsPerDisk", opd},
            {"objectsPerChain", chains},
            {"objectsPerDiskSet", sets}});
  return j;
}

Result<Json> VolumeGetInfo(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, req.args[0]));
    return InfoJson(VolumeSummaryJson(s, *v, req.multi_cluster, ClusterName(c)), *v);
  });
}

Result<Json> SnapshotGetInfo(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupSnapshot(s, req.args[0]));
    return InfoJson(SnapshotSummaryJson(s, *v, req.multi_cluster, ClusterName(c)), *v);
  });
}

struct RoleSpace {
  int64_t capacity = 0;   // Σ object slots × object size of the group's up disks
  int64_t available = 0;  // (min free − margin) × disks, never negative
};

RoleSpace SpaceOf(const State& s, const Runtime& rt, const std::string& pg) {
  RoleSpace r;
  auto it = s.placementGroups.find(pg);
  if (it == s.placementGroups.end()) return r;
  int64_t min_free = -1, disks = 0;
  for (uint32_t d : it->second.disks) {
    if (!DiskUsable(s, d)) continue;
    DiskStats st;
    if (auto f = rt.diskStats.find(d); f != rt.diskStats.end()) st = f->second;
    int64_t cap = st.objectsCount * static_cast<int64_t>(kObjectSize);
    int64_t free = std::max<int64_t>(0, st.objectsCount - st.objectsAllocated) *
                   static_cast<int64_t>(kObjectSize);
    r.capacity += cap;
    min_free = min_free < 0 ? free : std::min(min_free, free);
    ++disks;
  }
  if (disks > 0) r.available = std::max<int64_t>(0, min_free - kSafetyMarginBytes) * disks;
  return r;
}

Json EstEntry(const RoleSpace& r, int64_t copies) {
  int64_t k = std::max<int64_t>(1, copies);
  return {{"free", r.available / k},
          {"capacity", r.capacity / k},
          {"internal", {{"u1", r.available}, {"u2", r.capacity}, {"u3", copies}}}};
}

Json TemplateStatusJson(const State& s, const Runtime& rt, const TemplateRecord& t) {
  int64_t count = 0, size = 0, stored = 0, on_disk = 0;
  for (const auto& [_, v] : s.volumes) {
    if (v.templateName != t.name) continue;
    ++count;
    size += v.size;
    VolumeUsage u = UsageOf(s, rt, v);
    stored += u.stored;
    on_disk += u.on_disk;
  }
  int64_t snapshots = 0;
  for (const auto& [_, v] : s.snapshots) {
    if (v.templateName != t.name) continue;
    ++snapshots;
    VolumeUsage u = UsageOf(s, rt, v);
    stored += u.stored;
    on_disk += u.on_disk;
  }
  RoleSpace all = SpaceOf(s, rt, t.placeAll), head = SpaceOf(s, rt, t.placeHead),
            tail = SpaceOf(s, rt, t.placeTail);
  int64_t rep = t.replication > 0 ? t.replication : 1;
  // Copies each role holds: [head, all..., tail] (1 → tail only, 2 → head + tail).
  int64_t head_copies = rep >= 2 ? 1 : 0, all_copies = std::max<int64_t>(0, rep - 2);
  Json e_all = EstEntry(all, all_copies), e_head = EstEntry(head, head_copies),
       e_tail = EstEntry(tail, 1);
  int64_t free = e_tail["free"], capacity = e_tail["capacity"];
  for (auto [e, copies] : {std::pair{&e_all, all_copies}, {&e_head, head_copies}}) {
    if (copies == 0) continue;
    free = std::min<int64_t>(free, (*e)["free"]);
    capacity = std::min<int64_t>(capacity, (*e)["capacity"]);
  }
  return {{"id", t.id},
          {"name", t.name},
          {"placeAll", t.placeAll},
          {"placeTail", t.placeTail},
          {"placeHead", t.placeHead},
          {"replication", t.replication > 0 ? Json(t.replication) : Json("-")},
          {"volumesCount", count},
          {"snapshotsCount", snapshots},
          {"removingSnapshotsCount", 0},
          {"size", size},
          {"totalSize", size},
          {"onDiskSize", on_disk},
          {"storedSize", stored},
          {"volumesSize", size},
          {"snapshotsWithoutChildrenSize", 0},
          {"snapshotsWithChildrenSize", 0},
          {"availablePlaceAll", all.available},
          {"availablePlaceTail", tail.available},
          {"availablePlaceHead", head.available},
          {"capacityPlaceAll", all.capacity},
          {"capacityPlaceTail", tail.capacity},
          {"capacityPlaceHead", head.capacity},
          {"stored",
           {{"free", free},
            {"capacity", capacity},
            {"internal", {{"u1", 0}, {"u2", 0}, {"u3", 0}}},
            {"placeAll", e_all},
            {"placeTail", e_tail},
            {"placeHead", e_head}}}};
}

Result<Json> VolumeTemplatesStatus(Cluster& c, const ApiRequest&) {
  return c.Read([&](const State& s, const Runtime& rt) {
    Json out = Json::array();
    for (const auto& [_, t] : s.templates) out.push_back(TemplateStatusJson(s, rt, t));
    return out;
  });
}

// A VAG is a volume's allocation group; Spindle gives every volume its own, vagId = volume id.
Json VagJson(const VolumeRecord& v) {
  std::set<DiskSetTable::Set> chains;
  for (int64_t i = 0; i < ObjectsCount(v) && !v.targetDiskSets.empty(); ++i) {
    chains.insert(ObjectSet(v, i));
  }
  return {{"name", v.id},
          {"chains", chains},
          {"diskSetsConstraintsViolated", v.constraintsViolated},
          {"overrides", Json::object()},
          {"parentVagId", 0},
          {"placeAll", v.placeAll},
          {"placeTail", v.placeTail},
          {"placeHead", v.placeHead},
          {"replication", v.replication},
          {"reuseServer", v.reuseServer},
          {"targetDiskSets", v.targetDiskSets},
          {"templateName", v.templateName},
          {"templateId", v.templateId},
          {"vagId", v.id}};
}

Result<Json> VagList(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t id, IntArg(req.args[0], "vag id", 1, INT64_MAX));
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    auto it = s.volumes.find(id);
    if (it == s.volumes.end()) return Error(Code::kNotFound, "vag {} does not exist", id);
    return VagJson(it->second);
  });
}

// A new table of `count` sets from the allocator, keeping the set of every existing object
// (objects must not move: that is relocation, which Spindle does not do yet).
Status ResizeTable(State& s, const VolumeRecord& v, uint32_t count) {
  bool has_children = false;
  for (const auto& [_, o] : s.snapshots) {
    if (!o.parents.empty() && o.parents.front() == v.id) has_children = true;
  }
  if (!v.parents.empty() || has_children) {
    return Error(Code::kUnimplemented,
                 "'{}' shares its disk-set table with snapshots; changing it is not implemented",
                 v.name);
  }
  SP_ASSIGN_OR_RETURN(auto fresh, AllocateDiskSets(AllocInput(s, v, count)));
  std::vector<std::optional<DiskSetTable::Set>> keep(count);
  for (int64_t i = 0; i < ObjectsCount(v) && !v.targetDiskSets.empty(); ++i) {
    auto& slot = keep[static_cast<size_t>(i) % count];
    const auto& old = ObjectSet(v, i);
    if (slot && *slot != old) {
      return Error(Code::kUnimplemented,
                   "targetsCount {} would move objects of '{}' (relocation is not implemented)",
                   count, v.name);
    }
    slot = old;
  }
  for (uint32_t i = 0; i < count; ++i) {
    if (keep[i]) fresh[i] = *keep[i];
  }
  VolumeRecord next = v;
  next.targetDiskSets = std::move(fresh);
  s.PutVolume(std::move(next));
  return Status::Ok();
}

Result<Json> VagUpdate(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<int64_t> count;
  SP_RETURN_IF_ERROR(OptInt(body, "targetsCount", count));
  if (!count) return Error(Code::kInvalidArgument, "missing 'targetsCount'");
  SP_RETURN_IF_ERROR(proto::ValidateTargetsCount("targetsCount", *count));
  auto vag = body.find("vagId");
  if (vag == body.end()) return Error(Code::kInvalidArgument, "missing 'vagId'");
  std::string vag_text = vag->is_string()           ? vag->get<std::string>()
                         : vag->is_number_integer() ? std::to_string(vag->get<int64_t>())
                                                    : "";
  SP_ASSIGN_OR_RETURN(int64_t id, IntArg(vag_text, "vagId", 1, INT64_MAX));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    auto it = s.volumes.find(id);
    if (it == s.volumes.end()) return Error(Code::kNotFound, "vag {} does not exist", id);
    return ResizeTable(s, it->second, static_cast<uint32_t>(*count));
  }));
  return ApiOk(gen);
}

// StorPool mgmtConfig settings Spindle does not have (yet): setting one is notImplemented.
const std::set<std::string>& ForeignSettings() {
  static const std::set<std::string> kNames = {
      "relocator",         "relocatorInterval",         "recoveryMaxTasksPerDisk",
      "balancerAuto",      "snapshotDeleteInterval",    "maxLocalRecoveryRequests",
      "maintenanceState",  "maxRemoteRecoveryRequests", "backupTemplateName",
      "maxDiskLatencyHdd", "maxDiskLatencySsd",         "maxDiskLatencyNvme"};
  return kNames;
}

Result<Json> MgmtConfigList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime&) {
    return Json{{"reuseServerImplicitOnDiskDown", s.config.reuseServerImplicitOnDiskDown}};
  });
}

Result<Json> MgmtConfigSet(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<bool> reuse;
  for (const auto& [key, _] : body.items()) {
    if (key == "reuseServerImplicitOnDiskDown") continue;
    if (ForeignSettings().count(key)) {
      return Error(Code::kUnimplemented, "mgmtConfig '{}' does not exist in Spindle", key);
    }
    return Error(Code::kInvalidArgument, "unknown mgmtConfig setting '{}'", key);
  }
  SP_RETURN_IF_ERROR(OptBool(body, "reuseServerImplicitOnDiskDown", reuse));
  if (!reuse) return Error(Code::kInvalidArgument, "no setting given");
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) {
    s.config.reuseServerImplicitOnDiskDown = *reuse;
    return Status::Ok();
  }));
  return ApiOk(gen);
}

// Conditions the monitoring should raise (recorded in the state, so they survive restarts).
Result<Json> AlertsList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime&) {
    Json out = Json::array();
    for (const auto& [_, v] : s.volumes) {
      if (!v.constraintsViolated) continue;
      out.push_back({{"name", "placementConstraintsViolated"},
                     {"volume", v.name},
                     {"globalId", v.globalId},
                     {"descr", "created with reuseServer implied: a disk or node was down"}});
    }
    return out;
  });
}

}  // namespace

void RegisterSpaceCalls(CallTable& t) {
  t["VolumesSpace"] = {Method::kGet, 0, VolumesSpace};
  t["VolumeGetInfo"] = {Method::kGet, 1, VolumeGetInfo};
  t["SnapshotsSpace"] = {Method::kGet, 0, SnapshotsSpace};
  t["SnapshotGetInfo"] = {Method::kGet, 1, SnapshotGetInfo};
  t["VolumeTemplatesStatus"] = {Method::kGet, 0, VolumeTemplatesStatus};
  t["VagList"] = {Method::kGet, 1, VagList};
  t["VagUpdate"] = {Method::kPost, 0, VagUpdate};
  t["MgmtConfigList"] = {Method::kGet, 0, MgmtConfigList};
  t["MgmtConfigSet"] = {Method::kPost, 0, MgmtConfigSet};
  t["AlertsList"] = {Method::kGet, 0, AlertsList};
}

}  // namespace spindle::mgmt
