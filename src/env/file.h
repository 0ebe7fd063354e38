// File access for Spindle: the only code that opens, reads, writes or syncs files (DESIGN §9).
// A File is a positioned-I/O handle on a regular file or a block device.
//
// Direct I/O: OpenFile tries O_DIRECT first when asked and falls back to buffered I/O on
// filesystems that refuse it (tmpfs on older kernels, some FUSE mounts). When a File is direct
// (is_direct()), every buffer address, offset and length must be a multiple of
// kDirectIoAlignment; violations are rejected with kInvalidArgument before reaching the kernel.
// Use AlignedBuffer for buffers.
//
// Batch: many positioned reads and writes (and fdatasyncs ordered after them) in one call. The
// POSIX File submits each run of two or more reads/writes between syncs to io_uring in one go
// (one ring per thread, created lazily); a lone read or write is a plain pread/pwrite, and a
// sync is always a plain fdatasync once the ops before it completed. It uses pread/pwrite for
// everything on tmpfs and where io_uring is not available or is turned off
// (SPINDLE_IO_URING=0, SetIoEngine).
//
// Thread safety: PRead/PWrite/DataSync/Batch may be called from several threads at once (they
// map to pread/pwrite/fdatasync); Truncate must not race with I/O beyond the new size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"

namespace spindle::env {

inline constexpr size_t kDirectIoAlignment = 4096;

enum class Create { kNo, kYes };
enum class Direct { kNo, kTry };

// One operation of File::Batch. The buffer belongs to the caller and must stay valid until
// Batch returns; alignment rules as for PRead/PWrite.
struct IoOp {
  enum class Kind : uint8_t { kRead, kWrite, kSync };
  Kind kind = Kind::kSync;
  uint64_t offset = 0;
  uint8_t* data = nullptr;  // kRead: filled; kWrite: written from (never modified)
  size_t length = 0;

  static IoOp Read(uint64_t offset, std::span<uint8_t> buf) {
    return {Kind::kRead, offset, buf.data(), buf.size()};
  }
  static IoOp Write(uint64_t offset, std::span<const uint8_t> data) {
    return {Kind::kWrite, offset, const_cast<uint8_t*>(data.data()), data.size()};
  }
  static IoOp Sync() { return {}; }
};

// How File::Batch of the POSIX Env does its I/O.
enum class IoEngine { kIoUring, kPosix };
// kIoUring unless SPINDLE_IO_URING=0 is set in the environment, SetIoEngine(kPosix) was called
// or the kernel refused to create a ring (no io_uring, or it is disabled).
IoEngine CurrentIoEngine();
// Process-wide choice (tests, benchmarks); kIoUring still falls back when the kernel refuses.
void SetIoEngine(IoEngine engine);
const char* IoEngineName(IoEngine engine);

struct OpenOptions {
  Create create = Create::kNo;  // kYes: create a regular file when absent (mode 0644)
  Direct direct = Direct::kTry;
};

// Bytes of a file mapped read-only and shared with its page cache (File::MapForRead); unmapped
// when the last reference goes.
class Mapping {
 public:
  Mapping(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  const uint8_t* data_;
  size_t size_;
};

class File {
 public:
  virtual ~File() = default;
  // Reads up to buf.size() bytes at offset; returns the count, short only at end of file.
  virtual Result<size_t> PRead(uint64_t offset, std::span<uint8_t> buf) = 0;
  // Writes all of data at offset (retrying short writes); kIoError on failure, kResourceExhausted
  // on ENOSPC.
  virtual Status PWrite(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes every completed write durable (fdatasync).
  virtual Status DataSync() = 0;
  // Runs `ops` and waits for all of them. Reads and writes between two kSync ops may run
  // concurrently and complete in any order (do not overlap a write with another op of the same
  // stretch); a kSync starts after every earlier op of the batch completed and makes their writes
  // durable; ops after a kSync start after it completed. A read must be complete (short: kIoError).
  // Returns the error of the first failing op in batch order, OK when all succeeded; after a
  // failure, later ops may or may not have been done. This default runs them one by one through
  // PRead/PWrite/DataSync (the simulated disk uses it).
  virtual Status Batch(std::span<const IoOp> ops);
  // Size in bytes: st_size for a regular file, the device size for a block device.
  virtual Result<uint64_t> Size() = 0;
  // Sets the size of a regular file (sparse when growing); kInvalidArgument on a block device.
  virtual Status Truncate(uint64_t size) = 0;
  // Frees the storage of [offset, offset + length) without changing the size
  // (fallocate PUNCH_HOLE | KEEP_SIZE); the range then reads as zeros. kUnimplemented when the
  // filesystem or device cannot do it (the caller may ignore that: the data stays, unused).
  // Alignment rules as for PWrite on a direct File.
  virtual Status PunchHole(uint64_t offset, uint64_t length) = 0;
  virtual bool is_direct() const = 0;
  virtual bool is_block_device() const = 0;
  // The file lives in memory (tmpfs, ramfs): reading it never waits for a device, so a caller
  // may read it on a thread that must not block.
  virtual bool is_memory() const { return false; }
  // The first `size` bytes of a file in memory, mapped read-only: a reader may use stored bytes
  // in place instead of copying them out. The mapping outlives the File while a reference to
  // it is held. Bytes of it that a write changes change under the reader (check them against
  // their crcs where that matters). kUnimplemented for other files; kInvalidArgument when the
  // file is shorter than `size`.
  virtual Result<std::shared_ptr<const Mapping>> MapForRead(uint64_t size);
  // The file descriptor, for a caller that submits its own I/O (io_uring); -1 when there is
  // none (a simulated disk).
  virtual int native_handle() const { return -1; }
  virtual const std::string& path() const = 0;
};

// A heap buffer aligned to kDirectIoAlignment whose size is a multiple of it (rounded up).
// Zero-filled on construction unless Fill::kNone is asked for (the caller writes every byte).
class AlignedBuffer {
 public:
  enum class Fill { kZero, kNone };
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size, Fill fill = Fill::kZero);
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  std::span<uint8_t> span() { return {data_.get(), size_}; }
  std::span<const uint8_t> span() const { return {data_.get(), size_}; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

}  // namespace spindle::env
