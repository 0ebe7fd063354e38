#include "mgmt/state.h"

#include <algorithm>
#include <functional>

namespace spindle::mgmt {

std::shared_ptr<const std::vector<DiskSetTable::Set>> DiskSetTable::Empty() {
  static const auto kEmpty = std::make_shared<const std::vector<Set>>();
  return kEmpty;
}
void to_json(nlohmann::json& j, const DiskSetTable& t) {
  j = t.get();
}
void from_json(const nlohmann::json& j, DiskSetTable& t) {
  t = DiskSetTable(j.get<std::vector<DiskSetTable::Set>>());
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DiskRecord, id, serverId, ssd, journaled, device,
                                                sectorsCount, model, serial, description, softEject,
                                                generationLeft, ignored, recovering,
                                                recoveringSince, leftAt, ejected,
                                                ejectedServerStart)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ServerRecord, id, nodeId, version, startTime, addr,
                                                port, up, disks)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ClientRecord, id, nodeId, version, startTime, up,
                                                nbd)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PlacementGroupRecord, id, name, disks)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TemplateRecord, id, name, placeAll, placeTail,
                                                placeHead, size, replication, bw, iops, reuseServer,
                                                tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AttachmentRecord, rights, pos)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VolumeRecord, id, name, globalId, size, replication,
                                                placeAll, placeTail, placeHead, templateName,
                                                templateId, reuseServer, bw, iops, tags,
                                                creationTimestamp, targetDiskSets, attachments,
                                                constraintsViolated, parents, onVolume, autoName,
                                                bound, transient, targetDeleteDate, deleted)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counters, nextVolumeId, nextGlobalLocal,
                                                nextPlacementGroupId, nextTemplateId,
                                                nextFaultSetId, clusterId)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FaultSetRecord, id, name, servers)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KvBucketRecord, name, version, pairs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MgmtConfigRecord, reuseServerImplicitOnDiskDown)

namespace {

template <typename K>
std::string KeyString(const K& k) {
  if constexpr (std::is_same_v<K, std::string>) {
    return k;
  } else {
    return std::to_string(k);
  }
}

template <typename Map>
void Put(std::map<EntityKey, std::string>& out, const char* kind, const Map& m) {
  for (const auto& [k, v] : m) out[{kind, KeyString(k)}] = nlohmann::json(v).dump();
}

// Appends the changes of one kind: a merge walk over two maps sorted the same way.
template <typename Map>
void DiffKind(std::vector<EntityChange>& out, const char* kind, const Map& a, const Map& b) {
  if constexpr (requires { b.ForEachChange(a, [](const auto&, const auto*) {}); }) {
    // Copy-on-write: only chunks and records that are not shared are compared.
    b.ForEachChange(a, [&](const auto& k, const auto* v) {
      out.push_back({{kind, KeyString(k)},
                     v ? std::optional<std::string>(nlohmann::json(*v).dump()) : std::nullopt});
    });
  } else {
    auto ia = a.begin(), ib = b.begin();
    auto less = a.key_comp();
    while (ia != a.end() || ib != b.end()) {
      if (ib == b.end() || (ia != a.end() && less(ia->first, ib->first))) {
        out.push_back({{kind, KeyString(ia->first)}, std::nullopt});
        ++ia;
      } else if (ia == a.end() || less(ib->first, ia->first)) {
        out.push_back({{kind, KeyString(ib->first)}, nlohmann::json(ib->second).dump()});
        ++ib;
      } else {
        if (!(ia->second == ib->second)) {
          out.push_back({{kind, KeyString(ib->first)}, nlohmann::json(ib->second).dump()});
        }
        ++ia;
        ++ib;
      }
    }
  }
}

template <typename T, typename Map, typename KeyFn>
void Take(const nlohmann::json& j, Map& m, KeyFn key_of) {
  T rec = j.get<T>();
  if constexpr (requires { m.Put(key_of(rec), std::move(rec)); }) {
    auto key = key_of(rec);
    m.Put(key, std::move(rec));
  } else {
    m[key_of(rec)] = std::move(rec);
  }
}

Status LoadEntity(const EntityKey& key, const std::string& text, State& s) {
  nlohmann::json j = nlohmann::json::parse(text);
  const std::string& kind = key.first;
  if (kind == "counters") {
    s.counters = j.get<Counters>();
  } else if (kind == "server") {
    Take<ServerRecord>(j, s.servers, [](const ServerRecord& r) { return r.id; });
  } else if (kind == "client") {
    Take<ClientRecord>(j, s.clients, [](const ClientRecord& r) { return r.id; });
  } else if (kind == "disk") {
    Take<DiskRecord>(j, s.disks, [](const DiskRecord& r) { return r.id; });
  } else if (kind == "pg") {
    Take<PlacementGroupRecord>(j, s.placementGroups,
                               [](const PlacementGroupRecord& r) { return r.name; });
  } else if (kind == "template") {
    Take<TemplateRecord>(j, s.templates, [](const TemplateRecord& r) { return r.name; });
  } else if (kind == "volume") {
    Take<VolumeRecord>(j, s.volumes, [](const VolumeRecord& r) { return r.id; });
  } else if (kind == "snapshot") {
    Take<VolumeRecord>(j, s.snapshots, [](const VolumeRecord& r) { return r.id; });
  } else if (kind == "faultset") {
    Take<FaultSetRecord>(j, s.faultSets, [](const FaultSetRecord& r) { return r.name; });
  } else if (kind == "kv") {
    Take<KvBucketRecord>(j, s.kv, [](const KvBucketRecord& r) { return r.name; });
  } else if (kind == "config") {
    s.config = j.get<MgmtConfigRecord>();
  } else {
    return Error(Code::kCorruption, "unknown entity kind '{}'", kind);
  }
  return Status::Ok();
}

}  // namespace

int64_t KeyIndex::BucketOf(const std::string& key) {
  return static_cast<int64_t>(std::hash<std::string>{}(key) % kBuckets);
}

void KeyIndex::Add(const std::string& key, int64_t id) {
  const int64_t b = BucketOf(key);
  if (buckets_.contains(b)) {
    buckets_.Mutable(b).emplace_back(key, id);
  } else {
    buckets_.Put(b, Bucket{{key, id}});
  }
}

void KeyIndex::Remove(const std::string& key, int64_t id) {
  const int64_t b = BucketOf(key);
  const Bucket* old = buckets_.get(b);
  if (old == nullptr) return;
  auto it = std::find(old->begin(), old->end(), std::pair<std::string, int64_t>(key, id));
  if (it == old->end()) return;
  if (old->size() == 1) {
    buckets_.erase(b);
    return;
  }
  Bucket& mine = buckets_.Mutable(b);
  mine.erase(mine.begin() + (it - old->begin()));
}

int64_t KeyIndex::Find(const std::string& key) const {
  const Bucket* b = buckets_.get(BucketOf(key));
  if (b == nullptr) return 0;
  int64_t best = 0;
  for (const auto& [k, id] : *b) {
    if (k == key && (best == 0 || id < best)) best = id;
  }
  return best;
}

void IdSetIndex::Add(int64_t key, int64_t id) {
  if (!sets_.contains(key)) {
    sets_.Put(key, {id});
    return;
  }
  std::vector<int64_t>& ids = sets_.Mutable(key);
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it == ids.end() || *it != id) ids.insert(it, id);
}

void IdSetIndex::Remove(int64_t key, int64_t id) {
  const std::vector<int64_t>* old = sets_.get(key);
  if (old == nullptr || !std::binary_search(old->begin(), old->end(), id)) return;
  if (old->size() == 1) {
    sets_.erase(key);
    return;
  }
  std::vector<int64_t>& ids = sets_.Mutable(key);
  ids.erase(std::lower_bound(ids.begin(), ids.end(), id));
}

const std::vector<int64_t>& IdSetIndex::Get(int64_t key) const {
  static const std::vector<int64_t> kNone;
  const std::vector<int64_t>* ids = sets_.get(key);
  return ids ? *ids : kNone;
}

namespace {

void CountUse(std::map<uint32_t, uint64_t>& use, const DiskSetTable& t, bool add) {
  for (const auto& set : t) {
    for (uint32_t d : set) {
      if (add) {
        ++use[d];
      } else if (auto it = use.find(d); it != use.end() && --it->second == 0) {
        use.erase(it);
      }
    }
  }
}

bool CollectCandidate(const VolumeRecord& v) {
  return v.deleted || v.bound || v.transient || v.targetDeleteDate != 0;
}

// Adds (add) or removes one record's entries in the derived indexes.
void Index(State& s, const VolumeRecord& v, bool snapshot, bool add) {
  CountUse(s.diskUse, v.targetDiskSets, add);
  KeyIndex& keys = snapshot ? s.snapshotKeys : s.volumeKeys;
  const std::string gid_key = "~" + v.globalId;
  if (add) {
    keys.Add(v.name, v.id);
    if (gid_key != v.name) keys.Add(gid_key, v.id);
  } else {
    keys.Remove(v.name, v.id);
    if (gid_key != v.name) keys.Remove(gid_key, v.id);
  }
  auto change = [add](IdSetIndex& index, int64_t key, int64_t id) {
    if (add) {
      index.Add(key, id);
    } else {
      index.Remove(key, id);
    }
  };
  if (!v.parents.empty()) change(s.children, v.parents.front(), v.id);
  for (const auto& [client, _] : v.attachments) {
    change(s.attachedTo, static_cast<int64_t>(std::stoull(client)), v.id);
  }
  if (snapshot && CollectCandidate(v)) {
    if (add) {
      s.collectCandidates.Put(v.id, 0);
    } else {
      s.collectCandidates.erase(v.id);
    }
  }
}

}  // namespace

void State::PutVolume(VolumeRecord v) {
  if (const VolumeRecord* old = volumes.get(v.id)) Index(*this, *old, false, false);
  Index(*this, v, false, true);
  const int64_t id = v.id;
  volumes.Put(id, std::move(v));
}

void State::EraseVolume(int64_t id) {
  const VolumeRecord* v = volumes.get(id);
  if (v == nullptr) return;
  Index(*this, *v, false, false);
  volumes.erase(id);
}

void State::PutSnapshot(VolumeRecord v) {
  if (const VolumeRecord* old = snapshots.get(v.id)) Index(*this, *old, true, false);
  Index(*this, v, true, true);
  const int64_t id = v.id;
  snapshots.Put(id, std::move(v));
}

void State::EraseSnapshot(int64_t id) {
  const VolumeRecord* v = snapshots.get(id);
  if (v == nullptr) return;
  Index(*this, *v, true, false);
  snapshots.erase(id);
}

void State::RebuildDerived() {
  diskUse.clear();
  volumeKeys = {};
  snapshotKeys = {};
  children = {};
  attachedTo = {};
  collectCandidates.clear();
  for (const auto& [_, v] : volumes) Index(*this, v, false, true);
  for (const auto& [_, v] : snapshots) Index(*this, v, true, true);
}

const VolumeRecord* State::FindLayer(int64_t id) const {
  const VolumeRecord* v = volumes.get(id);
  return v ? v : snapshots.get(id);
}

const VolumeRecord* State::FindSnapshot(const std::string& name_or_gid) const {
  const int64_t id = snapshotKeys.Find(name_or_gid);
  return id == 0 ? nullptr : snapshots.get(id);
}

const VolumeRecord* State::FindVolume(const std::string& name_or_gid) const {
  const int64_t id = volumeKeys.Find(name_or_gid);
  return id == 0 ? nullptr : volumes.get(id);
}

std::map<EntityKey, std::string> ToEntities(const State& state) {
  std::map<EntityKey, std::string> out;
  out[{"counters", "counters"}] = nlohmann::json(state.counters).dump();
  Put(out, "server", state.servers);
  Put(out, "client", state.clients);
  Put(out, "disk", state.disks);
  Put(out, "pg", state.placementGroups);
  Put(out, "template", state.templates);
  Put(out, "volume", state.volumes);
  Put(out, "snapshot", state.snapshots);
  Put(out, "faultset", state.faultSets);
  Put(out, "kv", state.kv);
  out[{"config", "config"}] = nlohmann::json(state.config).dump();
  return out;
}

std::vector<EntityChange> DiffStates(const State& a, const State& b) {
  std::vector<EntityChange> out;
  if (!(a.counters == b.counters)) {
    out.push_back({{"counters", "counters"}, nlohmann::json(b.counters).dump()});
  }
  if (!(a.config == b.config))
    out.push_back({{"config", "config"}, nlohmann::json(b.config).dump()});
  DiffKind(out, "server", a.servers, b.servers);
  DiffKind(out, "client", a.clients, b.clients);
  DiffKind(out, "disk", a.disks, b.disks);
  DiffKind(out, "pg", a.placementGroups, b.placementGroups);
  DiffKind(out, "template", a.templates, b.templates);
  DiffKind(out, "volume", a.volumes, b.volumes);
  DiffKind(out, "snapshot", a.snapshots, b.snapshots);
  DiffKind(out, "faultset", a.faultSets, b.faultSets);
  DiffKind(out, "kv", a.kv, b.kv);
  return out;
}

Result<State> FromSnapshot(const StoreSnapshot& snap) {
  State s;
  s.generation = snap.generation;
  for (const auto& [key, text] : snap.entities) {
    try {
      SP_RETURN_IF_ERROR(LoadEntity(key, text, s));
    } catch (const nlohmann::json::exception& e) {
      return Error(Code::kCorruption, "state entity {}/{}: {}", key.first, key.second, e.what());
    }
  }
  s.RebuildDerived();
  return s;
}

std::vector<EntityChange> Diff(const std::map<EntityKey, std::string>& before,
                               const std::map<EntityKey, std::string>& after) {
  std::vector<EntityChange> changes;
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end() || it->second != v) changes.push_back({k, v});
  }
  for (const auto& [k, v] : before) {
    if (after.find(k) == after.end()) changes.push_back({k, std::nullopt});
  }
  return changes;
}

std::string Base36(int64_t n) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[n % 36]);
    n /= 36;
  } while (n > 0);
  return out;
}

}  // namespace spindle::mgmt
