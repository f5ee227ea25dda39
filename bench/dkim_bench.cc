// Micro-benchmark of DKIM signing: a ~2 KB message, rsa-sha256 (2048) and ed25519-sha256.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "message/dkim.h"

namespace {

std::string make_message() {
  std::string m =
      "From: News <news@example.com>\r\n"
      "To: jane.doe@example.org\r\n"
      "Subject: Hello Jane, your March update\r\n"
      "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
      "Message-ID: <bench.1@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "List-Unsubscribe: <https://example.com/u?t=AQAQamFuZUBleGFtcGxlLm9yZ3Qx>\r\n"
      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
      "\r\n"
      "Dear Jane Doe,\r\n\r\n";
  while (m.size() < 2048) {
    m += "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
  }
  return m;
}

// Makes a key file once per algorithm (in $TMPDIR) and a signer over it.
std::unique_ptr<sb::DkimSigner> make_signer(const char* alg) {
  EVP_PKEY* k = std::string(alg) == "rsa-sha256"
                    ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(2048))
                    : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  const char* t = std::getenv("TMPDIR");
  std::string path = std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/sb-dkim-bench-" +
                     alg + "-" + std::to_string(::getpid()) + ".pem";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (k == nullptr || f == nullptr) std::abort();
  ::fchmod(fileno(f), 0600);
  PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  EVP_PKEY_free(k);
  sb::DkimKeyConfig cfg;
  cfg.key_file = path;
  cfg.domain = "example.com";
  cfg.selector = "bench";
  cfg.algorithm = alg;
  auto r = sb::DkimSigner::create(cfg);
  ::unlink(path.c_str());
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

sb::DkimSigner& signer(const char* alg) {
  static auto rsa = make_signer("rsa-sha256");
  static auto ed = make_signer("ed25519-sha256");
  return std::string(alg) == "rsa-sha256" ? *rsa : *ed;
}

// Per-recipient cost with the body hashed each time (bodies with merge fields). Multi-threaded
// runs share one signer, as the workers do.
void sign_bench(benchmark::State& state, const char* alg, bool precomputed_bh) {
  const std::string msg = make_message();
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < msg.size(); i += 256)
    pieces.push_back(std::string_view(msg).substr(i, 256));
  sb::DkimSigner& s = signer(alg);
  std::string bh = precomputed_bh ? s.precompute_body_hash(pieces) : std::string();
  std::string hdr;
  for (auto _ : state) {
    sb::Status st = s.sign(pieces, hdr, bh);
    if (!st.ok()) state.SkipWithError(st.error().message.c_str());
    benchmark::DoNotOptimize(hdr.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["msg_bytes"] = double(msg.size());
}

void BM_DkimSignRsa2048(benchmark::State& s) { sign_bench(s, "rsa-sha256", false); }
void BM_DkimSignEd25519(benchmark::State& s) { sign_bench(s, "ed25519-sha256", false); }
void BM_DkimSignEd25519PrecomputedBh(benchmark::State& s) { sign_bench(s, "ed25519-sha256", true); }
BENCHMARK(BM_DkimSignRsa2048)->UseRealTime();
BENCHMARK(BM_DkimSignRsa2048)->Threads(4)->UseRealTime();
BENCHMARK(BM_DkimSignEd25519)->UseRealTime();
BENCHMARK(BM_DkimSignEd25519)->Threads(4)->UseRealTime();
BENCHMARK(BM_DkimSignEd25519PrecomputedBh)->UseRealTime();

void BM_DkimBodyHash2K(benchmark::State& state) {
  const std::string msg = make_message();
  const std::string_view body = std::string_view(msg).substr(msg.find("\r\n\r\n") + 4);
  sb::DkimBodyHasher h(sb::DkimCanon::kRelaxed);
  for (auto _ : state) {
    h.reset();
    h.update(body);
    std::string bh = h.finish();
    benchmark::DoNotOptimize(bh.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(body.size()));
}
BENCHMARK(BM_DkimBodyHash2K);

}  // namespace
