#include "cli/render.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>

#include <fmt/format.h>

#include "cli/render_util.h"
#include "cli/size.h"
#include "cli/table.h"
#include "common/units.h"

namespace spindle::cli {
namespace cells {

using nlohmann::json;

// A member as display text: strings bare, numbers in decimal, "-" when absent or null.
std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return "-";
  const json& v = obj[key];
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

int64_t Int(const json& obj, const char* key, int64_t fallback) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number()) return fallback;
  return obj[key].get<int64_t>();
}

std::string SizeOf(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number()) return Str(obj, key);
  return FormatSize(obj[key].get<uint64_t>());
}

bool Flag(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_boolean() && obj[key].get<bool>();
}

std::string Tags(const json& obj) {
  if (!obj.is_object() || !obj.contains("tags") || !obj["tags"].is_object()) return "";
  std::string out;
  for (const auto& [k, v] : obj["tags"].items()) {
    if (!out.empty()) out += ",";
    out += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

// Sorts an id-keyed map numerically ("2" before "10").
std::vector<const json*> ById(const json& map) {
  std::map<int64_t, const json*> sorted;
  std::vector<const json*> other;
  if (!map.is_object()) return other;
  for (const auto& [k, v] : map.items()) {
    char* end = nullptr;
    long long id = std::strtoll(k.c_str(), &end, 10);
    if (end != nullptr && *end == '\0' && !k.empty()) {
      sorted[id] = &v;
    } else {
      other.push_back(&v);
    }
  }
  std::vector<const json*> out;
  for (auto& [id, v] : sorted) out.push_back(v);
  out.insert(out.end(), other.begin(), other.end());
  return out;
}

std::string StatusFlags(const json& v) {
  std::string flags;
  if (Flag(v, "snapshot")) flags += "S";
  if (Flag(v, "migrating")) flags += "M";
  if (Flag(v, "decreasedRedundancy")) flags += "D";
  if (Flag(v, "balancerBlocked")) flags += "B";
  if (Flag(v, "constraintsViolated")) flags += "C";
  return flags;
}

}  // namespace cells

namespace {

using nlohmann::json;
using namespace cells;  // NOLINT: the cell helpers

std::string Services(const json& data, bool servers_only) {
  Table t({"type", "id", "node", "status", "version", "flags"});
  t.SetAlign(1, Align::kRight).SetAlign(2, Align::kRight);
  static const std::pair<const char*, const char*> kKinds[] = {{"mgmt", "mgmt"},
                                                               {"servers", "server"},
                                                               {"clients", "client"},
                                                               {"bridges", "bridge"},
                                                               {"iscsiTargets", "iSCSI"}};
  for (const auto& [key, label] : kKinds) {
    if (servers_only && std::string(key) != "servers") continue;
    if (!data.is_object() || !data.contains(key)) continue;
    for (const json* s : ById(data[key])) {
      std::string flags = Flag(*s, "active") ? "active" : "";
      if (s->contains("missingDisks") && !(*s)["missingDisks"].empty()) {
        flags += fmt::format("missing disks {}", (*s)["missingDisks"].dump());
      }
      t.AddRow(
          {label, Str(*s, "id"), Str(*s, "nodeId"), Str(*s, "status"), Str(*s, "version"), flags});
    }
  }
  std::string head = servers_only ? "" : "cluster " + Str(data, "clusterStatus") + "\n";
  return head + t.Render();
}

std::string ClientStatus(const json& data) {
  Table t({"client", "status", "generation", "client generation", "delay"});
  for (int c : {0, 2, 3, 4}) t.SetAlign(c, Align::kRight);
  if (data.is_array()) {
    for (const auto& c : data) {
      t.AddRow({Str(c, "id"), Str(c, "configStatus"), Str(c, "generation"),
                Str(c, "clientGeneration"), Str(c, "delay")});
    }
  }
  return t.Render();
}

std::string DiskFlags(const json& d) {
  std::string f;
  if (Flag(d, "ssd")) f += "S";
  if (Flag(d, "journaled")) f += "J";
  if (Flag(d, "isWbc")) f += "W";
  if (Flag(d, "noFlush")) f += "F";
  if (Flag(d, "noTrim")) f += "T";
  std::string se = d.is_object() ? d.value("softEject", std::string("off")) : "off";
  if (se == "on") f += "E";
  if (se == "paused") f += "P";
  return f;
}

// "used" is the space reserved by allocated objects (kObjectSize each), "on-disk size" what
// they really occupy (thin); est.free is the disk minus the reserved space.
std::string Disks(const json& data) {
  Table t({"disk", "server", "size", "used", "est.free", "%", "free entries", "on-disk size",
           "allocated objects", "errors", "flags"});
  for (int c : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) t.SetAlign(c, Align::kRight);
  for (const json* dp : ById(data)) {
    const json& d = *dp;
    if (Int(d, "generationLeft", -1) != -1) {
      t.AddRow({Str(d, "id"), Str(d, "serverId"), "-", "-", "-", "-", "-", "-", "-", "-", "down"});
      continue;
    }
    uint64_t size = static_cast<uint64_t>(Int(d, "sectorsCount")) * 512;
    uint64_t used =
        std::min<uint64_t>(size, static_cast<uint64_t>(Int(d, "objectsAllocated")) * kObjectSize);
    uint64_t on_disk = static_cast<uint64_t>(Int(d, "objectsOnDiskSize"));
    uint64_t free = size > used ? size - used : 0;
    int64_t pct = size == 0 ? 0 : static_cast<int64_t>(used * 100 / size);
    int64_t entries_free =
        Int(d, "entriesFree", Int(d, "entriesCount") - Int(d, "entriesAllocated"));
    t.AddRow(
        {Str(d, "id"), Str(d, "serverId"), FormatSize(size), FormatSize(used), FormatSize(free),
         fmt::format("{} %", pct), std::to_string(entries_free), FormatSize(on_disk),
         fmt::format("{} / {}", Int(d, "objectsAllocated"), Int(d, "objectsCount")),
         fmt::format("{} / {}", Int(d, "totalErrorsDetected"), Int(d, "pendingErrorRecoveries")),
         DiskFlags(d)});
  }
  return t.Render();
}

std::string PgList(const json& data) {
  Table t({"name"});
  if (data.is_object()) {
    for (const auto& [name, pg] : data.items()) t.AddRow({name});
  }
  return t.Render();
}

std::string PgDisks(const json& data) {
  Table t({"type", "id"});
  std::string ids;
  if (data.is_object() && data.contains("disks") && data["disks"].is_array()) {
    std::vector<int64_t> disks;
    for (const auto& d : data["disks"]) {
      if (d.is_number()) disks.push_back(d.get<int64_t>());
    }
    std::sort(disks.begin(), disks.end());
    for (int64_t d : disks) ids += (ids.empty() ? "" : " ") + std::to_string(d);
  }
  t.AddRow({"disk", ids});
  return t.Render();
}

std::string Templates(const json& data) {
  Table t({"template", "size", "rdnd.", "placeHead", "placeAll", "placeTail", "iops", "bw",
           "parent", "flags"});
  t.SetAlign(1, Align::kRight).SetAlign(2, Align::kRight);
  if (data.is_array()) {
    for (const auto& x : data) {
      std::string flags = Flag(x, "reuseServer") ? "R" : "";
      if (x.is_object() && x.value("limitType", std::string()) == "perGiB") flags += "G";
      t.AddRow({Str(x, "name"), SizeOf(x, "size"), Str(x, "replication"), Str(x, "placeHead"),
                Str(x, "placeAll"), Str(x, "placeTail"), Str(x, "iops"), Str(x, "bw"),
                Str(x, "parentName"), flags});
    }
  }
  return t.Render();
}

std::string Volumes(const json& data) {
  Table t({"volume", "size", "rdnd.", "placeHead", "placeAll", "placeTail", "iops", "bw", "parent",
           "template", "flags", "tags"});
  t.SetAlign(1, Align::kRight).SetAlign(2, Align::kRight);
  if (data.is_array()) {
    for (const auto& v : data) {
      std::string flags = Flag(v, "reuseServer") ? "R" : "";
      t.AddRow({Str(v, "name"), SizeOf(v, "size"), Str(v, "replication"), Str(v, "placeHead"),
                Str(v, "placeAll"), Str(v, "placeTail"), Str(v, "iops"), Str(v, "bw"),
                Str(v, "parentName"), Str(v, "templateName"), flags, Tags(v)});
    }
  }
  return t.Render();
}

// A Unix time as "YYYY-MM-DD HH:MM:SS" (UTC), "-" when absent or 0.
std::string Time(const json& obj, const char* key) {
  int64_t t = Int(obj, key, 0);
  if (t <= 0) return "-";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return Str(obj, key);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// storpool.md §2.3 columns. Flags: R reuseServer, B bound, D deleted (kept for its children),
// T transient.
std::string Snapshots(const json& data) {
  Table t({"snapshot", "size", "rdnd.", "placeHead", "placeAll", "placeTail", "created on",
           "volume", "iops", "bw", "parent", "template", "flags", "targetDeleteDate", "tags"});
  t.SetAlign(1, Align::kRight).SetAlign(2, Align::kRight);
  if (data.is_array()) {
    for (const auto& v : data) {
      std::string flags = Flag(v, "reuseServer") ? "R" : "";
      if (Flag(v, "bound")) flags += "B";
      if (Flag(v, "deleted")) flags += "D";
      if (Flag(v, "transient")) flags += "T";
      t.AddRow({Str(v, "name"), SizeOf(v, "size"), Str(v, "replication"), Str(v, "placeHead"),
                Str(v, "placeAll"), Str(v, "placeTail"), Time(v, "creationTimestamp"),
                Str(v, "onVolume"), Str(v, "iops"), Str(v, "bw"), Str(v, "parentName"),
                Str(v, "templateName"), flags, Time(v, "targetDeleteDate"), Tags(v)});
    }
  }
  return t.Render();
}

// Flags: see cells::StatusFlags.
std::string VolumeStatus(const json& data) {
  Table t(
      {"volume", "size", "rdnd.", "stored", "on disk", "syncing", "missing", "status", "flags"});
  for (int c : {1, 2, 3, 4, 5, 6}) t.SetAlign(c, Align::kRight);
  if (data.is_object()) {
    for (const auto& [name, v] : data.items()) {
      std::string flags = StatusFlags(v);
      t.AddRow({name, SizeOf(v, "size"), Str(v, "replication"), SizeOf(v, "storedSize"),
                SizeOf(v, "onDiskSize"), SizeOf(v, "syncingDataBytes"), SizeOf(v, "downBytes"),
                Str(v, "status"), flags});
    }
  }
  return t.Render();
}

std::string Attachments(const json& data, const json& volumes) {
  std::map<std::string, std::string> tags;
  if (volumes.is_array()) {
    for (const auto& v : volumes) {
      if (v.is_object() && v.contains("name") && v["name"].is_string()) {
        tags[v["name"].get<std::string>()] = Tags(v);
      }
    }
  }
  Table t({"client", "volume", "globalId", "mode", "tags"});
  t.SetAlign(0, Align::kRight);
  if (data.is_array()) {
    for (const auto& a : data) {
      std::string rights = Str(a, "rights");
      std::string mode = rights == "rw" ? "RW" : rights == "ro" ? "RO" : rights;
      std::string vol = Str(a, "volume");
      t.AddRow({Str(a, "client"), vol, Str(a, "globalId"), mode, tags.count(vol) ? tags[vol] : ""});
    }
  }
  return t.Render();
}

// Longest value shown by describe; the rest is cut (use -j for everything).
constexpr size_t kMaxDescribeValueChars = 100;

std::string Describe(const json& data) {
  if (!data.is_object()) return data.dump(4) + "\n";
  Table t({"field", "value"});
  for (const auto& [k, v] : data.items()) {
    std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    if (text.size() > kMaxDescribeValueChars) text = text.substr(0, kMaxDescribeValueChars) + "...";
    t.AddRow({k, text});
  }
  return t.Render();
}

}  // namespace

std::string Render(View view, const json& data, const json& aux) {
  switch (view) {
    case View::kOk:
      return "OK\n";
    case View::kServices:
      return Services(data, false);
    case View::kServers:
      return Services(data, true);
    case View::kClientStatus:
      return ClientStatus(data);
    case View::kDisks:
      return Disks(data);
    case View::kPgList:
      return PgList(data);
    case View::kPgDisks:
      return PgDisks(data);
    case View::kTemplates:
      return Templates(data);
    case View::kVolumes:
      return Volumes(data);
    case View::kSnapshots:
      return Snapshots(data);
    case View::kVolumeStatus:
      return VolumeStatus(data);
    case View::kAttachments:
      return Attachments(data, aux);
    case View::kDescribe:
      return Describe(data);
    default:
      return RenderAdmin(view, data);
  }
  return data.dump(4) + "\n";
}

}  // namespace spindle::cli
