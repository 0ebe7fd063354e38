// The CLI grammar: `<object> [<name>] <keyword value ...>` turned into the API request(s) to
// send and the view that renders the reply. Pure: no I/O, so every command is unit-testable.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace spindle::cli {

struct Request {
  std::string method;   // "GET" or "POST"
  std::string path;     // "/ctrl/1.0/<Call>[/<arg>]"
  nlohmann::json body;  // null: no body
};

// How a successful reply is shown without -j.
enum class View {
  kOk,                 // "OK"
  kServices,           // ClusterStatus, every service
  kServers,            // ClusterStatus, servers only
  kClientStatus,       // [ClientConfigStatus]
  kDisks,              // {DiskId: DiskSummary}
  kPgList,             // {name: PlacementGroup}
  kPgDisks,            // PlacementGroup
  kTemplates,          // [VolumeTemplateDesc]
  kVolumes,            // [VolumeSummary]
  kVolumeStatus,       // {name: VolumeStatus}
  kAttachments,        // [AttachmentDesc] (+ VolumesList in `aux` for the tags)
  kDescribe,           // any object: one "field | value" row per member
  kTemplateStatus,     // [VolumeTemplateStatusDesc]
  kVolumeQuickStatus,  // {name: VolumeStatusQuick}
  kVolumeSpace,        // [VolumeSpace]
  kVolumeInfo,         // VolumeInfo
  kFaultSets,          // {name: FaultSet}
  kVag,                // Vag
  kKvBuckets,          // KeyValueBucketsList
  kKvBucket,           // KeyValueBucket
  kMgmtConfig,         // {setting: value}
  kTasks,              // [Task]
  kSnapshots,          // [SnapshotSummary]
  kSnapshotSpace,      // [SnapshotSpace]
};

struct Command {
  Request request;
  View view = View::kOk;
  // Create-or-update: when set, `probe` (a list call) is sent first and, if `probe_name` is in
  // its reply, `alternate` is sent instead of `request`.
  std::optional<Request> probe;
  std::string probe_name;
  std::optional<Request> alternate;
  // An extra read whose data the view uses (never printed with -j).
  std::optional<Request> aux;
};

// Parses the words after the global options. Errors: kInvalidArgument with a message that says
// which word is wrong (usage problems), never any other code.
Result<Command> ParseCommand(const std::vector<std::string>& words);

// True when `list` (the data of a list call: an array of objects with "name", or an object
// keyed by name) contains `name`.
bool ListHasName(const nlohmann::json& list, const std::string& name);

// True when the call of this /ctrl/1.0/ path takes the MultiCluster/ prefix under -M
// (storpool-api.md §1.1).
bool IsMultiClusterPath(const std::string& path);
// Inserts "MultiCluster/" after "/ctrl/1.0/" when the call supports it.
std::string WithMultiCluster(const std::string& path);

// One-paragraph grammar summary for usage errors and `help`.
const char* UsageText();

}  // namespace spindle::cli
