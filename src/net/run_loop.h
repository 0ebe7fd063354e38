// Running an io_context with adaptive busy polling.
//
// On this kind of machine the costliest part of a small I/O is not our code but the kernel
// putting a thread to sleep in epoll_wait and waking it again when the next frame arrives (a
// context switch per hop). RunPolling keeps the thread awake for a short window after the
// last handler ran, polling the reactor without blocking, so the answer to a request it just
// sent, or the next request of a client that is busy, is picked up without that switch. Once
// the window passes with nothing to do the thread blocks as io_context::run() would, so an
// idle service uses no CPU.
//
// Thread: call from the one thread that runs `io`; returns when `io` runs out of work or is
// stopped, like run().
#pragma once

#include <chrono>
#include <cstdint>

#include <asio.hpp>

#include "common/config.h"
#include "common/status.h"

namespace spindle::net {

// The longest poll window a configuration may ask for.
inline constexpr int64_t kMaxPollWindowUs = 10'000;

// Runs `io`; after each burst of handlers keeps polling for `window` before blocking.
// A zero window is io.run(). Returns the number of handlers run.
size_t RunPolling(asio::io_context& io, std::chrono::microseconds window);

// The poll window configured under `key` (microseconds, 0..kMaxPollWindowUs), `fallback` when
// unset; kInvalidArgument naming the key otherwise.
Result<std::chrono::microseconds> PollWindowFromConfig(const Config& config, const std::string& key,
                                                       std::chrono::microseconds fallback);

}  // namespace spindle::net
