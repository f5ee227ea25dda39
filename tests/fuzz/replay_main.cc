// Runs a libFuzzer target over a corpus directory without libFuzzer: every file, then a few
// thousand deterministic pseudo-random inputs, so crashes show up in ordinary test builds.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t files = 0;
  if (argc > 1 && std::filesystem::is_directory(argv[1])) {
    for (const auto& e : std::filesystem::directory_iterator(argv[1])) {
      std::ifstream f(e.path(), std::ios::binary);
      std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
      ++files;
    }
  }
  std::mt19937_64 rng(42);
  const char alphabet[] = "0123456789 -\r\n.{}:abcdeEHLOMAILRCPT@<>\"=\x80\xff\t";
  std::string s;
  for (int i = 0; i < 5000; ++i) {
    s.clear();
    size_t n = rng() % 300;
    for (size_t k = 0; k < n; ++k) {
      s.push_back((rng() % 8 == 0) ? static_cast<char>(rng()) : alphabet[rng() % (sizeof alphabet - 1)]);
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("replayed %zu corpus files and 5000 generated inputs\n", files);
  return 0;
}
