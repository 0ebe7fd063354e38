#include "net/api_client.h"

#include <httplib.h>

#include <charconv>
#include <string_view>

#include <fmt/format.h>

namespace spindle::net {
namespace {

// Largest reply body accepted; a bigger one is treated as a transport failure.
constexpr size_t kMaxReplyBytes = 64 * 1024 * 1024;

ApiError TransportError(const std::string& what) {
  return ApiError{0, "transport", what, true};
}

// Applies §1.3 of the API reference: parse whatever came back, then decide by status and by
// the presence of "error".
ApiResult Unwrap(int status, const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return ApiError{status, "badReply", "reply is not JSON (HTTP " + std::to_string(status) + ")",
                    false};
  }
  if (status != 200 || (j.is_object() && j.contains("error"))) {
    ApiError e{status, "<Missing error name>", "<Missing error description>", false};
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
      const auto& err = j["error"];
      if (err.contains("name") && err["name"].is_string()) e.name = err["name"];
      if (err.contains("descr") && err["descr"].is_string()) e.descr = err["descr"];
      if (err.contains("transient") && err["transient"].is_boolean()) {
        e.transient = err["transient"];
      }
    }
    return e;
  }
  if (!j.is_object() || !j.contains("data")) {
    return ApiError{status, "badReply", "reply has no \"data\" member", false};
  }
  ApiReply reply;
  if (j.contains("generation") && j["generation"].is_number_integer()) {
    reply.generation = j["generation"].get<int64_t>();
  }
  reply.data = std::move(j["data"]);
  return reply;
}

httplib::Client MakeClient(const ApiEndpoint& ep) {
  httplib::Client cli(ep.host, ep.port);
  // Path arguments go on the wire literally, as StorPool's bindings send them.
  cli.set_url_encode(false);
  cli.set_keep_alive(false);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(ep.timeout);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(ep.timeout - secs);
  cli.set_connection_timeout(secs.count(), usecs.count());
  cli.set_read_timeout(secs.count(), usecs.count());
  cli.set_write_timeout(secs.count(), usecs.count());
  return cli;
}

ApiResult Finish(const ApiEndpoint& ep, const httplib::Result& res) {
  if (!res) {
    return TransportError(
        fmt::format("{}:{}: {} error", ep.host, ep.port, httplib::to_string(res.error())));
  }
  if (res->body.size() > kMaxReplyBytes) return TransportError("reply too large");
  return Unwrap(res->status, res->body);
}

}  // namespace

Result<ApiEndpoint> ApiEndpoint::FromConfig(const Config& config) {
  ApiEndpoint ep;
  ep.host = config.GetOr("SP_API_HTTP_HOST", ep.host);
  SP_ASSIGN_OR_RETURN(int64_t port, config.GetInt("SP_API_HTTP_PORT", ep.port));
  if (port <= 0 || port > 65535) {
    return Error(Code::kInvalidArgument, "SP_API_HTTP_PORT {} out of range", port);
  }
  ep.port = static_cast<uint16_t>(port);
  ep.token = config.GetOr("SP_AUTH_TOKEN", "");
  return ep;
}

Status ApiResult::status() const {
  if (ok_) return Status::Ok();
  return Status(error_.transient ? Code::kUnavailable : Code::kFailedPrecondition,
                error_.name + ": " + error_.descr);
}

ApiClient::ApiClient(ApiEndpoint endpoint) : endpoint_(std::move(endpoint)) {}

ApiResult ApiClient::Get(const std::string& path) {
  httplib::Client cli = MakeClient(endpoint_);
  httplib::Headers headers{{"Authorization", "Storpool v1:" + endpoint_.token}};
  return Finish(endpoint_, cli.Get(path, headers));
}

ApiResult ApiClient::Post(const std::string& path, const nlohmann::json& body) {
  httplib::Client cli = MakeClient(endpoint_);
  httplib::Headers headers{{"Authorization", "Storpool v1:" + endpoint_.token}};
  // ensure_ascii keeps the body ASCII with \uXXXX escapes, like the bindings.
  std::string text = body.is_null() ? std::string()
                                    : body.dump(-1, ' ', /*ensure_ascii=*/true,
                                                nlohmann::json::error_handler_t::replace);
  return Finish(endpoint_, cli.Post(path, headers, text, "application/json"));
}

}  // namespace spindle::net
