// The disk-set allocator: a pure function from a snapshot of disks and placement groups to a
// volume's targetDiskSets table (DESIGN.md §4). Deterministic: the same input gives the same
// table. Safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/status.h"

namespace spindle::mgmt {

inline constexpr uint32_t kDefaultTableSize = 32;
inline constexpr uint32_t kMaxTableSize = 32768;
inline constexpr uint64_t kMaxAllocatorSteps = 1 << 22;  // search bound per table

struct AllocDisk {
  uint32_t server_id = 0;
  bool up = true;
  uint32_t fault_set = 0;  // 0: none (the server is its own fault set)
};

struct AllocRequest {
  std::map<uint32_t, AllocDisk> disks;  // disk id → where it lives
  std::vector<uint32_t> place_head;     // disk ids of each placement group
  std::vector<uint32_t> place_all;
  std::vector<uint32_t> place_tail;
  uint32_t replication = 3;                   // 1..3
  bool reuse_server = false;                  // allow two replicas of a set on one server
  uint32_t table_size = kDefaultTableSize;    // a power of two, 1..kMaxTableSize
  std::map<uint32_t, uint64_t> existing_use;  // disk id → sets already placed on it
};

// Returns table_size disk sets, each [head, all..., tail] with `replication` distinct up disks
// (replication 1 → [tail], 2 → [head, tail]) on distinct servers and distinct fault sets unless
// reuse_server. Disks
// are spread evenly: each pick takes the least-used candidate (ties: least-used server, then
// the lowest id). Only up disks that are known and in the role's group are candidates.
// Errors: kInvalidArgument for a bad replication or table size; kFailedPrecondition
// "Not enough servers or fault sets for replication N" when no valid set exists.
Result<std::vector<std::vector<uint32_t>>> AllocateDiskSets(const AllocRequest& request);

struct AllocResult {
  std::vector<std::vector<uint32_t>> sets;
  bool constraints_violated = false;  // reuseServer was implied (flag "C")
};

// AllocateDiskSets for a new volume. When the strict allocation fails, `reuse_implicit` is set
// (mgmtConfig "reuse server implicit on disk down") and a disk of the request's placement
// groups is down, retries as if reuse_server were set and reports constraints_violated.
Result<AllocResult> AllocateVolume(const AllocRequest& request, bool reuse_implicit);

}  // namespace spindle::mgmt
