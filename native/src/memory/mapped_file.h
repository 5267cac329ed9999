#pragma once
// A whole file mapped read-only (POSIX mmap). Weights are read through these mappings, so a
// checkpoint larger than RAM is paged in on demand and shared with the page cache.
#include <cstdint>
#include <string>

namespace moe {

class MappedFile {
 public:
  // Throws moe::Error naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  const uint8_t* data() const { return data_; }

 private:
  std::string path_;
  uint64_t size_ = 0;
  const uint8_t* data_ = nullptr;
};

}  // namespace moe
