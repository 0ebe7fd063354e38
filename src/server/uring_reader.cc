#include "server/uring_reader.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/assert.h"
#include "common/log.h"

namespace spindle::server {

// One Read call: its ops still in flight and the first failure, in op order.
struct UringReader::Waiter {
  explicit Waiter(asio::any_io_executor ex) : done(ex) {
    done.expires_at(std::chrono::steady_clock::time_point::max());
  }
  size_t remaining = 0;
  size_t failed_index = SIZE_MAX;
  Status failure;
  const env::IoOp* ops = nullptr;
  asio::steady_timer done;  // cancelled when `remaining` reaches 0
};

namespace {

// user_data of a submission: the waiter and the op's index (kEntries < 2^16).
uint64_t Tag(void* waiter, size_t index) {
  return reinterpret_cast<uint64_t>(waiter) << 16 | static_cast<uint64_t>(index);
}

}  // namespace

UringReader::UringReader(asio::io_context& io) : io_(io), event_(io) {
  if (env::CurrentIoEngine() != env::IoEngine::kIoUring) return;
  // Pointers of this process fit in 48 bits, which Tag relies on.
  static_assert(sizeof(void*) == 8);
  if (io_uring_queue_init(kEntries, &ring_, 0) != 0) return;
  efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0 || io_uring_register_eventfd(&ring_, efd_) != 0) {
    if (efd_ >= 0) ::close(efd_);
    efd_ = -1;
    io_uring_queue_exit(&ring_);
    return;
  }
  event_.assign(efd_);
  ok_ = true;
  asio::co_spawn(io_, CompletionLoop(), asio::detached);
}

UringReader::~UringReader() {
  if (!ok_) return;
  Drain();
  asio::error_code ignored;
  event_.close(ignored);  // closes efd_
  io_uring_queue_exit(&ring_);
}

asio::awaitable<Status> UringReader::Read(int fd, std::span<const env::IoOp> ops) {
  if (ops.empty()) co_return Status::Ok();
  if (!ok_ || stopping_ || fd < 0 || in_flight_ + ops.size() > kEntries ||
      io_uring_sq_space_left(&ring_) < ops.size()) {
    co_return Error(Code::kResourceExhausted, "io_uring reader busy or stopped");
  }
  Waiter w(io_.get_executor());
  w.ops = ops.data();
  for (size_t i = 0; i < ops.size(); ++i) {
    const env::IoOp& op = ops[i];
    SP_ASSERT(op.kind == env::IoOp::Kind::kRead);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    SP_ASSERT(sqe != nullptr);  // space checked above
    io_uring_prep_read(sqe, fd, op.data, static_cast<unsigned>(op.length), op.offset);
    io_uring_sqe_set_data64(sqe, Tag(&w, i));
  }
  w.remaining = ops.size();
  in_flight_ += ops.size();
  submitted_ += ops.size();
  // Submitted by a flush posted behind the handlers that are ready now: the reads of the other
  // requests one receive brought in join this one in one io_uring_enter, and the block layer
  // then notifies the device once for them all (on a virtual machine each notification is a
  // trap to the hypervisor, the largest single cost of a read at depth 32).
  if (!flush_posted_) {
    flush_posted_ = true;
    asio::post(io_, [this, alive = std::weak_ptr<char>(alive_)] {
      if (alive.expired()) return;
      flush_posted_ = false;
      Submit();
    });
  }
  // Wait until every completion landed (the completion loop cancels the timer on the last).
  while (w.remaining > 0) {
    asio::error_code ec;
    co_await w.done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return w.failed_index == SIZE_MAX ? Status::Ok() : w.failure;
}

void UringReader::Submit() {
  // The ring takes every prepared entry (a bad one completes with an error); EAGAIN/EBUSY are
  // transient (kernel memory, completions to take first). Any other failure leaves entries
  // that point into waiting frames queued with no way to withdraw them: the process stops.
  for (int tries = 0; io_uring_sq_ready(&ring_) > 0; ++tries) {
    const int r = io_uring_submit(&ring_);
    if (r >= 0) continue;
    if ((r == -EINTR || r == -EAGAIN || r == -EBUSY) && tries < 1000) {
      Reap();
      continue;
    }
    SP_LOG_ERROR("io_uring_submit: {}: stopping", std::strerror(-r));
    std::abort();
  }
  // Completions that landed meanwhile (the completion loop takes the later ones).
  Reap();
}

void UringReader::Reap() {
  io_uring_cqe* cqe = nullptr;
  unsigned head = 0;
  unsigned seen = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    const uint64_t tag = io_uring_cqe_get_data64(cqe);
    auto* w = reinterpret_cast<Waiter*>(tag >> 16);
    const size_t index = tag & 0xffff;
    const env::IoOp& op = w->ops[index];
    Status s;
    if (cqe->res < 0) {
      s = Error(Code::kIoError, "read of {} bytes at {}: {}", op.length, op.offset,
                std::strerror(-cqe->res));
    } else if (static_cast<size_t>(cqe->res) != op.length) {
      s = Error(Code::kIoError, "short read at {} ({} of {} bytes)", op.offset, cqe->res,
                op.length);
    }
    if (!s.ok() && index < w->failed_index) {
      w->failed_index = index;
      w->failure = s;
    }
    --in_flight_;
    if (--w->remaining == 0) w->done.cancel();
  }
  io_uring_cq_advance(&ring_, seen);
}

asio::awaitable<void> UringReader::CompletionLoop() {
  for (;;) {
    if (stopping_ && in_flight_ == 0) co_return;
    asio::error_code ec;
    co_await event_.async_wait(asio::posix::descriptor_base::wait_read,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // closed
    uint64_t count = 0;
    while (::read(efd_, &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    Reap();
  }
}

void UringReader::Stop() {
  stopping_ = true;
  // A loop waiting with nothing in flight would wait forever: wake it to see `stopping_`.
  if (ok_ && in_flight_ == 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof(one));
  }
}

void UringReader::Drain() {
  Submit();  // entries a posted flush that never ran left prepared
  // Bounded: a device that never completes a read is given 30 s, then the ring is torn down
  // anyway (the process is ending).
  for (int i = 0; i < 30 && in_flight_ > 0; ++i) {
    __kernel_timespec ts{1, 0};
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    Reap();
  }
  if (in_flight_ > 0) SP_LOG_ERROR("io_uring reader: {} reads still in flight", in_flight_);
}

}  // namespace spindle::server
