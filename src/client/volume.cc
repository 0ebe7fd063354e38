#include "client/volume.h"

#include <algorithm>
#include <cstring>

#include "common/assert.h"
#include "common/units.h"

namespace spindle::client {

std::vector<Extent> SplitExtents(uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  uint64_t done = 0;
  while (done < length) {
    const uint64_t pos = offset + done;
    const uint64_t in_object = pos % kObjectSize;
    const uint64_t n = std::min(length - done, kObjectSize - in_object);
    out.push_back(Extent{static_cast<uint32_t>(pos / kObjectSize), static_cast<uint32_t>(in_object),
                         static_cast<uint32_t>(n), done});
    done += n;
  }
  return out;
}

Volume::Volume(asio::any_io_executor ex, ServerPool& pool, VolumeSpec spec,
               std::shared_ptr<ObjectVersions> versions)
    : ex_(ex),
      pool_(pool),
      spec_(std::move(spec)),
      versions_(versions ? std::move(versions) : std::make_shared<ObjectVersions>(ex)),
      write_done_(ex) {}

asio::awaitable<Status> Volume::Read(uint64_t offset, std::span<uint8_t> out) {
  SP_ASSERT(offset + out.size() <= spec_.size_bytes);
  const uint64_t start = offset / kSectorSize * kSectorSize;
  const uint64_t end = (offset + out.size() + kSectorSize - 1) / kSectorSize * kSectorSize;
  if (start == offset && end == offset + out.size()) {
    Status direct = co_await ReadAligned(offset, out);
    co_return direct;
  }
  // The data protocol moves whole sectors; widen, then copy the asked part out.
  std::vector<uint8_t> sectors(end - start);
  Status s = co_await ReadAligned(start, sectors);
  if (s.ok()) std::memcpy(out.data(), sectors.data() + (offset - start), out.size());
  co_return s;
}

asio::awaitable<Status> Volume::ReadAligned(uint64_t offset, std::span<uint8_t> out) {
  std::vector<asio::awaitable<Status>> tasks;
  for (const Extent& e : SplitExtents(offset, out.size())) {
    tasks.push_back(ReadObject(e, out.subspan(e.buffer_offset, e.length)));
  }
  co_return FirstError(co_await RunAll(ex_, std::move(tasks)));
}

asio::awaitable<Status> Volume::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (spec_.read_only) co_return Error(Code::kPermissionDenied, "{} is read-only", spec_.name);
  if (offset % kSectorSize != 0 || data.size() % kSectorSize != 0) {
    co_return Error(Code::kInvalidArgument, "unaligned write {}+{}", offset, data.size());
  }
  SP_ASSERT(offset + data.size() <= spec_.size_bytes);
  const uint64_t seq = BeginWrite();
  Status s = co_await WriteAligned(offset, data);
  EndWrite(seq);
  co_return s;
}

uint64_t Volume::BeginWrite() {
  const uint64_t seq = ++next_write_seq_;
  writes_in_flight_.insert(seq);
  return seq;
}

void Volume::EndWrite(uint64_t seq) {
  writes_in_flight_.erase(seq);
  write_done_.NotifyAll();
}

asio::awaitable<Status> Volume::Trim(uint64_t offset, uint64_t length) {
  if (spec_.read_only) co_return Error(Code::kPermissionDenied, "{} is read-only", spec_.name);
  if (offset % kSectorSize != 0 || length % kSectorSize != 0 || length == 0) {
    co_return Error(Code::kInvalidArgument, "unaligned trim {}+{}", offset, length);
  }
  SP_ASSERT(offset + length <= spec_.size_bytes);
  const uint64_t seq = BeginWrite();
  const std::vector<Extent> extents = SplitExtents(offset, length);
  Status s;
  for (size_t i = 0; i < extents.size() && s.ok(); i += kMaxTrimObjectsAtOnce) {
    std::vector<asio::awaitable<Status>> tasks;
    for (size_t j = i; j < std::min(extents.size(), i + kMaxTrimObjectsAtOnce); ++j) {
      tasks.push_back(TrimObject(extents[j]));
    }
    s = FirstError(co_await RunAll(ex_, std::move(tasks)));
  }
  EndWrite(seq);
  co_return s;
}

asio::awaitable<Result<std::vector<AllocRun>>> Volume::BlockStatus(uint64_t offset,
                                                                   uint64_t length) {
  SP_ASSERT(length > 0 && offset + length <= spec_.size_bytes);
  const uint64_t end = std::min(offset + length, offset + kMaxBlockStatusBytes);
  const uint64_t first = offset / kBlockSize * kBlockSize;
  const uint64_t last = (end + kBlockSize - 1) / kBlockSize * kBlockSize;
  auto blocks = std::make_shared<std::vector<bool>>((last - first) / kBlockSize, false);
  std::vector<asio::awaitable<Status>> tasks;
  for (const Extent& e : SplitExtents(first, last - first))
    tasks.push_back(StatusObject(e, blocks));
  Status s = FirstError(co_await RunAll(ex_, std::move(tasks)));
  if (!s.ok()) co_return s;
  std::vector<AllocRun> runs;
  for (uint64_t pos = offset; pos < end;) {
    const bool data = (*blocks)[(pos - first) / kBlockSize];
    const uint64_t next = std::min(end, (pos / kBlockSize + 1) * kBlockSize);
    if (!runs.empty() && runs.back().data == data) {
      runs.back().length += next - pos;
    } else {
      runs.push_back(AllocRun{next - pos, data});
    }
    pos = next;
  }
  co_return runs;
}

asio::awaitable<Status> Volume::WriteAligned(uint64_t offset, std::span<const uint8_t> data) {
  std::vector<asio::awaitable<Status>> tasks;
  for (const Extent& e : SplitExtents(offset, data.size())) {
    tasks.push_back(WriteObject(e, data.subspan(e.buffer_offset, e.length)));
  }
  co_return FirstError(co_await RunAll(ex_, std::move(tasks)));
}

asio::awaitable<Status> Volume::WriteZeroes(uint64_t offset, uint64_t length) {
  static const std::vector<uint8_t> kZeros(kZeroPieceBytes, 0);
  uint64_t done = 0;
  while (done < length) {
    const uint64_t n = std::min<uint64_t>(length - done, kZeroPieceBytes);
    Status s = co_await Write(offset + done, std::span<const uint8_t>(kZeros.data(), n));
    if (!s.ok()) co_return s;
    done += n;
  }
  co_return Status::Ok();
}

asio::awaitable<void> Volume::Flush() {
  // Every acknowledged write is already durable on all its replicas, so a flush only has to
  // wait for the writes issued before it.
  const uint64_t upto = next_write_seq_;
  while (!writes_in_flight_.empty() && *writes_in_flight_.begin() <= upto) {
    co_await write_done_.Wait();
  }
}

}  // namespace spindle::client
