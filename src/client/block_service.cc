#include "client/block_service.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "net/run_loop.h"

namespace spindle::client {

Result<BlockOptions> BlockOptions::FromConfig(const Config& config) {
  BlockOptions o;
  SP_ASSIGN_OR_RETURN(int64_t id, config.GetInt("SP_OURID", -1));
  if (id < 1 || id > kMaxClientId) {
    return Error(Code::kInvalidArgument, "SP_OURID must be set to 1..{}", kMaxClientId);
  }
  o.id = ClientId(static_cast<uint32_t>(id));
  o.workdir = config.GetOr("SP_WORKDIR", o.workdir);
  o.nbd_host = config.GetOr("SP_BLOCK_NBD_HOST", o.nbd_host);
  SP_ASSIGN_OR_RETURN(int64_t port, config.GetInt("SP_BLOCK_NBD_PORT", o.nbd_port));
  if (port < 0 || port > 65535) {
    return Error(Code::kInvalidArgument, "SP_BLOCK_NBD_PORT {} out of range", port);
  }
  o.nbd_port = static_cast<uint16_t>(port);
  o.dev_dir = config.GetOr("SP_DEV_DIR", o.dev_dir);
  o.dev_byid_dir = config.GetOr("SP_DEV_BYID_DIR", o.dev_byid_dir);
  SP_ASSIGN_OR_RETURN(o.poll_window,
                      net::PollWindowFromConfig(config, "SP_BLOCK_POLL_US", o.poll_window));
  SP_ASSIGN_OR_RETURN(o.api, net::ApiEndpoint::FromConfig(config));
  return o;
}

namespace {
NbdServerOptions NbdOptions(const BlockOptions& o) {
  NbdServerOptions n;
  n.unix_path = o.nbd_socket();
  n.tcp_host = o.nbd_host;
  n.tcp_port = o.nbd_port;
  return n;
}
MgmtLinkOptions LinkOptions(const BlockOptions& o) {
  MgmtLinkOptions m;
  m.api = o.api;
  m.id = o.id;
  m.nbd_socket = o.nbd_socket();
  m.nbd_host = o.nbd_host;
  m.nbd_port = o.nbd_port;
  return m;
}
}  // namespace

BlockService::BlockService(asio::io_context& io, BlockOptions options)
    : io_(io),
      options_(std::move(options)),
      pool_(io.get_executor(), options_.id),
      table_(io.get_executor(), pool_),
      nbd_(io, table_, NbdOptions(options_)),
      link_(LinkOptions(options_), io,
            [this](ClientState s, std::function<void(std::vector<std::string>)> done) {
              Apply(std::move(s), std::move(done));
            }) {}

Status BlockService::Start() {
  std::error_code ec;
  std::filesystem::create_directories(options_.workdir, ec);
  if (ec) return Error(Code::kIoError, "workdir {}: {}", options_.workdir, ec.message());
  nbd_.set_on_in_use([this](std::vector<std::string> ids) { link_.SetInUse(std::move(ids)); });
  pool_.set_failure_report(
      [this](DiskId disk, std::string reason, std::function<void(Result<int64_t>)> done) {
        link_.ReportDiskFailed(disk, std::move(reason), std::move(done));
      });
  SP_RETURN_IF_ERROR(nbd_.Start());
  if (kernel::Available()) {
    auto k = std::make_unique<kernel::KernelNbd>(options_.dev_dir, options_.dev_byid_dir,
                                                 options_.workdir + "/kernel-attach.json");
    Status s = k->Open();
    if (s.ok()) {
      kernel_ = std::move(k);
    } else {
      SP_LOG_WARN("kernel nbd netlink unavailable ({}): serving NBD sockets only", s.ToString());
    }
  }
  link_.Start();
  return Status::Ok();
}

void BlockService::Apply(ClientState state, std::function<void(std::vector<std::string>)> done) {
  VolumeTable::Changes changes = table_.Apply(state);
  for (const auto& gone : changes.gone) nbd_.CloseSessionsOf(gone.get());
  if (kernel_) SyncKernel(state);
  SP_LOG_INFO("applied generation {}: {} volume(s), {} layer switch(es)", state.generation,
              state.volumes.size(), changes.switches.size());
  asio::co_spawn(io_, SwitchLayers(std::move(changes), std::move(done)), LogExceptions{});
}

asio::awaitable<void> BlockService::SwitchLayers(
    VolumeTable::Changes changes, std::function<void(std::vector<std::string>)> done) {
  for (auto& [volume, spec] : changes.switches) co_await volume->SwitchLayer(std::move(spec));
  // A group snapshot's cut that is over lets its writes go only now, into the new layers.
  for (const auto& v : changes.resume) v->Resume();
  // The generation counts as applied once the writes issued under the previous one are done:
  // a disk that came back (recovering) then gets every write its recovery pass cannot see.
  // This also drains the volumes a cut just paused.
  for (const auto& v : table_.All()) co_await v->Flush();
  done(std::move(changes.paused));
}

void BlockService::SyncKernel(const ClientState& state) {
  std::map<std::string, const VolumeSpec*> want;
  for (const auto& v : state.volumes) want[v.global_id] = &v;
  for (auto it = kernel_attached_.begin(); it != kernel_attached_.end();) {
    if (want.count(it->first) != 0) {
      ++it;
      continue;
    }
    Status s = kernel_->Detach(it->second.first, it->first);
    if (!s.ok()) SP_LOG_WARN("detach /dev of {}: {}", it->second.first, s.ToString());
    it = kernel_attached_.erase(it);
  }
  for (const auto& [gid, spec] : want) {
    auto v = table_.Find("~" + gid);
    if (!v) continue;
    auto at = kernel_attached_.find(gid);
    if (at != kernel_attached_.end() && at->second.second == v.get()) continue;
    // New, or its export changed (its old session was closed): hand the kernel a new socket.
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      SP_LOG_WARN("socketpair for {}: {}", spec->name, std::strerror(errno));
      continue;
    }
    NbdSession::Socket ours(io_, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fds[0]);
    kernel::ConnectParams p;
    p.size_bytes = spec->size_bytes;
    p.server_flags =
        nbd::TransmissionFlags(nbd::ExportView{spec->size_bytes, spec->read_only, false, false});
    p.socket_fd = fds[1];
    auto index = kernel_->Attach(spec->name, gid, p);
    close(fds[1]);  // the kernel holds its own reference now
    if (!index.ok()) {
      SP_LOG_WARN("attach /dev/nbdN for {}: {}", spec->name, index.status().ToString());
      continue;
    }
    Status s = nbd_.Adopt(std::move(ours), v);
    if (!s.ok()) SP_LOG_WARN("serving /dev/nbd{}: {}", *index, s.ToString());
    kernel_attached_[gid] = {spec->name, v.get()};
  }
}

void BlockService::Stop() {
  SP_LOG_INFO("stopping");
  link_.RequestStop();
  table_.ReleasePauses();
  nbd_.Stop();
  pool_.CloseAll();
}

void BlockService::Join() {
  link_.Join();
}

void LogKernelNbdSupport() {
  std::error_code ec;
  if (!std::filesystem::exists("/sys/module/nbd", ec)) {
    SP_LOG_INFO(
        "kernel nbd module not present: /dev/nbdN attach skipped, NBD endpoint is the device");
  }
}

}  // namespace spindle::client
