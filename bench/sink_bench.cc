// Micro-benchmark of the sink's protocol engine: pipelined 2 KB transactions fed in 64 KB reads.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "smtp/sink_engine.h"

namespace {

constexpr size_t kMessages = 1000;
constexpr size_t kReadSize = 64 * 1024;

// One transaction: MAIL, RCPT, DATA and a ~2 KB body of 76-column lines, some dot-stuffed,
// as a pipelining client that has its 354 would have them on the wire.
std::string make_stream(size_t messages) {
  std::string body = "From: a@example.com\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n";
  for (int i = 0; body.size() < 2000; ++i) {
    body += (i % 10 == 0) ? ".." : "";
    body += std::string(74, static_cast<char>('a' + i % 26));
    body += "\r\n";
  }
  std::string stream = "EHLO client.example.com\r\n";
  for (size_t m = 0; m < messages; ++m) {
    stream += "MAIL FROM:<sender@example.com> SIZE=2100\r\nRCPT TO:<rcpt";
    stream += std::to_string(m);
    stream += "@example.net>\r\nDATA\r\n";
    stream += body;
    stream += ".\r\n";
  }
  stream += "QUIT\r\n";
  return stream;
}

void run_sink(benchmark::State& state, bool record) {
  const std::string stream = make_stream(kMessages);
  sb::SinkConfig cfg;
  cfg.record = record;
  sb::SinkCounters counters;
  std::string out;
  out.reserve(kReadSize);
  uint64_t conn = 0;
  for (auto _ : state) {
    sb::SinkEngine engine(cfg, counters, ++conn);
    engine.start(out);
    for (size_t pos = 0; pos < stream.size(); pos += kReadSize) {
      out.clear();
      size_t n = std::min(kReadSize, stream.size() - pos);
      benchmark::DoNotOptimize(engine.on_data(std::string_view(stream).substr(pos, n), out));
    }
    if (record) benchmark::DoNotOptimize(engine.take_recorded());
  }
  if (counters.messages != kMessages * state.iterations()) state.SkipWithError("lost messages");
  state.SetItemsProcessed(static_cast<int64_t>(kMessages * state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(stream.size() * state.iterations()));
  state.counters["msgs/s"] = benchmark::Counter(static_cast<double>(kMessages * state.iterations()),
                                                benchmark::Counter::kIsRate);
}

void bm_sink_pipelined_2k(benchmark::State& state) { run_sink(state, false); }
void bm_sink_pipelined_2k_record(benchmark::State& state) { run_sink(state, true); }

}  // namespace

BENCHMARK(bm_sink_pipelined_2k);
BENCHMARK(bm_sink_pipelined_2k_record);
