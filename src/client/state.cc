#include "client/state.h"

#include "common/assert.h"

namespace spindle::client {
namespace {

using nlohmann::json;

Result<DiskSet> ParseDiskSet(const json& j) {
  if (!j.is_array() || j.empty() || j.size() > kMaxReplication) {
    return Error(Code::kInvalidArgument, "disk set must be an array of 1..{} disk ids",
                 kMaxReplication);
  }
  DiskSet set;
  for (const auto& d : j) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxDiskId) {
      return Error(Code::kInvalidArgument, "bad disk id in disk set {}", j.dump());
    }
    set.emplace_back(d.get<uint32_t>());
  }
  return set;
}

Status ParseLayout(const json& j, VolumeSpec& v) {
  const auto& sets = j.at("targetDiskSets");
  const size_t n = sets.size();
  if (!sets.is_array() || n == 0 || n > kMaxDiskSets || (n & (n - 1)) != 0) {
    return Error(Code::kInvalidArgument,
                 "volume {}: targetDiskSets must have a power-of-two "
                 "length in 1..{}",
                 v.name, kMaxDiskSets);
  }
  for (const auto& s : sets) {
    SP_ASSIGN_OR_RETURN(auto set, ParseDiskSet(s));
    v.disk_sets.push_back(std::move(set));
  }
  if (j.contains("overrides") && j["overrides"].is_object()) {
    for (const auto& [key, s] : j["overrides"].items()) {
      SP_ASSIGN_OR_RETURN(auto set, ParseDiskSet(s));
      v.overrides[static_cast<uint32_t>(std::stoul(key))] = std::move(set);
    }
  }
  return Status::Ok();
}

Result<VolumeSpec> ParseVolume(const json& j) {
  VolumeSpec v;
  v.name = j.at("name").get<std::string>();
  v.global_id = j.at("globalId").get<std::string>();
  v.snapshot = j.value("snapshot", false);
  v.read_only = j.value("rights", std::string("ro")) != "rw" || v.snapshot;
  v.layer = LayerId(j.at("layerId").get<uint64_t>());
  for (const auto& l : j.at("chain")) v.chain.emplace_back(l.get<uint64_t>());
  if (v.chain.empty() || v.chain.front() != v.layer) {
    return Error(Code::kInvalidArgument, "volume {}: chain must start with its layer", v.name);
  }
  v.size_bytes = j.at("size").get<uint64_t>();
  if (v.size_bytes % 512 != 0) {
    return Error(Code::kInvalidArgument, "volume {}: size not a multiple of 512", v.name);
  }
  v.replication = j.value("replication", 0u);
  v.read_replicas = j.value("readReplicas", 1u);
  if (v.read_replicas < 1 || v.read_replicas > 3) {
    return Error(Code::kInvalidArgument, "volume {}: readReplicas {} not in 1..3", v.name,
                 v.read_replicas);
  }
  SP_RETURN_IF_ERROR(ParseLayout(j, v));
  return v;
}

Result<ClientState> ParseUnchecked(const json& data) {
  ClientState st;
  st.generation = data.at("generation").get<int64_t>();
  const auto& vols = data.at("volumes");
  if (vols.size() > kMaxAttachedVolumes) {
    return Error(Code::kInvalidArgument, "too many volumes: {}", vols.size());
  }
  for (const auto& jv : vols) {
    SP_ASSIGN_OR_RETURN(auto v, ParseVolume(jv));
    st.volumes.push_back(std::move(v));
  }
  for (const auto& [key, jd] : data.at("disks").items()) {
    DiskEndpoint d;
    d.server = ServerId(jd.at("serverId").get<uint32_t>());
    d.addr = jd.at("addr").get<std::string>();
    d.port = jd.at("port").get<uint16_t>();
    d.up = jd.value("up", false);
    d.recovering = d.up && jd.value("recovering", false);
    st.disks[DiskId(static_cast<uint32_t>(std::stoul(key)))] = std::move(d);
  }
  if (data.contains("pause")) {
    const auto& p = data.at("pause");
    st.pause.cut = p.at("cut").get<int64_t>();
    const auto& ids = p.at("volumes");
    if (st.pause.cut <= 0 || ids.size() > kMaxAttachedVolumes) {
      return Error(Code::kInvalidArgument, "bad pause {}", p.dump());
    }
    for (const auto& g : ids) st.pause.volumes.push_back(g.get<std::string>());
  }
  return st;
}

}  // namespace

Result<ClientState> ParseClientState(const nlohmann::json& data) {
  // nlohmann::json and std::stoul throw on missing members and wrong types; this is the
  // adapter where that becomes a Status.
  try {
    return ParseUnchecked(data);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, "bad ClientState: {}", e.what());
  }
}

DiskSet ReadOrder(const DiskSet& set, uint32_t read_replicas, uint32_t offset) {
  const size_t tier = std::min<size_t>(read_replicas, set.size());
  DiskSet order;
  if (tier > 1) order.push_back(set[set.size() - tier + (offset / kReadSpreadBytes) % tier]);
  for (auto it = set.rbegin(); it != set.rend(); ++it) {
    if (order.empty() || *it != order.front()) order.push_back(*it);
  }
  return order;
}

const DiskSet& DiskSetFor(const VolumeSpec& v, uint32_t object) {
  SP_ASSERT(!v.disk_sets.empty());
  auto it = v.overrides.find(object);
  if (it != v.overrides.end()) return it->second;
  return v.disk_sets[object % v.disk_sets.size()];
}

}  // namespace spindle::client
