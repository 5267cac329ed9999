#pragma once
// The command-line reading the benchmark executables of this folder share.
#include <string>

namespace moe::bench {

// The value after `name` in argv, or `def` when the flag is absent (or last, with no value).
inline std::string arg(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return argv[i + 1];
  }
  return def;
}

}  // namespace moe::bench
