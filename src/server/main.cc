// spindle-server: parses flags, loads the configuration, runs a Server (server/server.h).
#include <CLI/CLI.hpp>

#include "common/config.h"
#include "common/heap.h"
#include "common/log.h"
#include "server/server.h"

int main(int argc, char** argv) {
  CLI::App app{"spindle-server: Spindle storage server"};
  std::string config_path, node, log_level = "info";
  app.add_option("--config", config_path, "configuration file (default: SP_CONFIG, /etc)");
  app.add_option("--node", node, "configuration section to apply (default: host name)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  spindle::InitLogging("spindle-server", log_level);
  spindle::KeepFreedIoBuffers();

  auto config = spindle::Config::Load({config_path, node});
  if (!config.ok()) {
    SP_LOG_ERROR("configuration: {}", config.status().ToString());
    return 2;
  }
  auto options = spindle::server::ServerOptions::FromConfig(*config);
  if (!options.ok()) {
    SP_LOG_ERROR("configuration: {}", options.status().ToString());
    return 2;
  }
  auto server =
      spindle::server::Server::Create(spindle::env::Env::Default(), std::move(options).value());
  if (!server.ok()) {
    SP_LOG_ERROR("start: {}", server.status().ToString());
    return 1;
  }
  spindle::Status s = (*server)->Run();
  if (!s.ok()) {
    SP_LOG_ERROR("{}", s.ToString());
    return 1;
  }
  return 0;
}
