// The attachment state spindle-mgmt sends to this client (GET /spindle/1/ClientState, see
// docs/formats/internal-api.md), parsed once into typed structs. Pure: no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/status.h"

namespace spindle::client {

inline constexpr size_t kMaxDiskSets = 32768;
inline constexpr size_t kMaxReplication = 3;
inline constexpr size_t kMaxAttachedVolumes = 4096;

using DiskSet = std::vector<DiskId>;  // [head, all..., tail]

struct DiskEndpoint {
  ServerId server;
  std::string addr;
  uint16_t port = 0;
  bool up = false;          // takes writes
  bool recovering = false;  // up, but catching up with its peers: serves no reads
};

struct VolumeSpec {
  std::string name;
  std::string global_id;
  bool snapshot = false;
  bool read_only = false;
  LayerId layer;
  std::vector<LayerId> chain;  // top first; chain[0] == layer
  uint64_t size_bytes = 0;
  uint32_t replication = 0;
  // Replicas at the end of each disk set on the read tier (placeTail's placement group), 1..3:
  // reads are spread over these.
  uint32_t read_replicas = 1;
  std::vector<DiskSet> disk_sets;         // power-of-two length, 1..kMaxDiskSets
  std::map<uint32_t, DiskSet> overrides;  // object index -> disk set
};

// A group snapshot's cut (docs/decisions/0007-group-snapshot.md): hold the writes of these
// attached volumes (globalIds), drain them and say so; cut 0: no pause asked.
struct PauseRequest {
  int64_t cut = 0;
  std::vector<std::string> volumes;
};

struct ClientState {
  int64_t generation = 0;
  std::vector<VolumeSpec> volumes;
  std::unordered_map<DiskId, DiskEndpoint> disks;
  PauseRequest pause;
};

// Validates and converts the "data" member of a ClientState reply. kInvalidArgument naming
// the first bad field otherwise.
Result<ClientState> ParseClientState(const nlohmann::json& data);

// The disk set that holds object `object` of `v`: the override, else disk_sets[i % len].
// REQUIRES: v.disk_sets is not empty.
// Reads of an object are spread over its read-tier replicas in stretches of this many bytes.
inline constexpr uint32_t kReadSpreadBytes = 1024 * 1024;

// The order in which to ask the replicas of `set` for a read at `offset` in the object. The
// read tier is the last `read_replicas` disks (placeTail's placement group, e.g. the SSD copy
// of a hybrid pool): one of them, picked by offset so that a stream's consecutive reads go to
// different servers, comes first; then the rest from the tail towards the head.
DiskSet ReadOrder(const DiskSet& set, uint32_t read_replicas, uint32_t offset);

const DiskSet& DiskSetFor(const VolumeSpec& v, uint32_t object);

}  // namespace spindle::client
