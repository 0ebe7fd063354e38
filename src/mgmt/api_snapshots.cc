// Snapshots (DESIGN.md §4): VolumeSnapshot, SnapshotsList, Snapshot, SnapshotDescribe,
// VolumeListSnapshots, SnapshotUpdate, SnapshotRebase, SnapshotDelete, SnapshotDeleteById, and
// the collection of deleted, bound, transient and scheduled-for-deletion snapshots. A snapshot
// is the volume's current layer frozen under the snapshot's name; the volume goes on in a new
// top layer whose chain continues with the snapshot's. Snapshotting an attached volume waits
// until its clients switched layers.
#include <algorithm>
#include <ctime>
#include <set>

#include "common/log.h"
#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {

// targetDeleteDate at most 9999-12-31; deleteAfter at most about 100 years.
constexpr int64_t kMaxDeleteDate = 253402300799;
constexpr int64_t kMaxDeleteAfterS = int64_t{100} * 366 * 86400;
// How often mgmt looks for snapshots whose targetDeleteDate passed.
constexpr std::chrono::milliseconds kDeleteCheckInterval{1000};

int64_t NowUnix() {
  return static_cast<int64_t>(std::time(nullptr));
}
// How long VolumeSnapshot waits for the volume's clients to switch to the new layer.
constexpr std::chrono::seconds kSnapshotSwitchWait{30};

Result<const VolumeRecord*> LookupSnapshot(const State& s, const std::string& name) {
  SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("snapshot", name));
  const VolumeRecord* v = s.FindSnapshot(name);
  if (v == nullptr) return Error(Code::kNotFound, "snapshot '{}' does not exist", name);
  return v;
}

Result<const VolumeRecord*> LookupLiveSnapshot(const State& s, const std::string& name) {
  SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupSnapshot(s, name));
  if (v->deleted) return Error(Code::kNotFound, "snapshot '{}' is deleted", name);
  return v;
}

std::vector<std::string> ChildrenOf(const State& s, int64_t id) {
  std::vector<std::string> out;
  for (int64_t child : s.children.Get(id)) {
    if (const VolumeRecord* v = s.FindLayer(child)) out.push_back(v->name);
  }
  return out;
}

Status ParseDeleteDate(const Json& body, DeleteDateZero zero, int64_t now_unix,
                       std::optional<int64_t>& out) {
  std::optional<int64_t> date, after;
  SP_RETURN_IF_ERROR(OptInt(body, "targetDeleteDate", date));
  SP_RETURN_IF_ERROR(OptInt(body, "deleteAfter", after));
  if (date && after) {
    return Error(Code::kInvalidArgument, "give 'targetDeleteDate' or 'deleteAfter', not both");
  }
  if (date && (*date < 0 || *date > kMaxDeleteDate)) {
    return Error(Code::kInvalidArgument, "invalid targetDeleteDate {}", *date);
  }
  if (after && (*after < 0 || *after > kMaxDeleteAfterS)) {
    return Error(Code::kInvalidArgument, "invalid deleteAfter {} (0..{} seconds)", *after,
                 kMaxDeleteAfterS);
  }
  if (!date && !after) return Status::Ok();
  const int64_t v = date ? *date : (*after == 0 ? 0 : now_unix + *after);
  if (v != 0 || zero == DeleteDateZero::kZeroClears) out = v;
  return Status::Ok();
}

namespace {

// The snapshot stays for its children: it is renamed "*<globalId>" (a name only a deleted
// snapshot takes, so its old name can be used again) and collected once childless.
void MarkDeleted(State& s, int64_t id) {
  VolumeRecord v = s.snapshots.at(id);
  v.deleted = true;
  v.targetDeleteDate = 0;
  std::string name = "*" + v.globalId;
  if (s.FindSnapshot(name) == nullptr) v.name = name;
  s.PutSnapshot(std::move(v));
}

bool DeleteIsDue(const VolumeRecord& v, int64_t now_unix) {
  return !v.deleted && v.targetDeleteDate != 0 && v.targetDeleteDate <= now_unix &&
         v.attachments.empty();
}

bool Collectible(const State& s, const VolumeRecord& v) {
  return (v.deleted || v.bound || v.transient) && v.attachments.empty() &&
         !s.children.contains(v.id);
}

// True when CollectSnapshots would change something (a cheap check under the read lock).
bool CollectionDue(const State& s, int64_t now_unix) {
  for (const auto& [id, _] : s.collectCandidates) {
    const VolumeRecord& v = s.snapshots.at(id);
    if (DeleteIsDue(v, now_unix) || Collectible(s, v)) return true;
  }
  return false;
}

}  // namespace

void CollectSnapshots(State& s, int64_t now_unix) {
  std::vector<int64_t> due;
  for (const auto& [id, _] : s.collectCandidates) {
    if (DeleteIsDue(s.snapshots.at(id), now_unix)) due.push_back(id);
  }
  for (int64_t id : due) MarkDeleted(s, id);
  // Each pass may free the parents of what it removed; a chain is at most as deep as there are
  // snapshots, so this ends.
  for (bool again = true; again;) {
    again = false;
    std::vector<int64_t> gone;
    for (const auto& [id, _] : s.collectCandidates) {
      if (Collectible(s, s.snapshots.at(id))) gone.push_back(id);
    }
    for (int64_t id : gone) {
      SP_LOG_INFO("snapshot {} (~{}) collected", s.snapshots.at(id).name,
                  s.snapshots.at(id).globalId);
      s.EraseSnapshot(id);
      again = true;
    }
  }
}

void RegisterSnapshotTasks(Cluster& c) {
  c.AddPeriodicTask(kDeleteCheckInterval, [&c] {
    const int64_t now = NowUnix();
    bool due = c.Read([&](const State& s, const Runtime&) { return CollectionDue(s, now); });
    if (!due) return;
    auto gen = c.Mutate([&](State& s) {
      CollectSnapshots(s, now);
      return Status::Ok();
    });
    if (!gen.ok()) SP_LOG_ERROR("scheduled snapshot deletion failed: {}", gen.status().ToString());
  });
}

Status RebaseCheck(const State& s, const VolumeRecord& v, const std::optional<std::string>& parent,
                   bool* changes) {
  std::vector<int64_t> chain;  // the new parents
  if (parent) {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* p, LookupLiveSnapshot(s, *parent));
    auto it = std::find(v.parents.begin(), v.parents.end(), p->id);
    if (it == v.parents.end()) {
      return Error(Code::kInvalidArgument, "'{}' is not an ancestor of '{}'", p->name, v.name);
    }
    chain.assign(it, v.parents.end());
  }
  *changes = chain != v.parents;
  if (!*changes) return Status::Ok();
  // The layers left out of the chain hold data the rebased volume or snapshot reads through;
  // it would have to be copied into its own layer first.
  const int64_t skipped = v.parents[0];
  auto sk = s.snapshots.find(skipped);
  return Error(Code::kUnimplemented,
               "rebasing '{}' past '{}' needs that snapshot's data copied into it (layer merge); "
               "Spindle's servers cannot merge layers yet",
               v.name, sk == s.snapshots.end() ? std::to_string(skipped) : sk->second.name);
}

Json SnapshotSummaryJson(const State& s, const VolumeRecord& snap, bool mc,
                         const std::string& cluster_name) {
  Json j = VolumeSummaryJson(s, snap, mc, cluster_name);
  j.update({{"onVolume", snap.onVolume},
            {"autoName", snap.autoName},
            {"bound", snap.bound},
            {"deleted", snap.deleted},
            {"transient", snap.transient},
            {"recoveringFromRemote", false}});
  if (snap.targetDeleteDate != 0) j["targetDeleteDate"] = snap.targetDeleteDate;
  if (snap.deleted) {
    // Kept for its children: with several no merge could ever remove it; with one it waits
    // for a merge Spindle does not do yet (it goes when the child goes).
    j["deleteBlocked"] = ChildrenOf(s, snap.id).size() > 1 ? "multiple children" : "pending";
  }
  return j;
}

Status CheckChainRoom(const VolumeRecord& v) {
  if (v.parents.size() + 2 <= kMaxChainLayers) return Status::Ok();
  return Error(Code::kResourceExhausted,
               "'{}' is {} layers deep; a chain has at most {} (delete older snapshots first)",
               v.name, v.parents.size() + 1, kMaxChainLayers);
}

Result<VolumeRecord> TakeSnapshot(State& s, const VolumeRecord& vol, const SnapshotArgs& a) {
  if (s.snapshots.size() >= kMaxSnapshots) {
    return Error(Code::kResourceExhausted, "at most {} snapshots", kMaxSnapshots);
  }
  SP_RETURN_IF_ERROR(CheckChainRoom(vol));
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
  snap.targetDeleteDate = a.targetDeleteDate;
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
  const std::string key = "~" + global_id;
  auto done = [&](const State& s, const Runtime& rt) {
    const VolumeRecord* v = s.FindVolume(key);
    if (v == nullptr) return true;
    for (const auto& [client, a] : v->attachments) {
      auto cl = s.clients.find(static_cast<uint32_t>(std::stoul(client)));
      auto ap = rt.clientApplied.find(static_cast<uint32_t>(std::stoul(client)));
      bool ok = cl == s.clients.end() || !cl->second.up ||
                (ap != rt.clientApplied.end() && ap->second >= gen);
      if (!ok) return false;
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
  std::optional<int64_t> delete_date;
  SP_RETURN_IF_ERROR(
      ParseDeleteDate(body, DeleteDateZero::kZeroMeansUnset, NowUnix(), delete_date));
  a.targetDeleteDate = delete_date.value_or(0);
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

// Deletes the snapshot now when nothing reads through it, else marks it deleted (kept for its
// children, collected when the last one goes). `info` says which.
Result<Json> DeleteSnapshot(Cluster& c, const std::string& name) {
  std::string info;
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupLiveSnapshot(s, name));
    if (!v->attachments.empty()) {
      return Error(Code::kFailedPrecondition, "snapshot '{}' is attached to client {}", v->name,
                   v->attachments.begin()->first);
    }
    std::vector<std::string> children = ChildrenOf(s, v->id);
    if (children.empty()) {
      s.EraseSnapshot(v->id);
    } else {
      info = fmt::format(
          "snapshot '{}' has {} child(ren), e.g. '{}'; it is marked deleted and kept for them "
          "until the last one is gone",
          v->name, children.size(), children.front());
      MarkDeleted(s, v->id);
    }
    CollectSnapshots(s, NowUnix());
    return Status::Ok();
  }));
  return info.empty() ? ApiOk(gen) : ApiOk(gen, {{"info", info}});
}

Result<Json> SnapshotDelete(Cluster& c, const ApiRequest& req) {
  return DeleteSnapshot(c, req.args[0]);
}

Result<Json> SnapshotDeleteById(Cluster& c, const ApiRequest& req) {
  if (!proto::IsGlobalId(req.args[0])) {
    return Error(Code::kInvalidArgument, "'{}' is not a global volume id", req.args[0]);
  }
  return DeleteSnapshot(c, "~" + req.args[0]);
}

struct SnapshotUpdateArgs {
  std::optional<std::string> rename, templ;
  std::optional<bool> bind;
  std::optional<int64_t> delete_date;
  Policy policy;
};

Status UpdateSnapshot(State& s, const std::string& name, const SnapshotUpdateArgs& a) {
  SP_ASSIGN_OR_RETURN(const VolumeRecord* found, LookupLiveSnapshot(s, name));
  VolumeRecord v = *found;
  const Policy& p = a.policy;
  if ((p.placeAll && *p.placeAll != v.placeAll) || (p.placeHead && *p.placeHead != v.placeHead) ||
      (p.placeTail && *p.placeTail != v.placeTail) ||
      (p.replication && *p.replication != v.replication)) {
    return Error(Code::kUnimplemented,
                 "changing placement or replication of a snapshot (relocation) is not "
                 "implemented");
  }
  if (a.templ) {
    auto it = s.templates.find(*a.templ);
    if (it == s.templates.end())
      return Error(Code::kNotFound, "template '{}' does not exist", *a.templ);
    v.templateName = it->second.name;
    v.templateId = it->second.id;
  }
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
  if (a.bind) v.bound = *a.bind;
  if (a.delete_date) v.targetDeleteDate = *a.delete_date;
  if (a.rename && *a.rename != v.name) {
    if (s.FindSnapshot(*a.rename)) {
      return Error(Code::kAlreadyExists, "snapshot '{}' already exists", *a.rename);
    }
    v.name = *a.rename;
    v.autoName = false;
  }
  s.PutSnapshot(std::move(v));
  // A new bind on a childless snapshot, or a date already past, takes effect now.
  CollectSnapshots(s, NowUnix());
  return Status::Ok();
}

Result<Json> SnapshotUpdate(Cluster& c, const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("snapshot", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  SnapshotUpdateArgs a;
  SP_RETURN_IF_ERROR(OptString(body, "rename", a.rename));
  if (a.rename) SP_RETURN_IF_ERROR(proto::ValidateSnapshotName("rename", *a.rename));
  SP_RETURN_IF_ERROR(OptString(body, "template", a.templ));
  if (a.templ) SP_RETURN_IF_ERROR(proto::ValidateTemplateName("template", *a.templ));
  SP_RETURN_IF_ERROR(OptBool(body, "bind", a.bind));
  SP_RETURN_IF_ERROR(ParseDeleteDate(body, DeleteDateZero::kZeroClears, NowUnix(), a.delete_date));
  SP_ASSIGN_OR_RETURN(a.policy, ParsePolicy(body));
  SP_ASSIGN_OR_RETURN(int64_t gen,
                      c.Mutate([&](State& s) { return UpdateSnapshot(s, req.args[0], a); }));
  return ApiOk(gen);
}

}  // namespace

Result<Json> Rebase(Cluster& c, const ApiRequest& req, bool snapshot) {
  SP_RETURN_IF_ERROR(snapshot ? proto::ValidateSnapshotNameOrGlobalId("snapshot", req.args[0])
                              : proto::ValidateVolumeNameOrGlobalId("volume", req.args[0]));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  std::optional<std::string> parent;
  SP_RETURN_IF_ERROR(OptString(body, "parentName", parent));
  if (parent) SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("parentName", *parent));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, snapshot ? LookupLiveSnapshot(s, req.args[0])
                                                        : LookupVolume(s, req.args[0]));
    bool changes = false;
    return RebaseCheck(s, *v, parent, &changes);
  }));
  return ApiOk(gen);
}

namespace {

Result<Json> SnapshotRebase(Cluster& c, const ApiRequest& req) {
  return Rebase(c, req, /*snapshot=*/true);
}

}  // namespace

void RegisterSnapshotCalls(CallTable& t) {
  t["VolumeSnapshot"] = {Method::kPost, 1, VolumeSnapshot};
  t["SnapshotsList"] = {Method::kGet, 0, SnapshotsList};
  t["Snapshot"] = {Method::kGet, 1, SnapshotList};
  t["SnapshotDescribe"] = {Method::kGet, 1, SnapshotDescribe};
  t["VolumeListSnapshots"] = {Method::kGet, 1, VolumeListSnapshots};
  t["SnapshotDelete"] = {Method::kPost, 1, SnapshotDelete};
  t["SnapshotDeleteById"] = {Method::kPost, 1, SnapshotDeleteById};
  t["SnapshotUpdate"] = {Method::kPost, 1, SnapshotUpdate};
  t["SnapshotRebase"] = {Method::kPost, 1, SnapshotRebase};
  t["VolumesGroupSnapshot"] = {Method::kPost, 0, VolumesGroupSnapshot};
}

}  // namespace spindle::mgmt
