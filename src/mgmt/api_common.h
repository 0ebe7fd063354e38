// Helpers shared by the api_*.cc call handlers: argument parsing and the JSON renderings that
// more than one call returns. All take the state under the Cluster lock (inside Read/Mutate).
#pragma once

#include <cstdint>
#include <string>

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
// Optional "size" (VolumeSize) of a body.
Status OptSize(const Json& body, const char* key, std::optional<int64_t>& out);

}  // namespace spindle::mgmt
