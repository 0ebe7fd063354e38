// Service: the data-protocol handler of spindle-server (proto/wire.h). Serves HELLO, WRITE,
// READ, OBJECT_INFO, TRIM, BLOCK_STATUS, OBJECT_LIST, OBJECT_PULL and OBJECT_SYNC for the disks
// this server owns.
//
// Errors on the wire: unknown disk -> kNotFound; malformed payload or bad offset/length ->
// kInvalidArgument; WRITE data that fails its crcs -> kCorruption (nothing is written); stored
// data failing its crc on READ -> kCorruption; other disk failures as ObjectStore returns them.
//
// Threads: owned by the io_context thread that runs the RpcServer; Handle runs there.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include <asio.hpp>

#include "common/ids.h"
#include "net/rpc.h"
#include "server/object_store.h"
#include "server/recovery.h"

namespace spindle::server {

class Service {
 public:
  // stores: one per disk, distinct disk ids (asserted); not owned, must outlive the Service.
  Service(ServerId id, std::vector<ObjectStore*> stores);

  asio::awaitable<net::Reply> Handle(net::Frame request);
  // The handler for net::RpcServer; captures `this`.
  net::RpcHandler Handler();
  // Fencing and OBJECT_SYNC go through `r` (not owned; may stay null in tests: no fencing).
  void set_recovery(Recovery* r) { recovery_ = r; }

 private:
  Result<ObjectStore*> Disk(DiskId disk) const;
  net::Reply Hello(const net::Frame& request) const;
  asio::awaitable<net::Reply> Write(const net::Frame& request);
  asio::awaitable<net::Reply> Read(const net::Frame& request);
  net::Reply ObjectInfo(const net::Frame& request) const;
  asio::awaitable<net::Reply> Trim(const net::Frame& request);
  asio::awaitable<net::Reply> BlockStatus(const net::Frame& request);
  net::Reply ObjectList(const net::Frame& request) const;
  asio::awaitable<net::Reply> ObjectPull(const net::Frame& request);
  asio::awaitable<net::Reply> ObjectSync(const net::Frame& request);
  // kPermissionDenied unless `client` may write `layer` now.
  asio::awaitable<Status> Fence(uint32_t client, LayerId layer);

  ServerId id_;
  std::map<DiskId, ObjectStore*> disks_;
  Recovery* recovery_ = nullptr;
};

}  // namespace spindle::server
