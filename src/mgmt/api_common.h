// Helpers shared by the api_*.cc call handlers: argument parsing and the JSON renderings that
// more than one call returns. All take the state under the Cluster lock (inside Read/Mutate).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mgmt/allocator.h"
#include "mgmt/api.h"
#include "mgmt/state.h"

namespace spindle::mgmt {

// The POST body, which must be a JSON object (an absent body counts as {} when allowed).
enum class EmptyBody { kAllowed, kRejected };
Result<Json> BodyObject(const ApiRequest& req, EmptyBody empty);
// A decimal path argument in [lo, hi].
Result<int64_t> IntArg(const std::string& arg, const char* what, int64_t lo, int64_t hi);

bool DiskIsUp(const DiskRecord& disk);
// DisksList value: UpDiskSummary (every field) when up, else DownDiskSummary.
Json DiskSummaryJson(const DiskRecord& disk, const Runtime& runtime);
// VolumesList element (VolumeSummary); MultiCluster forms add clusterName/clusterId.
Json VolumeSummaryJson(const State& state, const VolumeRecord& v, bool multi_cluster,
                       const std::string& cluster_name);
int64_t ObjectsCount(const VolumeRecord& v);
// The volume by name or "~globalId"; kInvalidArgument for a bad name, kNotFound when absent.
Result<const VolumeRecord*> LookupVolume(const State& state, const std::string& name);

// A disk that is up on a server that is up.
bool DiskUsable(const State& state, uint32_t disk);
// Allocator input for a volume's placement: every known disk (up or not, with its server and
// fault set), the volume's placement groups and replication, and the sets already in use.
AllocRequest AllocInput(const State& state, const VolumeRecord& v, uint32_t table_size);

// A volume's data as the servers last reported it: storedSize = one copy (per object the
// largest replica), onDiskSize = all copies. Zero until servers report usage.
struct VolumeUsage {
  int64_t stored = 0;
  int64_t on_disk = 0;
};
VolumeUsage UsageOf(const State& state, const Runtime& runtime, const VolumeRecord& v);

// The VolumePolicyDesc members shared by volume and template requests, validated.
struct Policy {
  std::optional<std::string> placeAll, placeTail, placeHead;
  std::optional<int64_t> replication, bw, iops;
  std::optional<bool> reuseServer;
  std::optional<std::map<std::string, std::string>> tags;
};
Result<Policy> ParsePolicy(const Json& body);
// kNotFound unless every named placement group exists.
Status CheckPlacementGroups(const State& state, const Policy& p);
// Snapshots (api_snapshots.cc).
struct SnapshotArgs {
  std::optional<std::string> name;  // nullopt: auto-named "<volume>@<n>"
  std::map<std::string, std::string> tags;
  bool bind = false;
  bool transient = false;
  int64_t targetDeleteDate = 0;  // 0: none
};
// The snapshot by name or "~globalId"; kInvalidArgument for a bad name, kNotFound when absent.
Result<const VolumeRecord*> LookupSnapshot(const State& state, const std::string& name);
// SnapshotSummary: VolumeSummary plus the snapshot-only members.
Json SnapshotSummaryJson(const State& state, const VolumeRecord& snap, bool multi_cluster,
                         const std::string& cluster_name);
// Freezes the volume's layer as a new snapshot (returned); the volume moves to a new layer.
// `vol` is invalid afterwards.
Result<VolumeRecord> TakeSnapshot(State& s, const VolumeRecord& vol, const SnapshotArgs& a);
// Waits (bounded) until every up client the volume is attached to applied `gen`.
bool WaitForVolumeClients(Cluster& c, const std::string& global_id, int64_t gen);
// As LookupSnapshot, but a snapshot already deleted (kept for its children) is kNotFound: it
// can be listed, not used.
Result<const VolumeRecord*> LookupLiveSnapshot(const State& state, const std::string& name);
// Names of the volumes and snapshots whose nearest parent is `id`.
std::vector<std::string> ChildrenOf(const State& state, int64_t id);
// `targetDeleteDate` (Unix time) or `deleteAfter` (seconds from `now_unix`) of a body, at most
// one of them. kZeroMeansUnset (VolumeSnapshotDesc, VolumeFreezeDesc): 0 leaves `out` unset;
// kZeroClears (SnapshotUpdateDesc): 0 sets it to 0 (no scheduled deletion).
enum class DeleteDateZero { kZeroMeansUnset, kZeroClears };
Status ParseDeleteDate(const Json& body, DeleteDateZero zero, int64_t now_unix,
                       std::optional<int64_t>& out);
// Deletes what is due, in this one change: snapshots whose targetDeleteDate passed (a snapshot
// with children or attached is marked deleted instead), then — repeatedly, as each removal may
// free its parent — every childless, unattached snapshot that is deleted, bound or transient.
void CollectSnapshots(State& state, int64_t now_unix);
// Rebase (VolumeRebase, SnapshotRebase) of `v` onto its ancestor `parent` (nullopt: onto
// nothing). Sets *changes; a rebase that keeps the chain is a no-op. One that leaves layers out
// would need their data copied into `v`: kUnimplemented. kInvalidArgument when `parent` is not
// an ancestor.
Status RebaseCheck(const State& state, const VolumeRecord& v,
                   const std::optional<std::string>& parent, bool* changes);
// The VolumeRebase / SnapshotRebase handler: validation, lookup, RebaseCheck in one change.
Result<Json> Rebase(Cluster& c, const ApiRequest& req, bool snapshot);
inline constexpr size_t kMaxSnapshots = 65536;
// The most layers a read chain may have: the servers refuse longer ones (proto/wire.h
// kMaxChainLength).
inline constexpr size_t kMaxChainLayers = 64;
// kResourceExhausted unless a layer can go on top of `v`'s chain ([v.id, v.parents...]): a
// snapshot of a volume or a clone of a snapshot.
Status CheckChainRoom(const VolumeRecord& v);
// VolumesGroupSnapshot (api_group_snapshot.cc, docs/decisions/0007-group-snapshot.md).
Result<Json> VolumesGroupSnapshot(Cluster& c, const ApiRequest& req);
// What a client is to hold for a group snapshot's cut: the cut and the globalIds of its
// volumes attached read-write there. Valid while the Cluster lock is held.
struct PauseView {
  int64_t cut = 0;
  const std::set<std::string>* volumes = nullptr;
};
// The pause `client` is asked for in a ClientState of `state` (none once the state carries the
// cut's snapshots).
std::optional<PauseView> PauseFor(const State& state, const Runtime& runtime, uint32_t client);
// ClientPaused: `client` holds `volumes` of `cut`, nothing in flight (ignored for another cut).
void RecordPaused(Runtime& runtime, uint32_t client, int64_t cut, std::set<std::string> volumes);
// The wall clock in Unix seconds (creation times, scheduled deletions).
int64_t NowUnix();
// Registers the periodic scheduled-deletion check with the cluster (before it starts).
void RegisterSnapshotTasks(Cluster& c);

// Fault sets named in the configuration (SP_FAULT_SETS): name → server ids.
using FaultSetConfig = std::map<std::string, std::vector<uint32_t>>;
// Parses SP_FAULT_SETS, "<name>:<server id>,<server id>..." per set, sets separated by ';' or
// whitespace. Names follow the placement-group rules; a server is in at most one set.
Result<FaultSetConfig> ParseFaultSetConfig(const std::string& text);
// Gives each configured set exactly its servers (creating it; a listed server leaves any other
// set). Sets the configuration does not name are left as the API made them. The servers need
// not have registered yet (the configuration may name servers before they first start).
Status ApplyFaultSetConfig(State& state, const FaultSetConfig& config);

// Optional "size" (VolumeSize) of a body.
Status OptSize(const Json& body, const char* key, std::optional<int64_t>& out);

}  // namespace spindle::mgmt
