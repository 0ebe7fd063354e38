#include "mgmt/state.h"

namespace spindle::mgmt {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DiskRecord, id, serverId, ssd, journaled, device,
                                                sectorsCount, model, serial, description, softEject,
                                                generationLeft)
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
                                                creationTimestamp, targetDiskSets, attachments)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counters, nextVolumeId, nextGlobalLocal,
                                                nextPlacementGroupId, nextTemplateId, clusterId)

namespace {

template <typename Map>
void Put(std::map<EntityKey, std::string>& out, const char* kind, const Map& m) {
  for (const auto& [k, v] : m) {
    std::string key;
    if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
      key = k;
    } else {
      key = std::to_string(k);
    }
    out[{kind, key}] = nlohmann::json(v).dump();
  }
}

template <typename T, typename Map, typename KeyFn>
void Take(const nlohmann::json& j, Map& m, KeyFn key_of) {
  T rec = j.get<T>();
  m[key_of(rec)] = std::move(rec);
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
  } else {
    return Error(Code::kCorruption, "unknown entity kind '{}'", kind);
  }
  return Status::Ok();
}

}  // namespace

const VolumeRecord* State::FindVolume(const std::string& name_or_gid) const {
  bool by_gid = !name_or_gid.empty() && name_or_gid[0] == '~';
  for (const auto& [id, v] : volumes) {
    if (v.name == name_or_gid || (by_gid && v.globalId == name_or_gid.substr(1))) return &v;
  }
  return nullptr;
}

VolumeRecord* State::FindVolume(const std::string& name_or_gid) {
  return const_cast<VolumeRecord*>(std::as_const(*this).FindVolume(name_or_gid));
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
