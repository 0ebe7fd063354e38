#include "cli/command.h"

#include <charconv>
#include <regex>
#include <set>

#include "cli/command_parse.h"
#include "cli/size.h"
#include "proto/api_validate.h"

namespace spindle::cli {
using namespace parse;  // NOLINT: the grammar helpers

namespace {

using nlohmann::json;

// VolumeSize: a whole number of sectors.
Result<uint64_t> ParseVolumeSize(const std::string& s, bool allow_relative, bool* relative) {
  SP_ASSIGN_OR_RETURN(SizeArg size, ParseSize(s));
  if (size.relative && !allow_relative) return Bad("size '" + s + "' cannot be relative");
  if (size.bytes == 0 || size.bytes % 512 != 0) {
    return Bad("size '" + s + "' must be a positive multiple of 512 bytes");
  }
  if (relative != nullptr) *relative = size.relative;
  return size.bytes;
}

// IOPS / bandwidth limits: a number, or "-"/"unlimited" for no limit. Bandwidth takes a size
// suffix and is then expressed in MiB/s ("0.12M" is not representable and is rejected).
Result<json> ParseLimit(const std::string& keyword, const std::string& s) {
  if (s == "-" || s == "unlimited") return json("-");
  if (keyword == "bw" && !s.empty() && !std::isdigit(static_cast<unsigned char>(s.back()))) {
    SP_ASSIGN_OR_RETURN(SizeArg size, ParseSize(s));
    if (size.relative || size.bytes % (1024 * 1024) != 0) {
      return Bad("bandwidth '" + s + "' must be a whole number of MiB/s");
    }
    return json(size.bytes / (1024 * 1024));
  }
  SP_ASSIGN_OR_RETURN(int64_t v, ParseInt(s, 0, INT64_MAX, keyword.c_str()));
  return json(v);
}

// The keywords shared by volume create/update and templates (VolumePolicyDesc). Returns
// false when `keyword` is not one of them.
Result<bool> PolicyKeyword(const std::string& keyword, Words& w, json& body) {
  if (keyword == "placeAll" || keyword == "placeTail" || keyword == "placeHead") {
    SP_ASSIGN_OR_RETURN(std::string pg, w.Value(keyword));
    SP_RETURN_IF_ERROR(CheckPlainName(pg, "placement group", kMaxPgNameChars));
    body[keyword] = pg;
  } else if (keyword == "replication") {
    SP_ASSIGN_OR_RETURN(std::string v, w.Value(keyword));
    SP_ASSIGN_OR_RETURN(int64_t n, ParseInt(v, 1, 3, "replication"));
    body["replication"] = n;
  } else if (keyword == "iops" || keyword == "bw") {
    SP_ASSIGN_OR_RETURN(std::string v, w.Value(keyword));
    SP_ASSIGN_OR_RETURN(body[keyword], ParseLimit(keyword, v));
  } else if (keyword == "reuseServer") {
    body["reuseServer"] = true;
  } else if (keyword == "tag") {
    SP_ASSIGN_OR_RETURN(std::string kv, w.Value(keyword));
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (!Matches(k, R"([A-Za-z0-9_\-.:]+)") || !Matches(v, R"([A-Za-z0-9_\-.:]*)")) {
      return Bad("invalid tag '" + kv + "' (expected name=value)");
    }
    body["tags"][k] = v;
  } else {
    return false;
  }
  return true;
}

// A duration for deleteAfter: a number of seconds, or with an s/m/h/d suffix.
Result<int64_t> ParseDuration(const std::string& keyword, const std::string& s) {
  static const std::pair<char, int64_t> kUnits[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
  int64_t unit = 1;
  std::string digits = s;
  for (const auto& [suffix, seconds] : kUnits) {
    if (!s.empty() && s.back() == suffix) {
      unit = seconds;
      digits = s.substr(0, s.size() - 1);
    }
  }
  constexpr int64_t kMaxSeconds = int64_t{100} * 366 * 86400;
  SP_ASSIGN_OR_RETURN(int64_t n, ParseInt(digits, 0, kMaxSeconds / unit, keyword.c_str()));
  return n * unit;
}

// `deleteAfter <duration>` / `targetDeleteDate <unix time>` of snapshot commands. Returns false
// when `keyword` is neither.
Result<bool> DeleteDateKeyword(const std::string& keyword, Words& w, json& body) {
  if (keyword != "deleteAfter" && keyword != "targetDeleteDate") return false;
  if (body.contains("deleteAfter") || body.contains("targetDeleteDate")) {
    return Bad("give deleteAfter or targetDeleteDate once");
  }
  SP_ASSIGN_OR_RETURN(std::string v, w.Value(keyword));
  if (keyword == "deleteAfter") {
    SP_ASSIGN_OR_RETURN(body["deleteAfter"], ParseDuration(keyword, v));
  } else {
    SP_ASSIGN_OR_RETURN(body["targetDeleteDate"], ParseInt(v, 0, 253402300799, "targetDeleteDate"));
  }
  return true;
}

}  // namespace

bool ListHasName(const json& list, const std::string& name) {
  if (list.is_object()) return list.contains(name);
  if (!list.is_array()) return false;
  for (const auto& item : list) {
    if (item.is_object() && item.value("name", json()) == name) return true;
  }
  return false;
}

bool IsMultiClusterPath(const std::string& path) {
  std::string prefix = kPrefix;
  if (path.rfind(prefix, 0) != 0) return false;
  std::string call = path.substr(prefix.size());
  return proto::IsMultiClusterCall(call.substr(0, call.find('/')));
}

std::string WithMultiCluster(const std::string& path) {
  if (!IsMultiClusterPath(path)) return path;
  return std::string(kPrefix) + "MultiCluster/" + path.substr(std::string(kPrefix).size());
}

// ---- per-object grammars -------------------------------------------------------------------

namespace {

Result<Command> ParseService(Words& w) {
  if (!w.done() && w.next() == "list" && w.done()) return Show("ServicesList", View::kServices);
  return Bad("usage: service list");
}

Result<Command> ParseServer(Words& w) {
  if (w.done()) return Bad("usage: server list | server <id> disk list");
  std::string first = w.next();
  if (first == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("ServersList", View::kServers);
  }
  SP_ASSIGN_OR_RETURN(int64_t id, ParseInt(first, 1, 32767, "server id"));
  if (!w.done() && w.next() == "disk" && !w.done() && w.next() == "list" && w.done()) {
    return Show("ServerDisksList/" + std::to_string(id), View::kDisks);
  }
  return Bad("usage: server <id> disk list");
}

Result<Command> ParseClient(Words& w) {
  if (!w.done() && w.next() == "status" && w.done()) {
    return Show("ClientsConfigDump", View::kClientStatus);
  }
  return Bad("usage: client status");
}

Result<Command> ParseDisk(Words& w) {
  const char* usage =
      "usage: disk list | disk <id> describe|forget|ignore|eject | "
      "disk <id> description <text>";
  if (w.done()) return Bad(usage);
  std::string first = w.next();
  if (first == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("DisksList", View::kDisks);
  }
  SP_ASSIGN_OR_RETURN(int64_t id, ParseDiskId(first));
  std::string sid = std::to_string(id);
  if (w.done()) return Bad(usage);
  std::string verb = w.next();
  if (verb == "description") {
    // The rest of the line, words joined by one space; "" clears it.
    std::string text;
    while (!w.done()) text += (text.empty() ? "" : " ") + w.next();
    if (text.size() > kMaxDiskDescChars || !Matches(text, R"([A-Za-z0-9_\- ]*)")) {
      return Bad("invalid disk description '" + text + "' (up to 30 of A-Z a-z 0-9 _ - space)");
    }
    return Change("DiskSetDescription/" + sid, json{{"description", text}});
  }
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  if (verb == "describe" || verb == "list") return Show("DiskDescribe/" + sid, View::kDescribe);
  if (verb == "forget") return Change("DiskForget/" + sid, nullptr);
  if (verb == "ignore") return Change("DiskIgnore/" + sid, nullptr);
  if (verb == "eject") return Change("DiskEject/" + sid, nullptr);
  return Bad("disk " + sid + ": unknown '" + verb + "'");
}

Result<Command> ParsePlacementGroup(Words& w) {
  if (w.done()) return Bad("usage: placementGroup list | placementGroup <pg> ...");
  std::string pg = w.next();
  if (pg == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("PlacementGroupsList", View::kPgList);
  }
  SP_RETURN_IF_ERROR(CheckPlainName(pg, "placement group", kMaxPgNameChars));
  if (w.done()) return Bad("placementGroup " + pg + ": expected list, addDisk, rmDisk, ...");
  if (w.peek() == "list" || w.peek() == "describe") {
    w.next();
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("PlacementGroupDescribe/" + pg, View::kPgDisks);
  }
  if (w.peek() == "delete") {
    w.next();
    SP_RETURN_IF_ERROR(Confirm(w, pg, "placement group"));
    return Change("PlacementGroupDelete/" + pg, nullptr);
  }
  json body = {{"addDisks", json::array()}, {"rmDisks", json::array()}};
  while (!w.done()) {
    std::string k = w.next();
    SP_ASSIGN_OR_RETURN(std::string v, w.Value(k));
    if (k == "addDisk" || k == "rmDisk") {
      SP_ASSIGN_OR_RETURN(int64_t id, ParseDiskId(v));
      body[k == "addDisk" ? "addDisks" : "rmDisks"].push_back(id);
    } else if (k == "rename") {
      SP_RETURN_IF_ERROR(CheckPlainName(v, "placement group", kMaxPgNameChars));
      body["rename"] = v;
    } else {
      return Bad("placementGroup " + pg + ": unknown keyword '" + k + "'");
    }
  }
  return Change("PlacementGroupUpdate/" + pg, std::move(body));
}

Result<Command> ParseTemplate(Words& w) {
  if (w.done()) return Bad("usage: template list | template <name> ...");
  std::string t = w.next();
  if (t == "list" || t == "status") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return t == "list" ? Show("VolumeTemplatesList", View::kTemplates)
                       : Show("VolumeTemplatesStatus", View::kTemplateStatus);
  }
  SP_RETURN_IF_ERROR(CheckPlainName(t, "template", kMaxNameChars));
  if (w.done()) return Bad("template " + t + ": expected parameters, describe or delete");
  if (w.peek() == "describe" || w.peek() == "list") {
    w.next();
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("VolumeTemplateDescribe/" + t, View::kDescribe);
  }
  if (w.peek() == "delete") {
    w.next();
    SP_RETURN_IF_ERROR(Confirm(w, t, "template"));
    return Change("VolumeTemplateDelete/" + t, nullptr);
  }
  json body = json::object();
  std::optional<std::string> rename;
  while (!w.done()) {
    std::string k = w.next();
    SP_ASSIGN_OR_RETURN(bool known, PolicyKeyword(k, w, body));
    if (known) continue;
    SP_ASSIGN_OR_RETURN(std::string v, w.Value(k));
    if (k == "size") {
      SP_ASSIGN_OR_RETURN(uint64_t bytes, ParseVolumeSize(v, false, nullptr));
      body["size"] = bytes;
    } else if (k == "parent") {
      body["parent"] = v;
    } else if (k == "rename") {
      SP_RETURN_IF_ERROR(CheckPlainName(v, "template", kMaxNameChars));
      rename = v;
    } else {
      return Bad("template " + t + ": unknown keyword '" + k + "'");
    }
  }
  json update = body;
  if (rename) update["rename"] = *rename;
  body["name"] = t;
  Command c = Change("VolumeTemplateCreate", std::move(body));
  c.probe = Get("VolumeTemplatesList");
  c.probe_name = t;
  c.alternate = Post("VolumeTemplateUpdate/" + t, std::move(update));
  return c;
}

// One VolumesReassign item for `attach`/`detach`; `client` may be "all" only for detach.
// `kind` is "volume" or "snapshot" (attached read-only).
Result<json> ReassignItem(const std::string& volume, Words& w, bool attach,
                          const char* kind = "volume") {
  json item = {{kind, volume}, {"force", false}};
  std::optional<json> client;
  bool ro = false;
  while (!w.done()) {
    std::string k = w.next();
    if (k == "force") {
      item["force"] = true;
      continue;
    }
    SP_ASSIGN_OR_RETURN(std::string v, w.Value(k));
    if (k == "client") {
      if (!attach && v == "all") {
        client = json("all");
      } else {
        SP_ASSIGN_OR_RETURN(int64_t id, ParseClientId(v));
        client = json(id);
      }
    } else if (k == "mode" && attach && (v == "ro" || v == "rw")) {
      ro = v == "ro";
    } else {
      return Bad("unexpected '" + k + " " + v + "'");
    }
  }
  if (!client) return Bad(std::string(attach ? "attach" : "detach") + ": 'client <id>' missing");
  if (!attach) {
    item["detach"] = client->is_string() ? *client : json::array({*client});
  } else {
    item[ro || std::string(kind) == "snapshot" ? "ro" : "rw"] = json::array({*client});
  }
  return item;
}

Result<Command> ParseVolumeCreate(const std::string& v, Words& w) {
  json body = {{"name", v}};
  while (!w.done()) {
    std::string k = w.next();
    SP_ASSIGN_OR_RETURN(bool known, PolicyKeyword(k, w, body));
    if (known) continue;
    SP_ASSIGN_OR_RETURN(std::string val, w.Value(k));
    if (k == "size") {
      SP_ASSIGN_OR_RETURN(uint64_t bytes, ParseVolumeSize(val, false, nullptr));
      body["size"] = bytes;
    } else if (k == "template") {
      SP_RETURN_IF_ERROR(CheckPlainName(val, "template", kMaxNameChars));
      body["template"] = val;
    } else if (k == "parent" || k == "baseOn") {
      body[k] = val;
    } else {
      return Bad("volume create: unknown keyword '" + k + "'");
    }
  }
  if (!body.contains("size") && !body.contains("template") && !body.contains("parent") &&
      !body.contains("baseOn")) {
    return Bad("volume create: 'size' is required (or a template, parent or baseOn)");
  }
  return Change("VolumeCreate", std::move(body));
}

Result<Command> ParseVolumeUpdate(const std::string& v, Words& w) {
  json body = json::object();
  while (!w.done()) {
    std::string k = w.next();
    SP_ASSIGN_OR_RETURN(bool known, PolicyKeyword(k, w, body));
    if (known) continue;
    if (k == "shrinkOk") {
      body["shrinkOk"] = true;
      continue;
    }
    SP_ASSIGN_OR_RETURN(std::string val, w.Value(k));
    if (k == "size") {
      bool relative = false;
      SP_ASSIGN_OR_RETURN(uint64_t bytes, ParseVolumeSize(val, true, &relative));
      body[relative ? "sizeAdd" : "size"] = bytes;
    } else if (k == "rename") {
      SP_RETURN_IF_ERROR(CheckVolumeName(val));
      body["rename"] = val;
    } else if (k == "template") {
      SP_RETURN_IF_ERROR(CheckPlainName(val, "template", kMaxNameChars));
      body["template"] = val;
    } else {
      return Bad("volume update: unknown keyword '" + k + "'");
    }
  }
  if (body.empty()) return Bad("volume update: nothing to change");
  return Change("VolumeUpdate/" + v, std::move(body));
}

// volume <v> snapshot [<name>] [tag k=v]... [bind] [deleteAfter D | targetDeleteDate T]
Result<Command> ParseVolumeSnapshot(const std::string& v, Words& w) {
  json body = json::object();
  while (!w.done()) {
    std::string k = w.next();
    if (k == "bind") {
      body["bind"] = true;
      continue;
    }
    if (k == "tag") {
      SP_ASSIGN_OR_RETURN(bool known, PolicyKeyword(k, w, body));
      if (known) continue;
    }
    SP_ASSIGN_OR_RETURN(bool date, DeleteDateKeyword(k, w, body));
    if (date) continue;
    if (body.contains("name")) return Bad("volume snapshot: unexpected '" + k + "'");
    SP_RETURN_IF_ERROR(CheckSnapshotName(k));
    body["name"] = k;
  }
  return Change("VolumeSnapshot/" + v, std::move(body));
}

// snapshot <s> [update] [rename N] [template T] [bind|unbind] [tag k=v]...
//   [deleteAfter D | targetDeleteDate T]   (SnapshotUpdate; deleteAfter 0 clears the date)
Result<Command> ParseSnapshotUpdate(const std::string& s, Words& w) {
  json body = json::object();
  while (!w.done()) {
    std::string k = w.next();
    if (k == "bind" || k == "unbind") {
      body["bind"] = k == "bind";
      continue;
    }
    if (k == "tag") {
      SP_ASSIGN_OR_RETURN(bool known, PolicyKeyword(k, w, body));
      if (known) continue;
    }
    SP_ASSIGN_OR_RETURN(bool date, DeleteDateKeyword(k, w, body));
    if (date) continue;
    SP_ASSIGN_OR_RETURN(std::string val, w.Value(k));
    if (k == "rename") {
      SP_RETURN_IF_ERROR(CheckSnapshotName(val));
      if (val[0] == '~') return Bad("rename: '" + val + "' is not a snapshot name");
      body["rename"] = val;
    } else if (k == "template") {
      SP_RETURN_IF_ERROR(CheckPlainName(val, "template", kMaxNameChars));
      body["template"] = val;
    } else {
      return Bad("snapshot " + s + ": unknown keyword '" + k + "'");
    }
  }
  if (body.empty()) return Bad("snapshot " + s + " update: nothing to change");
  return Change("SnapshotUpdate/" + s, std::move(body));
}

// `rebase [<parent>]` of volumes and snapshots: VolumeRebaseDesc.
Result<json> RebaseBody(Words& w) {
  json body = json::object();
  if (!w.done()) {
    std::string parent = w.next();
    SP_RETURN_IF_ERROR(CheckSnapshotName(parent));
    body["parentName"] = parent;
  }
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  return body;
}

// snapshot list|space | snapshot <s> list|describe|info | snapshot <s> delete <s>
// snapshot <s> rebase [<parent>] | snapshot <s> [update] <SnapshotUpdate keywords>
Result<Command> ParseSnapshot(Words& w) {
  if (w.done()) return Bad("usage: snapshot list|space | snapshot <name> list|describe|delete|...");
  std::string s = w.next();
  if (s == "list" || s == "space") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return s == "list" ? Show("SnapshotsList", View::kSnapshots)
                       : Show("SnapshotsSpace", View::kSnapshotSpace);
  }
  SP_RETURN_IF_ERROR(CheckSnapshotName(s));
  if (w.done()) return Bad("snapshot " + s + ": expected list, describe, update or delete");
  static const std::set<std::string> kUpdateWords = {
      "rename", "template", "bind", "unbind", "tag", "deleteAfter", "targetDeleteDate"};
  if (kUpdateWords.count(w.peek())) return ParseSnapshotUpdate(s, w);
  std::string verb = w.next();
  if (verb == "update") return ParseSnapshotUpdate(s, w);
  if (verb == "delete") {
    SP_RETURN_IF_ERROR(Confirm(w, s, "snapshot"));
    return Change("SnapshotDelete/" + s, nullptr);
  }
  if (verb == "rebase") {
    SP_ASSIGN_OR_RETURN(json body, RebaseBody(w));
    return Change("SnapshotRebase/" + s, std::move(body));
  }
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  if (verb == "list") return Show("Snapshot/" + s, View::kSnapshots);
  if (verb == "describe") return Show("SnapshotDescribe/" + s, View::kDescribe);
  if (verb == "info") return Show("SnapshotGetInfo/" + s, View::kVolumeInfo);
  return Bad("snapshot " + s + ": unknown '" + verb + "'");
}

// group_snapshot [tag k=v]... <volume> [name <snap>] [tag k=v]... [<volume> ...]...
// (VolumesGroupSnapshot): tags before the first volume are the group's, the others belong to
// the volume before them.
Result<Command> ParseGroupSnapshot(Words& w) {
  json body = {{"volumes", json::array()}};
  json* item = nullptr;
  while (!w.done()) {
    std::string k = w.next();
    if (k == "tag") {
      SP_ASSIGN_OR_RETURN(bool known, PolicyKeyword(k, w, item ? *item : body));
      if (known) continue;
    }
    if (k == "name") {
      SP_ASSIGN_OR_RETURN(std::string snap, w.Value(k));
      if (item == nullptr || item->contains("name")) {
        return Bad("group_snapshot: 'name' must follow a volume, once");
      }
      SP_RETURN_IF_ERROR(CheckSnapshotName(snap));
      if (snap[0] == '~') return Bad("name: '" + snap + "' is not a snapshot name");
      (*item)["name"] = snap;
      continue;
    }
    SP_RETURN_IF_ERROR(CheckVolumeName(k));
    body["volumes"].push_back({{"volume", k}});
    item = &body["volumes"].back();
  }
  if (body["volumes"].empty()) {
    return Bad("usage: group_snapshot <volume> [name <snap>] [tag k=v]... [<volume> ...]...");
  }
  return Change("VolumesGroupSnapshot", std::move(body));
}

// volume <v> freeze [deleteAfter D | targetDeleteDate T]: no body unless a date is given.
Result<Command> ParseVolumeFreeze(const std::string& v, Words& w) {
  json body = json::object();
  while (!w.done()) {
    std::string k = w.next();
    SP_ASSIGN_OR_RETURN(bool date, DeleteDateKeyword(k, w, body));
    if (!date) return Bad("volume freeze: unknown keyword '" + k + "'");
  }
  return Change("VolumeFreeze/" + v, body.empty() ? json(nullptr) : std::move(body));
}

Result<Command> ParseVolume(Words& w) {
  if (w.done()) return Bad("usage: volume list | volume status | volume <name> ...");
  std::string v = w.next();
  static const std::pair<const char*, std::pair<const char*, View>> kListings[] = {
      {"list", {"VolumesList", View::kVolumes}},
      {"status", {"VolumesGetStatus", View::kVolumeStatus}},
      {"quickStatus", {"VolumesGetStatusQuick", View::kVolumeQuickStatus}},
      {"usedSpace", {"VolumesSpace", View::kVolumeSpace}}};
  for (const auto& [word, call] : kListings) {
    if (v != word) continue;
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show(call.first, call.second);
  }
  SP_RETURN_IF_ERROR(CheckVolumeName(v));
  if (w.done()) return Bad("volume " + v + ": expected create, update, delete, list, ...");
  std::string verb = w.next();
  if (verb == "create") return ParseVolumeCreate(v, w);
  if (verb == "update") return ParseVolumeUpdate(v, w);
  if (verb == "delete") {
    SP_RETURN_IF_ERROR(Confirm(w, v, "volume"));
    return Change("VolumeDelete/" + v, nullptr);
  }
  if (verb == "attach" || verb == "detach") {
    SP_ASSIGN_OR_RETURN(json item, ReassignItem(v, w, verb == "attach"));
    return Change("VolumesReassign", json::array({std::move(item)}));
  }
  if (verb == "snapshot") return ParseVolumeSnapshot(v, w);
  if (verb == "freeze") return ParseVolumeFreeze(v, w);
  if (verb == "rebase") {
    SP_ASSIGN_OR_RETURN(json body, RebaseBody(w));
    return Change("VolumeRebase/" + v, std::move(body));
  }
  if (verb == "revertToSnapshot" || verb == "revert") {
    SP_ASSIGN_OR_RETURN(std::string snap, w.Value(verb));
    SP_RETURN_IF_ERROR(CheckSnapshotName(snap));
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Change("VolumeRevert/" + v, json{{"toSnapshot", snap}});
  }
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  if (verb == "list") return Show("Volume/" + v, View::kVolumes);
  if (verb == "listSnapshots") return Show("VolumeListSnapshots/" + v, View::kSnapshots);
  if (verb == "describe") return Show("VolumeDescribe/" + v, View::kDescribe);
  if (verb == "info") return Show("VolumeGetInfo/" + v, View::kVolumeInfo);
  return Bad("volume " + v + ": unknown '" + verb + "'");
}

// attach volume <v> client <id> [mode ro] [timeout <s>] [noWait] | attach list
// detach volume <v> client <id>|all [force]
Result<Command> ParseAttach(Words& w, bool attach) {
  const char* verb = attach ? "attach" : "detach";
  if (w.done()) return Bad(std::string("usage: ") + verb + " volume <name> client <id>");
  std::string what = w.next();
  if (attach && what == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    Command c = Show("AttachmentsList", View::kAttachments);
    c.aux = Get("VolumesList");
    return c;
  }
  if ((what != "volume" && what != "snapshot") || w.done()) {
    return Bad(std::string("usage: ") + verb + " volume|snapshot <name> client <id>");
  }
  std::string v = w.next();
  SP_RETURN_IF_ERROR(what == "volume" ? CheckVolumeName(v) : CheckSnapshotName(v));
  // `timeout`/`noWait` switch to VolumesReassignWait; they are pulled out before the item.
  std::vector<std::string> rest;
  std::optional<int64_t> timeout_s;
  while (!w.done()) {
    std::string k = w.next();
    if (attach && k == "noWait") {
      timeout_s = 0;
    } else if (attach && k == "timeout") {
      SP_ASSIGN_OR_RETURN(std::string t, w.Value(k));
      SP_ASSIGN_OR_RETURN(timeout_s, ParseInt(t, 0, 86400, "timeout"));
    } else {
      rest.push_back(k);
    }
  }
  Words item_words(rest, 0);
  SP_ASSIGN_OR_RETURN(json item, ReassignItem(v, item_words, attach, what.c_str()));
  if (!timeout_s) return Change("VolumesReassign", json::array({std::move(item)}));
  json body = {{"reassign", json::array({std::move(item)})}, {"attachTimeout", *timeout_s}};
  return Change("VolumesReassignWait", std::move(body));
}

}  // namespace

Result<Command> ParseCommand(const std::vector<std::string>& words) {
  if (words.empty()) return Bad("no command given");
  if (words.size() > kMaxWords) return Bad("too many words");
  Words w(words, 1);
  const std::string& object = words[0];
  if (object == "service") return ParseService(w);
  if (object == "server") return ParseServer(w);
  if (object == "client") return ParseClient(w);
  if (object == "disk") return ParseDisk(w);
  if (object == "placementGroup") return ParsePlacementGroup(w);
  if (object == "template") return ParseTemplate(w);
  if (object == "volume") return ParseVolume(w);
  if (object == "snapshot") return ParseSnapshot(w);
  if (object == "group_snapshot") return ParseGroupSnapshot(w);
  if (object == "attach") return ParseAttach(w, true);
  if (object == "detach") return ParseAttach(w, false);
  if (object == "faultSet") return ParseFaultSet(w);
  if (object == "vag") return ParseVag(w);
  if (object == "kv") return ParseKv(w);
  if (object == "mgmtConfig") return ParseMgmtConfig(w);
  if (object == "task") return ParseTask(w);
  return Bad("unknown object '" + object + "'");
}

const char* UsageText() {
  return R"(usage: spindle [-j] [-B] [-M] [--config FILE] <object> [<name>] <keyword value ...>
  -j  print the API's JSON reply    -B  retry transient errors    -M  MultiCluster calls
objects:
  service list | server list | server <id> disk list | client status
  disk list | disk <id> describe|forget|ignore|eject | disk <id> description <text>
  placementGroup list | placementGroup <pg> list | placementGroup <pg> delete <pg>
  placementGroup <pg> [addDisk <id>]... [rmDisk <id>]... [rename <new>]
  faultSet list | faultSet <fs> [addServer <id>]... [rmServer <id>]... [rename <new>]
  faultSet <fs> delete <fs>
  template list | template status | template <t> describe | template <t> delete <t>
  template <t> [replication N] [placeAll|placeTail|placeHead PG] [size S] [iops N] [bw N]
               [reuseServer] [parent SNAP] [rename NEW]
  volume list|status|quickStatus|usedSpace | volume <v> list|describe|info
  volume <v> delete <v>
  volume <v> create size S [template T] [placeAll|placeTail|placeHead PG] [replication N]
               [reuseServer] [iops N] [bw N] [tag k=v]...
  volume <v> update [size S|+S] [rename NEW] [template T] [tag k=v]... [shrinkOk]
  volume <v> create parent SNAP|baseOn VOL [size S] [tag k=v]...
  volume <v> attach client <id> [mode ro] | volume <v> detach client <id>|all
  volume <v> snapshot [NAME] [tag k=v]... [bind] [deleteAfter D|targetDeleteDate T]
  volume <v> listSnapshots | volume <v> revertToSnapshot SNAP | volume <v> rebase [SNAP]
  volume <v> freeze [deleteAfter D|targetDeleteDate T]
  snapshot list|space | snapshot <s> list|describe|info | snapshot <s> delete <s>
  snapshot <s> [update] [rename NEW] [template T] [bind|unbind] [tag k=v]...
               [deleteAfter D|targetDeleteDate T]   (D: seconds or Ns/Nm/Nh/Nd; 0 clears)
  snapshot <s> rebase [SNAP]
  group_snapshot [tag k=v]... VOL [name SNAP] [tag k=v]... [VOL [name SNAP] ...]...
  attach volume <v> client <id> [mode ro] [timeout S] [noWait] | attach list
  attach snapshot <s> client <id> [timeout S] [noWait]
  detach volume|snapshot <name> client <id>|all [force]
  vag <id> list | vag <id> update targetsCount N
  kv list | kv <b> list|create|get <key> | kv <b> delete <b>
  kv <b> set <key> <value>... [ifVersion N] | kv <b> unset <key>... [ifVersion N]
  mgmtConfig list | mgmtConfig <setting> <value>
  task list
sizes take K/M/G/T (binary) suffixes; run without arguments for an interactive prompt.
)";
}

}  // namespace spindle::cli
