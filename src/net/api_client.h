// Client for spindle-mgmt's HTTP JSON API (the public StorPool-compatible /ctrl/1.0/ calls and
// the internal /spindle/1/ ones). One instance per thread; each call opens a connection like
// StorPool's bindings do (no keep-alive needed).
//
// Unwraps the StorPool envelope: a 200 reply without "error" yields {"generation", "data"};
// anything else yields an ApiError carrying error.name / error.descr / error.transient.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/status.h"

namespace spindle::net {

struct ApiEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 81;
  std::string token;
  std::chrono::milliseconds timeout{300000};
  // Reads SP_API_HTTP_HOST, SP_API_HTTP_PORT, SP_AUTH_TOKEN.
  static Result<ApiEndpoint> FromConfig(const Config& config);
};

struct ApiReply {
  int64_t generation = 0;
  nlohmann::json data;
};

// The StorPool error of a failed call; transport failures have name "transport" and
// transient = true.
struct ApiError {
  int http_status = 0;
  std::string name;
  std::string descr;
  bool transient = false;
};

class ApiResult {
 public:
  ApiResult(ApiReply r) : ok_(true), reply_(std::move(r)) {}   // NOLINT
  ApiResult(ApiError e) : ok_(false), error_(std::move(e)) {}  // NOLINT
  bool ok() const { return ok_; }
  const ApiReply& reply() const { return reply_; }
  const ApiError& error() const { return error_; }
  // The error as a Status (kUnavailable when transient, kFailedPrecondition otherwise).
  Status status() const;

 private:
  bool ok_;
  ApiReply reply_;
  ApiError error_;
};

class ApiClient {
 public:
  explicit ApiClient(ApiEndpoint endpoint);
  // path: everything after the host, e.g. "/ctrl/1.0/DisksList".
  ApiResult Get(const std::string& path);
  // body: serialized compactly; a null body sends no body (Content-Length 0).
  ApiResult Post(const std::string& path, const nlohmann::json& body);
  const ApiEndpoint& endpoint() const { return endpoint_; }

 private:
  ApiEndpoint endpoint_;
};

}  // namespace spindle::net
