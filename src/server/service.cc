#include "server/service.h"

#include <algorithm>

#include "common/assert.h"
#include "common/log.h"

namespace spindle::server {

Service::Service(ServerId id, std::vector<ObjectStore*> stores) : id_(id) {
  SP_ASSERT(stores.size() <= proto::kMaxDisksPerServer);
  for (ObjectStore* s : stores) {
    bool inserted = disks_.emplace(s->disk(), s).second;
    SP_ASSERT(inserted);
  }
}

net::RpcHandler Service::Handler() {
  return [this](net::Frame request) { return Handle(std::move(request)); };
}

asio::awaitable<net::Reply> Service::Handle(net::Frame request) {
  switch (static_cast<proto::MsgType>(request.header.type)) {
    case proto::MsgType::kHello:
      co_return Hello(request);
    case proto::MsgType::kWrite:
      co_return co_await Write(request);
    case proto::MsgType::kRead:
      co_return co_await Read(request);
    case proto::MsgType::kObjectInfo:
      co_return ObjectInfo(request);
    case proto::MsgType::kTrim:
      co_return co_await Trim(request);
    case proto::MsgType::kBlockStatus:
      co_return co_await BlockStatus(request);
    case proto::MsgType::kObjectList:
      co_return ObjectList(request);
    case proto::MsgType::kObjectPull:
      co_return co_await ObjectPull(request);
    case proto::MsgType::kObjectSync:
      co_return co_await ObjectSync(request);
  }
  co_return net::Reply::Fail(
      Error(Code::kUnimplemented, "message type {} is not served", request.header.type));
}

Result<ObjectStore*> Service::Disk(DiskId disk) const {
  auto it = disks_.find(disk);
  if (it == disks_.end()) {
    return Error(Code::kNotFound, "server {} has no disk {}", id_.value(), disk.value());
  }
  return it->second;
}

net::Reply Service::Hello(const net::Frame& request) const {
  auto req = proto::DecodeHelloRequest(request.payload);
  if (!req.ok()) return net::Reply::Fail(req.status());
  proto::HelloResponse resp;
  resp.server = id_;
  for (const auto& [id, store] : disks_) resp.disks.push_back(id);
  std::vector<uint8_t> out;
  proto::EncodePayload(resp, out);
  return net::Reply::Ok(std::move(out));
}

asio::awaitable<net::Reply> Service::Write(const net::Frame& request) {
  auto req = proto::DecodeWriteRequest(request.payload);
  if (!req.ok()) co_return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) co_return net::Reply::Fail(store.status());
  Status crc = proto::VerifyChunkCrcs(req->data, req->crcs);
  if (!crc.ok()) {
    SP_LOG_WARN("write to disk {} layer {} object {} v{}: {}", req->disk.value(),
                req->layer.value(), req->object.value(), req->version, crc.message());
    co_return net::Reply::Fail(crc);
  }
  Status fenced = co_await Fence(req->client, req->layer);
  if (!fenced.ok()) co_return net::Reply::Fail(fenced);
  auto version =
      co_await (*store)->Write(req->layer, req->object, req->version, req->offset, req->data,
                               req->crcs, proto::BaseVersion(req->version, req->flags));
  if (!version.ok()) co_return net::Reply::Fail(version.status());
  std::vector<uint8_t> out;
  proto::EncodePayload(proto::WriteResponse{*version}, out);
  co_return net::Reply::Ok(std::move(out));
}

asio::awaitable<net::Reply> Service::Read(const net::Frame& request) {
  auto req = proto::DecodeReadRequest(request.payload);
  if (!req.ok()) co_return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) co_return net::Reply::Fail(store.status());
  const bool client_checks = (req->flags & proto::kReadClientChecks) != 0;
  // (The chain stays in `req`: a corrupt copy is repaired in every layer of it, below.)
  auto result =
      co_await (*store)->Read(req->chain, req->object, req->offset, req->length, client_checks);
  if (!result.ok()) {
    if (result.status().code() == Code::kCorruption) {
      SP_LOG_ERROR("read disk {}: {}", req->disk.value(), result.status().message());
      // The client reads another replica; this copy is rewritten from a peer's (every layer
      // of the chain that has the object here: the message does not say which one failed).
      if (recovery_) {
        for (LayerId l : req->chain) {
          if ((*store)->Head(l, req->object).version > 0) {
            recovery_->Repair(req->disk, l, req->object);
          }
        }
      }
    }
    co_return net::Reply::Fail(result.status());
  }
  // The store's per-block checksums are the wire's per-4 KiB ones when the read is whole blocks.
  const std::span<const uint8_t> bytes = result->bytes();
  std::vector<uint32_t> crcs = std::move(result->block_crcs);
  if (crcs.size() * kBlockSize != bytes.size()) proto::ComputeChunkCrcs(bytes, crcs);
  std::vector<uint8_t> head;
  proto::EncodeReadResponseHead(proto::ReadResponse{result->version, crcs, bytes}, head);
  // The data goes out as read (or where it is stored), without another copy.
  if (result->keep != nullptr) co_return net::Reply::Ok(std::move(head), {result->keep, bytes});
  auto data = std::make_shared<IoBytes>(std::move(result->data));
  net::SharedBytes tail{data, *data};
  co_return net::Reply::Ok(std::move(head), std::move(tail));
}

net::Reply Service::ObjectInfo(const net::Frame& request) const {
  auto req = proto::DecodeObjectInfoRequest(request.payload);
  if (!req.ok()) return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) return net::Reply::Fail(store.status());
  jdisk::ObjectInfo info = (*store)->Info(req->layer, req->object);
  std::vector<uint8_t> out;
  proto::EncodePayload(proto::ObjectInfoResponse{info.version, static_cast<uint32_t>(info.state),
                                                 info.blocks_present},
                       out);
  return net::Reply::Ok(std::move(out));
}

asio::awaitable<net::Reply> Service::Trim(const net::Frame& request) {
  auto req = proto::DecodeTrimRequest(request.payload);
  if (!req.ok()) co_return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) co_return net::Reply::Fail(store.status());
  Status fenced = co_await Fence(req->client, req->layer);
  if (!fenced.ok()) co_return net::Reply::Fail(fenced);
  auto version = co_await (*store)->Trim(req->layer, req->object, req->version, req->offset,
                                         req->length, proto::BaseVersion(req->version, req->flags));
  if (!version.ok()) co_return net::Reply::Fail(version.status());
  std::vector<uint8_t> out;
  proto::EncodePayload(proto::WriteResponse{*version}, out);
  co_return net::Reply::Ok(std::move(out));
}

asio::awaitable<net::Reply> Service::BlockStatus(const net::Frame& request) {
  auto req = proto::DecodeBlockStatusRequest(request.payload);
  if (!req.ok()) co_return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) co_return net::Reply::Fail(store.status());
  auto blocks =
      co_await (*store)->BlockStatus(std::move(req->chain), req->object, req->offset, req->length);
  if (!blocks.ok()) co_return net::Reply::Fail(blocks.status());
  proto::BlockStatusResponse resp;
  resp.blocks = static_cast<uint32_t>(blocks->size());
  resp.bitmap.assign((blocks->size() + 7) / 8, 0);
  for (size_t i = 0; i < blocks->size(); ++i) {
    if ((*blocks)[i]) resp.bitmap[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  std::vector<uint8_t> out;
  proto::EncodePayload(resp, out);
  co_return net::Reply::Ok(std::move(out));
}

asio::awaitable<Status> Service::Fence(uint32_t client, LayerId layer) {
  if (!recovery_) co_return Status::Ok();
  const bool allowed = co_await recovery_->MayWrite(client, layer);
  if (allowed) co_return Status::Ok();
  SP_LOG_WARN("refused a write of layer {} from client {}: not attached read-write", layer.value(),
              client);
  co_return Error(Code::kPermissionDenied, "client {} may not write layer {} (fenced)", client,
                  layer.value());
}

net::Reply Service::ObjectList(const net::Frame& request) const {
  auto req = proto::DecodeObjectListRequest(request.payload);
  if (!req.ok()) return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) return net::Reply::Fail(store.status());
  std::vector<jdisk::ObjectEntry> all = (*store)->store().List();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::pair{a.layer.value(), a.object.value()} <
           std::pair{b.layer.value(), b.object.value()};
  });
  const std::pair<uint64_t, uint32_t> after{req->after_layer.value(), req->after_object.value()};
  proto::ObjectListResponse resp;
  for (const jdisk::ObjectEntry& e : all) {
    if (std::pair{e.layer.value(), e.object.value()} <= after) continue;
    if (resp.entries.size() == req->max) {
      resp.more = true;
      break;
    }
    resp.entries.push_back(
        {e.layer, e.object, static_cast<uint32_t>(e.info.state), e.info.version});
  }
  std::vector<uint8_t> out;
  proto::EncodePayload(resp, out);
  return net::Reply::Ok(std::move(out));
}

asio::awaitable<net::Reply> Service::ObjectPull(const net::Frame& request) {
  auto req = proto::DecodeObjectPullRequest(request.payload);
  if (!req.ok()) co_return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) co_return net::Reply::Fail(store.status());
  auto image = co_await (*store)->Export(req->layer, req->object);
  if (!image.ok()) co_return net::Reply::Fail(image.status());
  proto::ObjectPullResponse resp;
  resp.version = image->version;
  resp.present.assign(kBlocksPerObject / 8, 0);
  resp.zeroed.assign(kBlocksPerObject / 8, 0);
  for (size_t i = 0; i < kBlocksPerObject; ++i) {
    if (image->present[i]) resp.present[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    if (image->zeroed[i]) resp.zeroed[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  std::vector<uint32_t> crcs;
  proto::ComputeChunkCrcs(image->data, crcs);
  resp.crcs = crcs;
  resp.data = image->data;
  std::vector<uint8_t> out;
  proto::EncodePayload(resp, out);
  co_return net::Reply::Ok(std::move(out));
}

asio::awaitable<net::Reply> Service::ObjectSync(const net::Frame& request) {
  auto req = proto::DecodeObjectSyncRequest(request.payload);
  if (!req.ok()) co_return net::Reply::Fail(req.status());
  auto store = Disk(req->disk);
  if (!store.ok()) co_return net::Reply::Fail(store.status());
  if (!recovery_) {
    co_return net::Reply::Fail(Error(Code::kUnimplemented, "this server does not recover"));
  }
  auto version = co_await recovery_->Sync(req->disk, req->layer, req->object, req->version);
  if (!version.ok()) co_return net::Reply::Fail(version.status());
  std::vector<uint8_t> out;
  proto::EncodePayload(proto::WriteResponse{*version}, out);
  co_return net::Reply::Ok(std::move(out));
}

}  // namespace spindle::server
