// Checks that rendering allocates nothing per recipient once the output buffers have grown.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "message/template.h"

namespace {
std::atomic<size_t> g_allocations{0};
}  // namespace

// Counting replacements of the global allocation functions (this test binary only).
// GCC 12 inlines these into the standard library at -O2 and then reports the malloc/free
// pair inside them as a new/delete mismatch; the pairing is correct by construction.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace sb {
namespace {

TEST(TemplateRenderAlloc, NoAllocationAfterWarmUp) {
  TemplateOptions o;
  o.default_from = "s@example.com";
  auto r = CompiledTemplate::compile(
      "Subject: Hi {{name}}\nContent-Transfer-Encoding: quoted-printable\n\n"
      "Dear {{name}},\n.line\n{{city}}\n",
      o);
  ASSERT_TRUE(r.ok());
  CompiledTemplate t = std::move(r).value();
  ASSERT_TRUE(t.bind({"name", "city"}).ok());
  std::vector<std::string> big{"J\xC3\xBCrgen " + std::string(300, 'x'), std::string(500, '=')};
  std::vector<std::string> small{"Bob", ".Paris"};
  // An ASCII Subject value long enough to be folded (and one too long to fold: an error).
  std::string many_words;
  for (int i = 0; i < 300; ++i) many_words += "word ";
  std::vector<std::string> folded{many_words, std::string(900, 'c')};
  std::vector<std::string> too_long{std::string(1000, 'n'), "x"};
  RenderedMessage out;
  ASSERT_TRUE(t.render({"r@example.org", &big, 1, 1700000000}, true, out).ok());  // warm up
  ASSERT_TRUE(t.render({"r@example.org", &folded, 1, 1700000000}, true, out).ok());
  size_t before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    const std::vector<std::string>* v = i % 3 == 0 ? &big : i % 3 == 1 ? &small : &folded;
    Status s = t.render({"r@example.org", v, i, 1700000000}, i % 2 != 0, out);
    ASSERT_TRUE(s.ok());
  }
  EXPECT_EQ(g_allocations.load(), before);
  // Failing on a long line builds an error message, which allocates; that is not counted.
  EXPECT_FALSE(t.render({"r@example.org", &too_long, 1, 1700000000}, true, out).ok());
}

}  // namespace
}  // namespace sb
