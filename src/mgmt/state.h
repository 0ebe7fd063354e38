// The cluster configuration spindle-mgmt owns (DESIGN.md §6), as plain records, and its
// mapping to store entities. `State` is what is persisted (every change to it is a new
// generation); `Runtime` is what is only in memory (heartbeat times, disk usage counters).
// Both are owned by Cluster and guarded by its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "mgmt/store.h"

namespace spindle::mgmt {

inline constexpr int64_t kUnlimited = -1;  // bw/iops "-"

struct DiskRecord {
  uint32_t id = 0;
  uint32_t serverId = 0;
  bool ssd = false;
  bool journaled = false;
  std::string device;
  int64_t sectorsCount = 0;
  std::string model;
  std::string serial;
  std::string description;
  std::string softEject = "off";
  int64_t generationLeft = -1;  // -1: up; else the last generation it was seen in
};

struct ServerRecord {
  uint32_t id = 0;
  uint32_t nodeId = 0;
  std::string version;
  int64_t startTime = 0;
  std::string addr;
  uint32_t port = 0;
  bool up = false;
  std::vector<uint32_t> disks;  // as last registered
};

struct ClientRecord {
  uint32_t id = 0;
  uint32_t nodeId = 0;
  std::string version;
  int64_t startTime = 0;
  bool up = false;
  nlohmann::json nbd = nlohmann::json::object();
};

struct PlacementGroupRecord {
  int64_t id = 0;
  std::string name;
  std::vector<uint32_t> disks;  // sorted, unique
};

struct TemplateRecord {
  int64_t id = 0;
  std::string name;
  std::string placeAll, placeTail, placeHead;
  int64_t size = 0;         // 0: not set ("-")
  int64_t replication = 0;  // 0: not set ("-")
  int64_t bw = kUnlimited;
  int64_t iops = kUnlimited;
  bool reuseServer = false;
  std::map<std::string, std::string> tags;
};

struct AttachmentRecord {
  std::string rights;  // "rw" | "ro"
  uint32_t pos = 0;
};

struct VolumeRecord {
  int64_t id = 0;    // also its layer id; never reused
  std::string name;  // "~<globalId>" for an anonymous volume
  std::string globalId;
  int64_t size = 0;
  int64_t replication = 0;
  std::string placeAll, placeTail, placeHead;
  std::string templateName;
  int64_t templateId = 0;
  bool reuseServer = false;
  int64_t bw = kUnlimited;
  int64_t iops = kUnlimited;
  std::map<std::string, std::string> tags;
  int64_t creationTimestamp = 0;
  std::vector<std::vector<uint32_t>> targetDiskSets;
  std::map<std::string, AttachmentRecord> attachments;  // client id (decimal) → attachment
};

struct Counters {
  int64_t nextVolumeId = 1;
  int64_t nextGlobalLocal = 1;
  int64_t nextPlacementGroupId = 1;
  int64_t nextTemplateId = 1;
  std::string clusterId;  // "location.cluster", fixed at first start
};

struct State {
  int64_t generation = 0;
  Counters counters;
  std::map<uint32_t, ServerRecord> servers;
  std::map<uint32_t, ClientRecord> clients;
  std::map<uint32_t, DiskRecord> disks;
  std::map<std::string, PlacementGroupRecord> placementGroups;
  std::map<std::string, TemplateRecord> templates;
  std::map<int64_t, VolumeRecord> volumes;

  // Finds a volume by name or "~<globalId>"; nullptr when absent.
  const VolumeRecord* FindVolume(const std::string& name_or_gid) const;
  VolumeRecord* FindVolume(const std::string& name_or_gid);
};

// Usage numbers a server reports with each heartbeat; not configuration, not persisted.
struct DiskStats {
  int64_t objectsCount = 0, objectsAllocated = 0, objectsOnDiskSize = 0, storedSize = 0;
  int64_t entriesCount = 0, entriesAllocated = 0;
};

struct Runtime {
  std::map<uint32_t, std::chrono::steady_clock::time_point> serverHeard, clientHeard;
  std::map<uint32_t, DiskStats> diskStats;
  std::map<uint32_t, int64_t> clientApplied;  // client id → generation it applied
};

// Every entity of `state` serialized: ("disk", "101") → JSON text, and so on.
std::map<EntityKey, std::string> ToEntities(const State& state);
// Rebuilds a State from a store snapshot. kCorruption names a bad entity.
Result<State> FromSnapshot(const StoreSnapshot& snap);
// The changes turning `before` into `after`.
std::vector<EntityChange> Diff(const std::map<EntityKey, std::string>& before,
                               const std::map<EntityKey, std::string>& after);

// Base-36 lowercase digits of n (n >= 0).
std::string Base36(int64_t n);

}  // namespace spindle::mgmt
