// Validators for the names and numbers of the StorPool-compatible management API
// (reference/storpool-api.md §2). Each returns Ok or kInvalidArgument naming the field and the
// rule it broke. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace spindle::proto {

inline constexpr uint64_t kMaxVolumeNameChars = 199;
inline constexpr uint64_t kMaxPlacementGroupNameChars = 127;
inline constexpr uint64_t kMaxTemplateNameChars = 199;
inline constexpr uint64_t kMaxTagChars = 199;
inline constexpr uint64_t kMaxClusterNameChars = 63;
inline constexpr uint64_t kMaxKvsNameChars = 1022;
inline constexpr uint64_t kMaxDiskDescriptionChars = 30;

// `^\#?[A-Za-z0-9_\-.:]+$`, not "list"/"status", at most 199 chars.
// True for the 26 calls StorPool serves also under the MultiCluster/ prefix (call name only,
// e.g. "VolumeDescribe").
bool IsMultiClusterCall(std::string_view call);

Status ValidateVolumeName(std::string_view field, std::string_view name);
// A volume name, or "~" + global id.
Status ValidateVolumeNameOrGlobalId(std::string_view field, std::string_view name);
// `^\*?[A-Za-z0-9_\-.:@]+$`, not "list"/"status", at most 199 chars.
Status ValidateSnapshotName(std::string_view field, std::string_view name);
Status ValidateSnapshotNameOrGlobalId(std::string_view field, std::string_view name);
// `^[A-Za-z0-9_\-]+$`, not "list", at most 127 chars.
Status ValidatePlacementGroupName(std::string_view field, std::string_view name);
// `^[A-Za-z0-9_\-]+$`, not "list", at most 199 chars.
Status ValidateTemplateName(std::string_view field, std::string_view name);
Status ValidateTagName(std::string_view field, std::string_view name);
Status ValidateTagValue(std::string_view field, std::string_view value);
// `^\#?[A-Za-z0-9_\-.:]+$`, at most 63 chars.
Status ValidateClusterName(std::string_view field, std::string_view name);
// KvsName: `^\#?[A-Za-z0-9_\-.:]+$`, at most 1022 chars.
Status ValidateKvsName(std::string_view field, std::string_view name);
// KvsKeyName: any string of 1..1022 chars.
Status ValidateKvsKeyName(std::string_view field, std::string_view name);
// DiskDescription: `^[A-Za-z0-9_\- ]{0,30}$`.
Status ValidateDiskDescription(std::string_view field, std::string_view text);
// Three dot-separated lowercase base-36 parts.
bool IsGlobalId(std::string_view id);
// Two dot-separated lowercase base-36 parts ("location.cluster").
bool IsClusterId(std::string_view id);

Status ValidateDiskId(std::string_view field, int64_t id);
Status ValidateServerId(std::string_view field, int64_t id);
Status ValidateClientId(std::string_view field, int64_t id);
Status ValidateNodeId(std::string_view field, int64_t id);
Status ValidateReplication(std::string_view field, int64_t replication);
// >= 1 and a multiple of 512.
Status ValidateVolumeSize(std::string_view field, int64_t size_bytes);
// 1, 2, 4, ... 32768.
Status ValidateTargetsCount(std::string_view field, int64_t count);

}  // namespace spindle::proto
