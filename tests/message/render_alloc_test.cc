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
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

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
  RenderedMessage out;
  ASSERT_TRUE(t.render({"r@example.org", &big, 1, 1700000000}, true, out).ok());  // warm up
  size_t before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    Status s = t.render({"r@example.org", i % 2 ? &big : &small, i, 1700000000}, i % 3 != 0, out);
    ASSERT_TRUE(s.ok());
  }
  EXPECT_EQ(g_allocations.load(), before);
}

}  // namespace
}  // namespace sb
