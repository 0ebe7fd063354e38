// File access for Spindle: the only code that opens, reads, writes or syncs files (DESIGN §9).
// A File is a positioned-I/O handle on a regular file or a block device.
//
// Direct I/O: OpenFile tries O_DIRECT first when asked and falls back to buffered I/O on
// filesystems that refuse it (tmpfs on older kernels, some FUSE mounts). When a File is direct
// (is_direct()), every buffer address, offset and length must be a multiple of
// kDirectIoAlignment; violations are rejected with kInvalidArgument before reaching the kernel.
// Use AlignedBuffer for buffers.
//
// Thread safety: PRead/PWrite/DataSync may be called from several threads at once (they map to
// pread/pwrite/fdatasync); Truncate must not race with I/O beyond the new size.
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

struct OpenOptions {
  Create create = Create::kNo;  // kYes: create a regular file when absent (mode 0644)
  Direct direct = Direct::kTry;
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
  virtual const std::string& path() const = 0;
};

// A heap buffer aligned to kDirectIoAlignment whose size is a multiple of it (rounded up).
// Zero-filled on construction.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size);
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
