// Env: the seam between Spindle and the outside world (LevelDB's Env). Code that needs files or
// time takes an Env& at construction instead of calling the OS, so tests can substitute one.
// Env::Default() is the real POSIX one; it lives for the whole process and is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "env/clock.h"
#include "env/file.h"

namespace spindle::env {

class Env {
 public:
  virtual ~Env() = default;
  // Opens path for reading and writing. kNotFound when absent (and not created),
  // kPermissionDenied, or kIoError for other failures; the message names the path.
  virtual Result<std::unique_ptr<File>> OpenFile(const std::string& path,
                                                 const OpenOptions& options) = 0;
  virtual const Clock& clock() const = 0;

  static Env& Default();
};

}  // namespace spindle::env
