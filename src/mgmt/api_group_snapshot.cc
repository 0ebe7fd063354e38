// VolumesGroupSnapshot: snapshots of several volumes at one crash-consistent point, even when
// they are written by different clients (docs/decisions/0007-group-snapshot.md).
//
// A volume's own snapshot needs no cut: its one writer switches layers between two writes. A
// group needs one: without it client A could switch and acknowledge a write made after the cut
// while client B, not yet switched, still puts into its frozen layer a write that came after
// A's. So the call runs in two phases, over the Runtime's GroupCut:
//   1. every up client attached read-write to one of the volumes is told (in its ClientState
//      long-poll, which the cut wakes) to hold new writes to them and to drain those in flight;
//      it answers ClientPaused;
//   2. when all have, the snapshots are committed as one change; the ClientState of that
//      generation carries the new layers and no pause, so each client switches, then lets the
//      held writes go into the new layers.
// Every wait is bounded; a cut that cannot complete is dropped (the clients resume in the old
// layers) and the call fails with a transient error.
#include <algorithm>
#include <set>

#include "common/log.h"
#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr size_t kMaxGroupVolumes = 1024;
// How long the clients get to hold and drain their writes.
constexpr std::chrono::milliseconds kCutPauseWait{10000};
// How long a group snapshot waits for another one's cut to end (one cut at a time).
constexpr std::chrono::milliseconds kCutSlotWait{10000};

struct GroupItem {
  std::string volume;  // as given: a name or "~globalId"
  SnapshotArgs args;
};

Result<GroupItem> ParseItem(const Json& item, const std::map<std::string, std::string>& tags) {
  if (!item.is_object()) return Error(Code::kInvalidArgument, "'volumes' holds objects");
  GroupItem g;
  std::optional<std::string> volume;
  SP_RETURN_IF_ERROR(OptString(item, "volume", volume));
  if (!volume) return Error(Code::kInvalidArgument, "group snapshot item without 'volume'");
  SP_RETURN_IF_ERROR(proto::ValidateVolumeNameOrGlobalId("volume", *volume));
  g.volume = *volume;
  SP_RETURN_IF_ERROR(OptString(item, "name", g.args.name));
  if (g.args.name) SP_RETURN_IF_ERROR(proto::ValidateSnapshotName("name", *g.args.name));
  std::optional<std::map<std::string, std::string>> own;
  SP_RETURN_IF_ERROR(OptTags(item, "tags", own));
  g.args.tags = tags;  // the group's tags, then the item's own over them
  for (const auto& [k, v] : own.value_or(std::map<std::string, std::string>{})) g.args.tags[k] = v;
  return g;
}

// GroupSnapshotsSpec: {"volumes": [{"volume", "name"?, "tags"?}...], "tags"?}.
Result<std::vector<GroupItem>> ParseGroup(const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  auto list = body.find("volumes");
  if (list == body.end() || !list->is_array() || list->empty()) {
    return Error(Code::kInvalidArgument, "'volumes' must be a non-empty list");
  }
  if (list->size() > kMaxGroupVolumes) {
    return Error(Code::kInvalidArgument, "at most {} volumes in a group snapshot",
                 kMaxGroupVolumes);
  }
  std::optional<std::map<std::string, std::string>> tags;
  SP_RETURN_IF_ERROR(OptTags(body, "tags", tags));
  const auto group_tags = tags.value_or(std::map<std::string, std::string>{});
  std::vector<GroupItem> items;
  for (const Json& item : *list) {
    SP_ASSIGN_OR_RETURN(GroupItem g, ParseItem(item, group_tags));
    items.push_back(std::move(g));
  }
  return items;
}

// globalId → the up clients it is attached read-write to.
using Writers = std::map<std::string, std::set<uint32_t>>;

Writers WritersOf(const State& s, const std::set<std::string>& gids) {
  Writers out;
  for (const std::string& gid : gids) {
    const VolumeRecord* v = s.FindVolume("~" + gid);
    if (v == nullptr) continue;  // gone: the commit's lookup reports it
    auto& w = out[gid];
    for (const auto& [client, a] : v->attachments) {
      const auto id = static_cast<uint32_t>(std::stoul(client));
      auto cl = s.clients.find(id);
      if (a.rights == "rw" && cl != s.clients.end() && cl->second.up) w.insert(id);
    }
  }
  return out;
}

// Checks the items against the state before anything is paused: every volume exists, none is
// named twice, no new snapshot name is taken. Returns the volumes' globalIds (item order).
Result<std::vector<std::string>> Precheck(const State& s, const std::vector<GroupItem>& items) {
  std::vector<std::string> gids;
  std::set<std::string> seen, names;
  for (const GroupItem& g : items) {
    SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, g.volume));
    if (!seen.insert(v->globalId).second) {
      return Error(Code::kInvalidArgument, "volume '{}' is named twice", v->name);
    }
    if (g.args.name && (s.FindSnapshot(*g.args.name) || !names.insert(*g.args.name).second)) {
      return Error(Code::kAlreadyExists, "snapshot '{}' already exists", *g.args.name);
    }
    gids.push_back(v->globalId);
  }
  return gids;
}

// Claims the one cut slot for `cut` (assigning its id), waiting up to kCutSlotWait for another
// group snapshot's cut to end. The ClientState long-polls of its clients wake up.
Result<int64_t> BeginCut(Cluster& c, GroupCut cut) {
  const auto deadline = std::chrono::steady_clock::now() + kCutSlotWait;
  for (;;) {
    int64_t id = 0;
    c.UpdateRuntime([&](Runtime& rt) {
      if (rt.cut) return;
      id = rt.nextCutId++;
      cut.id = id;
      rt.cut = std::move(cut);
    });
    if (id != 0) return id;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    bool free = left.count() > 0 &&
                c.WaitUntil([](const State&, const Runtime& rt) { return !rt.cut; }, left);
    if (!free) return Error(Code::kUnavailable, "another group snapshot is being taken; retry");
  }
}

// Drops the cut (committed or not): clients still holding writes for it let them go.
void EndCut(Cluster& c, int64_t id) {
  c.UpdateRuntime([&](Runtime& rt) {
    if (rt.cut && rt.cut->id == id) rt.cut.reset();
  });
}

// OK once every client of cut `id` holds and drained its volumes; kUnavailable when the cut
// cannot complete (a client went down, the writers changed); `*waiting` tells the rest apart.
Status CutStatus(const State& s, const Runtime& rt, int64_t id, const Writers& writers,
                 bool* waiting) {
  *waiting = false;
  if (!rt.cut || rt.cut->id != id) return Error(Code::kInternal, "group snapshot cut lost");
  std::set<std::string> gids;
  for (const auto& [gid, _] : writers) gids.insert(gid);
  if (WritersOf(s, gids) != writers) {
    return Error(Code::kUnavailable,
                 "the volumes' read-write attachments changed during the group snapshot; retry");
  }
  for (const auto& [client, want] : rt.cut->clients) {
    auto p = rt.cut->paused.find(client);
    const bool held = p != rt.cut->paused.end() &&
                      std::includes(p->second.begin(), p->second.end(), want.begin(), want.end());
    if (!held) *waiting = true;
  }
  return Status::Ok();
}

// Phase 1: asks the writers to hold and drain, waits (bounded) until they all did. On success
// the cut stays for the commit; on failure it is already dropped.
Result<int64_t> PauseWriters(Cluster& c, const Writers& writers) {
  GroupCut cut;
  for (const auto& [gid, clients] : writers) {
    for (uint32_t client : clients) cut.clients[client].insert(gid);
  }
  SP_ASSIGN_OR_RETURN(int64_t id, BeginCut(c, std::move(cut)));
  Status st = Status::Ok();
  auto settled = [&](const State& s, const Runtime& rt) {
    bool waiting = false;
    st = CutStatus(s, rt, id, writers, &waiting);
    return !st.ok() || !waiting;
  };
  if (!c.WaitUntil(settled, kCutPauseWait) && st.ok()) {
    std::string late = c.Read([&](const State&, const Runtime& rt) {
      std::string out;
      if (!rt.cut) return out;
      for (const auto& [client, want] : rt.cut->clients) {
        auto p = rt.cut->paused.find(client);
        if (p == rt.cut->paused.end() ||
            !std::includes(p->second.begin(), p->second.end(), want.begin(), want.end())) {
          out += (out.empty() ? "" : ", ") + std::to_string(client);
        }
      }
      return out;
    });
    st = Error(Code::kUnavailable, "client(s) {} did not hold their writes within {} ms; retry",
               late, kCutPauseWait.count());
  }
  if (!st.ok()) {
    EndCut(c, id);
    SP_LOG_WARN("group snapshot cut {} abandoned: {}", id, st.ToString());
    return st;
  }
  return id;
}

Json ResultJson(const VolumeRecord& snap, const std::string& volume_gid) {
  return {{"volume", snap.onVolume},
          {"volumeGlobalId", volume_gid},
          {"snapshot", snap.name},
          {"remoteId", snap.globalId},
          {"snapshotGlobalId", snap.globalId}};
}

}  // namespace

std::optional<PauseView> PauseFor(const State& s, const Runtime& rt, uint32_t client) {
  if (!rt.cut) return std::nullopt;
  const GroupCut& cut = *rt.cut;
  if (cut.commitGeneration != 0 && s.generation >= cut.commitGeneration) return std::nullopt;
  auto it = cut.clients.find(client);
  if (it == cut.clients.end()) return std::nullopt;
  return PauseView{cut.id, &it->second};
}

void RecordPaused(Runtime& rt, uint32_t client, int64_t cut, std::set<std::string> volumes) {
  if (rt.cut && rt.cut->id == cut) rt.cut->paused[client] = std::move(volumes);
}

Result<Json> VolumesGroupSnapshot(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::vector<GroupItem> items, ParseGroup(req));
  Writers writers;
  SP_ASSIGN_OR_RETURN(
      std::vector<std::string> gids,
      c.Read([&](const State& s, const Runtime&) -> Result<std::vector<std::string>> {
        SP_ASSIGN_OR_RETURN(auto g, Precheck(s, items));
        writers = WritersOf(s, std::set<std::string>(g.begin(), g.end()));
        return g;
      }));
  bool any_writer = false;
  for (const auto& [_, w] : writers) any_writer |= !w.empty();
  int64_t cut = 0;
  if (any_writer) {
    SP_ASSIGN_OR_RETURN(cut, PauseWriters(c, writers));
  }
  // Phase 2: all snapshots in one change; with a cut, only while it still holds.
  std::vector<VolumeRecord> snaps;
  auto gen = c.MutateWithRuntime([&](State& s, Runtime& rt) -> Status {
    if (cut != 0) {
      bool waiting = false;
      SP_RETURN_IF_ERROR(CutStatus(s, rt, cut, writers, &waiting));
      if (waiting) return Error(Code::kInternal, "group snapshot cut not complete");
    }
    snaps.clear();
    for (size_t i = 0; i < items.size(); ++i) {
      // By globalId: the volumes the cut paused, even if one was renamed meanwhile.
      SP_ASSIGN_OR_RETURN(const VolumeRecord* v, LookupVolume(s, "~" + gids[i]));
      SP_ASSIGN_OR_RETURN(VolumeRecord snap, TakeSnapshot(s, *v, items[i].args));
      snaps.push_back(std::move(snap));
    }
    // Mutate gives this change the generation after the working one.
    if (cut != 0) rt.cut->commitGeneration = s.generation + 1;
    return Status::Ok();
  });
  if (cut != 0) EndCut(c, cut);
  if (!gen.ok()) return gen.status();
  bool switched = true;
  for (const std::string& gid : gids) switched &= WaitForVolumeClients(c, gid, *gen);
  Json out = Json::array();
  for (size_t i = 0; i < snaps.size(); ++i) out.push_back(ResultJson(snaps[i], gids[i]));
  Json extra = {{"snapshots", std::move(out)}};
  if (!switched) extra["info"] = "not every client of the volumes switched to the new layers yet";
  SP_LOG_INFO("group snapshot of {} volume(s) at generation {}{}", snaps.size(), *gen,
              cut != 0 ? fmt::format(" (cut {})", cut) : "");
  return ApiOk(*gen, std::move(extra));
}

}  // namespace spindle::mgmt
