// StorPool-format configuration: /etc/storpool.conf, then /etc/storpool.conf.d/*.conf in name
// order (dot-files skipped), KEY=value lines in the global part, then [section] blocks. The
// section that applies is the host's name unless the caller names one (the local cluster runs
// several nodes on one host and names each node's section). Later values override earlier.
// SP_CONFIG (or an explicit path) replaces the file list with that one file.
// Environment overrides: SP_AUTH_TOKEN, SP_API_HTTP_HOST, SP_API_HTTP_PORT.
// No I/O happens outside Load(); Parse() is pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace spindle {

struct ConfigLoadOptions {
  std::string path;         // explicit file (--config); empty: SP_CONFIG, then /etc
  std::string section;      // section to apply; empty: the host name
  bool missing_ok = false;  // tolerate absent default files
  bool use_env = true;      // apply the environment overrides
};

class Config {
 public:
  static Result<Config> Load(const ConfigLoadOptions& options);

  // Applies one file's text: globals first, then the named section. Unknown lines that are
  // neither comments, KEY=value nor [section] are an error naming the line.
  Status Parse(std::string_view text, std::string_view section, std::string_view source);

  void Set(const std::string& key, const std::string& value) { values_[key] = value; }
  std::optional<std::string> Get(const std::string& key) const;
  std::string GetOr(const std::string& key, const std::string& fallback) const;
  // Integer value, the fallback when absent, an error when present but not an integer.
  Result<int64_t> GetInt(const std::string& key, int64_t fallback) const;
  const std::map<std::string, std::string>& values() const { return values_; }
  // The files that were read, in order.
  const std::vector<std::string>& sources() const { return sources_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> sources_;
};

}  // namespace spindle
