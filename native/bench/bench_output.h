#pragma once
// Writing a benchmark's result file: the text goes to PATH.partial, which is then renamed onto PATH, so an
// interrupted or failed run never leaves a half-written result where a report would read it.
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

namespace moe::bench {

inline void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".partial";
  {
    std::ofstream f(tmp);
    f << text;
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

}  // namespace moe::bench
