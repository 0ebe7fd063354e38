// Views of the space/status listings and the administration objects: template status, volume
// quickStatus/usedSpace/info, fault sets, VAGs, the KV store and mgmtConfig.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "cli/render_util.h"
#include "cli/size.h"
#include "cli/table.h"

namespace spindle::cli {
namespace {

using nlohmann::json;
using namespace cells;  // NOLINT: the cell helpers

const json& Member(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object() || !obj.contains(key)) return kNull;
  return obj[key];
}

std::string IdList(const json& ids) {
  std::vector<int64_t> v;
  if (ids.is_array()) {
    for (const auto& x : ids) {
      if (x.is_number_integer()) v.push_back(x.get<int64_t>());
    }
  }
  std::sort(v.begin(), v.end());
  std::string out;
  for (int64_t i : v) out += (out.empty() ? "" : " ") + std::to_string(i);
  return out;
}

// StorPool's `template status` columns (storpool.md §2.4). "size" is the provisioned size of
// the template's volumes; capacity/avail. come from `stored` (what still fits, replication
// counted) and the per-placement-group available space.
std::string TemplateStatus(const json& data) {
  Table t({"template", "place head", "place all", "place tail", "rdnd.", "volumes",
           "snapshots/removing", "size", "capacity", "avail.", "avail. all", "avail. tail",
           "avail. head", "flags"});
  for (size_t c = 4; c < 13; ++c) t.SetAlign(c, Align::kRight);
  if (!data.is_array()) return t.Render();
  for (const auto& x : data) {
    const json& stored = Member(x, "stored");
    t.AddRow({Str(x, "name"), Str(x, "placeHead"), Str(x, "placeAll"), Str(x, "placeTail"),
              Str(x, "replication"), Str(x, "volumesCount"),
              fmt::format("{}/{}", Int(x, "snapshotsCount"), Int(x, "removingSnapshotsCount")),
              SizeOf(x, "totalSize"), SizeOf(stored, "capacity"), SizeOf(stored, "free"),
              SizeOf(x, "availablePlaceAll"), SizeOf(x, "availablePlaceTail"),
              SizeOf(x, "availablePlaceHead"), ""});
  }
  return t.Render();
}

std::string QuickStatus(const json& data) {
  Table t({"volume", "size", "rdnd.", "syncing", "missing", "status", "flags"});
  for (int c : {1, 2, 3, 4}) t.SetAlign(c, Align::kRight);
  if (data.is_object()) {
    for (const auto& [name, v] : data.items()) {
      t.AddRow({name, SizeOf(v, "size"), Str(v, "replication"), SizeOf(v, "syncingDataBytes"),
                SizeOf(v, "downBytes"), Str(v, "status"), StatusFlags(v)});
    }
  }
  return t.Render();
}

// `first` names the first column: "volume" (VolumesSpace) or "snapshot" (SnapshotsSpace).
std::string UsedSpace(const json& data, const char* first) {
  Table t({first, "size", "rdnd.", "stored", "used", "template"});
  for (int c : {1, 2, 3, 4}) t.SetAlign(c, Align::kRight);
  if (data.is_array()) {
    for (const auto& v : data) {
      t.AddRow({Str(v, "name"), SizeOf(v, "size"), Str(v, "replication"), SizeOf(v, "storedSize"),
                SizeOf(v, "spaceUsed"), Str(v, "templateName")});
    }
  }
  return t.Render();
}

// A summary line, then objects per disk and per disk set.
std::string VolumeInfo(const json& data) {
  std::string out =
      fmt::format("volume {}: {} objects on {} disks, replication {}\n", Str(data, "name"),
                  Int(data, "objectsCount"), Int(data, "disksCount"), Str(data, "replication"));
  Table disks({"disk", "objects"});
  disks.SetAlign(0, Align::kRight).SetAlign(1, Align::kRight);
  std::map<int64_t, int64_t> per_disk;
  const json& pd = Member(data, "objectsPerDisk");
  if (pd.is_object()) {
    for (const auto& [k, n] : pd.items()) {
      per_disk[std::strtoll(k.c_str(), nullptr, 10)] = n.is_number() ? n.get<int64_t>() : 0;
    }
  }
  for (auto [d, n] : per_disk) disks.AddRow({std::to_string(d), std::to_string(n)});
  Table sets({"disk set", "objects"});
  sets.SetAlign(1, Align::kRight);
  const json& ps = Member(data, "objectsPerDiskSet");
  if (ps.is_array()) {
    for (const auto& s : ps) sets.AddRow({IdList(Member(s, "disks")), Str(s, "count")});
  }
  return out + disks.Render() + sets.Render();
}

std::string FaultSets(const json& data) {
  Table t({"name", "servers"});
  if (data.is_object()) {
    for (const auto& [name, fs] : data.items()) t.AddRow({name, IdList(Member(fs, "servers"))});
  }
  return t.Render();
}

std::string Vag(const json& data) {
  std::string flags = Flag(data, "reuseServer") ? "R" : "";
  if (Flag(data, "diskSetsConstraintsViolated")) flags += "C";
  Table head(
      {"vag", "template", "rdnd.", "placeHead", "placeAll", "placeTail", "disk sets", "flags"});
  const json& sets = Member(data, "targetDiskSets");
  head.AddRow({Str(data, "name"), Str(data, "templateName"), Str(data, "replication"),
               Str(data, "placeHead"), Str(data, "placeAll"), Str(data, "placeTail"),
               std::to_string(sets.is_array() ? sets.size() : 0), flags});
  Table t({"#", "disks"});
  t.SetAlign(0, Align::kRight);
  if (sets.is_array()) {
    for (size_t i = 0; i < sets.size(); ++i) {
      std::string ids;
      for (const auto& d : sets[i]) ids += (ids.empty() ? "" : " ") + d.dump();
      t.AddRow({std::to_string(i), ids});
    }
  }
  return head.Render() + t.Render();
}

std::string KvBuckets(const json& data) {
  Table t({"bucket", "version"});
  t.SetAlign(1, Align::kRight);
  const json& b = Member(data, "buckets");
  if (b.is_object()) {
    for (const auto& [name, version] : b.items()) t.AddRow({name, version.dump()});
  }
  return t.Render();
}

std::string KvBucket(const json& data) {
  std::string out = fmt::format("bucket {} version {}\n", Str(data, "name"), Str(data, "version"));
  Table t({"key", "value"});
  const json& p = Member(data, "pairs");
  if (p.is_object()) {
    for (const auto& [k, v] : p.items()) {
      t.AddRow({k, v.is_string() ? v.get<std::string>() : v.dump()});
    }
  }
  return out + t.Render();
}

// One setting per line in StorPool's wording (storpool.md §2.14).
std::string MgmtConfig(const json& data) {
  static const std::map<std::string, std::string> kLabels = {
      {"reuseServerImplicitOnDiskDown", "reuse server implicit on disk down"}};
  std::string out;
  if (!data.is_object()) return out;
  for (const auto& [k, v] : data.items()) {
    auto label = kLabels.find(k);
    std::string value = v.is_boolean()  ? (v.get<bool>() ? "enabled" : "disabled")
                        : v.is_string() ? v.get<std::string>()
                                        : v.dump();
    out += (label == kLabels.end() ? k : label->second) + " " + value + "\n";
  }
  return out;
}

}  // namespace

std::string Tasks(const json& data) {
  Table t({"disk", "task id", "total objects", "completed", "dispatched", "unresolved"});
  for (size_t c = 0; c < 6; ++c) t.SetAlign(c, Align::kRight);
  if (data.is_array()) {
    for (const json& task : data) {
      t.AddRow({Str(task, "diskId"), Str(task, "transactionId"), Str(task, "allObjects"),
                Str(task, "completedObjects"), Str(task, "dispatchedObjects"),
                Str(task, "unresolvedObjects")});
    }
  }
  return t.Render();
}

std::string RenderAdmin(View view, const json& data) {
  switch (view) {
    case View::kTemplateStatus:
      return TemplateStatus(data);
    case View::kVolumeQuickStatus:
      return QuickStatus(data);
    case View::kVolumeSpace:
      return UsedSpace(data, "volume");
    case View::kSnapshotSpace:
      return UsedSpace(data, "snapshot");
    case View::kVolumeInfo:
      return VolumeInfo(data);
    case View::kFaultSets:
      return FaultSets(data);
    case View::kVag:
      return Vag(data);
    case View::kKvBuckets:
      return KvBuckets(data);
    case View::kKvBucket:
      return KvBucket(data);
    case View::kMgmtConfig:
      return MgmtConfig(data);
    case View::kTasks:
      return Tasks(data);
    default:
      return data.dump(4) + "\n";
  }
}

}  // namespace spindle::cli
