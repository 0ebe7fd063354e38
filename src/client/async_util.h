// Small coroutine helpers for the client's single-threaded io_context.
// Thread: everything here belongs to the io_context thread that created it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include <asio.hpp>

#include "common/log.h"
#include "common/status.h"

// SP_RETURN_IF_ERROR for coroutines.
#define SP_CO_RETURN_IF_ERROR(expr)             \
  do {                                          \
    ::spindle::Status sp_status_ = (expr);      \
    if (!sp_status_.ok()) co_return sp_status_; \
  } while (0)

namespace spindle::client {

// A condition-variable-like signal: Wait() suspends until the next NotifyAll(). Callers loop
// on their own condition; on a single thread there is no lost wake-up between the check and
// the Wait(). NotifyAll with nobody waiting costs nothing (no timer operation).
class AsyncSignal {
 public:
  explicit AsyncSignal(asio::any_io_executor ex)
      : timer_(ex, asio::steady_timer::time_point::max()) {}
  void NotifyAll() {
    if (waiting_ > 0) timer_.cancel();
  }
  asio::awaitable<void> Wait() {
    asio::error_code ec;  // operation_aborted is the wake-up
    ++waiting_;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    --waiting_;
  }

 private:
  asio::steady_timer timer_;
  size_t waiting_ = 0;  // Wait()s not yet resumed
};

// Completion handler for co_spawn of fire-and-forget coroutines: logs an escaped exception
// (project code does not throw, but std::bad_alloc can) instead of dropping it silently.
struct LogExceptions {
  void operator()(std::exception_ptr e) const {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      SP_LOG_ERROR("coroutine ended by exception: {}", ex.what());
    }
  }
};

// Runs every task concurrently on `ex` and returns their statuses in task order, after all
// of them have finished.
asio::awaitable<std::vector<Status>> RunAll(asio::any_io_executor ex,
                                            std::vector<asio::awaitable<Status>> tasks);

// The first non-OK status of `all`, or OK.
Status FirstError(const std::vector<Status>& all);

}  // namespace spindle::client
