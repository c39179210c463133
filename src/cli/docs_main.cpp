// lora-verify-docs: writes the manual page or the bash completion from the command table, so
// both are built from the same rows as the parser and --help (never installed; the build runs it).
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "man") == 0) {
    std::fputs(lv::cli::manual_page(LV_VERSION).c_str(), stdout);
  } else if (argc == 2 && std::strcmp(argv[1], "bash-completion") == 0) {
    std::fputs(lv::cli::bash_completion().c_str(), stdout);
  } else {
    std::fprintf(stderr, "usage: lora-verify-docs man|bash-completion\n");
    return 64;
  }
  return std::fflush(stdout) == 0 ? 0 : 74;
}
