// Benchmark: loading a 1,000,000-entry suppression file, and looking recipients up in it.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "store/suppression.h"

namespace {

constexpr int kEntries = 1000000;

// The file is generated once per process (addresses, every 50th line an @domain, a comment
// every 10,000 lines, CRLF on a tenth of the lines), in a temp dir removed at exit.
class SuppressionFile {
 public:
  SuppressionFile() {
    dir_ = std::filesystem::temp_directory_path() /
           ("sb-suppression-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "suppress.txt").string();
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) return;
    for (int i = 0; i < kEntries; ++i) {
      if (i % 10000 == 0) std::fputs("# exported from the ESP\n", f);
      const char* eol = (i % 10 == 0) ? "\r\n" : "\n";
      if (i % 50 == 0) {
        std::fprintf(f, "@Domain%d.example%s", i, eol);
      } else {
        std::fprintf(f, "First.Last%d@mail%d.example.com%s", i, i % 5000, eol);
      }
    }
    ok_ = std::fclose(f) == 0;
  }
  ~SuppressionFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SuppressionFile(const SuppressionFile&) = delete;
  SuppressionFile& operator=(const SuppressionFile&) = delete;

  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  std::filesystem::path dir_;
  std::string path_;
  bool ok_ = false;
};

SuppressionFile& file() {
  static SuppressionFile f;
  return f;
}

void BM_SuppressionLoad1M(benchmark::State& state) {
  if (!file().ok()) {
    state.SkipWithError("cannot write the suppression file");
    return;
  }
  for (auto _ : state) {
    sb::SuppressionList list;
    sb::Status s = list.load_file(file().path());
    if (!s.ok()) {
      state.SkipWithError(s.error().describe().c_str());
      return;
    }
    benchmark::DoNotOptimize(list.size());
    state.counters["entries"] = static_cast<double>(list.size());
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK(BM_SuppressionLoad1M)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Per-recipient cost on the send path: half the lookups hit (an address or a domain), half miss.
void BM_SuppressionLookup(benchmark::State& state) {
  static sb::SuppressionList list;
  static bool loaded = file().ok() && list.load_file(file().path()).ok();
  if (!loaded) {
    state.SkipWithError("cannot load the suppression file");
    return;
  }
  std::vector<std::string> probes;
  for (int i = 0; i < 4096; ++i) {
    int k = (i * 7919) % kEntries;
    if (i % 2 == 0) {
      probes.push_back("first.last" + std::to_string(k) + "@mail" + std::to_string(k % 5000) +
                       ".example.com");
    } else {
      probes.push_back("someone" + std::to_string(k) + "@elsewhere" + std::to_string(k) + ".net");
    }
  }
  size_t i = 0;
  size_t hits = 0;
  for (auto _ : state) {
    hits += list.suppressed(probes[i++ & 4095]);
  }
  benchmark::DoNotOptimize(hits);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SuppressionLookup)->ThreadRange(1, 4);

}  // namespace
