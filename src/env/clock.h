// Time for Spindle: the only source of the current time (DESIGN §9), so that tests and a
// future simulator can substitute their own. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace spindle::env {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for timeouts and intervals.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // Wall-clock seconds since the Unix epoch, for timestamps reported to people and mgmt.
  virtual int64_t UnixSeconds() const = 0;
};

// A clock that is set by hand; Now() starts at the steady epoch, UnixSeconds() at 0.
class ManualClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return now_; }
  int64_t UnixSeconds() const override { return unix_seconds_; }
  void Advance(std::chrono::nanoseconds d) {
    now_ += d;
    unix_seconds_ =
        unix_base_ +
        std::chrono::duration_cast<std::chrono::seconds>(now_.time_since_epoch()).count();
  }
  void SetUnixSeconds(int64_t s) {
    unix_base_ =
        s - std::chrono::duration_cast<std::chrono::seconds>(now_.time_since_epoch()).count();
    unix_seconds_ = s;
  }

 private:
  std::chrono::steady_clock::time_point now_{};
  int64_t unix_base_ = 0;
  int64_t unix_seconds_ = 0;
};

}  // namespace spindle::env
