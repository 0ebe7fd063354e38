// Shared pieces of the CLI grammar (command.cc, command_admin.cc): a word reader, the request
// builders and the StorPool name/number checks. Internal to src/cli.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/status.h"

namespace spindle::cli::parse {

inline constexpr const char* kPrefix = "/ctrl/1.0/";
// Most words one command line may have; the grammar never needs more.
inline constexpr size_t kMaxWords = 256;
// storpool-api.md §2.1 "Max chars" (the bindings' limit minus one).
inline constexpr size_t kMaxNameChars = 199;      // volume, snapshot and template names
inline constexpr size_t kMaxPgNameChars = 127;    // placement group / fault set names
inline constexpr size_t kMaxKvsNameChars = 1022;  // KV bucket and key names
inline constexpr size_t kMaxDiskDescChars = 30;

// Reads keyword/value pairs left to right.
class Words {
 public:
  Words(const std::vector<std::string>& w, size_t pos) : w_(w), pos_(pos) {}
  bool done() const { return pos_ >= w_.size(); }
  const std::string& peek() const { return w_[pos_]; }
  std::string next() { return w_[pos_++]; }
  Result<std::string> Value(const std::string& keyword) {
    if (done()) return Error(Code::kInvalidArgument, "'{}' needs a value", keyword);
    return next();
  }

 private:
  const std::vector<std::string>& w_;
  size_t pos_;
};

Status Bad(const std::string& what);
Request Get(const std::string& call);
Request Post(const std::string& call, nlohmann::json body);
Command Show(const std::string& call, View view);
Command Change(const std::string& call, nlohmann::json body);

bool Matches(const std::string& s, const char* pattern);
Status CheckVolumeName(const std::string& n);
// A snapshot name (also with '@', a leading '*') or "~globalId".
Status CheckSnapshotName(const std::string& n);
Status CheckPlainName(const std::string& n, const char* what, size_t max_chars);
Result<int64_t> ParseInt(const std::string& s, int64_t lo, int64_t hi, const char* what);
Result<int64_t> ParseDiskId(const std::string& s);
Result<int64_t> ParseClientId(const std::string& s);
// `delete <name>`: the name repeated as confirmation, and nothing after it.
Status Confirm(Words& w, const std::string& name, const char* what);
Status ExpectEnd(Words& w);

// Objects of command_admin.cc: faultSet, vag, kv, mgmtConfig.
Result<Command> ParseFaultSet(Words& w);
Result<Command> ParseVag(Words& w);
Result<Command> ParseKv(Words& w);
Result<Command> ParseMgmtConfig(Words& w);
Result<Command> ParseTask(Words& w);

}  // namespace spindle::cli::parse
