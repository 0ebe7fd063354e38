// AttachmentsList and VolumesReassign: which client may use which volume, read-write or
// read-only. Rules: a volume is attached read-write to at most one client, and never
// read-write and read-only at once; `force` detaches whoever is in the way.
#include <set>

#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr size_t kMaxReassignItems = 4096;
constexpr uint32_t kMaxAttachmentsPerClient = 1024;  // AttachmentPos 0..1023

struct Reassign {
  std::string volume;     // or the snapshot's name
  bool snapshot = false;  // a snapshot: read-only attachments only
  bool detach_all = false;
  std::vector<uint32_t> detach, ro, rw;
  bool force = false;
};

Result<Reassign> ParseItem(const Json& item) {
  if (!item.is_object()) return Error(Code::kInvalidArgument, "reassign items must be objects");
  Reassign r;
  std::optional<std::string> volume;
  std::optional<std::vector<uint32_t>> ro, rw, detach;
  std::optional<bool> force;
  r.snapshot = !item.contains("volume") && item.contains("snapshot");
  SP_RETURN_IF_ERROR(OptString(item, r.snapshot ? "snapshot" : "volume", volume));
  if (!volume) return Error(Code::kInvalidArgument, "reassign item without 'volume'");
  if (r.snapshot) {
    SP_RETURN_IF_ERROR(proto::ValidateSnapshotNameOrGlobalId("snapshot", *volume));
  } else {
    SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", *volume));
  }
  SP_RETURN_IF_ERROR(OptClientIdList(item, "ro", ro));
  SP_RETURN_IF_ERROR(OptClientIdList(item, "rw", rw));
  SP_RETURN_IF_ERROR(OptBool(item, "force", force));
  auto d = item.find("detach");
  if (d != item.end() && d->is_string() && d->get<std::string>() == "all") {
    r.detach_all = true;
  } else {
    SP_RETURN_IF_ERROR(OptClientIdList(item, "detach", detach));
  }
  r.volume = *volume;
  r.ro = ro.value_or(std::vector<uint32_t>{});
  r.rw = rw.value_or(std::vector<uint32_t>{});
  r.detach = detach.value_or(std::vector<uint32_t>{});
  r.force = force.value_or(false);
  if (r.snapshot && !r.rw.empty()) {
    return Error(Code::kInvalidArgument, "snapshot '{}' can only be attached read-only", r.volume);
  }
  if (r.rw.size() > 1) {
    return Error(Code::kInvalidArgument, "volume '{}' can be read-write on one client only",
                 r.volume);
  }
  if (!r.rw.empty() && !r.ro.empty()) {
    return Error(Code::kInvalidArgument, "volume '{}' cannot be attached rw and ro at once",
                 r.volume);
  }
  return r;
}

uint32_t FreePos(const State& s, uint32_t client) {
  std::set<uint32_t> used;
  const std::string key = std::to_string(client);
  for (int64_t id : s.attachedTo.Get(client)) {
    const VolumeRecord* v = s.FindLayer(id);
    if (v == nullptr) continue;
    auto it = v->attachments.find(key);
    if (it != v->attachments.end()) used.insert(it->second.pos);
  }
  uint32_t pos = 0;
  while (used.count(pos)) ++pos;
  return pos;
}

Status Attach(State& s, VolumeRecord& v, uint32_t client, const std::string& rights, bool force) {
  if (!s.clients.count(client)) return Error(Code::kNotFound, "client {} is not known", client);
  std::string key = std::to_string(client);
  for (auto it = v.attachments.begin(); it != v.attachments.end();) {
    bool conflict = it->first != key && (rights == "rw" || it->second.rights == "rw");
    if (!conflict) {
      ++it;
      continue;
    }
    if (!force) {
      return Error(Code::kFailedPrecondition, "volume '{}' is attached {} to client {}", v.name,
                   it->second.rights, it->first);
    }
    it = v.attachments.erase(it);
  }
  auto cur = v.attachments.find(key);
  if (cur != v.attachments.end()) {
    cur->second.rights = rights;
    return Status::Ok();
  }
  uint32_t pos = FreePos(s, client);
  if (pos >= kMaxAttachmentsPerClient) {
    return Error(Code::kResourceExhausted, "client {} has {} attachments", client, pos);
  }
  v.attachments[key] = {rights, pos};
  return Status::Ok();
}

// client id -> globalIds of volumes open there (NBD connections or a kernel device in use).
using OpenVolumes = std::map<uint32_t, std::set<std::string>>;

// As StorPool does, a detach is refused while the device is in use on that client, unless
// forced (a forced detach closes the client's connections to the volume).
Status CheckNotOpen(const VolumeRecord& v, uint32_t client, const Reassign& r,
                    const OpenVolumes& open) {
  if (r.force || !v.attachments.count(std::to_string(client))) return Status::Ok();
  auto it = open.find(client);
  if (it == open.end() || !it->second.count(v.globalId)) return Status::Ok();
  return Error(Code::kFailedPrecondition,
               "volume {} is in use on client {}; detach with force to close it", v.name, client);
}

// The volume or snapshot an item names.
Result<const VolumeRecord*> Target(const State& s, const Reassign& r) {
  // A deleted snapshot (kept for its children) can still be detached, not attached.
  if (r.snapshot && (!r.ro.empty() || !r.rw.empty())) return LookupLiveSnapshot(s, r.volume);
  if (r.snapshot) return LookupSnapshot(s, r.volume);
  return LookupVolume(s, r.volume);
}

Status ApplyReassign(State& s, const Reassign& r, const OpenVolumes& open) {
  SP_ASSIGN_OR_RETURN(const VolumeRecord* found, Target(s, r));
  VolumeRecord v = *found;  // changed here, then put back (State keeps its indexes)
  auto put = [&] {
    if (r.snapshot) {
      s.PutSnapshot(v);
    } else {
      s.PutVolume(v);
    }
  };
  std::vector<uint32_t> leaving = r.detach;
  if (r.detach_all) {
    for (const auto& [client, _] : v.attachments) leaving.push_back(std::stoul(client));
  }
  for (uint32_t c : leaving) SP_RETURN_IF_ERROR(CheckNotOpen(v, c, r, open));
  if (r.detach_all) v.attachments.clear();
  for (uint32_t c : r.detach) v.attachments.erase(std::to_string(c));
  put();  // the positions freed here can be taken again below
  for (uint32_t c : r.rw) SP_RETURN_IF_ERROR(Attach(s, v, c, "rw", r.force));
  for (uint32_t c : r.ro) SP_RETURN_IF_ERROR(Attach(s, v, c, "ro", r.force));
  put();
  return Status::Ok();
}

Result<std::vector<Reassign>> ParseItems(const Json* list) {
  if (list == nullptr || !list->is_array()) {
    return Error(Code::kInvalidArgument, "reassign needs a JSON array");
  }
  if (list->size() > kMaxReassignItems) {
    return Error(Code::kInvalidArgument, "at most {} reassign items", kMaxReassignItems);
  }
  std::vector<Reassign> items;
  for (const Json& item : *list) {
    SP_ASSIGN_OR_RETURN(Reassign r, ParseItem(item));
    items.push_back(std::move(r));
  }
  return items;
}

// Applies the items as one change; `touched` gets every client attached, detached or changed.
Result<int64_t> ApplyAll(Cluster& c, const std::vector<Reassign>& items,
                         std::set<uint32_t>* touched) {
  OpenVolumes open = c.Read([](const State&, const Runtime& rt) { return rt.clientOpen; });
  return c.Mutate([&](State& s) -> Status {
    for (const Reassign& r : items) {
      if (touched != nullptr) {
        SP_ASSIGN_OR_RETURN(const VolumeRecord* v, Target(s, r));
        for (const auto& [client, _] : v->attachments) touched->insert(std::stoul(client));
        touched->insert(r.rw.begin(), r.rw.end());
        touched->insert(r.ro.begin(), r.ro.end());
      }
      SP_RETURN_IF_ERROR(ApplyReassign(s, r, open));
    }
    return Status::Ok();
  });
}

Result<Json> VolumesReassign(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::vector<Reassign> items, ParseItems(req.body ? &*req.body : nullptr));
  SP_ASSIGN_OR_RETURN(int64_t gen, ApplyAll(c, items, nullptr));
  return ApiOk(gen);
}

// attachTimeout absent: wait up to kMaxAttachWaitS; 0: don't wait.
constexpr int64_t kMaxAttachWaitS = 300;

// VolumesReassignWait: VolumesReassign, then waits until every client involved that is up has
// applied the new generation. On timeout the change stands; `info` names the late clients.
Result<Json> VolumesReassignWait(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<int64_t> timeout;
  SP_RETURN_IF_ERROR(OptInt(body, "attachTimeout", timeout));
  if (timeout && *timeout < 0) return Error(Code::kInvalidArgument, "attachTimeout < 0");
  auto list = body.find("reassign");
  SP_ASSIGN_OR_RETURN(std::vector<Reassign> items,
                      ParseItems(list == body.end() ? nullptr : &*list));
  std::set<uint32_t> touched;
  SP_ASSIGN_OR_RETURN(int64_t gen, ApplyAll(c, items, &touched));
  int64_t wait_s = std::min(timeout.value_or(kMaxAttachWaitS), kMaxAttachWaitS);
  auto late = [&](const State& s, const Runtime& rt) {
    std::vector<uint32_t> out;
    for (uint32_t id : touched) {
      auto cl = s.clients.find(id);
      auto ap = rt.clientApplied.find(id);
      bool done = cl == s.clients.end() || !cl->second.up ||
                  (ap != rt.clientApplied.end() && ap->second >= gen);
      if (!done) out.push_back(id);
    }
    return out;
  };
  if (wait_s > 0) {
    c.WaitUntil([&](const State& s, const Runtime& rt) { return late(s, rt).empty(); },
                std::chrono::seconds(wait_s));
  }
  std::vector<uint32_t> missing =
      c.Read([&](const State& s, const Runtime& rt) { return late(s, rt); });
  if (missing.empty()) return ApiOk(gen);
  std::string names;
  for (uint32_t id : missing) names += (names.empty() ? "" : ", ") + std::to_string(id);
  return ApiOk(gen, {{"info", "clients not yet updated: " + names}});
}

Result<Json> AttachmentsList(Cluster& c, const ApiRequest& req) {
  return c.Read([&](const State& s, const Runtime&) {
    Json out = Json::array();
    for (const auto* m : {&s.volumes, &s.snapshots}) {
      const bool snap = m == &s.snapshots;
      for (const auto& [_, v] : *m) {
        for (const auto& [client, a] : v.attachments) {
          Json j = {{"volume", v.name},   {"snapshot", snap}, {"client", std::stoul(client)},
                    {"rights", a.rights}, {"pos", a.pos},     {"globalId", v.globalId}};
          if (req.multi_cluster) j["clusterId"] = s.counters.clusterId;
          out.push_back(std::move(j));
        }
      }
    }
    return out;
  });
}

}  // namespace

void RegisterAttachmentCalls(CallTable& t) {
  t["AttachmentsList"] = {Method::kGet, 0, AttachmentsList};
  t["VolumesReassign"] = {Method::kPost, 0, VolumesReassign};
  t["VolumesReassignWait"] = {Method::kPost, 0, VolumesReassignWait};
}

}  // namespace spindle::mgmt
