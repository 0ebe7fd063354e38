#include "client/block_service.h"

#include <filesystem>

#include "common/log.h"

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
      link_(LinkOptions(options_), io, [this](ClientState s) { Apply(std::move(s)); }) {}

Status BlockService::Start() {
  std::error_code ec;
  std::filesystem::create_directories(options_.workdir, ec);
  if (ec) return Error(Code::kIoError, "workdir {}: {}", options_.workdir, ec.message());
  SP_RETURN_IF_ERROR(nbd_.Start());
  link_.Start();
  return Status::Ok();
}

void BlockService::Apply(ClientState state) {
  for (const auto& gone : table_.Apply(state)) nbd_.CloseSessionsOf(gone.get());
  SP_LOG_INFO("applied generation {}: {} volume(s)", state.generation, state.volumes.size());
}

void BlockService::Stop() {
  SP_LOG_INFO("stopping");
  link_.RequestStop();
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
