// UringReader: device reads through io_uring on the server's event loop. A disk read that goes
// to the pool costs two thread hand-offs (each a wake-up, a context switch), and the pool's
// threads bound how many reads wait on the device at once; here the network thread submits the
// reads itself and the ring's completions wake it through an eventfd. The reads a burst of
// requests asks for are submitted together, once the handlers that are ready have run.
//
// Threads: everything on the io_context's thread (Read, Stop, the completion loop). The
// destructor waits for reads still in flight, so that the kernel never writes into a freed
// buffer; the owner destroys the reader before the io_context.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <asio.hpp>

#include "common/status.h"
#include "env/file.h"

namespace spindle::server {

class UringReader {
 public:
  static constexpr unsigned kEntries = 256;  // also the bound on reads in flight

  // Sets up the ring and starts the completion loop on `io`. ok() is false when io_uring is
  // not available here (or SPINDLE_IO_URING=0): the caller reads through its pool instead.
  explicit UringReader(asio::io_context& io);
  ~UringReader();
  UringReader(const UringReader&) = delete;
  UringReader& operator=(const UringReader&) = delete;

  bool ok() const { return ok_; }
  // Runs the reads of `ops` (all kRead) on `fd` concurrently and returns once all completed:
  // OK, or the first failure in op order (kIoError; a short read is one). kResourceExhausted
  // when the ring has no room for them now or the reader is stopping (the caller then reads
  // through its pool). The buffers must stay alive until it returns.
  asio::awaitable<Status> Read(int fd, std::span<const env::IoOp> ops);
  // Lets the completion loop end once no read is in flight (the io_context can then run out
  // of work), and refuses new reads.
  void Stop();
  // Reads submitted so far (statistics, tests).
  uint64_t reads_submitted() const { return submitted_; }

 private:
  struct Waiter;
  asio::awaitable<void> CompletionLoop();
  // Submits every prepared entry, then reaps.
  void Submit();
  // Takes every completion the ring holds.
  void Reap();
  // Blocks until no read is in flight (bounded); for the destructor.
  void Drain();

  asio::io_context& io_;
  io_uring ring_{};
  bool ok_ = false;
  int efd_ = -1;
  asio::posix::stream_descriptor event_;
  size_t in_flight_ = 0;
  uint64_t submitted_ = 0;
  bool stopping_ = false;
  bool flush_posted_ = false;
  // Lets a posted flush see that this reader is gone.
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
};

}  // namespace spindle::server
