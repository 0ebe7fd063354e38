// spindle / storpool: the command-line front-end of the management API.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return spindle::cli::Main(argc, argv);
}
