// Volume's per-object replication: version assignment, write fan-out, replica reads.
#include <algorithm>
#include <cstring>

#include "client/volume.h"
#include "common/log.h"

namespace spindle::client {

DiskSet Volume::UsableDisks(const DiskSet& set) const {
  DiskSet out;
  out.reserve(set.size());
  for (DiskId d : set) {
    const DiskEndpoint* info = pool_.FindDisk(d);
    if (info != nullptr && info->up) out.push_back(d);
  }
  return out;
}

DiskSet Volume::ReadableDisks(DiskSet set) const {
  std::erase_if(set, [this](DiskId d) {
    const DiskEndpoint* info = pool_.FindDisk(d);
    return info == nullptr || !info->up || info->recovering;
  });
  return set;
}

Status Volume::CheckWritable(const DiskSet& disks, uint32_t object) const {
  if (disks.empty()) {
    return Error(Code::kUnavailable, "{}: no usable disk for object {}", spec_.name, object);
  }
  // A recovering replica may lack acknowledged writes; only one that is caught up holds them
  // all (mgmt clears first the replica that left last). Versions learnt from recovering copies
  // alone could start the object again below a write acknowledged by the one still away, and
  // its recovery would then take our copy over that write.
  const bool caught_up = std::any_of(disks.begin(), disks.end(), [this](DiskId d) {
    const DiskEndpoint* info = pool_.FindDisk(d);
    return info != nullptr && !info->recovering;
  });
  if (!caught_up) {
    return Error(Code::kUnavailable, "{}: object {}: every reachable replica is still recovering",
                 spec_.name, object);
  }
  return Status::Ok();
}

bool Volume::VersionKnown(uint32_t object) const {
  auto it = versions_->entries.find(object);
  return it != versions_->entries.end() && it->second.known;
}

namespace {
// Failures that say nothing about the replica's health (the request itself was refused).
bool RequestRefused(const Status& s) {
  return s.code() == Code::kPermissionDenied || s.code() == Code::kInvalidArgument;
}
}  // namespace

asio::awaitable<Status> Volume::CompleteReplicated(const DiskSet& disks,
                                                   const std::vector<Status>& results,
                                                   uint32_t object) {
  size_t ok = 0;
  for (const Status& s : results) ok += s.ok();
  if (ok == results.size()) co_return Status::Ok();
  Status first = FirstError(results);
  if (ok == 0 || RequestRefused(first)) {
    // Nothing durable anywhere we know of, or refused: the caller gets the error; the next
    // write of the object asks the replicas for its version again (some may have applied it).
    versions_->entries[object].known = false;
    for (size_t i = 0; i < results.size(); ++i) {
      if (!results[i].ok() && !RequestRefused(results[i])) {
        (void)co_await pool_.ReportFailed(disks[i], results[i].ToString());
      }
    }
    co_return first;
  }
  // Some replicas made it durable: mgmt marks the others down before this completes.
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    Status rep = co_await pool_.ReportFailed(disks[i], results[i].ToString());
    if (!rep.ok()) {
      versions_->entries[object].known = false;
      co_return Error(Code::kUnavailable,
                      "replica on disk {} failed ({}) and mgmt was not told: {}", disks[i].value(),
                      results[i].ToString(), rep.ToString());
    }
    SP_LOG_WARN("{}: object {} written without disk {} (marked down)", spec_.name, object,
                disks[i].value());
  }
  co_return Status::Ok();
}

asio::awaitable<Status> Volume::SyncReplica(DiskId disk, uint32_t object, uint64_t version) {
  auto payload = std::make_shared<std::vector<uint8_t>>();
  proto::EncodePayload(proto::ObjectSyncRequest{disk, ObjectIndex(object), spec_.layer, version},
                       *payload);
  auto reply = co_await pool_.Call(disk, proto::MsgType::kObjectSync, payload, kSyncTimeout);
  if (!reply.ok()) co_return reply.status();
  auto r = proto::DecodeWriteResponse(reply->payload);
  if (!r.ok()) co_return r.status();
  if (r->version < version) {
    co_return Error(Code::kUnavailable, "disk {} synced object {} only to version {} of {}",
                    disk.value(), object, r->version, version);
  }
  co_return Status::Ok();
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
  auto results = co_await RunAll(ex_, std::move(tasks));
  size_t answered = 0;
  for (const Status& st : results) answered += st.ok();
  if (answered == 0) co_return FirstError(results);
  const uint64_t max = *std::max_element(versions->begin(), versions->end());
  // Replicas that disagree (a client died mid-write) are equalised before the object is
  // served: the ones behind pull the newest copy from the others (DESIGN.md §5). Recovering
  // disks catch up by themselves.
  std::vector<asio::awaitable<Status>> syncs;
  std::vector<DiskId> synced;
  for (size_t i = 0; i < disks.size(); ++i) {
    if (!results[i].ok() || (*versions)[i] >= max) continue;
    const DiskEndpoint* info = pool_.FindDisk(disks[i]);
    if (info != nullptr && info->recovering) continue;
    SP_LOG_INFO("{}: object {} on disk {} at version {} of {}: syncing", spec_.name, object,
                disks[i].value(), (*versions)[i], max);
    syncs.push_back(SyncReplica(disks[i], object, max));
    synced.push_back(disks[i]);
  }
  std::vector<Status> sync_results = co_await RunAll(ex_, std::move(syncs));
  // A replica that did not answer or could not catch up holds an outdated copy: down.
  for (size_t i = 0, j = 0; i < disks.size(); ++i) {
    Status failed = results[i];
    if (failed.ok() && j < synced.size() && synced[j] == disks[i]) failed = sync_results[j++];
    if (failed.ok() || RequestRefused(failed)) continue;
    Status rep = co_await pool_.ReportFailed(disks[i], failed.ToString());
    if (!rep.ok()) co_return rep;
  }
  co_return max;
}

asio::awaitable<Status> Volume::EnsureEqual(uint32_t object) {
  if (spec_.read_only) co_return Status::Ok();
  const DiskSet disks = UsableDisks(DiskSetFor(spec_, object));
  if (disks.empty()) co_return Status::Ok();  // the read finds no replica and says so
  co_return co_await LoadVersion(versions_, object, disks);
}

asio::awaitable<Status> Volume::LoadVersion(std::shared_ptr<ObjectVersions> versions,
                                            uint32_t object, const DiskSet& disks) {
  // Map references are re-taken after every suspension: other coroutines may insert.
  // Writes sent under the forgotten version finish first: none may reach a replica after the
  // skip (it could be acknowledged there as already applied).
  while (true) {
    auto& e = versions->entries[object];
    if (e.known) co_return Status::Ok();
    if (!e.loading && e.in_flight == 0) break;
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
  // A replica out of reach now (or one that answered for a copy it cannot serve) may hold
  // versions above `max` that were never acknowledged: the next write skips past any of them,
  // so such a copy is behind the line, not level with it (docs/decisions/0014).
  e.skip_next = true;
  co_return Status::Ok();
}

asio::awaitable<Result<Volume::Versioned>> Volume::NextVersion(
    std::shared_ptr<ObjectVersions> versions, uint32_t object, DiskSet disks) {
  Status s = co_await LoadVersion(versions, object, disks);
  if (!s.ok()) co_return s;
  // Nothing suspends between the load and here: the version is still known.
  auto& e = versions->entries[object];
  ++e.in_flight;
  if (e.skip_next) {
    e.skip_next = false;
    e.last += proto::kVersionSkip;
    co_return Versioned{e.last, proto::kWriteFlagSkip};
  }
  co_return Versioned{++e.last, 0};
}

void Volume::Finished(ObjectVersions& versions, uint32_t object) {
  auto& e = versions.entries[object];
  --e.in_flight;
  if (e.in_flight == 0 && !e.known) versions.loaded.NotifyAll();
}

asio::awaitable<Status> Volume::WriteReplica(DiskId disk,
                                             std::shared_ptr<const std::vector<uint8_t>> encoded) {
  // `encoded` is addressed to some replica: only the disk id in front differs.
  std::vector<uint8_t> head;
  proto::EncodeDiskId(disk, head);
  net::SharedBytes rest{encoded, std::span(*encoded).subspan(proto::kDiskIdBytes)};
  auto reply = co_await pool_.Call(disk, proto::MsgType::kWrite, std::move(head), std::move(rest),
                                   kIoTimeout);
  if (!reply.ok()) {
    SP_LOG_WARN("write to disk {} failed: {}", disk.value(), reply.status().ToString());
    co_return reply.status();
  }
  auto decoded = proto::DecodeWriteResponse(reply->payload);
  co_return decoded.ok() ? Status::Ok() : decoded.status();
}

asio::awaitable<Status> Volume::WriteObject(Extent e, std::span<const uint8_t> data) {
  const DiskSet disks = UsableDisks(DiskSetFor(spec_, e.object));
  if (Status s = CheckWritable(disks, e.object); !s.ok()) co_return s;
  auto versions = versions_;  // kept alive if this Volume is replaced meanwhile
  auto version = co_await NextVersion(versions, e.object, disks);
  if (!version.ok()) co_return version.status();
  // From here to the spawns nothing suspends, so requests for one object leave in version
  // order (servers also wait for a missing predecessor).
  std::vector<uint32_t> crcs;
  proto::ComputeChunkCrcs(data, crcs);
  // Encoded once: the replicas share the bytes (data and checksums are not copied per replica).
  proto::WriteRequest req{
      disks.front(), spec_.layer, ObjectIndex(e.object), version->version, e.offset, version->flags,
      crcs,          data,        pool_.self().value()};
  auto encoded = std::make_shared<std::vector<uint8_t>>();
  proto::EncodePayload(req, *encoded);
  std::vector<asio::awaitable<Status>> tasks;
  for (DiskId d : disks) tasks.push_back(WriteReplica(d, encoded));
  auto results = co_await RunAll(ex_, std::move(tasks));
  Finished(*versions, e.object);
  co_return co_await CompleteReplicated(disks, results, e.object);
}

asio::awaitable<Status> Volume::ReadReplica(DiskId disk, Extent e, std::span<uint8_t> out,
                                            uint32_t flags, bool* bad_crcs) {
  *bad_crcs = false;
  auto payload = std::make_shared<std::vector<uint8_t>>();
  proto::EncodePayload(
      proto::ReadRequest{disk, ObjectIndex(e.object), e.offset, e.length, spec_.chain, flags},
      *payload);
  // A large answer's data is received straight into `out` (no copy through the frame).
  // (The request is a local: GCC 12 destroys some temporaries of a co_await expression twice.)
  net::SharedBytes request{payload, *payload};
  auto reply =
      co_await pool_.Call(disk, proto::MsgType::kRead, {}, std::move(request), kIoTimeout, out);
  if (!reply.ok()) co_return reply.status();
  auto r = reply->sunk == e.length ? proto::DecodeReadResponseHead(reply->payload, out)
                                   : proto::DecodeReadResponse(reply->payload);
  if (!r.ok()) co_return r.status();
  if (r->data.size() != e.length) {
    co_return Error(Code::kInternal, "read returned {} bytes, asked {}", r->data.size(), e.length);
  }
  Status s = proto::VerifyChunkCrcs(r->data, r->crcs);
  if (!s.ok()) {
    *bad_crcs = true;
    co_return s;
  }
  if (r->data.data() != out.data()) std::memcpy(out.data(), r->data.data(), e.length);
  co_return Status::Ok();
}

asio::awaitable<Status> Volume::ReadObject(Extent e, std::span<uint8_t> out) {
  // The replicas' versions are known after the object's first I/O: no coroutine for that then.
  if (!spec_.read_only && !VersionKnown(e.object)) {
    Status eq = co_await EnsureEqual(e.object);
    if (!eq.ok()) co_return eq;
  }
  const DiskSet disks =
      ReadableDisks(ReadOrder(DiskSetFor(spec_, e.object), spec_.read_replicas, e.offset));
  if (disks.empty()) {
    co_return Error(Code::kUnavailable, "{}: no usable disk for object {}", spec_.name, e.object);
  }
  Status last;
  // Servers may answer from their stored bytes without checking them (this side checks every
  // answer against the crcs stored with the data at write time). A mismatch found here is asked
  // of the same replica again with the server checking: it finds a bad copy (and has it
  // repaired from a peer's), or the bytes were a write racing the read. A mismatch still left
  // (a write racing both) has every disk asked once more.
  for (int round = 0; round < 2; ++round) {
    bool mismatch = false;
    for (DiskId d : disks) {
      bool bad_crcs = false;
      Status s = co_await ReadReplica(d, e, out, proto::kReadClientChecks, &bad_crcs);
      if (bad_crcs) s = co_await ReadReplica(d, e, out, 0, &bad_crcs);
      if (s.ok()) co_return s;
      last = s;
      mismatch = mismatch || s.code() == Code::kCorruption;
      SP_LOG_WARN("{}: read of object {} from disk {} failed: {}", spec_.name, e.object, d.value(),
                  last.ToString());
    }
    if (!mismatch) break;
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
  if (Status s = CheckWritable(disks, e.object); !s.ok()) co_return s;
  auto versions = versions_;  // kept alive if this Volume is replaced meanwhile
  auto version = co_await NextVersion(versions, e.object, disks);
  if (!version.ok()) co_return version.status();
  // As in WriteObject: nothing suspends until the requests are spawned, in version order.
  std::vector<asio::awaitable<Status>> tasks;
  for (DiskId d : disks) {
    auto payload = std::make_shared<std::vector<uint8_t>>();
    proto::EncodePayload(
        proto::TrimRequest{d, spec_.layer, ObjectIndex(e.object), version->version, e.offset,
                           e.length, pool_.self().value(), version->flags},
        *payload);
    tasks.push_back(TrimReplica(d, std::move(payload)));
  }
  auto results = co_await RunAll(ex_, std::move(tasks));
  Finished(*versions, e.object);
  co_return co_await CompleteReplicated(disks, results, e.object);
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
  const DiskSet disks = ReadableDisks(DiskSetFor(spec_, e.object));
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
