// Benchmark: importing a 1,000,000-row recipient CSV (email,first_name,city) into a new task.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "store/task_store.h"

namespace {

constexpr int kRows = 1000000;

// The CSV is generated once per process, in its own temp dir that is removed at exit.
class ImportFixtureFiles {
 public:
  ImportFixtureFiles() {
    dir_ =
        std::filesystem::temp_directory_path() / ("sb-import-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    csv_ = (dir_ / "list.csv").string();
    std::FILE* f = std::fopen(csv_.c_str(), "wb");
    if (!f) return;
    std::fputs("email,first_name,city\n", f);
    for (int i = 0; i < kRows; ++i) {
      std::fprintf(f, "user%d@example%d.com,Name%d,City%d\n", i, i % 1000, i, i % 5000);
    }
    ok_ = std::fclose(f) == 0;
  }
  ~ImportFixtureFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ImportFixtureFiles(const ImportFixtureFiles&) = delete;
  ImportFixtureFiles& operator=(const ImportFixtureFiles&) = delete;

  bool ok() const { return ok_; }
  const std::string& csv() const { return csv_; }
  std::string task(int n) const { return (dir_ / ("task" + std::to_string(n) + ".db")).string(); }

 private:
  std::filesystem::path dir_;
  std::string csv_;
  bool ok_ = false;
};

void BM_ImportCsv1M(benchmark::State& state) {
  static ImportFixtureFiles files;
  if (!files.ok()) {
    state.SkipWithError("cannot write the CSV");
    return;
  }
  int n = 0;
  for (auto _ : state) {
    // Opening (creating) the task is part of what a user waits for.
    auto store = sb::TaskStore::open(files.task(n++), true);
    if (!store.ok()) {
      state.SkipWithError(store.error().describe().c_str());
      return;
    }
    auto r = store.value()->import_csv(files.csv());
    if (!r.ok() || r->imported != kRows) {
      state.SkipWithError(r.ok() ? "wrong row count" : r.error().describe().c_str());
      return;
    }
    store.value().reset();  // closing checkpoints; count it too
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRows);
}
BENCHMARK(BM_ImportCsv1M)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
