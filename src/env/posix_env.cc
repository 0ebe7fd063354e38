// POSIX implementation of Env, File and Clock.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path, bool direct, bool block)
      : fd_(fd), path_(std::move(path)), direct_(direct), block_(block) {}
  ~PosixFile() override { ::close(fd_); }

  Result<size_t> PRead(uint64_t offset, std::span<uint8_t> buf) override {
    SP_RETURN_IF_ERROR(CheckAlignment(offset, buf.data(), buf.size()));
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

  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    SP_RETURN_IF_ERROR(CheckAlignment(offset, data.data(), data.size()));
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

  Status DataSync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus(errno, "fdatasync", path_);
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
  const std::string& path() const override { return path_; }

 private:
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
    return std::unique_ptr<File>(new PosixFile(fd, path, direct, S_ISBLK(st.st_mode)));
  }

  const Clock& clock() const override { return clock_; }

 private:
  SystemClock clock_;
};

}  // namespace

AlignedBuffer::AlignedBuffer(size_t size) {
  size_ = (size + kDirectIoAlignment - 1) / kDirectIoAlignment * kDirectIoAlignment;
  if (size_ == 0) return;
  void* p = std::aligned_alloc(kDirectIoAlignment, size_);
  SP_ASSERT(p != nullptr);
  std::memset(p, 0, size_);
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
