// VolumesList, Volume, VolumeDescribe, VolumesGetStatus, VolumeCreate, VolumeUpdate,
// VolumeDelete, VolumeRevert, VolumeFreeze, VolumeRebase (snapshots: api_snapshots.cc).
#include <algorithm>
#include <ctime>
#include <set>

#include "common/units.h"
#include "mgmt/allocator.h"
#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr size_t kMaxVolumes = 65536;
constexpr int64_t kMaxVolumeSizeBytes = static_cast<int64_t>(64 * kTiB);

std::string ClusterName(const Cluster& c) {
  return c.options().cluster_name;
}

Result<Json> VolumesList(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) {
    Json out = Json::array();
    for (const auto& [_, v] : s.volumes) {
      out.push_back(VolumeSummaryJson(s, v, req.multi_cluster, ClusterName(c)));
    }
    return out;
  });
}

Result<Json> VolumeList(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, req.args[0]));
    return Json::array({VolumeSummaryJson(s, *v, req.multi_cluster, ClusterName(c))});
  });
}

Result<Json> VolumeDescribe(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, req.args[0]));
    Json j = VolumeSummaryJson(s, *v, req.multi_cluster, ClusterName(c));
    j["targetDiskSets"] = v->targetDiskSets;
    Json objects = Json::array();
    int64_t n = ObjectsCount(*v);
    for (int64_t i = 0; i < n; ++i) {
      objects.push_back(v->targetDiskSets[static_cast<size_t>(i) % v->targetDiskSets.size()]);
    }
    j["objects"] = std::move(objects);
    return j;
  });
}

// VolumeStatus (quick: VolumeStatusQuick, without the reported sizes).
// Snapshots (SnapshotStatus) start from their SnapshotSummary.
Json VolumeStatusJson(const State& s, const Runtime& rt, const VolumeRecord& v,
                      const std::string& cluster_name, bool mc, bool quick, bool snapshot) {
  Json j = snapshot ? SnapshotSummaryJson(s, v, mc, cluster_name)
                    : VolumeSummaryJson(s, v, mc, cluster_name);
  std::set<uint32_t> down_drives, missing;
  int64_t objects = ObjectsCount(v), down_objects = 0, soon_objects = 0, syncing = 0, lost = 0;
  bool degraded = false;
  for (int64_t i = 0; i < objects; ++i) {
    const auto& set = v.targetDiskSets[static_cast<size_t>(i) % v.targetDiskSets.size()];
    size_t up = 0, recovering = 0;
    for (uint32_t d : set) {
      if (!DiskUsable(s, d)) {
        (s.disks.count(d) ? down_drives : missing).insert(d);
      } else if (s.disks.at(d).recovering) {
        ++recovering;  // takes writes, catching up: not yet a full replica
      } else {
        ++up;
      }
    }
    if (up == 0 && recovering == 0) ++down_objects;
    // Every replica on a disk the cluster forgot: nothing can bring this object back.
    if (std::none_of(set.begin(), set.end(), [&](uint32_t d) { return s.disks.count(d) > 0; })) {
      ++lost;
    }
    if (up == 0 && recovering > 0) ++soon_objects;
    if (recovering > 0) ++syncing;
    if (up < set.size()) degraded = true;
  }
  auto bytes = [&](int64_t n) {
    return std::min<int64_t>(v.size, n * static_cast<int64_t>(kObjectSize));
  };
  int64_t down_bytes = bytes(down_objects);
  const char* status = lost > 0           ? "data lost"
                       : down_objects > 0 ? "down"
                       : soon_objects > 0 ? "up soon"
                                          : "up";
  j.update({{"status", status},
            {"snapshot", snapshot},
            {"migrating", false},
            {"decreasedRedundancy", degraded},
            {"balancerBlocked", false},
            {"syncingDataBytes", bytes(syncing)},
            {"syncingMetaObjects", syncing},
            {"downBytes", down_bytes},
            {"objectsCount", objects},
            {"upSoonChainsCount", soon_objects > 0 ? 1 : 0},
            {"downDrives", Json(std::vector<uint32_t>(down_drives.begin(), down_drives.end()))},
            {"missingDrives", Json(std::vector<uint32_t>(missing.begin(), missing.end()))},
            {"missingTargetDrives", Json::array()},
            {"softEjectingDrives", Json::array()},
            {"constraintsViolated", v.constraintsViolated}});
  if (!quick) {
    VolumeUsage u = UsageOf(s, rt, v);
    j["storedSize"] = u.stored;
    j["onDiskSize"] = u.on_disk;
  }
  return j;
}

Result<Json> StatusOfAll(Cluster& c, const ApiRequest& req, bool quick) {
  return c.Read([&](const State& s, const Runtime& rt) {
    Json out = Json::object();
    for (const auto& [_, v] : s.volumes) {
      out[v.name] = VolumeStatusJson(s, rt, v, ClusterName(c), req.multi_cluster, quick, false);
    }
    for (const auto& [_, v] : s.snapshots) {
      out[v.name] = VolumeStatusJson(s, rt, v, ClusterName(c), req.multi_cluster, quick, true);
    }
    return out;
  });
}
Result<Json> VolumesGetStatus(Cluster& c, const ApiRequest& req) {
  return StatusOfAll(c, req, false);
}
Result<Json> VolumesGetStatusQuick(Cluster& c, const ApiRequest& req) {
  return StatusOfAll(c, req, true);
}

struct CreateArgs {
  std::optional<std::string> name, templ, parent, base_on;
  std::optional<int64_t> size;
  Policy policy;
};

Result<CreateArgs> ParseCreate(const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  CreateArgs a;
  SP_RETURN_IF_ERROR(OptString(body, "name", a.name));
  if (a.name) SP_RETURN_IF_ERROR(proto::ValidateVolumeName("name", *a.name));
  SP_RETURN_IF_ERROR(OptString(body, "template", a.templ));
  if (a.templ) SP_RETURN_IF_ERROR(proto::ValidateTemplateName("template", *a.templ));
  SP_RETURN_IF_ERROR(OptSize(body, "size", a.size));
  SP_RETURN_IF_ERROR(OptString(body, "parent", a.parent));
  if (a.parent) SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("parent", *a.parent));
  SP_RETURN_IF_ERROR(OptString(body, "baseOn", a.base_on));
  if (a.base_on) SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("baseOn", *a.base_on));
  if (a.parent && a.base_on) return Error(Code::kInvalidArgument, "give 'parent' or 'baseOn'");
  SP_ASSIGN_OR_RETURN(a.policy, ParsePolicy(body));
  return a;
}

// Fills the new volume's settings: the request's, else the template's.
Status ResolveSettings(const State& s, const CreateArgs& a, VolumeRecord& v) {
  const TemplateRecord* t = nullptr;
  if (a.templ) {
    auto it = s.templates.find(*a.templ);
    if (it == s.templates.end())
      return Error(Code::kNotFound, "template '{}' does not exist", *a.templ);
    t = &it->second;
    v.templateName = t->name;
    v.templateId = t->id;
  }
  const Policy& p = a.policy;
  v.size = a.size.value_or(t ? t->size : 0);
  v.replication = p.replication.value_or(t ? t->replication : 0);
  v.placeAll = p.placeAll.value_or(t ? t->placeAll : "");
  v.placeHead = p.placeHead.value_or(t ? t->placeHead : v.placeAll);
  v.placeTail = p.placeTail.value_or(t ? t->placeTail : v.placeAll);
  v.bw = p.bw.value_or(t ? t->bw : kUnlimited);
  v.iops = p.iops.value_or(t ? t->iops : kUnlimited);
  v.reuseServer = p.reuseServer.value_or(t ? t->reuseServer : false);
  if (t) v.tags = t->tags;
  if (p.tags) {
    for (const auto& [k, val] : *p.tags) v.tags[k] = val;
  }
  if (v.size <= 0)
    return Error(Code::kInvalidArgument, "volume size not given (nor by a template)");
  if (v.size > kMaxVolumeSizeBytes) {
    return Error(Code::kInvalidArgument, "volume size exceeds {} bytes", kMaxVolumeSizeBytes);
  }
  if (v.replication <= 0) {
    return Error(Code::kInvalidArgument, "replication not given (nor by a template)");
  }
  if (v.placeAll.empty()) {
    return Error(Code::kInvalidArgument, "placeAll not given (nor by a template)");
  }
  for (const std::string* pg : {&v.placeAll, &v.placeHead, &v.placeTail}) {
    if (!s.placementGroups.count(*pg)) {
      return Error(Code::kNotFound, "placement group '{}' does not exist", *pg);
    }
  }
  return Status::Ok();
}

// True when the policy asks for placement or replication other than `v`'s: the data would have
// to move (relocation).
bool MovesData(const Policy& p, const VolumeRecord& v) {
  return (p.placeAll && *p.placeAll != v.placeAll) ||
         (p.placeHead && *p.placeHead != v.placeHead) ||
         (p.placeTail && *p.placeTail != v.placeTail) ||
         (p.replication && *p.replication != v.replication);
}

// A clone's settings: the parent snapshot's (layout, placement, table), with the request's
// size (not smaller), limits and tags.
Status CloneSettings(const State& s, const VolumeRecord& parent, const CreateArgs& a,
                     VolumeRecord& v) {
  const Policy& p = a.policy;
  SP_RETURN_IF_ERROR(CheckChainRoom(parent));
  if (MovesData(p, parent)) {
    return Error(Code::kUnimplemented,
                 "a clone with placement or replication other than its parent's (relocation) is "
                 "not implemented");
  }
  v = parent;
  v.attachments.clear();
  v.onVolume.clear();
  v.autoName = v.bound = v.transient = false;
  v.targetDeleteDate = 0;
  v.parents.insert(v.parents.begin(), parent.id);
  if (a.templ) {
    auto it = s.templates.find(*a.templ);
    if (it == s.templates.end())
      return Error(Code::kNotFound, "template '{}' does not exist", *a.templ);
    v.templateName = it->second.name;
    v.templateId = it->second.id;
  }
  if (a.size && *a.size < parent.size) {
    return Error(Code::kInvalidArgument, "a clone cannot be smaller than its parent ({} bytes)",
                 parent.size);
  }
  v.size = a.size.value_or(parent.size);
  if (v.size > kMaxVolumeSizeBytes) {
    return Error(Code::kInvalidArgument, "volume size exceeds {} bytes", kMaxVolumeSizeBytes);
  }
  v.bw = p.bw.value_or(v.bw);
  v.iops = p.iops.value_or(v.iops);
  v.reuseServer = p.reuseServer.value_or(v.reuseServer);
  if (p.tags) {
    for (const auto& [k, val] : *p.tags) v.tags[k] = val;
  }
  return Status::Ok();
}

// The parent snapshot of a clone: the named one, or (baseOn) a new transient snapshot of the
// volume. nullptr for a volume of its own.
Result<const VolumeRecord*> ParentOf(State& s, const CreateArgs& a, std::string* base_gid) {
  if (a.parent) return LookupLiveSnapshot(s, *a.parent);
  if (!a.base_on) return nullptr;
  SP_ASSIGN_OR_RETURN(const VolumeRecord* base, LookupVolume(s, *a.base_on));
  *base_gid = base->globalId;
  SnapshotArgs sa;
  sa.transient = true;
  SP_ASSIGN_OR_RETURN(VolumeRecord snap, TakeSnapshot(s, *base, sa));
  return &s.snapshots.at(snap.id);
}

Status CreateVolume(State& s, const CreateArgs& a, VolumeRecord& out, std::string* base_gid) {
  if (a.name && s.FindVolume(*a.name)) {
    return Error(Code::kAlreadyExists, "volume '{}' already exists", *a.name);
  }
  if (s.volumes.size() >= kMaxVolumes) {
    return Error(Code::kResourceExhausted, "at most {} volumes", kMaxVolumes);
  }
  VolumeRecord v;
  SP_ASSIGN_OR_RETURN(const VolumeRecord* parent, ParentOf(s, a, base_gid));
  if (parent != nullptr) {
    SP_RETURN_IF_ERROR(CloneSettings(s, *parent, a, v));
  } else {
    SP_RETURN_IF_ERROR(ResolveSettings(s, a, v));
    SP_ASSIGN_OR_RETURN(AllocResult alloc, AllocateVolume(AllocInput(s, v, kDefaultTableSize),
                                                          s.config.reuseServerImplicitOnDiskDown));
    v.targetDiskSets = std::move(alloc.sets);
    v.constraintsViolated = alloc.constraints_violated;
  }
  v.id = s.counters.nextVolumeId++;
  v.globalId = s.counters.clusterId + "." + Base36(s.counters.nextGlobalLocal++);
  v.name = a.name.value_or("~" + v.globalId);
  v.creationTimestamp = static_cast<int64_t>(std::time(nullptr));
  out = v;
  s.PutVolume(std::move(v));
  return Status::Ok();
}

Result<Json> VolumeCreate(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(CreateArgs a, ParseCreate(req));
  VolumeRecord created;
  std::string base_gid;
  SP_ASSIGN_OR_RETURN(int64_t gen,
                      c.Mutate([&](State& s) { return CreateVolume(s, a, created, &base_gid); }));
  // baseOn snapshotted a volume that may be attached: wait until its clients switched.
  if (!base_gid.empty()) WaitForVolumeClients(c, base_gid, gen);
  return ApiOk(gen, {{"name", created.name}, {"globalId", created.globalId}});
}

struct UpdateArgs {
  std::optional<std::string> rename, templ;
  std::optional<int64_t> size, size_add;
  std::optional<bool> shrink_ok;
  Policy policy;
};

Status ResizeVolume(VolumeRecord& v, const UpdateArgs& a) {
  if (a.size && a.size_add) {
    return Error(Code::kInvalidArgument, "give 'size' or 'sizeAdd', not both");
  }
  int64_t size = a.size ? *a.size : v.size + a.size_add.value_or(0);
  if (size < v.size && !a.shrink_ok.value_or(false)) {
    return Error(Code::kInvalidArgument, "shrinking volume '{}' needs shrinkOk", v.name);
  }
  if (size > kMaxVolumeSizeBytes) {
    return Error(Code::kInvalidArgument, "volume size exceeds {} bytes", kMaxVolumeSizeBytes);
  }
  v.size = size;
  return Status::Ok();
}

Status UpdateVolume(State& s, const std::string& name, const UpdateArgs& a) {
  SP_ASSIGN_OR_RETURN(const VolumeRecord* found, LookupVolume(s, name));
  VolumeRecord v = *found;  // changed here, then put back (State keeps its indexes)
  const Policy& p = a.policy;
  if (MovesData(p, v)) {
    return Error(Code::kUnimplemented,
                 "changing placement or replication of an existing volume (relocation) is not "
                 "implemented");
  }
  if (a.templ) {
    auto it = s.templates.find(*a.templ);
    if (it == s.templates.end())
      return Error(Code::kNotFound, "template '{}' does not exist", *a.templ);
    v.templateName = it->second.name;
    v.templateId = it->second.id;
  }
  SP_RETURN_IF_ERROR(ResizeVolume(v, a));
  if (p.bw) v.bw = *p.bw;
  if (p.iops) v.iops = *p.iops;
  if (p.reuseServer) v.reuseServer = *p.reuseServer;
  if (p.tags) {
    for (const auto& [k, val] : *p.tags) {
      if (val.empty()) {
        v.tags.erase(k);
      } else {
        v.tags[k] = val;
      }
    }
  }
  if (a.rename && *a.rename != v.name) {
    if (s.FindVolume(*a.rename)) {
      return Error(Code::kAlreadyExists, "volume '{}' already exists", *a.rename);
    }
    v.name = *a.rename;
  }
  s.PutVolume(std::move(v));
  return Status::Ok();
}

Result<Json> VolumeUpdate(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  UpdateArgs a;
  SP_RETURN_IF_ERROR(OptString(body, "rename", a.rename));
  if (a.rename) SP_RETURN_IF_ERROR(proto::ValidateVolumeName("rename", *a.rename));
  SP_RETURN_IF_ERROR(OptString(body, "template", a.templ));
  if (a.templ) SP_RETURN_IF_ERROR(proto::ValidateTemplateName("template", *a.templ));
  SP_RETURN_IF_ERROR(OptSize(body, "size", a.size));
  SP_RETURN_IF_ERROR(OptSize(body, "sizeAdd", a.size_add));
  SP_RETURN_IF_ERROR(OptBool(body, "shrinkOk", a.shrink_ok));
  SP_ASSIGN_OR_RETURN(a.policy, ParsePolicy(body));
  SP_ASSIGN_OR_RETURN(int64_t gen,
                      c.Mutate([&](State& s) { return UpdateVolume(s, req.args[0], a); }));
  return ApiOk(gen);
}

Result<Json> VolumeDelete(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, req.args[0]));
    if (!v->attachments.empty()) {
      return Error(Code::kFailedPrecondition, "volume '{}' is attached to client {}", v->name,
                   v->attachments.begin()->first);
    }
    s.EraseVolume(v->id);
    CollectSnapshots(s, NowUnix());  // bound or deleted parents it kept
    return Status::Ok();
  }));
  return ApiOk(gen);
}

// The volume goes back to the snapshot: a new empty top layer over the snapshot's chain (the
// snapshot's size), so attached clients switch layers as for a snapshot; the old top layer is
// dropped. The snapshot must be one of this volume: in its chain, or taken of it (same name and
// disk-set table; e.g. newer than a snapshot it was reverted to before).
Status RevertVolume(State& s, const std::string& name, const std::string& to, std::string* gid) {
  SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, name));
  SP_ASSIGN_OR_RETURN(const VolumeRecord* snap, LookupLiveSnapshot(s, to));
  const bool in_chain =
      std::find(v->parents.begin(), v->parents.end(), snap->id) != v->parents.end();
  if (!in_chain && !(snap->onVolume == v->name && snap->targetDiskSets == v->targetDiskSets &&
                     snap->replication == v->replication)) {
    return Error(Code::kInvalidArgument, "'{}' is not a snapshot of volume '{}'", snap->name,
                 v->name);
  }
  *gid = v->globalId;
  VolumeRecord next = *v;
  next.id = s.counters.nextVolumeId++;
  next.parents.assign(1, snap->id);
  next.parents.insert(next.parents.end(), snap->parents.begin(), snap->parents.end());
  next.size = snap->size;
  s.EraseVolume(v->id);
  s.PutVolume(std::move(next));
  CollectSnapshots(s, NowUnix());  // bound snapshots only the old top layer had as a child
  return Status::Ok();
}

Result<Json> VolumeRevert(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<std::string> to;
  SP_RETURN_IF_ERROR(OptString(body, "toSnapshot", to));
  if (!to) return Error(Code::kInvalidArgument, "missing 'toSnapshot'");
  SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("toSnapshot", *to));
  std::string gid;
  SP_ASSIGN_OR_RETURN(int64_t gen,
                      c.Mutate([&](State& s) { return RevertVolume(s, req.args[0], *to, &gid); }));
  if (!WaitForVolumeClients(c, gid, gen)) {
    return ApiOk(gen, {{"info", "not every client of the volume switched to the new layer yet"}});
  }
  return ApiOk(gen);
}

// The volume becomes a snapshot of the same name, id, globalId and chain (no data moves).
// Read-only attachments stay (now of the snapshot); read-write ones refuse it.
Status FreezeVolume(State& s, const std::string& name, int64_t delete_date) {
  SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, name));
  for (const auto& [client, at] : v->attachments) {
    if (at.rights == "rw") {
      return Error(Code::kFailedPrecondition, "volume '{}' is attached read-write to client {}",
                   v->name, client);
    }
  }
  if (v->name[0] == '#') {
    return Error(Code::kInvalidArgument, "'{}' cannot be a snapshot name (it starts with '#')",
                 v->name);
  }
  if (s.FindSnapshot(v->name)) {
    return Error(Code::kAlreadyExists, "snapshot '{}' already exists", v->name);
  }
  if (s.snapshots.size() >= kMaxSnapshots) {
    return Error(Code::kResourceExhausted, "at most {} snapshots", kMaxSnapshots);
  }
  VolumeRecord snap = *v;
  snap.onVolume = v->name;
  snap.autoName = snap.bound = snap.transient = snap.deleted = false;
  snap.targetDeleteDate = delete_date;
  s.EraseVolume(v->id);
  s.PutSnapshot(std::move(snap));
  CollectSnapshots(s, NowUnix());  // a date already past
  return Status::Ok();
}

Result<Json> VolumeFreeze(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  std::optional<int64_t> date;
  SP_RETURN_IF_ERROR(ParseDeleteDate(body, DeleteDateZero::kZeroMeansUnset, NowUnix(), date));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) {
    return FreezeVolume(s, req.args[0], date.value_or(0));
  }));
  return ApiOk(gen);
}

Result<Json> VolumeRebase(Cluster& c, const ApiRequest& req) {
  return Rebase(c, req, /*snapshot=*/false);
}

}  // namespace

void RegisterVolumeCalls(CallTable& t) {
  t["VolumesList"] = {Method::kGet, 0, VolumesList};
  t["Volume"] = {Method::kGet, 1, VolumeList};
  t["VolumeDescribe"] = {Method::kGet, 1, VolumeDescribe};
  t["VolumesGetStatus"] = {Method::kGet, 0, VolumesGetStatus};
  t["VolumesGetStatusQuick"] = {Method::kGet, 0, VolumesGetStatusQuick};
  t["VolumeCreate"] = {Method::kPost, 0, VolumeCreate};
  t["VolumeUpdate"] = {Method::kPost, 1, VolumeUpdate};
  t["VolumeDelete"] = {Method::kPost, 1, VolumeDelete};
  t["VolumeRevert"] = {Method::kPost, 1, VolumeRevert};
  t["VolumeFreeze"] = {Method::kPost, 1, VolumeFreeze};
  t["VolumeRebase"] = {Method::kPost, 1, VolumeRebase};
}

}  // namespace spindle::mgmt
