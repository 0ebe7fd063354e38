// RunMgmt: wires configuration, state store, Cluster, Api and HttpServer together and serves
// until SIGINT or SIGTERM. Separate from main.cc so main holds no logic.
#pragma once

#include <string>

#include "common/status.h"

namespace spindle::mgmt {

struct MgmtFlags {
  std::string config;
  std::string node;
  std::string db;
  int listen_port = -1;  // -1: from configuration
  std::string log_level = "info";
};

Status RunMgmt(const MgmtFlags& flags);

}  // namespace spindle::mgmt
