// The one table from spindle::Code to the StorPool error the API returns: error name, HTTP
// status and whether a retry is safe ("transient").
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace spindle::mgmt {

struct ApiErrorInfo {
  const char* name;
  int http_status;
  bool transient;
};

ApiErrorInfo ErrorInfoFor(Code code);
// A handler that must answer with a specific StorPool error name (e.g. KV/Set's
// runIfVersionIsMismatch) starts its message with "@<name>: "; it is not transient.
inline constexpr char kNamedErrorMark = '@';
// {"generation": G, "error": {"name", "descr", "transient"}} for a non-OK status.
std::string ErrorBody(const Status& status, int64_t generation);

}  // namespace spindle::mgmt
