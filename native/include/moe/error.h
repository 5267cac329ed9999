#pragma once
// Errors of the engine: every failure is a C++ exception with a message that names the tensor, file or
// option at fault. Nothing in the engine calls exit() or abort(); the addon turns these into JS errors.
#include <stdexcept>
#include <string>

namespace moe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace moe
