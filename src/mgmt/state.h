// The cluster configuration spindle-mgmt owns (DESIGN.md §6), as plain records, and its
// mapping to store entities. `State` is what is persisted (every change to it is a new
// generation); `Runtime` is what is only in memory (heartbeat times, disk usage counters).
// Both are owned by Cluster and guarded by its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
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
  bool ignored = false;         // DiskIgnore: the cluster does not wait for it while down
  // Back after being down: it takes writes but serves no reads until its server reports that
  // it caught up with its peers (DESIGN.md §5 Recovery). recoveringSince: the generation that
  // set it; leftAt: the generation it had left in (which replica holds the newest data).
  bool recovering = false;
  int64_t recoveringSince = 0;
  int64_t leftAt = -1;
  // DiskEject: down until its server restarts (a registration with another startTime).
  bool ejected = false;
  int64_t ejectedServerStart = 0;
  bool operator==(const DiskRecord&) const = default;
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
  bool operator==(const ServerRecord&) const = default;
};

struct ClientRecord {
  uint32_t id = 0;
  uint32_t nodeId = 0;
  std::string version;
  int64_t startTime = 0;
  bool up = false;
  nlohmann::json nbd = nlohmann::json::object();
  bool operator==(const ClientRecord&) const = default;
};

struct PlacementGroupRecord {
  int64_t id = 0;
  std::string name;
  std::vector<uint32_t> disks;  // sorted, unique
  bool operator==(const PlacementGroupRecord&) const = default;
};

// A fault set: servers that can fail together; replicas go to distinct fault sets. A server in
// no fault set is its own (docs/decisions/0004-fault-sets-and-mgmt-config.md).
struct FaultSetRecord {
  int64_t id = 0;
  std::string name;
  std::vector<uint32_t> servers;  // sorted, unique
  bool operator==(const FaultSetRecord&) const = default;
};

// A key-value bucket (KV/...): every change bumps its version.
struct KvBucketRecord {
  std::string name;
  int64_t version = 0;
  std::map<std::string, std::string> pairs;
  bool operator==(const KvBucketRecord&) const = default;
};

// `storpool mgmtConfig` settings that exist in Spindle (docs/api.md).
struct MgmtConfigRecord {
  bool reuseServerImplicitOnDiskDown = false;
  bool operator==(const MgmtConfigRecord&) const = default;
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
  bool operator==(const TemplateRecord&) const = default;
};

struct AttachmentRecord {
  std::string rights;  // "rw" | "ro"
  uint32_t pos = 0;
  bool operator==(const AttachmentRecord&) const = default;
};

// A volume's disk-set table, shared copy-on-write: copying a State (once per change) does not
// copy the tables, and unchanged tables compare equal by pointer.
class DiskSetTable {
 public:
  using Set = std::vector<uint32_t>;
  DiskSetTable() : sets_(Empty()) {}
  DiskSetTable(std::vector<Set> sets)  // NOLINT: implicit, a table is its sets
      : sets_(std::make_shared<const std::vector<Set>>(std::move(sets))) {}
  const std::vector<Set>& get() const { return *sets_; }
  size_t size() const { return sets_->size(); }
  bool empty() const { return sets_->empty(); }
  const Set& operator[](size_t i) const { return (*sets_)[i]; }
  auto begin() const { return sets_->begin(); }
  auto end() const { return sets_->end(); }
  bool operator==(const DiskSetTable& o) const { return sets_ == o.sets_ || *sets_ == *o.sets_; }

 private:
  static std::shared_ptr<const std::vector<Set>> Empty();
  std::shared_ptr<const std::vector<Set>> sets_;
};
void to_json(nlohmann::json& j, const DiskSetTable& t);
void from_json(const nlohmann::json& j, DiskSetTable& t);

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
  DiskSetTable targetDiskSets;
  std::map<std::string, AttachmentRecord> attachments;  // client id (decimal) → attachment
  // Created with reuseServer implied because a disk or node was down (flag "C").
  bool constraintsViolated = false;
  // Layers under this one, nearest first (each the id of a record in State::snapshots). A
  // volume's or snapshot's read chain is [id, parents...]; all layers of a chain share the
  // disk-set table, so every block of an object is found on the same disks.
  std::vector<int64_t> parents;
  // Snapshot-only (records in State::snapshots): the volume it was taken of, and flags.
  std::string onVolume;
  bool autoName = false;
  bool bound = false;
  bool transient = false;
  int64_t targetDeleteDate = 0;  // 0: none
  // Deleted while it still had children: kept (renamed "*<globalId>") until the last child is
  // gone, then collected (api_snapshots.cc CollectSnapshots).
  bool deleted = false;
  bool operator==(const VolumeRecord&) const = default;
};

// A map of records shared copy-on-write, for the large maps of State (integer keys). Records
// are grouped in chunks of 64 consecutive keys, each a shared immutable map of shared
// immutable records: copying a CowMap copies one pointer; the first change through a copy
// clones the outer map (one node per chunk) and then only the chunk and the record it touches,
// so a change costs O(n / 64 + 64), not O(n). Unchanged records, chunks and maps compare equal
// by pointer, so DiffStates skips them. Reads see `const V&` only; change a record through
// Mutable / Put / erase. Guarded like the rest of State (Cluster's mutex).
template <typename K, typename V>
class CowMap {
  static_assert(std::is_integral_v<K>);
  static constexpr int kChunkBits = 6;
  using Chunk = std::map<K, std::shared_ptr<const V>>;  // never empty
  using Outer = std::map<K, std::shared_ptr<const Chunk>>;
  static K ChunkOf(K k) { return k >> kChunkBits; }  // monotonic, so chunk order = key order

 public:
  using key_type = K;
  using mapped_type = V;
  // Iterates as (key, const record&) pairs in key order; `it->second` is the record.
  class const_iterator {
   public:
    using value_type = std::pair<const K&, const V&>;
    using difference_type = std::ptrdiff_t;
    using iterator_category = std::forward_iterator_tag;
    struct Arrow {
      value_type p;
      const value_type* operator->() const { return &p; }
    };
    const_iterator() = default;
    const_iterator(typename Outer::const_iterator o, typename Outer::const_iterator end,
                   typename Chunk::const_iterator i)
        : o_(o), end_(end), i_(i) {}
    value_type operator*() const { return {i_->first, *i_->second}; }
    Arrow operator->() const { return Arrow{**this}; }
    const_iterator& operator++() {
      if (++i_ == o_->second->end() && ++o_ != end_) i_ = o_->second->begin();
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const const_iterator& x) const {
      return o_ == x.o_ && (o_ == end_ || i_ == x.i_);
    }
    // The record's shared pointer (compared by DiffStates).
    const std::shared_ptr<const V>& ptr() const { return i_->second; }

   private:
    typename Outer::const_iterator o_, end_;
    typename Chunk::const_iterator i_;
  };
  using iterator = const_iterator;

  CowMap() : map_(Empty()) {}

  const_iterator begin() const {
    auto o = map_->begin();
    return o == map_->end() ? end() : const_iterator(o, map_->end(), o->second->begin());
  }
  const_iterator end() const { return const_iterator(map_->end(), map_->end(), {}); }
  const_iterator find(const K& k) const {
    auto o = map_->find(ChunkOf(k));
    if (o == map_->end()) return end();
    auto i = o->second->find(k);
    return i == o->second->end() ? end() : const_iterator(o, map_->end(), i);
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t count(const K& k) const { return get(k) != nullptr ? 1 : 0; }
  bool contains(const K& k) const { return get(k) != nullptr; }
  // nullptr when absent.
  const V* get(const K& k) const {
    auto o = map_->find(ChunkOf(k));
    if (o == map_->end()) return nullptr;
    auto i = o->second->find(k);
    return i == o->second->end() ? nullptr : i->second.get();
  }
  // The record at k; throws std::out_of_range when absent (as std::map::at).
  const V& at(const K& k) const {
    const V* v = get(k);
    if (v == nullptr) throw std::out_of_range("CowMap::at");
    return *v;
  }

  // The record at k for changing it, cloned first if shared; throws std::out_of_range when
  // absent. Invalidates iterators of this map.
  V& Mutable(const K& k) {
    if (!contains(k)) throw std::out_of_range("CowMap::Mutable");
    std::shared_ptr<const V>& slot = OwnChunk(Own().at(ChunkOf(k))).at(k);
    if (slot.use_count() > 1) slot = std::make_shared<V>(*slot);
    return const_cast<V&>(*slot);  // unshared, and every record is created non-const
  }
  // Mutable, or nullptr when absent.
  V* FindMutable(const K& k) { return contains(k) ? &Mutable(k) : nullptr; }
  // Inserts or replaces the record at k; returns it for further changes.
  V& Put(const K& k, V v) {
    auto p = std::make_shared<V>(std::move(v));
    V& ref = *p;
    std::shared_ptr<const Chunk>& c = Own()[ChunkOf(k)];
    if (!c) c = std::make_shared<Chunk>();
    if (OwnChunk(c).insert_or_assign(k, std::move(p)).second) ++size_;
    return ref;
  }
  size_t erase(const K& k) {
    if (!contains(k)) return 0;
    auto o = Own().find(ChunkOf(k));
    Chunk& c = OwnChunk(o->second);
    c.erase(k);
    if (c.empty()) Own().erase(o);
    --size_;
    return 1;
  }
  void clear() {
    map_ = Empty();
    size_ = 0;
  }

  // Calls fn(key, record or nullptr when gone) for every key whose record in *this differs
  // from the one in `before`, in key order; skips shared chunks and records by pointer.
  template <typename F>
  void ForEachChange(const CowMap& before, F&& fn) const {
    if (map_ == before.map_) return;
    auto a = before.map_->begin(), b = map_->begin();
    while (a != before.map_->end() || b != map_->end()) {
      if (b == map_->end() || (a != before.map_->end() && a->first < b->first)) {
        for (const auto& [k, _] : *a->second) fn(k, static_cast<const V*>(nullptr));
        ++a;
      } else if (a == before.map_->end() || b->first < a->first) {
        for (const auto& [k, v] : *b->second) fn(k, v.get());
        ++b;
      } else {
        if (a->second != b->second) DiffChunks(*a->second, *b->second, fn);
        ++a;
        ++b;
      }
    }
  }

  bool operator==(const CowMap& o) const {
    if (map_ == o.map_) return true;
    if (size_ != o.size_) return false;
    bool same = true;
    ForEachChange(o, [&](const K&, const V*) { same = false; });
    return same;
  }

 private:
  static std::shared_ptr<const Outer> Empty() {
    static const std::shared_ptr<const Outer> kEmpty = std::make_shared<Outer>();
    return kEmpty;
  }
  template <typename F>
  static void DiffChunks(const Chunk& ca, const Chunk& cb, F& fn) {
    auto a = ca.begin(), b = cb.begin();
    while (a != ca.end() || b != cb.end()) {
      if (b == cb.end() || (a != ca.end() && a->first < b->first)) {
        fn(a->first, static_cast<const V*>(nullptr));
        ++a;
      } else if (a == ca.end() || b->first < a->first) {
        fn(b->first, b->second.get());
        ++b;
      } else {
        if (a->second != b->second && !(*a->second == *b->second)) fn(b->first, b->second.get());
        ++a;
        ++b;
      }
    }
  }
  // The outer map, cloned first if another State shares it (one node per chunk).
  Outer& Own() {
    if (map_.use_count() > 1) map_ = std::make_shared<Outer>(*map_);
    return const_cast<Outer&>(*map_);  // unshared, and every map but kEmpty is created non-const
  }
  // A chunk of the (owned) outer map, cloned first if shared.
  static Chunk& OwnChunk(std::shared_ptr<const Chunk>& c) {
    if (c.use_count() > 1) c = std::make_shared<Chunk>(*c);
    return const_cast<Chunk&>(*c);  // unshared, and every chunk is created non-const
  }
  std::shared_ptr<const Outer> map_;
  size_t size_ = 0;
};

// A derived index from string keys to record ids, shared copy-on-write like the maps it
// indexes: a key hashes to one of kBuckets buckets (each a short list), so a change copies one
// bucket, its chunk and the outer map of CowMap, never the whole index.
class KeyIndex {
 public:
  void Add(const std::string& key, int64_t id);
  // Removes one (key, id) entry added before; nothing when there is none.
  void Remove(const std::string& key, int64_t id);
  // The smallest id added under key, or 0 when none (record ids start at 1).
  int64_t Find(const std::string& key) const;

 private:
  static constexpr int64_t kBuckets = 8192;
  using Bucket = std::vector<std::pair<std::string, int64_t>>;
  static int64_t BucketOf(const std::string& key);
  CowMap<int64_t, Bucket> buckets_;
};

// A derived index from integer keys to sets of ids (kept sorted), shared copy-on-write.
class IdSetIndex {
 public:
  void Add(int64_t key, int64_t id);
  void Remove(int64_t key, int64_t id);
  bool contains(int64_t key) const { return sets_.contains(key); }
  // The ids under key, ascending; empty when none.
  const std::vector<int64_t>& Get(int64_t key) const;

 private:
  CowMap<int64_t, std::vector<int64_t>> sets_;
};

struct Counters {
  int64_t nextVolumeId = 1;
  int64_t nextGlobalLocal = 1;
  int64_t nextPlacementGroupId = 1;
  int64_t nextTemplateId = 1;
  int64_t nextFaultSetId = 1;
  std::string clusterId;  // "location.cluster", fixed at first start
  bool operator==(const Counters&) const = default;
};

struct State {
  int64_t generation = 0;
  Counters counters;
  std::map<uint32_t, ServerRecord> servers;
  std::map<uint32_t, ClientRecord> clients;
  std::map<uint32_t, DiskRecord> disks;
  std::map<std::string, PlacementGroupRecord> placementGroups;
  std::map<std::string, TemplateRecord> templates;
  // Copy-on-write (see CowMap): a change copies the records it touches, not all of them.
  CowMap<int64_t, VolumeRecord> volumes;
  CowMap<int64_t, VolumeRecord> snapshots;  // id = the frozen layer's id
  std::map<std::string, FaultSetRecord> faultSets;
  std::map<std::string, KvBucketRecord> kv;
  MgmtConfigRecord config;
  // Derived, not persisted: kept by PutVolume / EraseVolume / PutSnapshot / EraseSnapshot (every
  // change to a volume or snapshot goes through those, never through CowMap::Mutable/Put/erase
  // of the maps above), rebuilt at load by RebuildDerived; equal to a rebuild at all times.
  // Disk id → disk sets of all volumes' and snapshots' tables that hold it.
  std::map<uint32_t, uint64_t> diskUse;
  // Name and "~<globalId>" → id, for FindVolume and FindSnapshot.
  KeyIndex volumeKeys, snapshotKeys;
  // Layer id → the volumes and snapshots whose nearest parent it is.
  IdSetIndex children;
  // Client id → the volumes and snapshots attached there.
  IdSetIndex attachedTo;
  // Snapshots that are deleted, bound, transient or have a delete date (the value is unused):
  // the ones snapshot collection has to look at.
  CowMap<int64_t, char> collectCandidates;

  void PutVolume(VolumeRecord v);
  void EraseVolume(int64_t id);
  void PutSnapshot(VolumeRecord v);
  void EraseSnapshot(int64_t id);
  void RebuildDerived();
  // The volume or snapshot with this id (ids are shared by both), or nullptr.
  const VolumeRecord* FindLayer(int64_t id) const;
  // Finds a snapshot by name or "~<globalId>"; nullptr when absent.
  const VolumeRecord* FindSnapshot(const std::string& name_or_gid) const;

  // Finds a volume by name or "~<globalId>"; nullptr when absent.
  // (Change what it finds through volumes.Mutable(found->id).)
  const VolumeRecord* FindVolume(const std::string& name_or_gid) const;
};

// One layer's share of a disk, as its server reports it.
struct LayerUsage {
  int64_t objects = 0;
  int64_t storedBytes = 0;
};
// One object on a disk, as its server reports it (for DiskDescribe).
struct ObjectUsage {
  int64_t layer = 0, object = 0, version = 0, state = 0, storedBytes = 0;
};

// Usage numbers a server reports with each heartbeat; not configuration, not persisted.
struct DiskStats {
  int64_t objectsCount = 0, objectsAllocated = 0, objectsOnDiskSize = 0, storedSize = 0;
  int64_t entriesCount = 0, entriesAllocated = 0;
  std::map<int64_t, LayerUsage> layers;  // layer id (= volume id) → usage
  std::vector<ObjectUsage> objects;      // may be empty when the server sends none
};

// A group snapshot's cut in progress (api_group_snapshot.cc, docs/decisions/0007-group-
// snapshot.md): the clients writing to its volumes hold their writes back and drain them; then
// the snapshots of all the volumes are committed as one change and the clients go on in the
// new layers.
struct GroupCut {
  int64_t id = 0;
  // client id → globalIds of the cut's volumes attached read-write there when the cut began
  // (clients that were up); what each is asked to hold.
  std::map<uint32_t, std::set<std::string>> clients;
  // client id → the globalIds it reported held, with no write in flight.
  std::map<uint32_t, std::set<std::string>> paused;
  // The generation that commits the snapshots, once the commit is under way (else 0): a
  // ClientState of that generation or later carries the new layers and no pause.
  int64_t commitGeneration = 0;
};

struct Runtime {
  std::map<uint32_t, std::chrono::steady_clock::time_point> serverHeard, clientHeard;
  std::map<uint32_t, DiskStats> diskStats;
  std::map<uint32_t, int64_t> clientApplied;  // client id → generation it applied
  // client id → globalIds of volumes with open NBD connections or an open kernel device there
  std::map<uint32_t, std::set<std::string>> clientOpen;
  // disk id → the recovery progress its server last reported (TasksList).
  std::map<uint32_t, nlohmann::json> recovery;
  std::map<uint32_t, int64_t> serverApplied;  // server id → generation it applied (fencing)
  std::optional<GroupCut> cut;                // at most one group snapshot cuts at a time
  int64_t nextCutId = 1;
};

// Every entity of `state` serialized: ("disk", "101") → JSON text, and so on.
std::map<EntityKey, std::string> ToEntities(const State& state);
// The changes turning `before` into `after`: records are compared in memory and only the ones
// that differ are serialized (cost grows with the change, plus a cheap compare per record).
std::vector<EntityChange> DiffStates(const State& before, const State& after);
// Rebuilds a State from a store snapshot. kCorruption names a bad entity.
Result<State> FromSnapshot(const StoreSnapshot& snap);
// The changes turning `before` into `after`.
std::vector<EntityChange> Diff(const std::map<EntityKey, std::string>& before,
                               const std::map<EntityKey, std::string>& after);

// Base-36 lowercase digits of n (n >= 0).
std::string Base36(int64_t n);

}  // namespace spindle::mgmt
