#include "client/server_pool.h"

#include "common/log.h"

namespace spindle::client {

ServerPool::ServerPool(asio::any_io_executor ex, ClientId self) : ex_(ex), self_(self) {}

void ServerPool::UpdateDisks(const std::unordered_map<DiskId, DiskEndpoint>& disks,
                             int64_t generation) {
  disks_ = disks;
  for (auto it = marked_down_.begin(); it != marked_down_.end();) {
    if (generation >= it->second) {
      it = marked_down_.erase(it);
      continue;
    }
    if (auto d = disks_.find(it->first); d != disks_.end()) d->second.up = false;
    ++it;
  }
  for (const auto& [id, d] : disks_) {
    auto& c = conns_[d.server];
    if (!c) c = std::make_shared<Conn>(ex_);
    if (c->addr != d.addr || c->port != d.port) {
      if (c->client) c->client->Close();
      c->client.reset();
      c->addr = d.addr;
      c->port = d.port;
    }
  }
}

asio::awaitable<Result<std::shared_ptr<net::RpcClient>>> ServerPool::Dial(std::shared_ptr<Conn> c) {
  auto conn = co_await net::RpcClient::Connect(ex_, c->addr, c->port, kConnectTimeout);
  if (!conn.ok()) co_return conn.status();
  std::vector<uint8_t> hello;
  proto::EncodePayload(proto::HelloRequest{proto::PeerKind::kClient, self_.value()}, hello);
  auto reply = co_await (*conn)->Call(proto::MsgType::kHello, std::move(hello), kConnectTimeout);
  if (!reply.ok()) {
    (*conn)->Close();
    co_return reply.status();
  }
  co_return std::move(conn).value();
}

asio::awaitable<Result<std::shared_ptr<net::RpcClient>>> ServerPool::GetClient(
    std::shared_ptr<Conn> c) {
  // Only one coroutine dials a server at a time; the others wait for its outcome.
  while (c->connecting) co_await c->connected.Wait();
  if (c->client && c->client->is_open()) co_return c->client;
  if (closed_) co_return Error(Code::kUnavailable, "client service stopping");
  c->connecting = true;
  const std::string addr = c->addr;
  const uint16_t port = c->port;
  auto dialed = co_await Dial(c);
  c->connecting = false;
  c->connected.NotifyAll();
  if (!dialed.ok()) {
    co_return Error(Code::kUnavailable, "connect {}:{}: {}", addr, port, dialed.status().message());
  }
  if (closed_ || c->addr != addr || c->port != port) {
    (*dialed)->Close();
    co_return Error(Code::kUnavailable, "server {}:{} changed while connecting", addr, port);
  }
  c->client = *dialed;
  co_return c->client;
}

asio::awaitable<Result<net::Frame>> ServerPool::Call(DiskId disk, proto::MsgType type,
                                                     std::vector<uint8_t> head,
                                                     net::SharedBytes tail,
                                                     std::chrono::milliseconds timeout,
                                                     std::span<uint8_t> sink) {
  auto d = disks_.find(disk);
  if (d == disks_.end()) co_return Error(Code::kNotFound, "disk {} unknown", disk.value());
  auto c = conns_.at(d->second.server);
  static_assert(kMaxCallAttempts > 0);
  Status last;  // set by every failed attempt
  for (int attempt = 0; attempt < kMaxCallAttempts; ++attempt) {
    // Connected and nobody dialling: no GetClient coroutine (the common case, every request).
    Result<std::shared_ptr<net::RpcClient>> client = c->client;
    if (c->connecting || !c->client || !c->client->is_open()) client = co_await GetClient(c);
    if (!client.ok()) {
      last = client.status();
      continue;
    }
    // The head is needed again only for a retry. (A local, not a temporary of the co_await
    // expression: GCC 12 destroys some of those twice.)
    std::vector<uint8_t> this_head = attempt + 1 < kMaxCallAttempts ? head : std::move(head);
    auto reply = co_await (*client)->Call(type, std::move(this_head), tail, timeout, sink);
    if (reply.ok() || reply.status().code() != Code::kUnavailable) co_return reply;
    last = reply.status();
    if ((*client)->is_open()) break;  // a timeout on a live connection: don't pile on
    if (c->client == *client) c->client.reset();
  }
  co_return last;
}

asio::awaitable<Status> ServerPool::ReportFailed(DiskId disk, std::string reason) {
  if (!report_) co_return Error(Code::kUnavailable, "no mgmt link to report disk {}", disk.value());
  auto& slot = reports_[disk];
  std::shared_ptr<Report> r = slot;
  if (!r) {
    r = slot = std::make_shared<Report>();
    r->wake = std::make_shared<asio::steady_timer>(ex_, asio::steady_timer::time_point::max());
    auto ex = ex_;
    report_(disk, std::move(reason), [this, ex, r, disk](Result<int64_t> gen) {
      asio::post(ex, [this, r, disk, gen = std::move(gen)] {
        r->done = true;
        r->status = gen.status();
        if (gen.ok()) {
          marked_down_[disk] = *gen;
          if (auto d = disks_.find(disk); d != disks_.end()) d->second.up = false;
        }
        if (auto it = reports_.find(disk); it != reports_.end() && it->second == r) {
          reports_.erase(it);
        }
        r->wake->cancel();
      });
    });
  }
  while (!r->done) {
    asio::error_code ec;  // operation_aborted is the wake-up
    co_await r->wake->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return r->status;
}

void ServerPool::CloseAll() {
  closed_ = true;
  for (auto& [id, c] : conns_) {
    if (c->client) c->client->Close();
    c->client.reset();
  }
}

}  // namespace spindle::client
