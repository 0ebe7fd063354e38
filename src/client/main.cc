// spindle-block: the client service. Parses flags and configuration, wires BlockService, runs.
#include <csignal>
#include <string>

#include <CLI/CLI.hpp>
#include <asio.hpp>

#include "client/block_service.h"
#include "common/config.h"
#include "common/heap.h"
#include "common/log.h"
#include "net/run_loop.h"

int main(int argc, char** argv) {
  CLI::App app{"spindle-block: Spindle client service (NBD export of attached volumes)"};
  spindle::ConfigLoadOptions load;
  std::string log_level = "info";
  app.add_option("--config", load.path, "configuration file (default: SP_CONFIG, /etc)");
  app.add_option("--node", load.section, "configuration section to apply (default: hostname)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  spindle::InitLogging("spindle-block", log_level);
  spindle::KeepFreedIoBuffers();

  auto config = spindle::Config::Load(load);
  if (!config.ok()) {
    SP_LOG_ERROR("configuration: {}", config.status().ToString());
    return 2;
  }
  auto options = spindle::client::BlockOptions::FromConfig(*config);
  if (!options.ok()) {
    SP_LOG_ERROR("configuration: {}", options.status().ToString());
    return 2;
  }
  spindle::client::LogKernelNbdSupport();

  asio::io_context io(1);
  spindle::client::BlockService service(io, *options);
  if (auto s = service.Start(); !s.ok()) {
    SP_LOG_ERROR("start: {}", s.ToString());
    return 1;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&service](const asio::error_code& ec, int) {
    if (!ec) service.Stop();
  });
  spindle::net::RunPolling(io, options->poll_window);
  service.Join();
  SP_LOG_INFO("stopped");
  return 0;
}
