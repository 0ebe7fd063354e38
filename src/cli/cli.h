// The `spindle` (= `storpool`) command line: global options, running one command against the
// API, and the interactive prompt. Output goes to the given streams so tests can capture it.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cli/command.h"
#include "net/api_client.h"

namespace spindle::cli {

// Exit statuses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the API refused or could not be reached
inline constexpr int kExitUsage = 2;   // the command line is wrong

struct Options {
  bool json = false;           // -j: print the reply envelope as JSON
  bool batch = false;          // -B: retry transient errors
  bool multi_cluster = false;  // -M: MultiCluster/ forms of the calls that have one
  std::string config_path;     // --config FILE
};

// Splits leading global options (-j -B -M, combinable as -jB, and --config FILE) from the
// command words. Errors: kInvalidArgument naming the bad option.
Result<Options> ParseOptions(const std::vector<std::string>& args, size_t* first_word);

// Sends requests with the -B retry policy: up to kMaxAttempts tries, sleeping 1, 2, 4, ...
// seconds (at most kMaxBackoffS) between tries, on transient errors only.
class Runner {
 public:
  static constexpr int kMaxAttempts = 6;
  static constexpr int kMaxBackoffS = 16;

  Runner(net::ApiClient& client, Options options, std::ostream& out, std::ostream& err);
  // Parses and runs one command; returns its exit status.
  int Run(const std::vector<std::string>& words);
  // Reads commands line by line from `in` until EOF, "quit" or "exit"; returns the status of
  // the last command.
  int Interactive(std::istream& in, const std::string& prompt);

 private:
  net::ApiResult Send(const Request& request);
  int Execute(const Command& command);

  net::ApiClient& client_;
  Options options_;
  std::ostream& out_;
  std::ostream& err_;
};

// The prompt: SP_CLI_PROMPT with ${VAR} expanded from the environment, trailing spaces
// stripped, "> " appended; "StorPool> " when unset.
std::string PromptFromEnv();

// Splits a command line on whitespace; '...' and "..." group words. Errors on an open quote.
Result<std::vector<std::string>> SplitLine(const std::string& line);

// The whole program: options, config, then one command or the prompt.
int Main(int argc, char** argv);

}  // namespace spindle::cli
