#include "client/nbd_server.h"

#include <unistd.h>

#include "common/log.h"

namespace spindle::client {

NbdServer::NbdServer(asio::io_context& io, VolumeTable& table, NbdServerOptions options)
    : io_(io), table_(table), options_(std::move(options)), unix_acceptor_(io), tcp_acceptor_(io) {}

Status NbdServer::Listen(Acceptor& acc, const asio::generic::stream_protocol::endpoint& ep) {
  asio::error_code ec;
  acc.open(ep.protocol(), ec);
  if (!ec && ep.protocol().family() != AF_UNIX) {
    acc.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error(Code::kUnavailable, "listen: {}", ec.message());
  return Status::Ok();
}

Status NbdServer::Start() {
  if (!options_.unix_path.empty()) {
    asio::local::stream_protocol::endpoint ep(options_.unix_path);
    // A socket file someone still accepts on belongs to a running service (another
    // spindle-block on the same config): replacing it would cut that one off its clients.
    // One nobody accepts on is a stale file of a previous run.
    asio::local::stream_protocol::socket probe(io_);
    asio::error_code ec;
    probe.connect(ep, ec);
    if (!ec) {
      return Error(Code::kAlreadyExists, "{}: another process serves NBD there",
                   options_.unix_path);
    }
    ::unlink(options_.unix_path.c_str());
    Status s = Listen(unix_acceptor_, asio::generic::stream_protocol::endpoint(ep));
    if (!s.ok()) return Error(Code::kUnavailable, "{}: {}", options_.unix_path, s.message());
    unix_bound_ = true;
    asio::co_spawn(io_, AcceptLoop(unix_acceptor_, false), LogExceptions{});
    SP_LOG_INFO("NBD listening on unix:{}", options_.unix_path);
  }
  if (options_.tcp) {
    asio::error_code ec;
    auto addr = asio::ip::make_address(options_.tcp_host, ec);
    if (ec) return Error(Code::kInvalidArgument, "bad NBD host {}", options_.tcp_host);
    asio::ip::tcp::endpoint ep(addr, options_.tcp_port);
    Status s = Listen(tcp_acceptor_, asio::generic::stream_protocol::endpoint(ep));
    if (!s.ok()) {
      return Error(Code::kUnavailable, "{}:{}: {}", options_.tcp_host, options_.tcp_port,
                   s.message());
    }
    asio::ip::tcp::endpoint bound;
    auto local = tcp_acceptor_.local_endpoint();
    std::memcpy(bound.data(), local.data(), std::min<size_t>(local.size(), bound.capacity()));
    tcp_port_ = bound.port();
    asio::co_spawn(io_, AcceptLoop(tcp_acceptor_, true), LogExceptions{});
    SP_LOG_INFO("NBD listening on {}:{}", options_.tcp_host, tcp_port_);
  }
  return Status::Ok();
}

namespace {
constexpr int kNbdSendBuffer = 2 * 1024 * 1024;
}  // namespace

asio::awaitable<void> NbdServer::AcceptLoop(Acceptor& acc, bool tcp) {
  while (!stopped_) {
    asio::error_code ec;
    auto socket = co_await acc.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) break;
      SP_LOG_WARN("NBD accept: {}", ec.message());
      continue;
    }
    if (sessions_.size() >= kMaxNbdConnections) {
      SP_LOG_WARN("NBD connection refused: {} connections open", sessions_.size());
      continue;  // the socket closes here
    }
    asio::error_code ignored;
    if (tcp) socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    // Room for a whole large read reply, so that it leaves in one send (the kernel caps this
    // at net.core.wmem_max; failure leaves the default).
    socket.set_option(asio::socket_base::send_buffer_size(kNbdSendBuffer), ignored);
    auto session = std::make_shared<NbdSession>(std::move(socket), *this);
    sessions_.insert(session.get());
    asio::co_spawn(io_, NbdSession::Run(session), LogExceptions{});
  }
}

void NbdServer::Stop() {
  stopped_ = true;
  asio::error_code ignored;
  unix_acceptor_.close(ignored);
  tcp_acceptor_.close(ignored);
  if (unix_bound_) ::unlink(options_.unix_path.c_str());
  unix_bound_ = false;
  for (NbdSession* s : std::vector<NbdSession*>(sessions_.begin(), sessions_.end())) s->Close();
}

void NbdServer::CloseSessionsOf(const Volume* v) {
  for (NbdSession* s : std::vector<NbdSession*>(sessions_.begin(), sessions_.end())) {
    if (s->volume() == v) s->Close();
  }
}

void NbdServer::NoteInUse(const std::string& global_id, int delta) {
  int& n = in_use_[global_id];
  const bool was = n > 0;
  n += delta;
  SP_ASSERT(n >= 0);
  const bool now = n > 0;
  if (n == 0) in_use_.erase(global_id);
  if (was == now || !on_in_use_) return;
  std::vector<std::string> ids;
  for (const auto& [gid, _] : in_use_) ids.push_back(gid);
  on_in_use_(std::move(ids));
}

Status NbdServer::Adopt(NbdSession::Socket socket, std::shared_ptr<Volume> v) {
  if (stopped_) return Error(Code::kUnavailable, "NBD server stopped");
  if (sessions_.size() >= kMaxNbdConnections) {
    return Error(Code::kResourceExhausted, "{} NBD connections open", sessions_.size());
  }
  auto session = std::make_shared<NbdSession>(std::move(socket), *this);
  sessions_.insert(session.get());
  asio::co_spawn(io_, NbdSession::RunAttached(session, std::move(v)), LogExceptions{});
  return Status::Ok();
}

}  // namespace spindle::client
