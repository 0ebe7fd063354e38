// Grammar of the cluster-administration objects: faultSet, vag, kv, mgmtConfig.
#include <set>

#include "cli/command_parse.h"

namespace spindle::cli::parse {
namespace {

using nlohmann::json;

// Spindle's own calls for what StorPool's API reference leaves out (docs/api.md).
constexpr const char* kFaultSetUpdate = "FaultSetUpdate/";
constexpr const char* kFaultSetDelete = "FaultSetDelete/";
constexpr const char* kMgmtConfigGet = "MgmtConfigList";
constexpr const char* kMgmtConfigSet = "MgmtConfigSet";

Status CheckKvsName(const std::string& n) {
  if (!Matches(n, R"(#?[A-Za-z0-9_\-.:]+)") || n.size() > kMaxKvsNameChars) {
    return Bad("invalid kv bucket name '" + n + "'");
  }
  return Status::Ok();
}

Status CheckKvsKey(const std::string& k) {
  if (k.empty() || k.size() > kMaxKvsNameChars) return Bad("invalid kv key '" + k + "'");
  return Status::Ok();
}

// kv <bucket> set <key> <value> [<key> <value>]... [ifVersion N]; unset <key>... sets "".
Result<Command> KvSet(const std::string& b, Words& w, bool unset) {
  json body = {{"set", json::object()}};
  while (!w.done()) {
    std::string key = w.next();
    if (key == "ifVersion") {
      SP_ASSIGN_OR_RETURN(std::string v, w.Value(key));
      SP_ASSIGN_OR_RETURN(body["runIfVersionIs"], ParseInt(v, INT64_MIN, INT64_MAX, "version"));
      continue;
    }
    SP_RETURN_IF_ERROR(CheckKvsKey(key));
    std::string value;
    if (!unset) {
      SP_ASSIGN_OR_RETURN(value, w.Value(key));
    }
    body["set"][key] = value;
  }
  if (body["set"].empty())
    return Bad(std::string("kv ") + b + (unset ? " unset" : " set") + ": no keys given");
  return Change("KV/Set/" + b, std::move(body));
}

}  // namespace

// faultSet list | faultSet <fs> [addServer <id>]... [rmServer <id>]... [rename <new>]
// faultSet <fs> delete <fs>
Result<Command> ParseFaultSet(Words& w) {
  if (w.done()) return Bad("usage: faultSet list | faultSet <name> addServer <id> ...");
  std::string fs = w.next();
  if (fs == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("FaultSetsList", View::kFaultSets);
  }
  SP_RETURN_IF_ERROR(CheckPlainName(fs, "fault set", kMaxPgNameChars));
  if (w.done()) return Bad("faultSet " + fs + ": expected addServer, rmServer, rename, delete");
  if (w.peek() == "delete") {
    w.next();
    SP_RETURN_IF_ERROR(Confirm(w, fs, "fault set"));
    return Change(kFaultSetDelete + fs, nullptr);
  }
  json body = {{"addServers", json::array()}, {"rmServers", json::array()}};
  while (!w.done()) {
    std::string k = w.next();
    SP_ASSIGN_OR_RETURN(std::string v, w.Value(k));
    if (k == "addServer" || k == "rmServer") {
      SP_ASSIGN_OR_RETURN(int64_t id, ParseInt(v, 1, 32767, "server id"));
      body[k == "addServer" ? "addServers" : "rmServers"].push_back(id);
    } else if (k == "rename") {
      SP_RETURN_IF_ERROR(CheckPlainName(v, "fault set", kMaxPgNameChars));
      body["rename"] = v;
    } else {
      return Bad("faultSet " + fs + ": unknown keyword '" + k + "'");
    }
  }
  return Change(kFaultSetUpdate + fs, std::move(body));
}

// vag <id> list | vag <id> update targetsCount <1,2,4..32768>
Result<Command> ParseVag(Words& w) {
  const char* usage = "usage: vag <id> list | vag <id> update targetsCount <N>";
  if (w.done()) return Bad(usage);
  std::string first = w.next();
  // VagId: 1..2^64 (storpool-api.md §2.2); digits only, checked for range as unsigned.
  if (!Matches(first, "[1-9][0-9]{0,19}") ||
      (first.size() == 20 && first > "18446744073709551616")) {
    return Bad("invalid vag id '" + first + "'");
  }
  if (w.done()) return Bad(usage);
  std::string verb = w.next();
  if (verb == "list" || verb == "describe") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("VagList/" + first, View::kVag);
  }
  if (verb != "update" || w.done() || w.next() != "targetsCount") return Bad(usage);
  SP_ASSIGN_OR_RETURN(std::string v, w.Value("targetsCount"));
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  SP_ASSIGN_OR_RETURN(int64_t n, ParseInt(v, 1, 32768, "targetsCount"));
  if ((n & (n - 1)) != 0) return Bad("targetsCount must be a power of two (1, 2, 4, ... 32768)");
  return Change("VagUpdate", json{{"vagId", first}, {"targetsCount", n}});
}

// kv list | kv <b> list | kv <b> get <key> | kv <b> create | kv <b> delete <b>
// kv <b> set <key> <value>... [ifVersion N] | kv <b> unset <key>... [ifVersion N]
Result<Command> ParseKv(Words& w) {
  const char* usage =
      "usage: kv list | kv <bucket> list|create|get <key>|set <key> <value>...|unset <key>..."
      "|delete <bucket>";
  if (w.done()) return Bad(usage);
  std::string b = w.next();
  if (b == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("KV", View::kKvBuckets);
  }
  SP_RETURN_IF_ERROR(CheckKvsName(b));
  if (w.done()) return Bad(usage);
  std::string verb = w.next();
  if (verb == "set" || verb == "unset") return KvSet(b, w, verb == "unset");
  if (verb == "get") {
    SP_ASSIGN_OR_RETURN(std::string key, w.Value("get"));
    SP_RETURN_IF_ERROR(CheckKvsKey(key));
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show("KV/Get/" + b + "/" + key, View::kKvBucket);
  }
  if (verb == "delete") {
    SP_RETURN_IF_ERROR(Confirm(w, b, "kv bucket"));
    return Change("KV/Delete/" + b, nullptr);
  }
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  if (verb == "list") return Show("KV/List/" + b, View::kKvBucket);
  if (verb == "create") return Change("KV/Create/" + b, nullptr);
  return Bad(usage);
}

// mgmtConfig list | mgmtConfig <setting> <value> (storpool.md §2.14). On/off settings take
// enable|disable; the others a number or a word. Settings Spindle lacks are refused by mgmt.
Result<Command> ParseMgmtConfig(Words& w) {
  const char* usage = "usage: mgmtConfig list | mgmtConfig <setting> <value>";
  if (w.done()) return Bad(usage);
  std::string setting = w.next();
  if (setting == "list") {
    SP_RETURN_IF_ERROR(ExpectEnd(w));
    return Show(kMgmtConfigGet, View::kMgmtConfig);
  }
  if (!Matches(setting, "[a-z][A-Za-z0-9]{0,63}")) {
    return Bad("mgmtConfig: invalid setting name '" + setting + "'");
  }
  SP_ASSIGN_OR_RETURN(std::string v, w.Value(setting));
  SP_RETURN_IF_ERROR(ExpectEnd(w));
  static const std::set<std::string> kOnOff = {"reuseServerImplicitOnDiskDown", "relocator",
                                               "balancerAuto"};
  json value;
  if (kOnOff.count(setting) > 0) {
    bool on = v == "enable" || v == "enabled" || v == "on" || v == "true";
    bool off = v == "disable" || v == "disabled" || v == "off" || v == "false";
    if (!on && !off) return Bad("mgmtConfig " + setting + ": expected enable or disable");
    value = on;
  } else if (Matches(v, "-?[0-9]{1,18}")) {
    value = std::stoll(v);
  } else {
    value = v;
  }
  return Change(kMgmtConfigSet, json{{setting, value}});
}

// task list: recovery (and later relocation) tasks in progress.
Result<Command> ParseTask(Words& w) {
  if (!w.done() && w.next() == "list" && w.done()) return Show("TasksList", View::kTasks);
  return Bad("usage: task list");
}

}  // namespace spindle::cli::parse
