#include "mgmt/api_errors.h"

#include <nlohmann/json.hpp>

namespace spindle::mgmt {

ApiErrorInfo ErrorInfoFor(Code code) {
  switch (code) {
    case Code::kOk:
      return {"ok", 200, false};
    case Code::kInvalidArgument:
      return {"invalidParam", 400, false};
    case Code::kNotFound:
      return {"objectNotFound", 404, false};
    case Code::kAlreadyExists:
      return {"objectExists", 409, false};
    case Code::kFailedPrecondition:
      return {"invalidState", 409, false};
    case Code::kPermissionDenied:
      return {"authFailed", 401, false};
    case Code::kResourceExhausted:
      return {"limitExceeded", 429, true};
    case Code::kUnavailable:
      return {"serviceUnavailable", 503, true};
    case Code::kAborted:
      return {"conflict", 409, true};
    case Code::kCorruption:
      return {"dataCorruption", 500, false};
    case Code::kIoError:
      return {"ioError", 500, false};
    case Code::kUnimplemented:
      return {"notImplemented", 501, false};
    case Code::kInternal:
      return {"internalError", 500, false};
  }
  return {"internalError", 500, false};
}

std::string ErrorBody(const Status& status, int64_t generation) {
  ApiErrorInfo info = ErrorInfoFor(status.code());
  std::string name = info.name, descr = status.message();
  bool transient = info.transient;
  if (!descr.empty() && descr[0] == kNamedErrorMark) {
    size_t colon = descr.find(": ");
    if (colon != std::string::npos) {
      name = descr.substr(1, colon - 1);
      descr = descr.substr(colon + 2);
      transient = false;
    }
  }
  nlohmann::json j = {{"generation", generation},
                      {"error", {{"name", name}, {"descr", descr}, {"transient", transient}}}};
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace spindle::mgmt
