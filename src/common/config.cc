#include "common/config.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace spindle {
namespace {

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Code::kNotFound, "cannot read config file {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return {};
  std::string name(buf);
  auto dot = name.find('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

}  // namespace

Status Config::Parse(std::string_view text, std::string_view section, std::string_view source) {
  // Two passes: the global part applies first, the matching section second, whatever the order
  // in the file.
  std::map<std::string, std::string> global, sectioned;
  std::string current;
  bool in_section = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = Trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']' || line.size() < 3) {
        return Error(Code::kInvalidArgument, "{}:{}: bad section header", source, line_no);
      }
      current = std::string(Trim(line.substr(1, line.size() - 2)));
      in_section = true;
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Error(Code::kInvalidArgument, "{}:{}: expected KEY=value", source, line_no);
    }
    std::string key(Trim(line.substr(0, eq)));
    std::string value(Trim(line.substr(eq + 1)));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    if (!in_section) {
      global[key] = value;
    } else if (current == section) {
      sectioned[key] = value;
    }
  }
  for (auto& [k, v] : global) values_[k] = v;
  for (auto& [k, v] : sectioned) values_[k] = v;
  return Status::Ok();
}

Result<Config> Config::Load(const ConfigLoadOptions& options) {
  Config cfg;
  std::string section = options.section.empty() ? HostName() : options.section;
  std::vector<std::string> files;
  bool explicit_path = false;
  if (!options.path.empty()) {
    files.push_back(options.path);
    explicit_path = true;
  } else if (const char* env = std::getenv("SP_CONFIG"); env != nullptr && *env != '\0') {
    files.push_back(env);
    explicit_path = true;
  } else {
    files.push_back("/etc/storpool.conf");
    std::error_code ec;
    std::vector<std::string> extra;
    for (auto& e : std::filesystem::directory_iterator("/etc/storpool.conf.d", ec)) {
      auto name = e.path().filename().string();
      if (name.empty() || name[0] == '.' || e.path().extension() != ".conf") continue;
      extra.push_back(e.path().string());
    }
    std::sort(extra.begin(), extra.end());
    files.insert(files.end(), extra.begin(), extra.end());
  }
  for (const auto& f : files) {
    auto text = ReadFile(f);
    if (!text.ok()) {
      if (options.missing_ok && !explicit_path) continue;
      return text.status();
    }
    SP_RETURN_IF_ERROR(cfg.Parse(*text, section, f));
    cfg.sources_.push_back(f);
  }
  if (options.use_env) {
    for (const char* key : {"SP_AUTH_TOKEN", "SP_API_HTTP_HOST", "SP_API_HTTP_PORT"}) {
      if (const char* v = std::getenv(key); v != nullptr) cfg.values_[key] = v;
    }
  }
  return cfg;
}

std::optional<std::string> Config::Get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Config::GetOr(const std::string& key, const std::string& fallback) const {
  auto v = Get(key);
  return v ? *v : fallback;
}

Result<int64_t> Config::GetInt(const std::string& key, int64_t fallback) const {
  auto v = Get(key);
  if (!v) return fallback;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size()) {
    return Error(Code::kInvalidArgument, "config key {}: '{}' is not an integer", key, *v);
  }
  return out;
}

}  // namespace spindle
