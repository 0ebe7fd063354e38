// Cell helpers shared by the table views (render.cc, render_admin.cc). Internal to src/cli.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"

namespace spindle::cli::cells {

// A member as display text: strings bare, numbers in decimal, "-" when absent or null.
std::string Str(const nlohmann::json& obj, const char* key);
int64_t Int(const nlohmann::json& obj, const char* key, int64_t fallback = 0);
// A byte count as "3.5 TiB"; anything else as Str.
std::string SizeOf(const nlohmann::json& obj, const char* key);
bool Flag(const nlohmann::json& obj, const char* key);
// "k=v,k2=v2" from a `tags` member.
std::string Tags(const nlohmann::json& obj);
// The values of an id-keyed map, numerically sorted ("2" before "10").
std::vector<const nlohmann::json*> ById(const nlohmann::json& map);
// Volume status flags: S snapshot, M migrating, D decreased redundancy, B balancer blocked,
// C placement constraints violated (reuseServer implied).
std::string StatusFlags(const nlohmann::json& v);

}  // namespace spindle::cli::cells

namespace spindle::cli {
// Views of render_admin.cc; nullopt-free: returns "" when `view` is not one of them.
std::string RenderAdmin(View view, const nlohmann::json& data);
}  // namespace spindle::cli
