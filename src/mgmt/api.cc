#include "mgmt/api.h"

#include <set>

#include "common/log.h"
#include "mgmt/api_common.h"
#include "mgmt/api_errors.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr std::string_view kPublicPrefix = "/ctrl/1.0/";
constexpr std::string_view kInternalPrefix = "/spindle/1/";
constexpr std::string_view kAuthScheme = "Storpool v1:";

// Every call of the StorPool 19.01 API (first path segment); those without a handler answer
// notImplemented rather than "unknown call".
// The capability a known call without a handler belongs to, for its notImplemented error.
std::string_view MissingFeature(std::string_view call) {
  static const std::pair<std::string_view, std::string_view> kByPrefix[] = {
      {"VolumeBalancer", "the balancer"},
      {"VolumeRelocator", "the relocator (moving data between disks)"},
      {"VolumeUpdateVag", "the relocator (moving data between disks)"},
      {"SnapshotUpdateVag", "the relocator (moving data between disks)"},
      {"VolumeAbandonDisk", "the relocator (moving data between disks)"},
      {"DiskSoftEject", "the relocator (moving data between disks)"},
      {"DiskRetrim", "the relocator (moving data between disks)"},
      {"DiskScrub", "per-disk scrub control (servers scrub on their own schedule)"},
      {"Maintenance", "maintenance mode"},
      {"iSCSI", "the iSCSI target"},
      {"Remote", "the bridge (multi-cluster)"},
      {"Cluster", "the bridge (multi-cluster)"},
      {"Location", "the bridge (multi-cluster)"},
      {"VolumeBackup", "the bridge (backups to a remote cluster)"},
      {"VolumesGroupBackup", "the bridge (backups to a remote cluster)"},
      {"VolumeMoveToRemote", "the bridge (multi-cluster)"},
      {"VolumeExport", "the bridge (multi-cluster)"},
      {"VolumeAcquire", "the bridge (multi-cluster)"},
      {"VolumeFromRemote", "the bridge (multi-cluster)"},
      {"VolumesRemoteList", "the bridge (multi-cluster)"},
      {"Snapshot", "the bridge (multi-cluster)"},  // SnapshotExport, SnapshotFromRemote, ...
      {"ExportsList", "the bridge (multi-cluster)"},
      {"AllPeersActiveRequests", "request tracing"},
      {"ClientActiveRequests", "request tracing"},
      {"DiskActiveRequests", "request tracing"},
      {"NetworkPeersList", "StorPool's beacon network (Spindle's services talk TCP)"},
      {"ServerDiskDescribe", "per-server disk internals"},
  };
  for (const auto& [prefix, feature] : kByPrefix) {
    if (call.starts_with(prefix)) return feature;
  }
  return "a capability not built yet";
}

const std::set<std::string, std::less<>>& KnownCalls() {
  static const std::set<std::string, std::less<>> kCalls = {"NetworkPeersList",
                                                            "TasksList",
                                                            "ServicesList",
                                                            "ServersListBlocked",
                                                            "AllPeersActiveRequests",
                                                            "ServersList",
                                                            "ServerDisksList",
                                                            "ServerDiskDescribe",
                                                            "ClientsConfigDump",
                                                            "ClientConfigWait",
                                                            "ClientActiveRequests",
                                                            "DisksList",
                                                            "DiskDescribe",
                                                            "DiskEject",
                                                            "DiskForget",
                                                            "DiskIgnore",
                                                            "DiskSoftEject",
                                                            "DiskSoftEjectPause",
                                                            "DiskSoftEjectCancel",
                                                            "DiskSetDescription",
                                                            "DiskActiveRequests",
                                                            "DiskScrubStart",
                                                            "DiskScrubPause",
                                                            "DiskScrubContinue",
                                                            "DiskRetrim",
                                                            "VolumesList",
                                                            "VolumesGetStatus",
                                                            "VolumesGetStatusQuick",
                                                            "VolumesSpace",
                                                            "Volume",
                                                            "VolumeDescribe",
                                                            "VolumeGetInfo",
                                                            "VolumeListSnapshots",
                                                            "VolumeCreate",
                                                            "VolumeUpdate",
                                                            "VolumeFreeze",
                                                            "VolumeRebase",
                                                            "VolumeAbandonDisk",
                                                            "VolumeDelete",
                                                            "VolumeBackup",
                                                            "VolumesGroupBackup",
                                                            "VolumeMoveToRemote",
                                                            "VolumeExport",
                                                            "VolumeAcquire",
                                                            "VolumeFromRemote",
                                                            "VolumeRevert",
                                                            "SnapshotsList",
                                                            "SnapshotsSpace",
                                                            "Snapshot",
                                                            "SnapshotDescribe",
                                                            "SnapshotGetInfo",
                                                            "VolumeSnapshot",
                                                            "SnapshotUpdate",
                                                            "SnapshotRebase",
                                                            "SnapshotDelete",
                                                            "SnapshotDeleteById",
                                                            "VolumesGroupSnapshot",
                                                            "SnapshotFromRemote",
                                                            "SnapshotMoveToRemote",
                                                            "SnapshotExport",
                                                            "SnapshotUnexport",
                                                            "ExportsList",
                                                            "VolumeExportsList",
                                                            "SnapshotsRemoteList",
                                                            "VolumesRemoteList",
                                                            "SnapshotsRemoteUnexport",
                                                            "AttachmentsList",
                                                            "VolumesReassign",
                                                            "VolumesReassignWait",
                                                            "PlacementGroupsList",
                                                            "PlacementGroupDescribe",
                                                            "PlacementGroupUpdate",
                                                            "PlacementGroupDelete",
                                                            "FaultSetsList",
                                                            "VagList",
                                                            "VolumeUpdateVag",
                                                            "SnapshotUpdateVag",
                                                            "VagUpdate",
                                                            "VolumeTemplatesList",
                                                            "VolumeTemplatesStatus",
                                                            "VolumeTemplateDescribe",
                                                            "VolumeTemplateCreate",
                                                            "VolumeTemplateUpdate",
                                                            "VolumeTemplateDelete",
                                                            "VolumeRelocatorStatus",
                                                            "VolumeRelocatorDisksList",
                                                            "VolumeRelocatorVolumeDisks",
                                                            "VolumeRelocatorSnapshotDisks",
                                                            "VolumeBalancerStatus",
                                                            "VolumeBalancerVolumesStatus",
                                                            "VolumeBalancerDisksList",
                                                            "VolumeBalancerVolumeDisks",
                                                            "VolumeBalancerSnapshotDisks",
                                                            "VolumeBalancerVolumeDiskSets",
                                                            "VolumeBalancerSnapshotDiskSets",
                                                            "iSCSIConfig",
                                                            "iSCSISessionsInfo",
                                                            "iSCSInterfacesInfo",
                                                            "LocationsList",
                                                            "LocationAdd",
                                                            "LocationRemove",
                                                            "LocationUpdate",
                                                            "LocationRename",
                                                            "ClustersList",
                                                            "ClusterAdd",
                                                            "ClusterRemove",
                                                            "ClusterRename",
                                                            "RemoteBridgesList",
                                                            "RemoteBridgeAdd",
                                                            "RemoteBridgeRemove",
                                                            "MaintenanceList",
                                                            "MaintenanceSet",
                                                            "MaintenanceComplete",
                                                            "KV"};
  return kCalls;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Undoes %XX escapes. API names never contain '%', so raw and percent-encoded targets mean the
// same; the HTTP adapter also escapes a raw '#' this way.
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.push_back(PercentDecode(path.substr(start, slash - start)));
    start = slash + 1;
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace

Json ApiOk(int64_t generation, Json extra) {
  Json j = {{"ok", true}, {"generation", generation}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

Api::Api(Cluster& cluster, ApiOptions options) : cluster_(cluster), options_(std::move(options)) {
  RegisterServiceCalls(public_calls_, internal_calls_);
  RegisterDiskCalls(public_calls_);
  RegisterTemplateCalls(public_calls_);
  RegisterVolumeCalls(public_calls_);
  RegisterSnapshotCalls(public_calls_);
  RegisterAttachmentCalls(public_calls_);
  RegisterSpaceCalls(public_calls_);
  RegisterKvCalls(public_calls_);
  RegisterSnapshotTasks(cluster_);
}

Json Api::CallList() const {
  Json impl = Json::array(), missing = Json::array();
  auto method = [](Method m) {
    return m == Method::kGet ? "GET" : m == Method::kPost ? "POST" : "*";
  };
  for (const auto& [name, spec] : public_calls_) {
    impl.push_back({{"call", name},
                    {"method", method(spec.method)},
                    {"pathArgs", spec.args == kAnyArgs ? Json("*") : Json(spec.args)},
                    {"multiCluster", proto::IsMultiClusterCall(name)},
                    {"extension", KnownCalls().count(name) == 0}});
  }
  for (const std::string& name : KnownCalls()) {
    if (!public_calls_.count(name)) missing.push_back(name);
  }
  return {{"implemented", impl}, {"notImplemented", missing}};
}

Status Api::CheckAuth(const std::optional<std::string>& authorization) const {
  if (!authorization) {
    return Error(Code::kPermissionDenied, "missing Authorization header");
  }
  std::string_view h = *authorization;
  if (h.substr(0, kAuthScheme.size()) != kAuthScheme ||
      !ConstantTimeEquals(h.substr(kAuthScheme.size()), options_.auth_token)) {
    return Error(Code::kPermissionDenied, "authorization failed");
  }
  return Status::Ok();
}

ApiResponse Api::Handle(std::string_view method, std::string_view target,
                        const std::optional<std::string>& authorization, const std::string& body) {
  Result<Json> data = CheckAuth(authorization).ok() ? Dispatch(method, target, body)
                                                    : Result<Json>(CheckAuth(authorization));
  int64_t generation = cluster_.generation();
  if (!data.ok()) {
    SP_LOG_INFO("{} {}: {}", method, target, data.status().ToString());
    return {ErrorInfoFor(data.status().code()).http_status, ErrorBody(data.status(), generation)};
  }
  Json reply = {{"generation", generation}, {"data", std::move(*data)}};
  return {200, reply.dump(-1, ' ', true, Json::error_handler_t::replace)};
}

Result<Json> Api::Dispatch(std::string_view method, std::string_view target,
                           const std::string& body) {
  ApiRequest req;
  if (method == "GET") {
    req.method = Method::kGet;
  } else if (method == "POST") {
    req.method = Method::kPost;
  } else {
    return Error(Code::kInvalidArgument, "unsupported HTTP method {}", method);
  }
  std::string_view path = target;
  if (size_t q = path.find('?'); q != std::string_view::npos) {
    req.query = std::string(path.substr(q + 1));
    path = path.substr(0, q);
  }
  const CallTable* table = nullptr;
  std::vector<std::string> seg;
  if (path.substr(0, kPublicPrefix.size()) == kPublicPrefix) {
    table = &public_calls_;
    seg = SplitPath(path.substr(kPublicPrefix.size()));
    if (seg.size() >= 2 && seg[0] == "RemoteCommand") {
      if (cluster_.options().cluster_name.empty() || seg[1] != cluster_.options().cluster_name) {
        return Error(Code::kNotFound, "RemoteCommand: unknown cluster '{}'", seg[1]);
      }
      seg.erase(seg.begin(), seg.begin() + 2);
    }
    if (!seg.empty() && seg[0] == "MultiCluster") {
      req.multi_cluster = true;
      seg.erase(seg.begin());
    }
  } else if (path.substr(0, kInternalPrefix.size()) == kInternalPrefix) {
    table = &internal_calls_;
    seg = SplitPath(path.substr(kInternalPrefix.size()));
  } else {
    return Error(Code::kNotFound, "no API at '{}'", path);
  }
  if (table == &public_calls_ && seg.size() == 1 && seg[0].empty() && !req.multi_cluster &&
      req.method == Method::kGet) {
    return CallList();
  }
  if (seg.empty() || seg[0].empty()) return Error(Code::kNotFound, "missing API call name");
  req.call = seg[0];
  req.args.assign(seg.begin() + 1, seg.end());
  auto it = table->find(req.call);
  if (it == table->end()) {
    if (table == &public_calls_ && KnownCalls().count(req.call)) {
      return Error(Code::kUnimplemented, "'{}' needs {}, which this Spindle build does not have",
                   req.call, MissingFeature(req.call));
    }
    return Error(Code::kNotFound, "unknown API call '{}'", req.call);
  }
  if (req.multi_cluster && !proto::IsMultiClusterCall(req.call)) {
    return Error(Code::kInvalidArgument, "'{}' has no MultiCluster form", req.call);
  }
  const CallSpec& spec = it->second;
  if (spec.method != Method::kAny && spec.method != req.method) {
    return Error(Code::kInvalidArgument, "'{}' must be called with {}", req.call,
                 spec.method == Method::kGet ? "GET" : "POST");
  }
  if (spec.args != kAnyArgs && req.args.size() != spec.args) {
    return Error(Code::kInvalidArgument, "'{}' takes {} path argument(s), got {}", req.call,
                 spec.args, req.args.size());
  }
  for (const std::string& a : req.args) {
    if (a.empty()) return Error(Code::kInvalidArgument, "empty path argument");
  }
  if (body.size() > kMaxBodyBytes) {
    return Error(Code::kInvalidArgument, "request body exceeds {} bytes", kMaxBodyBytes);
  }
  if (req.method == Method::kPost && !body.empty()) {
    req.body = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (req.body->is_discarded()) {
      return Error(Code::kInvalidArgument, "request body is not valid JSON");
    }
  }
  return spec.handler(cluster_, req);
}

}  // namespace spindle::mgmt
