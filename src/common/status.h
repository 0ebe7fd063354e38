// Status and Result<T>: the error currency of Spindle. Project code does not throw; every
// fallible function returns one of these. Codes are few on purpose: a code exists only if a
// caller reacts to it differently (see the comment on each).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace spindle {

enum class Code : int {
  kOk = 0,
  kInvalidArgument,     // bad input; don't retry
  kNotFound,            // the named thing does not exist; don't retry
  kAlreadyExists,       // create of an existing name; don't retry
  kFailedPrecondition,  // state forbids it now (e.g. volume attached); don't retry as is
  kPermissionDenied,    // auth or fencing; don't retry
  kResourceExhausted,   // a limit was hit (no space, queue full); retry later
  kUnavailable,         // peer down / timeout; retry is safe
  kAborted,             // raced with another change; restart the operation
  kCorruption,          // checksum mismatch; repair from another replica
  kIoError,             // local I/O failed; the disk is suspect
  kUnimplemented,       // a call or feature this build does not have
  kInternal,            // a bug
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename... Args>
Status Error(Code code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}

// Result<T> holds a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace spindle

// Propagates a non-OK Status from an expression returning Status.
#define SP_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::spindle::Status sp_status_ = (expr);   \
    if (!sp_status_.ok()) return sp_status_; \
  } while (0)

#define SP_CONCAT_INNER(a, b) a##b
#define SP_CONCAT(a, b) SP_CONCAT_INNER(a, b)
// SP_ASSIGN_OR_RETURN(auto x, ExprReturningResult());
#define SP_ASSIGN_OR_RETURN(lhs, expr) \
  SP_ASSIGN_OR_RETURN_IMPL(SP_CONCAT(sp_result_, __LINE__), lhs, expr)
#define SP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
