// POSIX implementation of Env, File and Clock.
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common/assert.h"
#include "env/env.h"

namespace spindle::env {
namespace {

Status ErrnoStatus(int err, std::string_view op, const std::string& path) {
  Code code = Code::kIoError;
  if (err == ENOENT) code = Code::kNotFound;
  if (err == EACCES || err == EPERM || err == EROFS) code = Code::kPermissionDenied;
  if (err == ENOSPC || err == EDQUOT) code = Code::kResourceExhausted;
  return Error(code, "{} {}: {}", op, path, std::strerror(err));
}

bool Aligned(uint64_t v) {
  return v % kDirectIoAlignment == 0;
}

// ---- io_uring ----

constexpr unsigned kRingEntries = 128;  // also the most ops one thread keeps in flight

// -1: not decided yet (SPINDLE_IO_URING is read on first use), else an IoEngine value.
std::atomic<int> g_engine{-1};
std::atomic<bool> g_no_uring{false};  // the kernel refused a ring: every thread falls back

// One ring per thread: the Batch calls of one thread never overlap, so its ring only ever holds
// the current call's requests.
class Ring {
 public:
  Ring() {
    // Completions are reaped only by this thread, when it waits (kernel 6.1+); else plain.
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    ok_ = io_uring_queue_init_params(kRingEntries, &ring_, &p) == 0 ||
          io_uring_queue_init(kRingEntries, &ring_, 0) == 0;
  }
  ~Ring() {
    if (ok_) io_uring_queue_exit(&ring_);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  bool ok() const { return ok_; }
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
  bool ok_ = false;
};

// The calling thread's ring (created on first use), or nullptr: use the POSIX loop.
io_uring* ThreadRing() {
  if (CurrentIoEngine() != IoEngine::kIoUring) return nullptr;
  thread_local Ring ring;
  if (!ring.ok()) {
    g_no_uring = true;
    return nullptr;
  }
  return ring.get();
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path, bool direct, bool block, bool memory)
      : fd_(fd), path_(std::move(path)), direct_(direct), block_(block), memory_(memory) {}
  ~PosixFile() override { ::close(fd_); }

  Result<size_t> PRead(uint64_t offset, std::span<uint8_t> buf) override {
    SP_RETURN_IF_ERROR(CheckAlignment(offset, buf.data(), buf.size()));
    return ReadLoop(offset, buf);
  }

  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    SP_RETURN_IF_ERROR(CheckAlignment(offset, data.data(), data.size()));
    return WriteLoop(offset, data);
  }

  Status DataSync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus(errno, "fdatasync", path_);
    return Status::Ok();
  }

  Status Batch(std::span<const IoOp> ops) override {
    for (const IoOp& op : ops) {
      if (op.kind == IoOp::Kind::kSync) continue;
      SP_RETURN_IF_ERROR(CheckAlignment(op.offset, op.data, op.length));
      SP_ASSERT(op.length <= std::numeric_limits<uint32_t>::max());
    }
    // Stretch by stretch: the reads and writes up to the next sync, then fdatasync called here
    // (through the ring it would only be punted to a kernel worker thread: the same call plus
    // two context switches). The ring serves stretches of two or more ops, which it runs
    // concurrently; a lone op is one syscall either way. Not on tmpfs: the kernel punts writes
    // of a memory file to a worker too, and reads of memory gain nothing from running at once.
    for (size_t i = 0; i < ops.size();) {
      size_t j = i;
      while (j < ops.size() && ops[j].kind != IoOp::Kind::kSync) ++j;
      const std::span<const IoOp> stretch = ops.subspan(i, j - i);
      io_uring* ring = stretch.size() >= 2 && !memory_ ? ThreadRing() : nullptr;
      if (ring != nullptr) {
        SP_RETURN_IF_ERROR(RingStretch(ring, stretch));
      } else {
        for (const IoOp& op : stretch) SP_RETURN_IF_ERROR(RunOne(op));
      }
      if (j < ops.size()) SP_RETURN_IF_ERROR(DataSync());
      i = j + 1;
    }
    return Status::Ok();
  }

  Result<uint64_t> Size() override {
    if (block_) {
      uint64_t bytes = 0;
      if (::ioctl(fd_, BLKGETSIZE64, &bytes) != 0) return ErrnoStatus(errno, "BLKGETSIZE64", path_);
      return bytes;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return ErrnoStatus(errno, "fstat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

  Status Truncate(uint64_t size) override {
    if (block_) return Error(Code::kInvalidArgument, "cannot resize block device {}", path_);
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return ErrnoStatus(errno, "ftruncate", path_);
    }
    return Status::Ok();
  }

  Status PunchHole(uint64_t offset, uint64_t length) override {
    if (direct_ && (!Aligned(offset) || !Aligned(length))) {
      return Error(Code::kInvalidArgument, "unaligned hole on {}: offset {} length {}", path_,
                   offset, length);
    }
    int rc = 0;
    do {
      rc = ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                       static_cast<off_t>(length));
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) return Status::Ok();
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
      return Error(Code::kUnimplemented, "{} cannot punch holes", path_);
    }
    return ErrnoStatus(errno, "fallocate(PUNCH_HOLE)", path_);
  }

  bool is_direct() const override { return direct_; }
  bool is_block_device() const override { return block_; }
  bool is_memory() const override { return memory_; }

  Result<std::shared_ptr<const Mapping>> MapForRead(uint64_t size) override {
    if (!memory_) return File::MapForRead(size);
    SP_ASSIGN_OR_RETURN(uint64_t have, Size());
    if (size == 0 || size > have) {
      return Error(Code::kInvalidArgument, "cannot map {} bytes of {} ({} bytes)", size, path_,
                   have);
    }
    void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap", path_);
    return std::shared_ptr<const Mapping>(
        std::make_shared<Mapping>(static_cast<const uint8_t*>(p), static_cast<size_t>(size)));
  }

  int native_handle() const override { return fd_; }
  const std::string& path() const override { return path_; }

 private:
  Result<size_t> ReadLoop(uint64_t offset, std::span<uint8_t> buf) {
    size_t done = 0;
    while (done < buf.size()) {
      ssize_t n =
          ::pread(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "pread", path_);
      if (n == 0) break;  // end of file
      done += static_cast<size_t>(n);
    }
    return done;
  }

  Status WriteLoop(uint64_t offset, std::span<const uint8_t> data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "pwrite", path_);
      if (n == 0) return Error(Code::kIoError, "pwrite {}: wrote nothing", path_);
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  // One read or write by pread/pwrite; a short read is kIoError.
  Status RunOne(const IoOp& op) {
    if (op.kind == IoOp::Kind::kWrite) return WriteLoop(op.offset, {op.data, op.length});
    SP_ASSIGN_OR_RETURN(size_t n, ReadLoop(op.offset, {op.data, op.length}));
    if (n != op.length) {
      return Error(Code::kIoError, "{}: short read at {} ({} of {} bytes)", path_, op.offset, n,
                   op.length);
    }
    return Status::Ok();
  }

  // Reads and writes (no syncs) through the thread's ring, up to kRingEntries in flight; returns
  // once all completed, with the error of the first failing op (nothing new is submitted after
  // a failure). A short completion is finished with pread/pwrite.
  Status RingStretch(io_uring* ring, std::span<const IoOp> ops) {
    constexpr size_t kNone = std::numeric_limits<size_t>::max();
    size_t failed = kNone;
    Status error;
    auto fail = [&](size_t i, Status s) {
      if (i < failed) {
        failed = i;
        error = std::move(s);
      }
    };
    size_t next = 0, inflight = 0;
    for (;;) {
      while (failed == kNone && next < ops.size() && inflight < kRingEntries) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        if (sqe == nullptr) break;  // entries the kernel has not taken yet: submit first
        const IoOp& op = ops[next];
        if (op.kind == IoOp::Kind::kRead) {
          io_uring_prep_read(sqe, fd_, op.data, static_cast<unsigned>(op.length), op.offset);
        } else {
          io_uring_prep_write(sqe, fd_, op.data, static_cast<unsigned>(op.length), op.offset);
        }
        io_uring_sqe_set_data64(sqe, next);
        ++next;
        ++inflight;
      }
      if (inflight == 0) break;
      // Woken once, when everything submitted completed (a submission the kernel takes only in
      // part returns without waiting; the rest goes with the next call).
      const int rc = io_uring_submit_and_wait(ring, inflight);
      // Interrupted or short of kernel resources: reap what completed and go round again. Any
      // other error means a malformed request: a bug here, not an I/O error.
      SP_ASSERT(rc >= 0 || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0, seen = 0;
      io_uring_for_each_cqe(ring, head, cqe) {
        ++seen;
        const size_t i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
        if (Status s = Completed(ops[i], cqe->res); !s.ok()) fail(i, std::move(s));
      }
      io_uring_cq_advance(ring, seen);
      inflight -= seen;
    }
    return failed == kNone ? Status::Ok() : error;
  }

  // The ring's result `res` for `op`: finishes a short one with pread/pwrite.
  Status Completed(const IoOp& op, int res) {
    const bool read = op.kind == IoOp::Kind::kRead;
    if (res < 0) return ErrnoStatus(-res, read ? "read" : "write", path_);
    const size_t done = static_cast<size_t>(res);
    if (done == op.length) return Status::Ok();
    return RunOne(IoOp{op.kind, op.offset + done, op.data + done, op.length - done});
  }

  Status CheckAlignment(uint64_t offset, const void* p, size_t len) const {
    if (!direct_) return Status::Ok();
    if (Aligned(offset) && Aligned(len) && Aligned(reinterpret_cast<uintptr_t>(p))) {
      return Status::Ok();
    }
    return Error(Code::kInvalidArgument, "unaligned direct I/O on {}: offset {} length {}", path_,
                 offset, len);
  }

  int fd_;
  std::string path_;
  bool direct_;
  bool block_;
  bool memory_;
};

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
  int64_t UnixSeconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> OpenFile(const std::string& path,
                                         const OpenOptions& options) override {
    int flags = O_RDWR | O_CLOEXEC;
    if (options.create == Create::kYes) flags |= O_CREAT;
    bool direct = options.direct == Direct::kTry;
    int fd = -1;
    if (direct) {
      fd = ::open(path.c_str(), flags | O_DIRECT, 0644);
      // EINVAL: this filesystem does not do O_DIRECT; use the page cache instead.
      if (fd < 0 && errno == EINVAL) direct = false;
    }
    if (!direct) fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return ErrnoStatus(errno, "open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      Status s = ErrnoStatus(errno, "fstat", path);
      ::close(fd);
      return s;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
      ::close(fd);
      return Error(Code::kInvalidArgument, "{} is neither a regular file nor a block device", path);
    }
    struct statfs fs {};
    const bool memory = !S_ISBLK(st.st_mode) && ::fstatfs(fd, &fs) == 0 &&
                        (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
    if (memory && direct) {
      // tmpfs takes O_DIRECT but its data is the page cache anyway: direct I/O would only add
      // the alignment rules (and the copies into aligned buffers they force).
      const int fl = ::fcntl(fd, F_GETFL);
      if (fl >= 0 && ::fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0) direct = false;
    }
    return std::unique_ptr<File>(new PosixFile(fd, path, direct, S_ISBLK(st.st_mode), memory));
  }

  const Clock& clock() const override { return clock_; }

 private:
  SystemClock clock_;
};

}  // namespace

IoEngine CurrentIoEngine() {
  int e = g_engine.load();
  if (e < 0) {
    const char* v = std::getenv("SPINDLE_IO_URING");
    const bool off = v != nullptr && std::strcmp(v, "0") == 0;
    e = static_cast<int>(off ? IoEngine::kPosix : IoEngine::kIoUring);
    int unset = -1;
    if (!g_engine.compare_exchange_strong(unset, e)) e = unset;
  }
  if (e == static_cast<int>(IoEngine::kIoUring) && g_no_uring.load()) return IoEngine::kPosix;
  return static_cast<IoEngine>(e);
}

void SetIoEngine(IoEngine engine) {
  g_engine = static_cast<int>(engine);
}

const char* IoEngineName(IoEngine engine) {
  return engine == IoEngine::kIoUring ? "io_uring" : "posix";
}

Mapping::~Mapping() {
  if (size_ > 0) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::shared_ptr<const Mapping>> File::MapForRead(uint64_t /*size*/) {
  return Error(Code::kUnimplemented, "{} is not a file in memory: no mapping", path());
}

Status File::Batch(std::span<const IoOp> ops) {
  for (const IoOp& op : ops) {
    switch (op.kind) {
      case IoOp::Kind::kRead: {
        SP_ASSIGN_OR_RETURN(size_t n, PRead(op.offset, {op.data, op.length}));
        if (n != op.length) {
          return Error(Code::kIoError, "{}: short read at {} ({} of {} bytes)", path(), op.offset,
                       n, op.length);
        }
        break;
      }
      case IoOp::Kind::kWrite:
        SP_RETURN_IF_ERROR(PWrite(op.offset, {op.data, op.length}));
        break;
      case IoOp::Kind::kSync:
        SP_RETURN_IF_ERROR(DataSync());
        break;
    }
  }
  return Status::Ok();
}

AlignedBuffer::AlignedBuffer(size_t size, Fill fill) {
  size_ = (size + kDirectIoAlignment - 1) / kDirectIoAlignment * kDirectIoAlignment;
  if (size_ == 0) return;
  void* p = std::aligned_alloc(kDirectIoAlignment, size_);
  SP_ASSERT(p != nullptr);
  if (fill == Fill::kZero) std::memset(p, 0, size_);
  data_.reset(static_cast<uint8_t*>(p));
}

void AlignedBuffer::Free::operator()(uint8_t* p) const {
  std::free(p);
}

Env& Env::Default() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: used until exit by any thread
  return *env;
}

}  // namespace spindle::env
