// Typed access to request bodies: each getter checks the JSON type and the value's rule and
// returns kInvalidArgument naming the field, so a bad body never reaches the state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace spindle::mgmt {

using Json = nlohmann::json;

Status OptString(const Json& obj, const char* key, std::optional<std::string>& out);
Status OptInt(const Json& obj, const char* key, std::optional<int64_t>& out);
Status OptBool(const Json& obj, const char* key, std::optional<bool>& out);
// Bandwidth / IOPS: an integer >= 0 or "-" (stored as kUnlimited).
Status OptLimit(const Json& obj, const char* key, std::optional<int64_t>& out);
// {VolumeTagName: VolumeTagValue}.
Status OptTags(const Json& obj, const char* key,
               std::optional<std::map<std::string, std::string>>& out);
// [DiskId], each an integer or a decimal string; absent → empty.
Status DiskIdList(const Json& obj, const char* key, std::vector<uint32_t>& out);
// [ClientId]; absent → nullopt.
Status OptClientIdList(const Json& obj, const char* key, std::optional<std::vector<uint32_t>>& out);

// The value of a bw/iops field as the API shows it: the number or "-".
Json LimitJson(int64_t v);

}  // namespace spindle::mgmt
