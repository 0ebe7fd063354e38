#include "net/run_loop.h"

#include "common/assert.h"

namespace spindle::net {

size_t RunPolling(asio::io_context& io, std::chrono::microseconds window) {
  SP_ASSERT(window.count() >= 0 && window.count() <= kMaxPollWindowUs);
  if (window.count() == 0) return io.run();
  using Clock = std::chrono::steady_clock;
  size_t handled = 0;
  Clock::time_point last = Clock::now();
  while (!io.stopped()) {
    size_t n = io.poll();  // runs what is ready; epoll_wait with a zero timeout when nothing is
    if (n > 0) {
      handled += n;
      last = Clock::now();
      continue;
    }
    if (Clock::now() - last < window) continue;
    // Nothing for a whole window: sleep until the next event, as run() would.
    n = io.run_one();
    handled += n;
    last = Clock::now();
  }
  return handled;
}

Result<std::chrono::microseconds> PollWindowFromConfig(const Config& config, const std::string& key,
                                                       std::chrono::microseconds fallback) {
  SP_ASSIGN_OR_RETURN(int64_t us, config.GetInt(key, fallback.count()));
  if (us < 0 || us > kMaxPollWindowUs) {
    return Error(Code::kInvalidArgument, "{} must be 0..{}, got {}", key, kMaxPollWindowUs, us);
  }
  return std::chrono::microseconds(us);
}

}  // namespace spindle::net
