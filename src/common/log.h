// Logging: spdlog, one named logger per process, to stderr (daemons' stderr goes to a file).
#pragma once

#include <string>

#include <spdlog/spdlog.h>

namespace spindle {

// Sets the default logger's name and level ("trace".."off"); call once from main().
void InitLogging(const std::string& process_name, const std::string& level = "info");

}  // namespace spindle

#define SP_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define SP_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define SP_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define SP_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
