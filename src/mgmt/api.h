// Api: the StorPool-compatible management API (/ctrl/1.0/...) and the internal service
// endpoints (/spindle/1/..., docs/formats/internal-api.md), independent of the HTTP library so
// tests can drive it directly. Thread-safe (state lives in Cluster); calls may block only in
// ClientState's bounded long-poll.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mgmt/api_json.h"
#include "mgmt/cluster.h"

namespace spindle::mgmt {

inline constexpr size_t kMaxBodyBytes = 1 << 20;  // 1 MiB, requests only
inline constexpr size_t kMaxPathArgs = 4;

enum class Method { kGet, kPost, kAny };      // kAny: the handler checks the method itself
inline constexpr size_t kAnyArgs = SIZE_MAX;  // the handler checks the path arguments itself

struct ApiRequest {
  Method method = Method::kGet;
  std::string call;               // "VolumeDescribe"
  std::vector<std::string> args;  // raw path arguments
  std::string query;              // after '?', raw
  std::optional<Json> body;       // parsed POST body; nullopt when empty
  bool multi_cluster = false;
};

struct ApiResponse {
  int http_status = 200;
  std::string body;
};

using CallHandler = std::function<Result<Json>(Cluster&, const ApiRequest&)>;

struct CallSpec {
  Method method;
  size_t args;  // exact number of path arguments, or kAnyArgs
  CallHandler handler;
};

// Registration of the calls of one area (api_*.cc).
using CallTable = std::map<std::string, CallSpec>;
void RegisterServiceCalls(CallTable& public_calls, CallTable& internal_calls);
void RegisterDiskCalls(CallTable& calls);
void RegisterTemplateCalls(CallTable& calls);
void RegisterVolumeCalls(CallTable& calls);
void RegisterSnapshotCalls(CallTable& calls);
void RegisterAttachmentCalls(CallTable& calls);
void RegisterSpaceCalls(CallTable& calls);
void RegisterKvCalls(CallTable& calls);

// {"ok": true, "generation": G} plus the extra members.
Json ApiOk(int64_t generation, Json extra = Json::object());

struct ApiOptions {
  std::string auth_token;  // SP_AUTH_TOKEN; must not be empty
};

class Api {
 public:
  Api(Cluster& cluster, ApiOptions options);
  // Serves one request. target: the raw request target (path and query, not decoded);
  // authorization: the Authorization header, nullopt when absent.
  ApiResponse Handle(std::string_view method, std::string_view target,
                     const std::optional<std::string>& authorization, const std::string& body);

 private:
  Result<Json> Dispatch(std::string_view method, std::string_view target, const std::string& body);
  Status CheckAuth(const std::optional<std::string>& authorization) const;
  // GET /ctrl/1.0/: the calls this build serves and the StorPool calls it does not.
  Json CallList() const;

  Cluster& cluster_;
  const ApiOptions options_;
  CallTable public_calls_;
  CallTable internal_calls_;
};

}  // namespace spindle::mgmt
