// Micro-benchmark of the TLS engine: CPU of a full vs a resumed handshake, and 2 KB record cost.
#include <benchmark/benchmark.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "loop/tls_engine.h"

namespace {

namespace fs = std::filesystem;

// Certificates from tools/make_test_certs.sh, generated once per process.
const fs::path& cert_dir() {
  static const fs::path dir = [] {
    fs::path src;
    if (const char* env = std::getenv("SMTPBLAST_SOURCE_DIR")) {
      src = env;
    } else {
      src = fs::path(__FILE__).parent_path().parent_path();
    }
    fs::path d = fs::temp_directory_path() / ("sb-tls-bench-" + std::to_string(::getpid()));
    std::string cmd =
        "bash '" + (src / "tools" / "make_test_certs.sh").string() + "' '" + d.string() + "'";
    if (std::system(cmd.c_str()) != 0) return fs::path();
    return d;
  }();
  return dir;
}

int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

struct Contexts {
  std::shared_ptr<sb::TlsContext> client;
  std::shared_ptr<sb::TlsContext> server;
};

// max_version 0 = TLS 1.3.
bool make_contexts(int max_version, Contexts& out, benchmark::State& state) {
  const fs::path& d = cert_dir();
  if (d.empty()) {
    state.SkipWithError("tools/make_test_certs.sh failed");
    return false;
  }
  sb::TlsClientConfig cfg;
  cfg.ca_file = (d / "ca.pem").string();
  cfg.sni_host = "localhost";
  auto c = sb::TlsContext::create_client(cfg);
  sb::TlsServerOptions opts;
  opts.max_version = max_version;
  auto s =
      sb::TlsContext::create_server((d / "server.pem").string(), (d / "server.key").string(), opts);
  if (!c.ok() || !s.ok()) {
    state.SkipWithError("cannot create TLS contexts");
    return false;
  }
  out.client = c.value();
  out.server = s.value();
  return true;
}

struct HandshakeCost {
  int64_t client_ns = 0;
  int64_t server_ns = 0;
  bool ok = false;
  bool resumed = false;
};

// One connection: engines created, handshake pumped to the end (TLS 1.3 tickets included),
// client and server CPU measured separately on this thread.
HandshakeCost handshake(const Contexts& ctx) {
  HandshakeCost cost;
  std::string c2s, s2c, plain;
  int64_t t0 = thread_cpu_ns();
  auto c = sb::TlsEngine::create_client(ctx.client);
  if (!c.ok() || !c.value()->start_handshake(c2s).ok()) return cost;
  int64_t t1 = thread_cpu_ns();
  auto s = sb::TlsEngine::create_server(ctx.server);
  if (!s.ok()) return cost;
  int64_t t2 = thread_cpu_ns();
  cost.client_ns += t1 - t0;
  cost.server_ns += t2 - t1;
  std::string in;
  while (!c2s.empty() || !s2c.empty()) {
    in.clear();
    in.swap(c2s);
    int64_t a = thread_cpu_ns();
    bool sok = in.empty() || s.value()->on_cipher_in(in, plain, s2c).ok();
    int64_t b = thread_cpu_ns();
    in.clear();
    in.swap(s2c);
    bool cok = in.empty() || c.value()->on_cipher_in(in, plain, c2s).ok();
    int64_t e = thread_cpu_ns();
    cost.server_ns += b - a;
    cost.client_ns += e - b;
    if (!sok || !cok) return cost;
  }
  int64_t a = thread_cpu_ns();
  cost.ok = c.value()->handshake_done();
  cost.resumed = c.value()->info().resumed;
  c.value().reset();
  int64_t b = thread_cpu_ns();
  s.value().reset();
  int64_t e = thread_cpu_ns();
  cost.client_ns += b - a;
  cost.server_ns += e - b;
  return cost;
}

void run_handshakes(benchmark::State& state, bool resume) {
  Contexts ctx;
  if (!make_contexts(static_cast<int>(state.range(0)), ctx, state)) return;
  if (!handshake(ctx).ok) {  // warm-up; leaves a session for the resumed case
    state.SkipWithError("handshake failed");
    return;
  }
  int64_t client_ns = 0, server_ns = 0, resumed = 0;
  for (auto _ : state) {
    if (!resume) ctx.client->forget_sessions();
    HandshakeCost c = handshake(ctx);
    if (!c.ok) {
      state.SkipWithError("handshake failed");
      return;
    }
    client_ns += c.client_ns;
    server_ns += c.server_ns;
    resumed += c.resumed ? 1 : 0;
  }
  using C = benchmark::Counter;
  state.counters["client_us"] = C(static_cast<double>(client_ns) / 1e3, C::kAvgIterations);
  state.counters["server_us"] = C(static_cast<double>(server_ns) / 1e3, C::kAvgIterations);
  state.counters["resumed"] = C(static_cast<double>(resumed), C::kAvgIterations);
  state.SetLabel(state.range(0) == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
}

void BM_TlsHandshakeFull(benchmark::State& state) { run_handshakes(state, false); }
void BM_TlsHandshakeResumed(benchmark::State& state) { run_handshakes(state, true); }
BENCHMARK(BM_TlsHandshakeFull)->Arg(0)->Arg(TLS1_2_VERSION)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TlsHandshakeResumed)->Arg(0)->Arg(TLS1_2_VERSION)->Unit(benchmark::kMicrosecond);

// 2 KB writes (a small message or a pipelined command batch): encrypt only, or encrypt on the
// client and decrypt on the server (range(0) = 1).
void BM_TlsRecord2K(benchmark::State& state) {
  Contexts ctx;
  if (!make_contexts(0, ctx, state)) return;
  auto c = sb::TlsEngine::create_client(ctx.client);
  auto s = sb::TlsEngine::create_server(ctx.server);
  if (!c.ok() || !s.ok()) return state.SkipWithError("engine");
  std::string c2s, s2c, plain, in;
  if (!c.value()->start_handshake(c2s).ok()) return state.SkipWithError("start");
  while (!c2s.empty() || !s2c.empty()) {
    in.clear();
    in.swap(c2s);
    if (!s.value()->on_cipher_in(in, plain, s2c).ok()) return state.SkipWithError("server");
    in.clear();
    in.swap(s2c);
    if (!c.value()->on_cipher_in(in, plain, c2s).ok()) return state.SkipWithError("client");
  }
  const std::string data(2048, 'x');
  const bool decrypt = state.range(0) == 1;
  for (auto _ : state) {
    c2s.clear();
    if (!c.value()->write_plain(data, c2s).ok()) return state.SkipWithError("write");
    if (decrypt) {
      plain.clear();
      if (!s.value()->on_cipher_in(c2s, plain, s2c).ok() || plain.size() != data.size()) {
        return state.SkipWithError("read");
      }
    }
    benchmark::DoNotOptimize(c2s.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 2048);
  state.SetLabel(c.value()->info().cipher + (decrypt ? " encrypt+decrypt" : " encrypt"));
}
BENCHMARK(BM_TlsRecord2K)->Arg(0)->Arg(1);

}  // namespace
