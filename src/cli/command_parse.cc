#include "cli/command_parse.h"

#include <charconv>
#include <regex>

namespace spindle::cli::parse {

using nlohmann::json;

Status Bad(const std::string& what) {
  return Status(Code::kInvalidArgument, what);
}

Request Get(const std::string& call) {
  return Request{"GET", kPrefix + call, nullptr};
}
Request Post(const std::string& call, json body) {
  return Request{"POST", kPrefix + call, std::move(body)};
}
Command Show(const std::string& call, View view) {
  return Command{Get(call), view};
}
Command Change(const std::string& call, json body) {
  return Command{Post(call, std::move(body)), View::kOk};
}

bool Matches(const std::string& s, const char* pattern) {
  return std::regex_match(s, std::regex(pattern));
}

Status CheckVolumeName(const std::string& n) {
  bool ok = Matches(n, R"(#?[A-Za-z0-9_\-.:]+|~[a-z0-9]+\.[a-z0-9]+\.[a-z0-9]+)");
  if (!ok || n.size() > kMaxNameChars || n == "list" || n == "status") {
    return Bad("invalid volume name '" + n + "'");
  }
  return Status::Ok();
}

Status CheckSnapshotName(const std::string& n) {
  bool ok = Matches(n, R"(\*?[A-Za-z0-9_\-.:@]+|~[a-z0-9]+\.[a-z0-9]+\.[a-z0-9]+)");
  if (!ok || n.size() > kMaxNameChars || n == "list" || n == "status") {
    return Bad("invalid snapshot name '" + n + "'");
  }
  return Status::Ok();
}

Status CheckPlainName(const std::string& n, const char* what, size_t max_chars) {
  if (!Matches(n, R"([A-Za-z0-9_\-]+)") || n.size() > max_chars || n == "list") {
    return Bad(std::string("invalid ") + what + " name '" + n + "'");
  }
  return Status::Ok();
}

Result<int64_t> ParseInt(const std::string& s, int64_t lo, int64_t hi, const char* what) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) {
    return Error(Code::kInvalidArgument, "invalid {} '{}' (expected {}..{})", what, s, lo, hi);
  }
  return v;
}

Result<int64_t> ParseDiskId(const std::string& s) {
  return ParseInt(s, 0, 4095, "disk id");
}
Result<int64_t> ParseClientId(const std::string& s) {
  return ParseInt(s, 1, 4095, "client id");
}

Status Confirm(Words& w, const std::string& name, const char* what) {
  SP_ASSIGN_OR_RETURN(std::string again, w.Value("delete"));
  if (again != name) {
    return Bad(std::string(what) + " name '" + again + "' does not match '" + name +
               "': repeat the name to confirm delete");
  }
  if (!w.done()) return Bad("unexpected '" + w.peek() + "' after delete");
  return Status::Ok();
}

Status ExpectEnd(Words& w) {
  if (!w.done()) return Bad("unexpected '" + w.peek() + "'");
  return Status::Ok();
}

}  // namespace spindle::cli::parse
