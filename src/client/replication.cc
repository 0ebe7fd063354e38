// Volume's per-object replication: version assignment, write fan-out, replica reads.
#include <algorithm>
#include <cstring>

#include "client/volume.h"
#include "common/log.h"

namespace spindle::client {

DiskSet Volume::UsableDisks(const DiskSet& set) const {
  DiskSet out;
  for (DiskId d : set) {
    auto info = pool_.Disk(d);
    if (info && info->up) out.push_back(d);
  }
  return out;
}

asio::awaitable<Status> Volume::InfoReplica(DiskId disk, uint32_t object,
                                            std::shared_ptr<std::vector<uint64_t>> out,
                                            size_t slot) {
  auto payload = std::make_shared<std::vector<uint8_t>>();
  proto::EncodePayload(proto::ObjectInfoRequest{disk, spec_.layer, ObjectIndex(object)}, *payload);
  auto reply = co_await pool_.Call(disk, proto::MsgType::kObjectInfo, payload, kObjectInfoTimeout);
  if (!reply.ok()) co_return reply.status();
  auto info = proto::DecodeObjectInfoResponse(reply->payload);
  if (!info.ok()) co_return info.status();
  (*out)[slot] = info->version;
  co_return Status::Ok();
}

asio::awaitable<Result<uint64_t>> Volume::QueryVersion(uint32_t object, const DiskSet& disks) {
  auto versions = std::make_shared<std::vector<uint64_t>>(disks.size(), 0);
  std::vector<asio::awaitable<Status>> tasks;
  for (size_t i = 0; i < disks.size(); ++i) {
    tasks.push_back(InfoReplica(disks[i], object, versions, i));
  }
  Status s = FirstError(co_await RunAll(ex_, std::move(tasks)));
  if (!s.ok()) co_return s;
  co_return *std::max_element(versions->begin(), versions->end());
}

asio::awaitable<Result<uint64_t>> Volume::NextVersion(uint32_t object, DiskSet disks) {
  // Map references are re-taken after every suspension: other coroutines may insert.
  auto versions = versions_;  // keeps the table alive if this Volume is replaced meanwhile
  while (true) {
    auto& e = versions->entries[object];
    if (e.known) co_return ++e.last;
    if (!e.loading) break;
    co_await versions->loaded.Wait();
  }
  versions->entries[object].loading = true;
  auto max = co_await QueryVersion(object, disks);
  auto& e = versions->entries[object];
  e.loading = false;
  versions->loaded.NotifyAll();
  if (!max.ok()) co_return max.status();
  e.known = true;
  e.last = *max;
  co_return ++e.last;
}

asio::awaitable<Status> Volume::WriteReplica(DiskId disk,
                                             std::shared_ptr<const std::vector<uint8_t>> payload) {
  auto reply = co_await pool_.Call(disk, proto::MsgType::kWrite, payload, kIoTimeout);
  if (!reply.ok()) {
    SP_LOG_WARN("write to disk {} failed: {}", disk.value(), reply.status().ToString());
    co_return reply.status();
  }
  auto decoded = proto::DecodeWriteResponse(reply->payload);
  co_return decoded.ok() ? Status::Ok() : decoded.status();
}

asio::awaitable<Status> Volume::WriteObject(Extent e, std::span<const uint8_t> data) {
  const DiskSet disks = UsableDisks(DiskSetFor(spec_, e.object));
  if (disks.empty()) {
    co_return Error(Code::kUnavailable, "{}: no usable disk for object {}", spec_.name, e.object);
  }
  auto version = co_await NextVersion(e.object, disks);
  if (!version.ok()) co_return version.status();
  // From here to the spawns nothing suspends, so requests for one object leave in version
  // order (servers also wait for a missing predecessor).
  std::vector<uint32_t> crcs;
  proto::ComputeChunkCrcs(data, crcs);
  std::vector<asio::awaitable<Status>> tasks;
  for (DiskId d : disks) {
    proto::WriteRequest req{d,    spec_.layer, ObjectIndex(e.object), *version, e.offset, 0,
                            crcs, data};
    auto payload = std::make_shared<std::vector<uint8_t>>();
    proto::EncodePayload(req, *payload);
    tasks.push_back(WriteReplica(d, std::move(payload)));
  }
  co_return FirstError(co_await RunAll(ex_, std::move(tasks)));
}

asio::awaitable<Status> Volume::ReadReplica(DiskId disk, Extent e, std::span<uint8_t> out) {
  auto payload = std::make_shared<std::vector<uint8_t>>();
  proto::EncodePayload(
      proto::ReadRequest{disk, ObjectIndex(e.object), e.offset, e.length, spec_.chain}, *payload);
  auto reply = co_await pool_.Call(disk, proto::MsgType::kRead, payload, kIoTimeout);
  if (!reply.ok()) co_return reply.status();
  auto r = proto::DecodeReadResponse(reply->payload);
  if (!r.ok()) co_return r.status();
  if (r->data.size() != e.length) {
    co_return Error(Code::kInternal, "read returned {} bytes, asked {}", r->data.size(), e.length);
  }
  Status s = proto::VerifyChunkCrcs(r->data, r->crcs);
  if (!s.ok()) co_return s;
  std::memcpy(out.data(), r->data.data(), e.length);
  co_return Status::Ok();
}

asio::awaitable<Status> Volume::ReadObject(Extent e, std::span<uint8_t> out) {
  const DiskSet disks = UsableDisks(DiskSetFor(spec_, e.object));
  Status last = Error(Code::kUnavailable, "{}: no usable disk for object {}", spec_.name, e.object);
  // Tail first, then towards the head.
  for (auto it = disks.rbegin(); it != disks.rend(); ++it) {
    Status s = co_await ReadReplica(*it, e, out);
    if (s.ok()) co_return s;
    last = s;
    SP_LOG_WARN("{}: read of object {} from disk {} failed: {}", spec_.name, e.object, it->value(),
                last.ToString());
  }
  co_return last;
}

asio::awaitable<Status> Volume::TrimReplica(DiskId disk,
                                            std::shared_ptr<const std::vector<uint8_t>> payload) {
  auto reply = co_await pool_.Call(disk, proto::MsgType::kTrim, payload, kIoTimeout);
  if (!reply.ok()) {
    SP_LOG_WARN("trim on disk {} failed: {}", disk.value(), reply.status().ToString());
    co_return reply.status();
  }
  auto decoded = proto::DecodeWriteResponse(reply->payload);
  co_return decoded.ok() ? Status::Ok() : decoded.status();
}

asio::awaitable<Status> Volume::TrimObject(Extent e) {
  const DiskSet disks = UsableDisks(DiskSetFor(spec_, e.object));
  if (disks.empty()) {
    co_return Error(Code::kUnavailable, "{}: no usable disk for object {}", spec_.name, e.object);
  }
  auto version = co_await NextVersion(e.object, disks);
  if (!version.ok()) co_return version.status();
  // As in WriteObject: nothing suspends until the requests are spawned, in version order.
  std::vector<asio::awaitable<Status>> tasks;
  for (DiskId d : disks) {
    auto payload = std::make_shared<std::vector<uint8_t>>();
    proto::EncodePayload(
        proto::TrimRequest{d, spec_.layer, ObjectIndex(e.object), *version, e.offset, e.length},
        *payload);
    tasks.push_back(TrimReplica(d, std::move(payload)));
  }
  co_return FirstError(co_await RunAll(ex_, std::move(tasks)));
}

asio::awaitable<Status> Volume::StatusReplica(DiskId disk, Extent e,
                                              std::shared_ptr<std::vector<bool>> out) {
  auto payload = std::make_shared<std::vector<uint8_t>>();
  proto::EncodePayload(
      proto::BlockStatusRequest{disk, ObjectIndex(e.object), e.offset, e.length, spec_.chain},
      *payload);
  auto reply = co_await pool_.Call(disk, proto::MsgType::kBlockStatus, payload, kIoTimeout);
  if (!reply.ok()) co_return reply.status();
  auto r = proto::DecodeBlockStatusResponse(reply->payload);
  if (!r.ok()) co_return r.status();
  const uint32_t blocks = static_cast<uint32_t>(e.length / kBlockSize);
  if (r->blocks != blocks) {
    co_return Error(Code::kInternal, "block status of {} blocks, asked {}", r->blocks, blocks);
  }
  const size_t base = e.buffer_offset / kBlockSize;
  for (uint32_t i = 0; i < blocks; ++i) (*out)[base + i] = (r->bitmap[i / 8] >> (i % 8)) & 1;
  co_return Status::Ok();
}

asio::awaitable<Status> Volume::StatusObject(Extent e, std::shared_ptr<std::vector<bool>> out) {
  const DiskSet disks = UsableDisks(DiskSetFor(spec_, e.object));
  Status last = Error(Code::kUnavailable, "{}: no usable disk for object {}", spec_.name, e.object);
  for (auto it = disks.rbegin(); it != disks.rend(); ++it) {
    Status s = co_await StatusReplica(*it, e, out);
    if (s.ok()) co_return s;
    last = s;
    SP_LOG_WARN("{}: block status of object {} from disk {} failed: {}", spec_.name, e.object,
                it->value(), last.ToString());
  }
  co_return last;
}

}  // namespace spindle::client
