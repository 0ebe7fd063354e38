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
      write_done_(ex),
      switched_(ex) {}

asio::awaitable<void> Volume::WaitNotSwitching() {
  while (switching_ || paused_) co_await switched_.Wait();
}

void Volume::Resume() {
  paused_ = false;
  switched_.NotifyAll();
}

asio::awaitable<void> Volume::SwitchLayer(VolumeSpec spec) {
  SP_ASSERT(!switching_);
  switching_ = true;
  while (!writes_in_flight_.empty()) co_await write_done_.Wait();
  spec_ = std::move(spec);
  versions_ = std::make_shared<ObjectVersions>(ex_);
  switching_ = false;
  switched_.NotifyAll();
}

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
  const uint64_t in_object = offset % kObjectSize;
  if (in_object + out.size() <= kObjectSize) {
    // Within one object (nearly every read): no extent list, no task group.
    Status s = co_await ReadObject(
        Extent{static_cast<uint32_t>(offset / kObjectSize), static_cast<uint32_t>(in_object),
               static_cast<uint32_t>(out.size()), 0},
        out);
    co_return s;
  }
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
  co_await WaitNotSwitching();
  const uint64_t seq = BeginWrite();
  Status s;
  if (spec_.chain.size() > 1) {
    co_await LockBlocks(seq, offset, data.size());
    s = co_await WriteMerged(offset, data);
    UnlockBlocks(seq);
  } else {
    s = co_await WriteAligned(offset, data);
  }
  EndWrite(seq);
  co_return s;
}

bool Volume::BlocksBusy(uint64_t first, uint64_t last) const {
  for (const auto& [seq, r] : locked_blocks_) {
    if (r.first < last && first < r.second) return true;
  }
  return false;
}

asio::awaitable<void> Volume::LockBlocks(uint64_t seq, uint64_t offset, uint64_t length) {
  const uint64_t first = offset / kBlockSize;
  const uint64_t last = (offset + length + kBlockSize - 1) / kBlockSize;
  while (BlocksBusy(first, last)) co_await write_done_.Wait();
  locked_blocks_[seq] = {first, last};
}

void Volume::UnlockBlocks(uint64_t seq) {
  locked_blocks_.erase(seq);
  write_done_.NotifyAll();
}

asio::awaitable<Status> Volume::WriteMerged(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t first = offset / kBlockSize * kBlockSize;
  const uint64_t end = offset + data.size();
  const uint64_t last =
      std::min<uint64_t>((end + kBlockSize - 1) / kBlockSize * kBlockSize, spec_.size_bytes);
  if (first == offset && last == end) {
    Status direct = co_await WriteAligned(offset, data);
    co_return direct;
  }
  std::vector<uint8_t> whole(last - first);
  std::span<uint8_t> buf(whole);
  Status s;
  if (first != offset)
    s = co_await ReadAligned(first, buf.first(std::min(kBlockSize, last - first)));
  const uint64_t tail = (last - 1) / kBlockSize * kBlockSize;
  if (s.ok() && end != last && (tail != first || first == offset)) {
    s = co_await ReadAligned(tail, buf.subspan(tail - first, last - tail));
  }
  if (!s.ok()) co_return s;
  std::memcpy(whole.data() + (offset - first), data.data(), data.size());
  Status w = co_await WriteAligned(first, buf);
  co_return w;
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
  co_await WaitNotSwitching();
  const uint64_t seq = BeginWrite();
  Status s;
  if (spec_.chain.size() > 1) {
    co_await LockBlocks(seq, offset, length);
    s = co_await TrimOverChain(offset, length);
    UnlockBlocks(seq);
  } else {
    s = co_await TrimRange(offset, length);
  }
  EndWrite(seq);
  co_return s;
}

asio::awaitable<Status> Volume::TrimRange(uint64_t offset, uint64_t length) {
  const std::vector<Extent> extents = SplitExtents(offset, length);
  Status s;
  for (size_t i = 0; i < extents.size() && s.ok(); i += kMaxTrimObjectsAtOnce) {
    std::vector<asio::awaitable<Status>> tasks;
    for (size_t j = i; j < std::min(extents.size(), i + kMaxTrimObjectsAtOnce); ++j) {
      tasks.push_back(TrimObject(extents[j]));
    }
    s = FirstError(co_await RunAll(ex_, std::move(tasks)));
  }
  co_return s;
}

asio::awaitable<Status> Volume::TrimOverChain(uint64_t offset, uint64_t length) {
  static const std::vector<uint8_t> kZeros(kBlockSize, 0);
  const uint64_t end = offset + length;
  const uint64_t a = std::min(end, (offset + kBlockSize - 1) / kBlockSize * kBlockSize);
  const uint64_t b = std::max(a, end / kBlockSize * kBlockSize);
  Status s;
  if (offset < a) s = co_await WriteMerged(offset, std::span(kZeros).first(a - offset));
  if (s.ok() && b < end) s = co_await WriteMerged(b, std::span(kZeros).first(end - b));
  if (s.ok() && a < b) s = co_await TrimRange(a, b - a);
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
