#include "mgmt/api_common.h"

#include <charconv>

#include "common/units.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {

Result<Json> BodyObject(const ApiRequest& req, EmptyBody empty) {
  if (!req.body) {
    if (empty == EmptyBody::kAllowed) return Json::object();
    return Error(Code::kInvalidArgument, "'{}' needs a JSON object body", req.call);
  }
  if (!req.body->is_object()) {
    return Error(Code::kInvalidArgument, "'{}' body must be a JSON object", req.call);
  }
  return *req.body;
}

Result<int64_t> IntArg(const std::string& arg, const char* what, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), v);
  if (ec != std::errc() || p != arg.data() + arg.size() || v < lo || v > hi) {
    return Error(Code::kInvalidArgument, "invalid {} '{}'", what, arg);
  }
  return v;
}

bool DiskIsUp(const DiskRecord& disk) {
  return disk.generationLeft < 0;
}

Json DiskSummaryJson(const DiskRecord& d, const Runtime& runtime) {
  Json j = {{"id", d.id},
            {"serverId", d.serverId},
            {"ssd", d.ssd},
            {"generationLeft", d.generationLeft},
            {"model", d.model},
            {"serial", d.serial},
            {"description", d.description},
            {"softEject", d.softEject}};
  if (!DiskIsUp(d)) return j;
  DiskStats s;
  if (auto it = runtime.diskStats.find(d.id); it != runtime.diskStats.end()) s = it->second;
  j.update({{"sectorsCount", d.sectorsCount},
            {"empty", s.objectsAllocated == 0},
            {"noFua", false},
            {"noFlush", false},
            {"noTrim", false},
            {"isWbc", false},
            {"journaled", d.journaled},
            {"device", d.device},
            {"agCount", 0},
            {"agAllocated", 0},
            {"agFree", 0},
            {"agFull", 0},
            {"agPartial", 0},
            {"agFreeing", 0},
            {"agMaxSizeFull", 0},
            {"agMaxSizePartial", 0},
            {"entriesCount", s.entriesCount},
            {"entriesAllocated", s.entriesAllocated},
            {"entriesFree", std::max<int64_t>(0, s.entriesCount - s.entriesAllocated)},
            {"objectsCount", s.objectsCount},
            {"objectsAllocated", s.objectsAllocated},
            {"objectsFree", std::max<int64_t>(0, s.objectsCount - s.objectsAllocated)},
            {"objectsOnDiskSize", s.objectsOnDiskSize},
            {"wbc", nullptr},
            {"aggregateScore", {{"entries", 0}, {"space", 0}, {"total", 0}}},
            {"scrubbingStartedBefore", 0},
            {"scrubbedBytes", 0},
            {"scrubbingBW", 0},
            {"scrubbingFinishAfter", 0},
            {"scrubbingPausedFor", 0},
            {"scrubbingPaused", false},
            {"lastScrubCompleted", 0}});
  return j;
}

int64_t ObjectsCount(const VolumeRecord& v) {
  return static_cast<int64_t>((static_cast<uint64_t>(v.size) + kObjectSize - 1) / kObjectSize);
}

Json VolumeSummaryJson(const State& state, const VolumeRecord& v, bool multi_cluster,
                       const std::string& cluster_name) {
  const VolumeRecord* parent = nullptr;
  if (!v.parents.empty()) {
    auto it = state.snapshots.find(v.parents.front());
    if (it != state.snapshots.end()) parent = &it->second;
  }
  const int64_t parent_id = v.parents.empty() ? 0 : v.parents.front();
  Json j = {{"name", v.name},
            {"id", v.id},
            {"parentName", parent ? parent->name : ""},
            {"templateName", v.templateName},
            {"size", v.size},
            {"replication", v.replication},
            {"globalId", v.globalId},
            {"placeAll", v.placeAll},
            {"placeTail", v.placeTail},
            {"placeHead", v.placeHead},
            {"parentVolumeId", parent_id},
            {"originalParentVolumeId", parent_id},
            {"visibleVolumeId", v.id},
            {"templateId", v.templateId},
            {"objectsCount", ObjectsCount(v)},
            {"creationTimestamp", v.creationTimestamp},
            {"flags", 0},
            {"tags", v.tags},
            {"reuseServer", v.reuseServer},
            {"firstNotParentObjectId", 0},
            {"bw", LimitJson(v.bw)},
            {"iops", LimitJson(v.iops)},
            {"limitType", "total"}};
  if (multi_cluster) {
    if (!cluster_name.empty()) j["clusterName"] = cluster_name;
    j["clusterId"] = state.counters.clusterId;
  }
  return j;
}

Result<const VolumeRecord*> LookupVolume(const State& state, const std::string& name) {
  SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", name));
  const VolumeRecord* v = state.FindVolume(name);
  if (v == nullptr) return Error(Code::kNotFound, "volume '{}' does not exist", name);
  return v;
}

Result<Policy> ParsePolicy(const Json& body) {
  Policy p;
  for (auto [key, slot] : {std::pair{"placeAll", &p.placeAll},
                           {"placeTail", &p.placeTail},
                           {"placeHead", &p.placeHead}}) {
    SP_RETURN_IF_ERROR(OptString(body, key, *slot));
    if (*slot) SP_RETURN_IF_ERROR(proto::ValidatePlacementGroupName(key, **slot));
  }
  SP_RETURN_IF_ERROR(OptInt(body, "replication", p.replication));
  if (p.replication) SP_RETURN_IF_ERROR(proto::ValidateReplication("replication", *p.replication));
  SP_RETURN_IF_ERROR(OptLimit(body, "bw", p.bw));
  SP_RETURN_IF_ERROR(OptLimit(body, "iops", p.iops));
  SP_RETURN_IF_ERROR(OptBool(body, "reuseServer", p.reuseServer));
  SP_RETURN_IF_ERROR(OptTags(body, "tags", p.tags));
  return p;
}

Status CheckPlacementGroups(const State& state, const Policy& p) {
  for (const auto* pg : {&p.placeAll, &p.placeTail, &p.placeHead}) {
    if (*pg && !state.placementGroups.count(**pg)) {
      return Error(Code::kNotFound, "placement group '{}' does not exist", **pg);
    }
  }
  return Status::Ok();
}

Status OptSize(const Json& body, const char* key, std::optional<int64_t>& out) {
  SP_RETURN_IF_ERROR(OptInt(body, key, out));
  if (out) SP_RETURN_IF_ERROR(proto::ValidateVolumeSize(key, *out));
  return Status::Ok();
}

bool DiskUsable(const State& s, uint32_t disk) {
  auto d = s.disks.find(disk);
  if (d == s.disks.end() || !DiskIsUp(d->second)) return false;
  auto sv = s.servers.find(d->second.serverId);
  return sv != s.servers.end() && sv->second.up;
}

AllocRequest AllocInput(const State& s, const VolumeRecord& v, uint32_t table_size) {
  std::map<uint32_t, uint32_t> fault_set_of;  // server → fault set id
  for (const auto& [_, fs] : s.faultSets) {
    for (uint32_t server : fs.servers) fault_set_of[server] = static_cast<uint32_t>(fs.id);
  }
  AllocRequest r;
  for (const auto& [id, d] : s.disks) {
    auto fs = fault_set_of.find(d.serverId);
    r.disks[id] = {d.serverId, DiskUsable(s, id), fs == fault_set_of.end() ? 0 : fs->second};
  }
  auto group = [&](const std::string& name) {
    auto it = s.placementGroups.find(name);
    return it == s.placementGroups.end() ? std::vector<uint32_t>{} : it->second.disks;
  };
  r.place_all = group(v.placeAll);
  r.place_head = group(v.placeHead);
  r.place_tail = group(v.placeTail);
  r.replication = static_cast<uint32_t>(v.replication);
  r.reuse_server = v.reuseServer;
  r.table_size = table_size;
  r.existing_use = s.diskUse;
  if (auto self = s.volumes.find(v.id); self != s.volumes.end()) {
    for (const auto& set : self->second.targetDiskSets) {
      for (uint32_t d : set) {
        if (auto it = r.existing_use.find(d); it != r.existing_use.end() && --it->second == 0) {
          r.existing_use.erase(it);
        }
      }
    }
  }
  return r;
}

VolumeUsage UsageOf(const State& s, const Runtime& rt, const VolumeRecord& v) {
  VolumeUsage u;
  std::map<int64_t, int64_t> largest;  // object → largest replica
  bool exact = true;
  for (const auto& [disk, st] : rt.diskStats) {
    if (!s.disks.count(disk)) continue;
    auto it = st.layers.find(v.id);
    if (it == st.layers.end()) continue;
    u.on_disk += it->second.storedBytes;
    if (st.objects.empty() && it->second.objects > 0) exact = false;
    for (const ObjectUsage& o : st.objects) {
      if (o.layer != v.id) continue;
      int64_t& m = largest[o.object];
      m = std::max(m, o.storedBytes);
    }
  }
  if (exact) {
    for (const auto& [_, bytes] : largest) u.stored += bytes;
  } else {
    u.stored = u.on_disk / std::max<int64_t>(1, v.replication);
  }
  return u;
}

}  // namespace spindle::mgmt
