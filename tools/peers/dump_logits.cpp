// peers_dump_logits: llama.cpp's logits for given token ids (teacher forcing), the "second oracle" of
// issue 17. Independent of our engine and of transformers: only libllama's public API.
//
// Input: a text file, one sequence per line, token ids separated by spaces (ids, never text: the
// synthetic tokenizer is not one llama.cpp knows, so tokenization must not matter).
// Output: raw little-endian fp32, one row of n_vocab logits per position, sequences in file order,
// every position: the layout runtime/src/bench/agreement.ts compares (engine.score()).
// --prefill K: positions 0..K-1 in one batch, then one decode step per remaining token (llama.cpp's
// single-token path, the one decode timing uses); default: the whole sequence in one batch.
// Each sequence starts from an empty KV cache.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Args {
  std::string model, ids, out;
  int prefill = -1;      // -1: whole sequence in one batch
  int threads = 0;       // 0: llama.cpp's default
  int gpu_layers = 0;    // 0 on a CPU build; 999 puts every layer on the GPU
  bool quiet = true;
};

int fail(const std::string &msg) {
  std::fprintf(stderr, "peers_dump_logits: %s\n", msg.c_str());
  return 2;
}

bool parse_int(const char *s, int &v) {
  char *end = nullptr;
  long x = std::strtol(s, &end, 10);
  if (!end || *end || end == s || x < -1 || x > 1 << 30) return false;
  v = static_cast<int>(x);
  return true;
}

void log_quiet(ggml_log_level level, const char *text, void *) {
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

}  // namespace

int main(int argc, char **argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    auto val = [&](const char *name) -> const char * {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    const char *v = nullptr;
    if (k == "--verbose") { a.quiet = false; continue; }
    if (k == "--help" || k == "-h") {
      std::puts("usage: peers_dump_logits --model F.gguf --ids ids.txt --out logits.f32 [--prefill K] [--threads N] [--n-gpu-layers N] [--verbose]");
      return 0;
    }
    if (!(v = val(k.c_str()))) return fail("option " + k + " needs a value");
    if (k == "--model") a.model = v;
    else if (k == "--ids") a.ids = v;
    else if (k == "--out") a.out = v;
    else if (k == "--prefill") { if (!parse_int(v, a.prefill) || a.prefill < 1) return fail("option --prefill: expected an integer >= 1"); }
    else if (k == "--threads") { if (!parse_int(v, a.threads) || a.threads < 0) return fail("option --threads: expected an integer >= 0"); }
    else if (k == "--n-gpu-layers") { if (!parse_int(v, a.gpu_layers)) return fail("option --n-gpu-layers: expected an integer"); }
    else return fail("unknown option " + k);
  }
  if (a.model.empty() || a.ids.empty() || a.out.empty()) return fail("--model, --ids and --out are required");

  std::vector<std::vector<llama_token>> seqs;
  {
    std::ifstream f(a.ids);
    if (!f) return fail(a.ids + ": cannot read");
    std::string line;
    int ln = 0;
    while (std::getline(f, line)) {
      ln++;
      std::istringstream ss(line);
      std::vector<llama_token> s;
      long t;
      while (ss >> t) s.push_back(static_cast<llama_token>(t));
      if (!ss.eof()) return fail(a.ids + ":" + std::to_string(ln) + ": not a list of integer token ids");
      if (!s.empty()) seqs.push_back(std::move(s));
    }
    if (seqs.empty()) return fail(a.ids + ": no sequences");
  }
  size_t max_len = 0;
  for (auto &s : seqs) max_len = std::max(max_len, s.size());

  if (a.quiet) llama_log_set(log_quiet, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = a.gpu_layers;
  llama_model *model = llama_model_load_from_file(a.model.c_str(), mp);
  if (!model) return fail(a.model + ": llama.cpp could not load it (run with --verbose for its log)");
  const llama_vocab *vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);
  for (size_t s = 0; s < seqs.size(); s++)
    for (llama_token t : seqs[s])
      if (t < 0 || t >= n_vocab) return fail(a.ids + ": sequence " + std::to_string(s) + " has token " + std::to_string(t) + " outside the vocabulary of " + std::to_string(n_vocab));

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(max_len);
  cp.n_batch = static_cast<uint32_t>(max_len);
  cp.n_ubatch = static_cast<uint32_t>(max_len);
  cp.n_seq_max = 1;
  cp.no_perf = true;
  if (a.threads > 0) { cp.n_threads = a.threads; cp.n_threads_batch = a.threads; }
  llama_context *ctx = llama_init_from_model(model, cp);
  if (!ctx) return fail("llama_init_from_model failed for n_ctx " + std::to_string(max_len));

  std::string tmp = a.out + ".partial";
  FILE *out = std::fopen(tmp.c_str(), "wb");
  if (!out) return fail(tmp + ": cannot write");
  llama_batch batch = llama_batch_init(static_cast<int32_t>(max_len), 0, 1);
  int rc = 0;
  size_t rows = 0;
  for (size_t s = 0; s < seqs.size() && rc == 0; s++) {
    const auto &seq = seqs[s];
    llama_memory_clear(llama_get_memory(ctx), true);
    const size_t first = a.prefill < 0 ? seq.size() : std::min(seq.size(), static_cast<size_t>(a.prefill));
    // chunks: [0, first) in one batch, then one token per batch
    size_t pos = 0;
    while (pos < seq.size() && rc == 0) {
      const size_t n = pos == 0 ? first : 1;
      batch.n_tokens = 0;
      for (size_t i = 0; i < n; i++) {
        const int j = batch.n_tokens++;
        batch.token[j] = seq[pos + i];
        batch.pos[j] = static_cast<llama_pos>(pos + i);
        batch.n_seq_id[j] = 1;
        batch.seq_id[j][0] = 0;
        batch.logits[j] = 1;
      }
      if (llama_decode(ctx, batch) != 0) { rc = fail("llama_decode failed on sequence " + std::to_string(s) + " at position " + std::to_string(pos)); break; }
      for (size_t i = 0; i < n; i++) {
        const float *l = llama_get_logits_ith(ctx, static_cast<int32_t>(i));
        if (!l || std::fwrite(l, sizeof(float), n_vocab, out) != static_cast<size_t>(n_vocab)) { rc = fail(tmp + ": write failed"); break; }
        rows++;
      }
      pos += n;
    }
  }
  llama_batch_free(batch);
  if (std::fclose(out) != 0 && rc == 0) rc = fail(tmp + ": close failed");
  if (rc == 0 && std::rename(tmp.c_str(), a.out.c_str()) != 0) rc = fail(a.out + ": rename failed");
  if (rc != 0) std::remove(tmp.c_str());
  else std::fprintf(stderr, "peers_dump_logits: %zu sequences, %zu rows x %d logits -> %s\n", seqs.size(), rows, n_vocab, a.out.c_str());
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  return rc;
}
