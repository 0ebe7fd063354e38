#include "net/run_loop.h"

#include <gtest/gtest.h>

#include <chrono>

namespace spindle::net {
namespace {

// RunPolling runs every handler, including ones that arrive after it has gone to sleep (a
// timer firing past the poll window), and returns when the io_context runs out of work, with
// and without a window.
TEST(RunPolling, RunsEverythingAndReturnsWhenOutOfWork) {
  for (int64_t window_us : {0, 50, 2000}) {
    asio::io_context io(1);
    int ran = 0;
    for (int i = 0; i < 10; ++i) asio::post(io, [&ran] { ++ran; });
    asio::steady_timer late(io, std::chrono::milliseconds(20));
    late.async_wait([&ran](const asio::error_code& ec) {
      if (!ec) ran += 100;
    });
    const auto start = std::chrono::steady_clock::now();
    const size_t handled = RunPolling(io, std::chrono::microseconds(window_us));
    EXPECT_EQ(ran, 110) << window_us;
    EXPECT_EQ(handled, 11u) << window_us;
    EXPECT_TRUE(io.stopped());
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
  }
}

// stop() ends the loop even while it is polling and work remains.
TEST(RunPolling, StopEndsTheLoop) {
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  asio::post(io, [&io] { io.stop(); });
  RunPolling(io, std::chrono::microseconds(1000));
  EXPECT_TRUE(io.stopped());
}

}  // namespace
}  // namespace spindle::net
