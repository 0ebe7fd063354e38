// Offload: runs a blocking function on a thread pool and resumes the awaiting coroutine on its
// own executor (the io_context) with the function's result. Disk I/O goes through this so that
// pread/pwrite/fdatasync never stall the network thread.
#pragma once

#include <type_traits>
#include <utility>

#include <asio.hpp>

namespace spindle::server {

// fn: a callable returning a movable R; runs once on a pool thread. The io_context is kept
// alive (work guard) until the result has been delivered.
template <typename Fn, typename R = std::invoke_result_t<Fn>>
asio::awaitable<R> Offload(asio::thread_pool& pool, Fn fn) {
  auto initiate = [&pool](auto handler, Fn work) {
    auto guard = asio::make_work_guard(asio::get_associated_executor(handler));
    asio::post(pool, [handler = std::move(handler), work = std::move(work),
                      guard = std::move(guard)]() mutable {
      R result = work();
      auto ex = guard.get_executor();
      asio::post(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
        std::move(handler)(std::move(result));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(R)>(
      std::move(initiate), asio::use_awaitable, std::move(fn));
}

}  // namespace spindle::server
