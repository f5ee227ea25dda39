// Fuzz target for the sink's protocol engine: arbitrary bytes in arbitrary chunks, faults and
// recording on; checks it neither crashes nor keeps more than its input's worth of memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/sink_engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first two octets pick the chunking and the connection seed, so the fuzzer explores
  // splits as well as content.
  const uint8_t split_seed = data[0];
  const uint64_t conn_seed = data[1];
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

  sb::SinkConfig cfg;
  cfg.max_size = 4096;
  cfg.reject_rcpt = 0.2;
  cfg.defer_rcpt = 0.1;
  cfg.drop_txn = 0.05;
  cfg.defer_txn = 0.1;
  cfg.record = true;
  sb::SinkCounters counters;
  sb::SinkEngine engine(cfg, counters, conn_seed);

  std::string out;
  engine.start(out);
  uint32_t x = split_seed | 0x100u;  // xorshift32 for chunk sizes; never 0
  size_t pos = 0;
  bool open = true;
  size_t recorded = 0;
  while (pos < in.size()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t n = (x % 5 == 0) ? in.size() - pos : x % 64 + 1;
    if (n > in.size() - pos) n = in.size() - pos;
    size_t before = out.size();
    bool now_open = engine.on_data(in.substr(pos, n), out);
    // Once closed, the engine must stay closed and silent.
    if (!open && (now_open || out.size() != before)) std::abort();
    open = now_open;
    pos += n;
    recorded += engine.take_recorded().size();
    // Replies are bounded per input octet (the EHLO reply is the largest per command line),
    // and a recording is its input plus a small header per message.
    if (out.size() > 256 + 64 * pos) std::abort();
    if (recorded > 64 + 32 * pos) std::abort();
  }
  if (counters.connections != 1) std::abort();
  return 0;
}
