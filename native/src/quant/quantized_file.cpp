#include "moe/quant/quantized_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "load_tasks.h"
#include "moe/error.h"
#include "moe/quant/expert_blobs.h"

namespace moe::quant {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull,
                   kP4 = 0x85EBCA77C2B2AE63ull, kP5 = 0x27D4EB2F165667C5ull;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // the host is little-endian (x86-64, aarch64): the file's byte order
  return v;
}
uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t round64(uint64_t acc, uint64_t in) { return rotl(acc + in * kP2, 31) * kP1; }
uint64_t merge64(uint64_t h, uint64_t v) { return (h ^ round64(0, v)) * kP1 + kP4; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string errno_text(int err) { return std::string(std::strerror(err)); }

// Whole reads and writes at an offset (the kernel may return fewer bytes; EINTR is retried).
void pread_all(int fd, uint8_t* dst, size_t n, uint64_t at, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, dst + done, n - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(path + ": read failed at byte " + std::to_string(at + done) + ": " + errno_text(errno));
    if (r == 0) throw Error(path + ": ends at byte " + std::to_string(at + done) + " (truncated while being read)");
    done += static_cast<size_t>(r);
  }
}

void pwrite_all(int fd, const uint8_t* src, size_t n, uint64_t at, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pwrite(fd, src + done, n - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(path + ": write failed at byte " + std::to_string(at + done) + ": " + errno_text(errno));
    done += static_cast<size_t>(r);
  }
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct Geometry {
  size_t n = 0, stride = 0, data = 0;  // blobs, bytes per blob, data offset (the header's size)
  uint64_t checksums_at() const { return data + n * stride; }
  uint64_t file_bytes() const { return checksums_at() + n * sizeof(uint64_t); }
};

void warn(QuantizedFileResult& r, const std::string& text) {
  std::fprintf(stderr, "moe: warning: quantized experts file %s\n", text.c_str());
  if (!r.warning.empty()) r.warning += "; ";
  r.warning += text;
}

// Mode::Read. Returns false (with r.warning saying why) when the file cannot be used at all; true when the
// blobs are in `out`, `bad` listing those whose checksum failed (still to be quantized).
bool read_blobs(const QuantizedFileSpec& spec, const Geometry& g, uint8_t* out, std::vector<size_t>& bad, QuantizedFileResult& r) {
  const std::string& path = spec.path;
  try {
    Fd f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) throw Error(path + ": cannot open: " + errno_text(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) throw Error(path + ": cannot stat: " + errno_text(errno));
    if (static_cast<uint64_t>(st.st_size) != g.file_bytes()) {
      throw Error(path + ": " + std::to_string(st.st_size) + " bytes, expected " + std::to_string(g.file_bytes()) + " (truncated or changed since it was checked)");
    }
    std::vector<uint8_t> header(spec.header.size());
    pread_all(f.fd, header.data(), header.size(), 0, path);
    if (header != spec.header) throw Error(path + ": its header changed since it was checked");
    std::vector<uint8_t> table(g.n * sizeof(uint64_t));
    pread_all(f.fd, table.data(), table.size(), g.checksums_at(), path);
    std::mutex m;
    detail::run_load_tasks(
        g.n,
        [&](size_t i) {
          uint8_t* blob = out + i * g.stride;
          pread_all(f.fd, blob, g.stride, g.data + i * g.stride, path);
          if (blob_checksum(blob, g.stride) != load64(table.data() + i * sizeof(uint64_t))) {
            std::lock_guard<std::mutex> lock(m);
            bad.push_back(i);
          }
          return g.stride;
        },
        g.n * g.stride, "routed experts <- " + path);
  } catch (const std::exception& e) {
    warn(r, std::string(e.what()) + "; quantizing from the checkpoint instead and rewriting it");
    return false;
  }
  std::sort(bad.begin(), bad.end());
  return true;
}

// Writes the whole file under "<path>.partial-<pid>", each blob's checksum taken as it is written, then renames
// it over `path`. Failures are warnings.
bool write_file(const QuantizedFileSpec& spec, const Geometry& g, const uint8_t* blobs, QuantizedFileResult& r) {
  const std::string tmp = spec.path + ".partial-" + std::to_string(::getpid());
  try {
    struct statvfs fs {};
    const std::string dir = spec.path.find('/') == std::string::npos ? "." : spec.path.substr(0, spec.path.rfind('/') + 1);
    if (::statvfs(dir.c_str(), &fs) == 0) {
      const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
      if (free_bytes < g.file_bytes()) {
        throw Error(spec.path + ": not written: it needs " + std::to_string(g.file_bytes() >> 20) + " MiB and " + dir + " has " +
                    std::to_string(free_bytes >> 20) + " MiB free");
      }
    }
    Fd f;
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) throw Error(spec.path + ": not written: cannot create " + tmp + ": " + errno_text(errno));
    pwrite_all(f.fd, spec.header.data(), spec.header.size(), 0, tmp);
    std::vector<uint8_t> table(g.n * sizeof(uint64_t));
    detail::run_load_tasks(
        g.n,
        [&](size_t i) {
          const uint8_t* blob = blobs + i * g.stride;
          const uint64_t sum = blob_checksum(blob, g.stride);
          std::memcpy(table.data() + i * sizeof(uint64_t), &sum, sizeof sum);
          pwrite_all(f.fd, blob, g.stride, g.data + i * g.stride, tmp);
          return g.stride;
        },
        g.n * g.stride, "routed experts -> " + spec.path);
    pwrite_all(f.fd, table.data(), table.size(), g.checksums_at(), tmp);
    // No fsync: a file cut short by a crash after the rename fails its checksums on the next read and is rebuilt.
    if (::close(f.fd) != 0) {
      f.fd = -1;
      throw Error(tmp + ": close failed: " + errno_text(errno));
    }
    f.fd = -1;
    if (::rename(tmp.c_str(), spec.path.c_str()) != 0) throw Error(spec.path + ": not written: rename from " + tmp + " failed: " + errno_text(errno));
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    warn(r, std::string(e.what()) + " (the load goes on without it)");
    return false;
  }
  return true;
}

}  // namespace

std::string quantized_file_json(const QuantizedFileResult& r) {
  const auto escaped = [](const std::string& v) {
    std::string o;
    for (char ch : v) {
      if (static_cast<unsigned char>(ch) < 0x20) continue;  // control characters dropped: paths and messages need none
      if (ch == '"' || ch == '\\') o += '\\';
      o += ch;
    }
    return o;
  };
  char times[96];
  std::snprintf(times, sizeof times, ",\"readSeconds\":%.3f,\"writeSeconds\":%.3f", r.read_seconds, r.write_seconds);
  return "{\"path\":\"" + escaped(r.path) + "\",\"read\":" + (r.read ? "true" : "false") + ",\"written\":" + (r.written ? "true" : "false") +
         ",\"rebuiltExperts\":" + std::to_string(r.rebuilt) + times + ",\"warning\":\"" + escaped(r.warning) + "\"}";
}

uint64_t blob_checksum(const uint8_t* p, size_t n) {
  const uint8_t* const end = p + n;
  uint64_t h;
  if (n >= 32) {
    uint64_t v1 = kP1 + kP2, v2 = kP2, v3 = 0, v4 = 0 - kP1;  // seed 0
    const uint8_t* const last = end - 32;
    do {
      v1 = round64(v1, load64(p));
      v2 = round64(v2, load64(p + 8));
      v3 = round64(v3, load64(p + 16));
      v4 = round64(v4, load64(p + 24));
      p += 32;
    } while (p <= last);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge64(merge64(merge64(merge64(h, v1), v2), v3), v4);
  } else {
    h = kP5;
  }
  h += static_cast<uint64_t>(n);
  for (; p + 8 <= end; p += 8) h = rotl(h ^ round64(0, load64(p)), 27) * kP1 + kP4;
  if (p + 4 <= end) {
    h = rotl(h ^ (static_cast<uint64_t>(load32(p)) * kP1), 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl(h ^ (static_cast<uint64_t>(*p) * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

QuantizedFileResult fill_expert_blobs_with_file(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers,
                                                const ExpertLayout& layout, uint8_t* out, const QuantizedFileSpec& spec,
                                                double& quantize_seconds) {
  if (layout.dtype == ExpertDType::BF16) throw Error("quantized experts file: only for int8 / int4 experts (internal error)");
  if (spec.header.size() < 8 || spec.header.size() % 8 != 0) throw Error("quantized experts file: the header must be whole 8-byte words (internal error)");
  check_routed_experts(c, w, moe_layers, layout);
  QuantizedFileResult r;
  r.path = spec.path;
  Geometry g;
  g.n = moe_layers.size() * static_cast<size_t>(c.n_routed_experts);
  g.stride = layout.bytes;
  g.data = spec.header.size();
  quantize_seconds = 0;

  bool fill_all = spec.mode == QuantizedFileSpec::Mode::Write, rewrite = fill_all;
  if (!fill_all) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<size_t> bad;
    if (!read_blobs(spec, g, out, bad, r)) {
      fill_all = rewrite = true;  // unusable as a whole (size, header, I/O): rebuilt from the checkpoint
    } else {
      r.read_seconds = seconds_since(t0);
      r.read = true;
      if (!bad.empty()) {
        const size_t E = static_cast<size_t>(c.n_routed_experts);
        warn(r, spec.path + ": " + std::to_string(bad.size()) + " of " + std::to_string(g.n) + " experts fail their checksum (first: layer " +
                    std::to_string(moe_layers[bad[0] / E]) + " expert " + std::to_string(bad[0] % E) +
                    "): quantizing those from the checkpoint and rewriting the file");
        quantize_seconds = fill_expert_blobs(c, w, moe_layers, layout, out, &bad);
        r.rebuilt = bad.size();
        rewrite = true;
      }
    }
  }
  if (fill_all) quantize_seconds = fill_expert_blobs(c, w, moe_layers, layout, out);
  if (rewrite) {
    const auto t1 = std::chrono::steady_clock::now();
    r.written = write_file(spec, g, out, r);
    r.write_seconds = seconds_since(t1);
  }
  return r;
}

}  // namespace moe::quant
