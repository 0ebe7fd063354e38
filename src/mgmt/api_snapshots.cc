// Snapshots (DESIGN.md §4): VolumeSnapshot, SnapshotsList, Snapshot, SnapshotDescribe,
// VolumeListSnapshots, SnapshotDelete. A snapshot is the volume's current layer frozen under
// the snapshot's name; the volume goes on in a new top layer whose chain continues with the
// snapshot's. Snapshotting an attached volume waits until its clients switched layers.
#include <ctime>

#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {

constexpr size_t kMaxSnapshots = 65536;
// How long VolumeSnapshot waits for the volume's clients to switch to the new layer.
constexpr std::chrono::seconds kSnapshotSwitchWait{30};

Result<const VolumeRecord*> LookupSnapshot(const State& s, const std::string& name) {
  SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("snapshot", name));
  const VolumeRecord* v = s.FindSnapshot(name);
  if (v == nullptr) return Error(Code::kNotFound, "snapshot '{}' does not exist", name);
  return v;
}

Json SnapshotSummaryJson(const State& s, const VolumeRecord& snap, bool mc,
                         const std::string& cluster_name) {
  Json j = VolumeSummaryJson(s, snap, mc, cluster_name);
  j.update({{"onVolume", snap.onVolume},
            {"autoName", snap.autoName},
            {"bound", snap.bound},
            {"deleted", false},
            {"transient", snap.transient},
            {"recoveringFromRemote", false}});
  if (snap.targetDeleteDate != 0) j["targetDeleteDate"] = snap.targetDeleteDate;
  return j;
}

Result<VolumeRecord> TakeSnapshot(State& s, const VolumeRecord& vol, const SnapshotArgs& a) {
  if (s.snapshots.size() >= kMaxSnapshots) {
    return Error(Code::kResourceExhausted, "at most {} snapshots", kMaxSnapshots);
  }
  const int64_t local = s.counters.nextGlobalLocal;
  std::string base = vol.name[0] == '~' ? vol.globalId : vol.name;
  std::string name = a.name.value_or(base + "@" + std::to_string(local));
  if (s.FindSnapshot(name))
    return Error(Code::kAlreadyExists, "snapshot '{}' already exists", name);
  SP_RETURN_IF_ERROR(proto::ValidateSnapshotName("name", name));
  ++s.counters.nextGlobalLocal;
  VolumeRecord snap = vol;  // the frozen layer keeps the id, settings, chain and table
  snap.attachments.clear();
  snap.globalId = s.counters.clusterId + "." + Base36(local);
  snap.name = name;
  snap.onVolume = vol.name;
  snap.autoName = !a.name.has_value();
  snap.bound = a.bind;
  snap.transient = a.transient;
  snap.creationTimestamp = static_cast<int64_t>(std::time(nullptr));
  for (const auto& [k, val] : a.tags) snap.tags[k] = val;
  VolumeRecord next = vol;
  next.id = s.counters.nextVolumeId++;
  next.parents.insert(next.parents.begin(), vol.id);
  s.EraseVolume(vol.id);
  s.PutVolume(std::move(next));
  s.PutSnapshot(snap);
  return snap;
}

bool WaitForVolumeClients(Cluster& c, const std::string& global_id, int64_t gen) {
  auto done = [&](const State& s, const Runtime& rt) {
    for (const auto& [_, v] : s.volumes) {
      if (v.globalId != global_id) continue;
      for (const auto& [client, a] : v.attachments) {
        auto cl = s.clients.find(static_cast<uint32_t>(std::stoul(client)));
        auto ap = rt.clientApplied.find(static_cast<uint32_t>(std::stoul(client)));
        bool ok = cl == s.clients.end() || !cl->second.up ||
                  (ap != rt.clientApplied.end() && ap->second >= gen);
        if (!ok) return false;
      }
    }
    return true;
  };
  return c.WaitUntil(done, kSnapshotSwitchWait);
}

namespace {

Result<Json> VolumeSnapshot(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  SnapshotArgs a;
  std::optional<bool> bind;
  std::optional<std::map<std::string, std::string>> tags;
  SP_RETURN_IF_ERROR(OptString(body, "name", a.name));
  if (a.name) SP_RETURN_IF_ERROR(proto::ValidateSnapshotName("name", *a.name));
  SP_RETURN_IF_ERROR(OptBool(body, "bind", bind));
  a.bind = bind.value_or(false);
  if (body.contains("targetDeleteDate") || body.contains("deleteAfter")) {
    return Error(Code::kUnimplemented, "scheduled snapshot deletion is not implemented yet");
  }
  SP_ASSIGN_OR_RETURN(Policy p, ParsePolicy(Json{{"tags", body.value("tags", Json::object())}}));
  if (p.tags) a.tags = *p.tags;
  VolumeRecord snap;
  std::string gid;
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, req.args[0]));
    gid = v->globalId;
    SP_ASSIGN_OR_RETURN(snap, TakeSnapshot(s, *v, a));
    return Status::Ok();
  }));
  Json extra = {{"snapshotGlobalId", snap.globalId}, {"snapshotVisibleVolumeId", snap.id}};
  if (snap.autoName) extra["autoName"] = snap.name;
  if (!WaitForVolumeClients(c, gid, gen)) {
    extra["info"] = "not every client of the volume switched to the new layer yet";
  }
  return ApiOk(gen, std::move(extra));
}

std::string ClusterName(const Cluster& c) {
  return c.options().cluster_name;
}

Result<Json> SnapshotsList(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) {
    Json out = Json::array();
    for (const auto& [_, v] : s.snapshots) {
      out.push_back(SnapshotSummaryJson(s, v, req.multi_cluster, ClusterName(c)));
    }
    return out;
  });
}

Result<Json> SnapshotList(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupSnapshot(s, req.args[0]));
    return Json::array({SnapshotSummaryJson(s, *v, req.multi_cluster, ClusterName(c))});
  });
}

Result<Json> SnapshotDescribe(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupSnapshot(s, req.args[0]));
    Json j = SnapshotSummaryJson(s, *v, req.multi_cluster, ClusterName(c));
    j["targetDiskSets"] = v->targetDiskSets;
    Json objects = Json::array();
    for (int64_t i = 0; i < ObjectsCount(*v); ++i) {
      objects.push_back(v->targetDiskSets[static_cast<size_t>(i) % v->targetDiskSets.size()]);
    }
    j["objects"] = std::move(objects);
    return j;
  });
}

// The snapshots under a volume, nearest first.
Result<Json> VolumeListSnapshots(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, req.args[0]));
    Json out = Json::array();
    for (int64_t layer : v->parents) {
      auto it = s.snapshots.find(layer);
      if (it != s.snapshots.end()) {
        out.push_back(SnapshotSummaryJson(s, it->second, req.multi_cluster, ClusterName(c)));
      }
    }
    return out;
  });
}

// Names of the volumes and snapshots whose nearest parent is `id`.
std::vector<std::string> ChildrenOf(const State& s, int64_t id) {
  std::vector<std::string> out;
  for (const auto* m : {&s.volumes, &s.snapshots}) {
    for (const auto& [_, v] : *m) {
      if (!v.parents.empty() && v.parents.front() == id) out.push_back(v.name);
    }
  }
  return out;
}

Result<Json> SnapshotDelete(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupSnapshot(s, req.args[0]));
    std::vector<std::string> children = ChildrenOf(s, v->id);
    if (!children.empty()) {
      return Error(Code::kFailedPrecondition,
                   "snapshot '{}' has {} child(ren), e.g. '{}'; deleting a snapshot with "
                   "children needs merging its data into them, which is not implemented yet",
                   v->name, children.size(), children.front());
    }
    if (!v->attachments.empty()) {
      return Error(Code::kFailedPrecondition, "snapshot '{}' is attached to client {}", v->name,
                   v->attachments.begin()->first);
    }
    s.EraseSnapshot(v->id);
    return Status::Ok();
  }));
  return ApiOk(gen);
}

}  // namespace

void RegisterSnapshotCalls(CallTable& t) {
  t["VolumeSnapshot"] = {Method::kPost, 1, VolumeSnapshot};
  t["SnapshotsList"] = {Method::kGet, 0, SnapshotsList};
  t["Snapshot"] = {Method::kGet, 1, SnapshotList};
  t["SnapshotDescribe"] = {Method::kGet, 1, SnapshotDescribe};
  t["VolumeListSnapshots"] = {Method::kGet, 1, VolumeListSnapshots};
  t["SnapshotDelete"] = {Method::kPost, 1, SnapshotDelete};
}

}  // namespace spindle::mgmt
