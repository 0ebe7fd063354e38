// Turns an API reply into the text the CLI prints without -j (tables, "OK").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"

namespace spindle::cli {

// `data` is the reply's data member; `aux` the data of Command::aux (null when none). Missing
// or mistyped members show as "-", never crash.
std::string Render(View view, const nlohmann::json& data, const nlohmann::json& aux);

}  // namespace spindle::cli
