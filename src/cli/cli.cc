#include "cli/cli.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/render.h"

namespace spindle::cli {
namespace {

using nlohmann::json;

// Longest interactive input line accepted.
constexpr size_t kMaxLineChars = 64 * 1024;
// Upper bound on an interactive session's commands, so a runaway feed cannot loop forever.
constexpr size_t kMaxInteractiveCommands = 1000000;

void PrintError(std::ostream& err, const net::ApiError& e) {
  err << "Error: " << e.name << ": " << e.descr << "\n";
}

}  // namespace

Result<Options> ParseOptions(const std::vector<std::string>& args, size_t* first_word) {
  Options o;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--config") {
      if (i + 1 >= args.size()) return Error(Code::kInvalidArgument, "--config needs a file");
      o.config_path = args[++i];
      continue;
    }
    if (a.rfind("--config=", 0) == 0) {
      o.config_path = a.substr(9);
      continue;
    }
    if (a.size() < 2 || a[0] != '-' || a[1] == '-') break;
    for (size_t k = 1; k < a.size(); ++k) {
      switch (a[k]) {
        case 'j':
          o.json = true;
          break;
        case 'B':
          o.batch = true;
          break;
        case 'M':
          o.multi_cluster = true;
          break;
        default:
          return Error(Code::kInvalidArgument, "unknown option '-{}'", a[k]);
      }
    }
  }
  *first_word = i;
  return o;
}

Runner::Runner(net::ApiClient& client, Options options, std::ostream& out, std::ostream& err)
    : client_(client), options_(std::move(options)), out_(out), err_(err) {}

net::ApiResult Runner::Send(const Request& request) {
  std::string path = options_.multi_cluster ? WithMultiCluster(request.path) : request.path;
  int attempts = options_.batch ? kMaxAttempts : 1;
  int backoff_s = 1;
  for (int i = 1;; ++i) {
    net::ApiResult r =
        request.method == "GET" ? client_.Get(path) : client_.Post(path, request.body);
    if (r.ok() || !r.error().transient || i >= attempts) return r;
    std::this_thread::sleep_for(std::chrono::seconds(backoff_s));
    backoff_s = std::min(backoff_s * 2, kMaxBackoffS);
  }
}

int Runner::Execute(const Command& command) {
  const Request* request = &command.request;
  if (command.probe) {
    net::ApiResult probe = Send(*command.probe);
    if (!probe.ok()) {
      PrintError(err_, probe.error());
      return kExitFailed;
    }
    if (ListHasName(probe.reply().data, command.probe_name)) request = &*command.alternate;
  }
  net::ApiResult r = Send(*request);
  if (!r.ok()) {
    PrintError(err_, r.error());
    return kExitFailed;
  }
  if (options_.json) {
    json envelope = {{"generation", r.reply().generation}, {"data", r.reply().data}};
    out_ << envelope.dump(4) << "\n";
    return kExitOk;
  }
  json aux;
  if (command.aux) {
    net::ApiResult a = Send(*command.aux);
    if (!a.ok()) {
      PrintError(err_, a.error());
      return kExitFailed;
    }
    aux = a.reply().data;
  }
  out_ << Render(command.view, r.reply().data, aux);
  return kExitOk;
}

int Runner::Run(const std::vector<std::string>& words) {
  if (words.size() == 1 && (words[0] == "help" || words[0] == "--help" || words[0] == "-h")) {
    out_ << UsageText();
    return kExitOk;
  }
  Result<Command> command = ParseCommand(words);
  if (!command.ok()) {
    err_ << "Error: " << command.status().message() << "\n" << UsageText();
    return kExitUsage;
  }
  return Execute(*command);
}

int Runner::Interactive(std::istream& in, const std::string& prompt) {
  int status = kExitOk;
  std::string line;
  for (size_t n = 0; n < kMaxInteractiveCommands; ++n) {
    out_ << prompt << std::flush;
    if (!std::getline(in, line)) {
      out_ << "\n";
      break;
    }
    if (line.size() > kMaxLineChars) {
      err_ << "Error: line too long\n";
      status = kExitUsage;
      continue;
    }
    Result<std::vector<std::string>> words = SplitLine(line);
    if (!words.ok()) {
      err_ << "Error: " << words.status().message() << "\n";
      status = kExitUsage;
      continue;
    }
    if (words->empty()) continue;
    if ((*words)[0] == "quit" || (*words)[0] == "exit") break;
    // Options given on the line apply to that line only.
    size_t first = 0;
    Result<Options> line_opts = ParseOptions(*words, &first);
    if (!line_opts.ok()) {
      err_ << "Error: " << line_opts.status().message() << "\n";
      status = kExitUsage;
      continue;
    }
    Options saved = options_;
    options_.json |= line_opts->json;
    options_.batch |= line_opts->batch;
    options_.multi_cluster |= line_opts->multi_cluster;
    status = Run(std::vector<std::string>(words->begin() + first, words->end()));
    options_ = saved;
  }
  return status;
}

std::string PromptFromEnv() {
  const char* raw = std::getenv("SP_CLI_PROMPT");
  if (raw == nullptr) return "StorPool> ";
  std::string in = raw, out;
  for (size_t i = 0; i < in.size(); ++i) {
    size_t close = in.find('}', i);
    if (in.compare(i, 2, "${") == 0 && close != std::string::npos) {
      const char* v = std::getenv(in.substr(i + 2, close - i - 2).c_str());
      if (v != nullptr) out += v;
      i = close;
    } else {
      out += in[i];
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out + "> ";
}

Result<std::vector<std::string>> SplitLine(const std::string& line) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (char c : line) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        cur += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote != 0) return Error(Code::kInvalidArgument, "unterminated quote");
  if (in_word) words.push_back(std::move(cur));
  return words;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  size_t first = 0;
  Result<Options> options = ParseOptions(args, &first);
  if (!options.ok()) {
    std::cerr << "Error: " << options.status().message() << "\n" << UsageText();
    return kExitUsage;
  }
  ConfigLoadOptions load;
  load.path = options->config_path;
  load.missing_ok = true;
  Result<Config> config = Config::Load(load);
  if (!config.ok()) {
    std::cerr << "Error: config: " << config.status().message() << "\n";
    return kExitFailed;
  }
  Result<net::ApiEndpoint> endpoint = net::ApiEndpoint::FromConfig(*config);
  if (!endpoint.ok()) {
    std::cerr << "Error: config: " << endpoint.status().message() << "\n";
    return kExitFailed;
  }
  net::ApiClient client(*endpoint);
  Runner runner(client, *options, std::cout, std::cerr);
  std::vector<std::string> words(args.begin() + static_cast<std::ptrdiff_t>(first), args.end());
  if (words.empty()) return runner.Interactive(std::cin, PromptFromEnv());
  return runner.Run(words);
}

}  // namespace spindle::cli
