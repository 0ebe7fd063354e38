#include "mgmt/allocator.h"

#include <algorithm>
#include <set>

#include "common/assert.h"

namespace spindle::mgmt {
namespace {

// Picks one disk set by depth-first search over the roles, trying candidates in usage order.
class SetSearch {
 public:
  SetSearch(const AllocRequest& req, std::vector<std::vector<uint32_t>> role_candidates,
            std::map<uint32_t, uint64_t>& disk_use, std::map<uint32_t, uint64_t>& server_use)
      : req_(req),
        roles_(std::move(role_candidates)),
        disk_use_(disk_use),
        server_use_(server_use),
        role_use_(roles_.size()),
        role_server_use_(roles_.size()) {}

  // Fills `out` with one disk per role; false when none exists or the step budget ran out.
  bool Find(std::vector<uint32_t>& out, uint64_t& steps) {
    out.assign(roles_.size(), 0);
    if (!Dfs(0, out, steps)) return false;
    for (size_t r = 0; r < out.size(); ++r) {
      ++role_use_[r][out[r]];
      ++role_server_use_[r][req_.disks.at(out[r]).server_id];
    }
    return true;
  }

 private:
  std::vector<uint32_t> Ordered(size_t role) const {
    std::vector<uint32_t> c = roles_[role];
    std::sort(c.begin(), c.end(), [&](uint32_t a, uint32_t b) {
      uint32_t sa = req_.disks.at(a).server_id, sb = req_.disks.at(b).server_id;
      // Even use first, then rotate roles (so tails, which serve reads, spread too).
      auto ka = std::make_tuple(Use(disk_use_, a), Use(role_server_use_[role], sa),
                                Use(role_use_[role], a), Use(server_use_, sa), a);
      auto kb = std::make_tuple(Use(disk_use_, b), Use(role_server_use_[role], sb),
                                Use(role_use_[role], b), Use(server_use_, sb), b);
      return ka < kb;
    });
    return c;
  }

  static uint64_t Use(const std::map<uint32_t, uint64_t>& m, uint32_t k) {
    auto it = m.find(k);
    return it == m.end() ? 0 : it->second;
  }

  // The failure domain of a disk: its fault set, else its server.
  uint64_t Domain(uint32_t disk) const {
    const AllocDisk& d = req_.disks.at(disk);
    return d.fault_set != 0 ? (uint64_t{1} << 32) | d.fault_set : d.server_id;
  }

  bool Fits(uint32_t disk, size_t depth, const std::vector<uint32_t>& chosen) const {
    uint32_t server = req_.disks.at(disk).server_id;
    uint64_t domain = Domain(disk);
    for (size_t i = 0; i < depth; ++i) {
      if (chosen[i] == disk) return false;
      if (req_.reuse_server) continue;
      if (req_.disks.at(chosen[i]).server_id == server || Domain(chosen[i]) == domain) {
        return false;
      }
    }
    return true;
  }

  bool Dfs(size_t depth, std::vector<uint32_t>& chosen, uint64_t& steps) {
    if (depth == roles_.size()) return true;
    std::set<uint64_t> failed;  // without reuse, one domain failing means all its disks do
    for (uint32_t disk : Ordered(depth)) {
      if (++steps > kMaxAllocatorSteps) return false;
      uint64_t domain = Domain(disk);
      if (!req_.reuse_server && failed.count(domain)) continue;
      if (!Fits(disk, depth, chosen)) continue;
      chosen[depth] = disk;
      if (Dfs(depth + 1, chosen, steps)) return true;
      failed.insert(domain);
    }
    return false;
  }

  const AllocRequest& req_;
  std::vector<std::vector<uint32_t>> roles_;
  std::map<uint32_t, uint64_t>& disk_use_;
  std::map<uint32_t, uint64_t>& server_use_;
  std::vector<std::map<uint32_t, uint64_t>> role_use_;         // per role: disk → picks
  std::vector<std::map<uint32_t, uint64_t>> role_server_use_;  // per role: server → picks
};

// The up, known disks of one placement group, unique.
std::vector<uint32_t> Candidates(const AllocRequest& req, const std::vector<uint32_t>& group) {
  std::set<uint32_t> out;
  for (uint32_t d : group) {
    auto it = req.disks.find(d);
    if (it != req.disks.end() && it->second.up) out.insert(d);
  }
  return {out.begin(), out.end()};
}

}  // namespace

Result<std::vector<std::vector<uint32_t>>> AllocateDiskSets(const AllocRequest& req) {
  if (req.replication < 1 || req.replication > 3) {
    return Error(Code::kInvalidArgument, "replication {} is out of range 1..3", req.replication);
  }
  uint32_t n = req.table_size;
  if (n < 1 || n > kMaxTableSize || (n & (n - 1)) != 0) {
    return Error(Code::kInvalidArgument, "table size {} is not a power of two in 1..{}", n,
                 kMaxTableSize);
  }
  // Roles in disk-set order: [head, all..., tail].
  std::vector<std::vector<uint32_t>> roles;
  if (req.replication >= 2) roles.push_back(Candidates(req, req.place_head));
  for (uint32_t i = 2; i < req.replication; ++i) roles.push_back(Candidates(req, req.place_all));
  roles.push_back(Candidates(req, req.place_tail));

  std::map<uint32_t, uint64_t> disk_use = req.existing_use;
  std::map<uint32_t, uint64_t> server_use;
  for (const auto& [disk, use] : disk_use) {
    auto it = req.disks.find(disk);
    if (it != req.disks.end()) server_use[it->second.server_id] += use;
  }
  SetSearch search(req, roles, disk_use, server_use);
  std::vector<std::vector<uint32_t>> table;
  table.reserve(n);
  uint64_t steps = 0;
  for (uint32_t i = 0; i < n; ++i) {
    std::vector<uint32_t> set;
    if (!search.Find(set, steps)) {
      return Error(Code::kFailedPrecondition, "Not enough servers or fault sets for replication {}",
                   req.replication);
    }
    SP_ASSERT(set.size() == req.replication);
    for (uint32_t d : set) {
      ++disk_use[d];
      ++server_use[req.disks.at(d).server_id];
    }
    table.push_back(std::move(set));
  }
  return table;
}

Result<AllocResult> AllocateVolume(const AllocRequest& req, bool reuse_implicit) {
  Result<std::vector<std::vector<uint32_t>>> strict = AllocateDiskSets(req);
  if (strict.ok()) return AllocResult{std::move(*strict), false};
  if (strict.status().code() != Code::kFailedPrecondition || !reuse_implicit || req.reuse_server) {
    return strict.status();
  }
  bool any_down = false;
  for (const auto* group : {&req.place_head, &req.place_all, &req.place_tail}) {
    for (uint32_t d : *group) {
      auto it = req.disks.find(d);
      any_down |= it == req.disks.end() || !it->second.up;
    }
  }
  if (!any_down) return strict.status();
  AllocRequest relaxed = req;
  relaxed.reuse_server = true;
  SP_ASSIGN_OR_RETURN(auto sets, AllocateDiskSets(relaxed));
  return AllocResult{std::move(sets), true};
}

}  // namespace spindle::mgmt
