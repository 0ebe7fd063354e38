#include "proto/api_validate.h"

#include <array>
#include <set>

namespace spindle::proto {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// True when every character of s is alphanumeric or one of `extra`.
bool AllOf(std::string_view s, std::string_view extra) {
  for (char c : s) {
    if (!IsAlnum(c) && extra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

struct NameRule {
  char optional_prefix;  // '\0' for none
  std::string_view extra;
  bool allow_empty;
  bool reserve_status;  // "status" is reserved besides "list"
  bool reserve_list;
  uint64_t max_chars;
};

Status CheckName(std::string_view field, std::string_view name, const NameRule& rule) {
  std::string_view body = name;
  if (rule.optional_prefix != '\0' && !body.empty() && body.front() == rule.optional_prefix) {
    body.remove_prefix(1);
  }
  if ((body.empty() && !rule.allow_empty) || !AllOf(body, rule.extra)) {
    return Error(Code::kInvalidArgument, "{}: invalid name '{}'", field, name);
  }
  if ((rule.reserve_list && name == "list") || (rule.reserve_status && name == "status")) {
    return Error(Code::kInvalidArgument, "{}: '{}' is a reserved word", field, name);
  }
  if (name.size() > rule.max_chars) {
    return Error(Code::kInvalidArgument, "{}: name longer than {} characters", field,
                 rule.max_chars);
  }
  return Status::Ok();
}

bool DottedLowerParts(std::string_view id, int parts) {
  int seen = 0;
  size_t start = 0;
  while (true) {
    size_t dot = id.find('.', start);
    std::string_view part = id.substr(start, dot == std::string_view::npos ? id.npos : dot - start);
    if (part.empty()) return false;
    for (char c : part) {
      if (!IsLowerAlnum(c)) return false;
    }
    ++seen;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return seen == parts;
}

Status CheckRange(std::string_view field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return Error(Code::kInvalidArgument, "{}: {} is out of range {}..{}", field, v, lo, hi);
  }
  return Status::Ok();
}

constexpr NameRule kVolumeRule{'#', "_-.:", false, true, true, kMaxVolumeNameChars};
constexpr NameRule kSnapshotRule{'*', "_-.:@", false, true, true, kMaxVolumeNameChars};
constexpr NameRule kPlacementRule{'\0', "_-", false, false, true, kMaxPlacementGroupNameChars};
constexpr NameRule kTemplateRule{'\0', "_-", false, false, true, kMaxTemplateNameChars};
constexpr NameRule kTagNameRule{'\0', "_-.:", false, false, false, kMaxTagChars};
constexpr NameRule kTagValueRule{'\0', "_-.:", true, false, false, kMaxTagChars};
constexpr NameRule kClusterRule{'#', "_-.:", false, false, false, kMaxClusterNameChars};

}  // namespace

Status ValidateVolumeName(std::string_view field, std::string_view name) {
  return CheckName(field, name, kVolumeRule);
}
Status ValidateVolumeNameOrGlobalId(std::string_view field, std::string_view name) {
  if (!name.empty() && name.front() == '~') {
    if (IsGlobalId(name.substr(1))) return Status::Ok();
    return Error(Code::kInvalidArgument, "{}: invalid global id '{}'", field, name);
  }
  return ValidateVolumeName(field, name);
}
Status ValidateSnapshotName(std::string_view field, std::string_view name) {
  return CheckName(field, name, kSnapshotRule);
}
Status ValidateSnapshotNameOrGlobalId(std::string_view field, std::string_view name) {
  if (!name.empty() && name.front() == '~') {
    if (IsGlobalId(name.substr(1))) return Status::Ok();
    return Error(Code::kInvalidArgument, "{}: invalid global id '{}'", field, name);
  }
  return ValidateSnapshotName(field, name);
}
Status ValidatePlacementGroupName(std::string_view field, std::string_view name) {
  return CheckName(field, name, kPlacementRule);
}
Status ValidateTemplateName(std::string_view field, std::string_view name) {
  return CheckName(field, name, kTemplateRule);
}
Status ValidateTagName(std::string_view field, std::string_view name) {
  return CheckName(field, name, kTagNameRule);
}
Status ValidateTagValue(std::string_view field, std::string_view value) {
  return CheckName(field, value, kTagValueRule);
}
Status ValidateClusterName(std::string_view field, std::string_view name) {
  return CheckName(field, name, kClusterRule);
}
bool IsGlobalId(std::string_view id) {
  return DottedLowerParts(id, 3);
}
bool IsClusterId(std::string_view id) {
  return DottedLowerParts(id, 2);
}

Status ValidateDiskId(std::string_view field, int64_t id) {
  return CheckRange(field, id, 0, 4095);
}
Status ValidateServerId(std::string_view field, int64_t id) {
  return CheckRange(field, id, 1, 32767);
}
Status ValidateClientId(std::string_view field, int64_t id) {
  return CheckRange(field, id, 1, 4095);
}
Status ValidateNodeId(std::string_view field, int64_t id) {
  return CheckRange(field, id, 0, 63);
}
Status ValidateReplication(std::string_view field, int64_t replication) {
  return CheckRange(field, replication, 1, 3);
}
Status ValidateVolumeSize(std::string_view field, int64_t size_bytes) {
  if (size_bytes < 1 || size_bytes % 512 != 0) {
    return Error(Code::kInvalidArgument, "{}: size {} is not a positive multiple of 512", field,
                 size_bytes);
  }
  return Status::Ok();
}
Status ValidateTargetsCount(std::string_view field, int64_t count) {
  if (count < 1 || count > 32768 || (count & (count - 1)) != 0) {
    return Error(Code::kInvalidArgument, "{}: {} is not a power of two in 1..32768", field, count);
  }
  return Status::Ok();
}

Status ValidateKvsName(std::string_view field, std::string_view name) {
  return CheckName(field, name, {'#', "_-.:", false, false, false, kMaxKvsNameChars});
}

Status ValidateKvsKeyName(std::string_view field, std::string_view name) {
  if (name.empty() || name.size() > kMaxKvsNameChars) {
    return Error(Code::kInvalidArgument, "{}: key must have 1..{} characters", field,
                 kMaxKvsNameChars);
  }
  return Status::Ok();
}

Status ValidateDiskDescription(std::string_view field, std::string_view text) {
  if (text.size() > kMaxDiskDescriptionChars || !AllOf(text, "_- ")) {
    return Error(Code::kInvalidArgument, "{}: invalid disk description '{}'", field, text);
  }
  return Status::Ok();
}

bool IsMultiClusterCall(std::string_view call) {
  static const std::set<std::string, std::less<>> kMc = {"VolumesList",
                                                         "VolumesGetStatus",
                                                         "VolumesGetStatusQuick",
                                                         "VolumesSpace",
                                                         "Volume",
                                                         "VolumeDescribe",
                                                         "VolumeGetInfo",
                                                         "VolumeCreate",
                                                         "VolumeUpdate",
                                                         "VolumeFreeze",
                                                         "VolumeDelete",
                                                         "VolumeBackup",
                                                         "VolumesGroupBackup",
                                                         "VolumeAcquire",
                                                         "VolumeRevert",
                                                         "SnapshotsList",
                                                         "SnapshotsSpace",
                                                         "Snapshot",
                                                         "SnapshotDescribe",
                                                         "SnapshotGetInfo",
                                                         "VolumeSnapshot",
                                                         "SnapshotDelete",
                                                         "VolumesGroupSnapshot",
                                                         "AttachmentsList",
                                                         "VolumesReassign",
                                                         "VolumesReassignWait"};
  return kMc.count(call) > 0;
}

}  // namespace spindle::proto
